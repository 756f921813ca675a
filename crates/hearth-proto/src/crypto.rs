//! Key agreement, per-direction packet keys and the replay window.
//!
//! The handshake runs X25519 twice — client ephemeral with server ephemeral
//! (forward secrecy) and client ephemeral with the server's static key (server
//! authentication, so a pinned client detects a man in the middle) — and feeds
//! both shared secrets, plus an attach secret when a ticket or resume token is
//! presented, to HKDF-SHA256 salted with the transcript hash. Every protected
//! datagram is sealed with ChaCha20-Poly1305 under the key of its direction;
//! the nonce is the 64-bit packet number, which never repeats under one key.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use sha2::{Digest, Sha256};

pub const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
pub type HmacSha256 = Hmac<Sha256>;

/// Everything both ends derive from one completed handshake.
#[derive(Clone)]
pub struct SessionKeys {
    pub client_to_server: [u8; KEY_LEN],
    pub server_to_client: [u8; KEY_LEN],
    /// Seals the server's ChallengeAck, proving the server holds its static key.
    pub confirm: [u8; KEY_LEN],
}

impl SessionKeys {
    pub fn derive(
        ephemeral_dh: &[u8; 32],
        static_dh: &[u8; 32],
        attach_secret: Option<&[u8; 32]>,
        transcript: &[u8; 32],
    ) -> Self {
        let mut ikm = Vec::with_capacity(96);
        ikm.extend_from_slice(ephemeral_dh);
        ikm.extend_from_slice(static_dh);
        if let Some(secret) = attach_secret {
            ikm.extend_from_slice(secret);
        }
        let hkdf = Hkdf::<Sha256>::new(Some(transcript), &ikm);
        let mut keys = Self {
            client_to_server: [0; KEY_LEN],
            server_to_client: [0; KEY_LEN],
            confirm: [0; KEY_LEN],
        };
        // Expanding 32 bytes from SHA-256 HKDF cannot fail.
        hkdf.expand(b"hearth c2s", &mut keys.client_to_server)
            .expect("32 bytes");
        hkdf.expand(b"hearth s2c", &mut keys.server_to_client)
            .expect("32 bytes");
        hkdf.expand(b"hearth confirm", &mut keys.confirm)
            .expect("32 bytes");
        keys
    }
}

/// The first packet numbers of each direction and the KCP conversation id,
/// derived from the cookie as UE derives its initial sequence numbers: neither
/// zero nor predictable to anyone who did not see the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialNumbers {
    pub client_packet: u64,
    pub server_packet: u64,
    pub kcp_conv: u32,
}

impl InitialNumbers {
    pub fn from_cookie(cookie: &[u8; 32]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"hearth initial numbers"), cookie);
        let mut out = [0u8; 12];
        hkdf.expand(b"pn", &mut out).expect("12 bytes");
        let half = |b: &[u8]| u64::from(u32::from_be_bytes(b.try_into().expect("4 bytes")));
        // Start in the low 32 bits so the 64-bit counter can never wrap, and
        // never at zero.
        Self {
            client_packet: half(&out[0..4]) | 1,
            server_packet: half(&out[4..8]) | 1,
            kcp_conv: u32::from_be_bytes(out[8..12].try_into().expect("4 bytes")) | 1,
        }
    }
}

/// Hash of the handshake fields both sides saw, binding the keys to them.
pub fn transcript_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"hearth handshake v2");
    for part in parts {
        hasher.update((part.len() as u32).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// HMAC-SHA256 over length-delimited parts.
pub fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality for secrets and MACs.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn nonce_for(packet_number: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&packet_number.to_be_bytes());
    // Unique per key: packet numbers never repeat within one direction.
    Nonce::assume_unique_for_key(nonce)
}

/// One direction's AEAD key: ChaCha20-Poly1305 (RFC 8439). The implementation
/// is ring's, whose assembly is several times faster on small packets than
/// the portable backends, and small packets are all a game sends.
pub struct PacketKey {
    cipher: LessSafeKey,
    raw: [u8; KEY_LEN],
}

impl Clone for PacketKey {
    fn clone(&self) -> Self {
        Self::new(&self.raw)
    }
}

impl PacketKey {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key is valid");
        Self {
            cipher: LessSafeKey::new(unbound),
            raw: *key,
        }
    }

    /// Encrypts `buffer[body_start..]` in place and appends the tag; the
    /// header before `body_start` is authenticated, not encrypted.
    pub fn seal(&self, packet_number: u64, buffer: &mut Vec<u8>, body_start: usize) {
        let (header, body) = buffer.split_at_mut(body_start);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce_for(packet_number), Aad::from(&*header), body)
            .expect("ChaCha20-Poly1305 seals any packet shorter than 256 GiB");
        buffer.extend_from_slice(tag.as_ref());
    }

    /// Checks and decrypts `packet[body_start..]` (ciphertext then tag) in
    /// place; returns the plaintext length or `None` when authentication fails.
    pub fn open(&self, packet_number: u64, packet: &mut [u8], body_start: usize) -> Option<usize> {
        if packet.len() < body_start + TAG_LEN {
            return None;
        }
        let (header, sealed) = packet.split_at_mut(body_start);
        let plain = self
            .cipher
            .open_in_place(nonce_for(packet_number), Aad::from(&*header), sealed)
            .ok()?;
        Some(plain.len())
    }
}

