//! Per-address limits: sessions still in their handshake or login, counted
//! per client address, so that one address cannot fill the server with
//! half-open sessions (each costs three X25519 operations and a login
//! deadline); and the rate of key agreements an address may start, so that
//! churning connections cannot spend the server's CPU on X25519. IPv6
//! clients are counted per /64, the block one subscriber usually holds, and
//! their rate also per /48, the block one site usually holds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The unit a per-address limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressPrefix {
    V4([u8; 4]),
    /// The upper 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl AddressPrefix {
    pub fn of(address: SocketAddr) -> Self {
        match address.ip() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let octets = v6.octets();
                    Self::V6(octets[..8].try_into().expect("8 bytes"))
                }
            },
        }
    }
}

/// Counts per prefix; an entry exists only while its count is above zero, so
/// the map holds at most as many entries as there are counted sessions.
#[derive(Debug, Default)]
pub struct AddressLimit {
    counts: HashMap<AddressPrefix, u32>,
}

impl AddressLimit {
    /// Takes one slot for `prefix` unless it already holds `limit`.
    pub fn try_take(&mut self, prefix: AddressPrefix, limit: u32) -> bool {
        let count = self.counts.entry(prefix).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                self.counts.remove(&prefix);
            }
            return false;
        }
        *count += 1;
        true
    }

    /// Takes one slot whatever the count (the caller checked `held`).
    pub fn take(&mut self, prefix: AddressPrefix) {
        *self.counts.entry(prefix).or_insert(0) += 1;
    }

    pub fn release(&mut self, prefix: AddressPrefix) {
        if let Some(count) = self.counts.get_mut(&prefix) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&prefix);
            }
        }
    }

    pub fn held(&self, prefix: AddressPrefix) -> u32 {
        self.counts.get(&prefix).copied().unwrap_or(0)
    }

    pub fn entries(&self) -> usize {
        self.counts.len()
    }
}

/// A coarser unit for rates: an IPv6 site (/48) holds 65,536 /64s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SitePrefix {
    V4([u8; 4]),
    V6([u8; 6]),
}

impl SitePrefix {
    pub fn of(prefix: AddressPrefix) -> Self {
        match prefix {
            AddressPrefix::V4(v4) => Self::V4(v4),
            AddressPrefix::V6(v6) => Self::V6(v6[..6].try_into().expect("6 bytes")),
        }
    }
}

/// Token buckets by key, bounded in entries: a bucket that has refilled is
/// as good as absent and is swept out when the table is full; if every
/// entry is still in use, newcomers are refused (a flood from that many
/// addresses at once is what the table's size is for).
#[derive(Debug)]
pub struct RateLimit<K> {
    buckets: HashMap<K, (f64, Instant)>,
    burst: f64,
    per_second: f64,
    max_entries: usize,
}

impl<K: std::hash::Hash + Eq + Copy> RateLimit<K> {
    pub fn new(burst: u32, per_second: u32, max_entries: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            max_entries,
        }
    }

    fn refilled(&self, (tokens, at): (f64, Instant), now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        (tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Whether `key` may start one more; takes a token when it may.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        if self.per_second == 0.0 && self.burst == 0.0 {
            return true; // no limit configured
        }
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_entries {
            let (burst, per_second) = (self.burst, self.per_second);
            self.buckets.retain(|_, (tokens, at)| {
                let elapsed = now.saturating_duration_since(*at).as_secs_f64();
                (*tokens + elapsed * per_second) < burst
            });
            if self.buckets.len() >= self.max_entries {
                return false;
            }
        }
        let entry = self.buckets.get(&key).copied().unwrap_or((self.burst, now));
        let tokens = self.refilled(entry, now);
        if tokens < 1.0 {
            self.buckets.insert(key, (tokens, now));
            return false;
        }
        self.buckets.insert(key, (tokens - 1.0, now));
        true
    }

    pub fn entries(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: SocketAddr = "[2001:db8:1:2::1]:5000".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:ffff::9]:6000".parse().unwrap();
        let c: SocketAddr = "[2001:db8:1:3::1]:5000".parse().unwrap();
        assert_eq!(AddressPrefix::of(a), AddressPrefix::of(b));
        assert_ne!(AddressPrefix::of(a), AddressPrefix::of(c));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        let plain: SocketAddr = "10.0.0.1:2".parse().unwrap();
        assert_eq!(AddressPrefix::of(mapped), AddressPrefix::of(plain));
    }

    #[test]
    fn slots_are_taken_up_to_the_limit_and_entries_vanish_at_zero() {
        let mut limit = AddressLimit::default();
        let prefix = AddressPrefix::of("10.0.0.1:1".parse().unwrap());
        assert!(limit.try_take(prefix, 2));
        assert!(limit.try_take(prefix, 2));
        assert!(!limit.try_take(prefix, 2));
        limit.release(prefix);
        assert!(limit.try_take(prefix, 2));
        limit.release(prefix);
        limit.release(prefix);
        assert_eq!(limit.entries(), 0);
        assert!(!limit.try_take(prefix, 0));
        assert_eq!(limit.entries(), 0);
    }

    #[test]
    fn rates_refill_and_the_table_stays_bounded() {
        let start = Instant::now();
        let mut limit = RateLimit::new(3, 2, 4);
        let key = |n: u8| AddressPrefix::V4([10, 0, 0, n]);
        assert!((0..3).all(|_| limit.allow(key(1), start)));
        assert!(!limit.allow(key(1), start), "burst spent");
        assert!(
            limit.allow(key(1), start + Duration::from_millis(500)),
            "refilled one"
        );
        for n in 2..=4 {
            assert!(limit.allow(key(n), start));
        }
        assert!(!limit.allow(key(5), start), "table full of active buckets");
        assert_eq!(limit.entries(), 4);
        // Later every bucket has refilled: they are swept and 5 gets in.
        assert!(limit.allow(key(5), start + Duration::from_secs(10)));
        assert!(limit.entries() <= 4);
        let v6 = |text: &str| AddressPrefix::of(text.parse().unwrap());
        assert_eq!(
            SitePrefix::of(v6("[2001:db8:1:2::1]:1")),
            SitePrefix::of(v6("[2001:db8:1:ffff::1]:1"))
        );
    }
}
