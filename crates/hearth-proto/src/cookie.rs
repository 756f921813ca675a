//! Stateless handshake cookies under two rotating server secrets, as UE's
//! StatelessConnectHandlerComponent keeps them: the active secret flips about
//! every 15 s (plus up to 5 s of jitter) and the previous one stays valid, so a
//! cookie lives at most two periods and never longer than `MAX_COOKIE_AGE_MS`.

use std::net::SocketAddr;

use rand_core::RngCore;

use crate::crypto::{hmac_parts, secure_eq};
use crate::handshake::Cookie;

pub const SECRET_PERIOD_MS: u64 = 15_000;
pub const SECRET_JITTER_MS: u64 = 5_000;
pub const MAX_COOKIE_AGE_MS: u64 = 40_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// Older than the maximum age or minted under a secret since replaced.
    Expired,
    /// Timestamp in the server's future: forged.
    FromTheFuture,
    /// MAC does not match: forged, altered, or presented from another address.
    BadMac,
}

pub struct CookieSecrets {
    secrets: [[u8; 32]; 2],
    created_ms: [u64; 2],
    active: usize,
    next_rotation_ms: u64,
}

/// Stable byte form of an address for the MAC: family, IP, port.
pub fn address_bytes(addr: &SocketAddr) -> ([u8; 19], usize) {
    let mut out = [0u8; 19];
    let len = match addr {
        SocketAddr::V4(v4) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&v4.ip().octets());
            out[5..7].copy_from_slice(&v4.port().to_be_bytes());
            7
        }
        SocketAddr::V6(v6) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&v6.ip().octets());
            out[17..19].copy_from_slice(&v6.port().to_be_bytes());
            19
        }
    };
    (out, len)
}

impl CookieSecrets {
    pub fn new(rng: &mut impl RngCore, now_ms: u64) -> Self {
        let mut secrets = [[0u8; 32]; 2];
        rng.fill_bytes(&mut secrets[0]);
        rng.fill_bytes(&mut secrets[1]);
        let mut jar = Self {
            secrets,
            created_ms: [now_ms; 2],
            active: 0,
            next_rotation_ms: 0,
        };
        jar.schedule(rng, now_ms);
        jar
    }

    fn schedule(&mut self, rng: &mut impl RngCore, now_ms: u64) {
        self.next_rotation_ms = now_ms + SECRET_PERIOD_MS + rng.next_u64() % SECRET_JITTER_MS;
    }

    pub fn next_rotation_ms(&self) -> u64 {
        self.next_rotation_ms
    }

    /// Flips the active secret when due, replacing the oldest with fresh
    /// bytes. Rotations happen at their scheduled times, not when this is
    /// called: two jars made from the same seed at the same epoch hold the
    /// same secrets at any moment however often each is maintained, which is
    /// what lets every gate shard check a cookie another shard minted.
    pub fn maintain(&mut self, rng: &mut impl RngCore, now_ms: u64) {
        while now_ms >= self.next_rotation_ms {
            let due = self.next_rotation_ms;
            let retiring = 1 - self.active;
            rng.fill_bytes(&mut self.secrets[retiring]);
            self.created_ms[retiring] = due;
            self.active = retiring;
            self.schedule(rng, due);
        }
    }

    fn mac(&self, slot: usize, timestamp: u64, from: &SocketAddr, params: &[&[u8]]) -> [u8; 32] {
        let (addr, addr_len) = address_bytes(from);
        let ts = timestamp.to_be_bytes();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(params.len() + 2);
        parts.push(&ts);
        parts.push(&addr[..addr_len]);
        parts.extend_from_slice(params);
        hmac_parts(&self.secrets[slot], &parts)
    }

    /// A cookie binding `from` and the handshake `params` to this moment.
    pub fn mint(&self, now_ms: u64, from: &SocketAddr, params: &[&[u8]]) -> Cookie {
        Cookie {
            timestamp: now_ms,
            secret_id: self.active as u8,
            mac: self.mac(self.active, now_ms, from, params),
        }
    }