/// Why the replay window refused a packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    Fresh,
    Duplicate,
    TooOld,
}

/// Sliding window over received packet numbers (as WireGuard and IPsec keep):
/// accepts each number once and anything within `WINDOW` of the newest.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    newest: u64,
    /// Bit `i` set: `newest - i` was received.
    seen: [u64; Self::WORDS],
}

impl ReplayWindow {
    const WORDS: usize = 16;
    pub const WINDOW: u64 = (Self::WORDS * 64) as u64;

    /// A window that refuses everything below `first` (the initial number).
    pub fn starting_at(first: u64) -> Self {
        // Everything below `first` counts as already seen, so it is refused.
        Self {
            newest: first.saturating_sub(1),
            seen: [u64::MAX; Self::WORDS],
        }
    }

    pub fn check(&self, number: u64) -> ReplayVerdict {
        if number > self.newest {
            return ReplayVerdict::Fresh;
        }
        let behind = self.newest - number;
        if behind >= Self::WINDOW {
            return ReplayVerdict::TooOld;
        }
        let (word, bit) = ((behind / 64) as usize, behind % 64);
        if self.seen[word] & (1 << bit) != 0 {
            ReplayVerdict::Duplicate
        } else {
            ReplayVerdict::Fresh
        }
    }

    /// Records `number`; call only after the packet authenticated.
    pub fn commit(&mut self, number: u64) {
        if number > self.newest {
            self.shift(number - self.newest);
            self.newest = number;
            self.seen[0] |= 1;
        } else {
            let behind = self.newest - number;
            if behind < Self::WINDOW {
                self.seen[(behind / 64) as usize] |= 1 << (behind % 64);
            }
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= Self::WINDOW {
            self.seen = [0; Self::WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        for index in (0..Self::WORDS).rev() {
            let from = index.checked_sub(words);
            let mut value = from.map_or(0, |f| self.seen[f] << bits);
            if bits > 0 {
                if let Some(lower) = from.and_then(|f| f.checked_sub(1)) {
                    value |= self.seen[lower] >> (64 - bits);
                }
            }
            self.seen[index] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_tamper_fails() {
        let key = PacketKey::new(&[7; 32]);
        let mut packet = b"header".to_vec();
        packet.extend_from_slice(b"secret payload");
        key.seal(42, &mut packet, 6);
        assert_ne!(&packet[6..20], b"secret payload");
        let mut copy = packet.clone();
        let len = key.open(42, &mut copy, 6).unwrap();
        assert_eq!(&copy[6..6 + len], b"secret payload");
        for flip in [0, 7, packet.len() - 1] {
            let mut bad = packet.clone();
            bad[flip] ^= 1;
            assert!(key.open(42, &mut bad, 6).is_none(), "flip at {flip}");
        }
        assert!(
            key.open(43, &mut packet.clone(), 6).is_none(),
            "wrong nonce"
        );
    }

    #[test]
    fn replay_window_accepts_each_number_once() {
        let mut window = ReplayWindow::starting_at(1000);
        assert_eq!(window.check(999), ReplayVerdict::Duplicate);
        for n in [1000, 1002, 1001, 1500, 1003] {
            assert_eq!(window.check(n), ReplayVerdict::Fresh, "{n}");
            window.commit(n);
            assert_eq!(window.check(n), ReplayVerdict::Duplicate, "{n}");
        }
        assert_eq!(window.check(1004), ReplayVerdict::Fresh);
        window.commit(1500 + ReplayWindow::WINDOW);
        assert_eq!(window.check(1500), ReplayVerdict::TooOld);
        assert_eq!(window.check(1501), ReplayVerdict::Fresh);
        assert_eq!(
            window.check(1500 + ReplayWindow::WINDOW),
            ReplayVerdict::Duplicate
        );
    }

    #[test]
    fn replay_window_shift_keeps_bits_across_words() {
        let mut window = ReplayWindow::starting_at(1);
        for n in 1..=200 {
            window.commit(n);
        }
        window.commit(270);
        for n in 1..=200 {
            assert_eq!(window.check(n), ReplayVerdict::Duplicate, "{n}");
        }
        for n in 201..270 {
            assert_eq!(window.check(n), ReplayVerdict::Fresh, "{n}");
        }
    }

    #[test]
    fn initial_numbers_are_nonzero_and_differ_per_cookie() {
        let a = InitialNumbers::from_cookie(&[1; 32]);
        let b = InitialNumbers::from_cookie(&[2; 32]);
        assert_ne!(a, b);
        assert!(a.client_packet != 0 && a.server_packet != 0 && a.kcp_conv != 0);
        assert!(a.client_packet <= u32::MAX as u64);
    }
}