    pub fn verify(
        &self,
        now_ms: u64,
        cookie: &Cookie,
        from: &SocketAddr,
        params: &[&[u8]],
    ) -> Result<(), CookieError> {
        let slot = usize::from(cookie.secret_id & 1);
        if cookie.secret_id > 1 {
            return Err(CookieError::BadMac);
        }
        if cookie.timestamp > now_ms {
            return Err(CookieError::FromTheFuture);
        }
        if now_ms - cookie.timestamp > MAX_COOKIE_AGE_MS || cookie.timestamp < self.created_ms[slot]
        {
            return Err(CookieError::Expired);
        }
        let expected = self.mac(slot, cookie.timestamp, from, params);
        if secure_eq(&expected, &cookie.mac) {
            Ok(())
        } else {
            Err(CookieError::BadMac)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn cookie_is_bound_to_address_and_parameters() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let jar = CookieSecrets::new(&mut rng, 1000);
        let cookie = jar.mint(1000, &addr(5), &[b"key"]);
        assert_eq!(jar.verify(1500, &cookie, &addr(5), &[b"key"]), Ok(()));
        assert_eq!(
            jar.verify(1500, &cookie, &addr(6), &[b"key"]),
            Err(CookieError::BadMac)
        );
        assert_eq!(
            jar.verify(1500, &cookie, &addr(5), &[b"kez"]),
            Err(CookieError::BadMac)
        );
        assert_eq!(
            jar.verify(999, &cookie, &addr(5), &[b"key"]),
            Err(CookieError::FromTheFuture)
        );
        let mut forged = cookie;
        forged.timestamp += 1;
        assert_eq!(
            jar.verify(1500, &forged, &addr(5), &[b"key"]),
            Err(CookieError::BadMac)
        );
    }

    #[test]
    fn secrets_rotate_and_cookies_expire() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut jar = CookieSecrets::new(&mut rng, 0);
        let first = jar.next_rotation_ms();
        assert!((SECRET_PERIOD_MS..SECRET_PERIOD_MS + SECRET_JITTER_MS).contains(&first));
        let cookie = jar.mint(first - 1, &addr(1), &[]);
        jar.maintain(&mut rng, first);
        // Still valid under the previous secret after one flip.
        assert_eq!(jar.verify(first + 1, &cookie, &addr(1), &[]), Ok(()));
        let fresh = jar.mint(first, &addr(1), &[]);
        assert_ne!(fresh.secret_id, cookie.secret_id);
        let second = jar.next_rotation_ms();
        jar.maintain(&mut rng, second);
        assert_eq!(
            jar.verify(second, &cookie, &addr(1), &[]),
            Err(CookieError::Expired)
        );
        assert_eq!(jar.verify(second, &fresh, &addr(1), &[]), Ok(()));
        assert_eq!(
            jar.verify(
                fresh.timestamp + MAX_COOKIE_AGE_MS + 1,
                &fresh,
                &addr(1),
                &[]
            ),
            Err(CookieError::Expired)
        );
    }

    #[test]
    fn jars_from_one_seed_agree_however_often_they_are_maintained() {
        let mut rng_a = ChaCha20Rng::seed_from_u64(3);
        let mut rng_b = ChaCha20Rng::seed_from_u64(3);
        let mut a = CookieSecrets::new(&mut rng_a, 0);
        let mut b = CookieSecrets::new(&mut rng_b, 0);
        // `a` every second, `b` only once, a minute and a half later.
        for now in (0..=90_000).step_by(1000) {
            a.maintain(&mut rng_a, now);
        }
        b.maintain(&mut rng_b, 90_000);
        let cookie = a.mint(90_000, &addr(9), &[b"p"]);
        assert_eq!(b.verify(90_001, &cookie, &addr(9), &[b"p"]), Ok(()));
        assert_eq!(a.next_rotation_ms(), b.next_rotation_ms());
    }
}
