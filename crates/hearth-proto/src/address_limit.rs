//! Per-address limits, for every layer that has them (the protocol's login
//! slots and key-agreement rates here, the drivers' connection admission, the
//! accounts' login and registration rates): what counts as one client's
//! address, whether a client is exempt as loopback, counts of sessions still
//! in their handshake or login (so that one address cannot fill the server
//! with half-open sessions, each costing three X25519 operations and a login
//! deadline), and token buckets for rates (so that churning connections
//! cannot spend the server's CPU on X25519 or argon2). IPv6 clients are
//! counted per /64, the block one subscriber usually holds, and their
//! key-agreement rate also per /48, the block one site usually holds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The unit a per-address limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressPrefix {
    /// An IPv4 address, also when written as an IPv4-mapped IPv6 address
    /// (what a dual-stack socket reports).
    V4([u8; 4]),
    /// The upper 64 bits of an IPv6 address: one subscriber is commonly
    /// handed a whole /64 and could otherwise take a fresh address each time.
    V6([u8; 8]),
}

impl AddressPrefix {
    pub fn of(address: SocketAddr) -> Self {
        Self::from(address.ip())
    }

    /// The prefix's bytes: 4 for IPv4, 8 for an IPv6 /64 (a key to store
    /// it under elsewhere, as the cluster's shared limits do).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::V4(bytes) => bytes,
            Self::V6(bytes) => bytes,
        }
    }
}

impl From<IpAddr> for AddressPrefix {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => Self::V6(v6.octets()[..8].try_into().expect("8 of 16 bytes")),
        }
    }
}

/// Whether `ip` is this machine (127.0.0.0/8 or ::1, also as an IPv4-mapped
/// IPv6 address). Loopback clients are exempt from the per-address limits
/// unless the server is configured to limit them (`limit_loopback`): bots
/// and load tests on the server's own machine connect thousands of clients
/// from one address, and whoever can send from loopback is on the machine
/// already. Behind a reverse proxy on the same host every client is
/// loopback, and the exemption must be turned off there. Caps on totals hold
/// for loopback all the same.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
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

/// Token buckets by key, bounded in entries. A bucket that has refilled
/// is as good as absent: when the table is full, full buckets are swept out
/// (at most once a second, so a table full of busy keys does not cost a
/// scan per check); if every entry is still in use, newcomers share one
/// overflow bucket, so memory stays bounded and a flood from fresh keys is
/// still limited as a whole.
#[derive(Debug)]
pub struct RateLimit<K> {
    /// Tokens a full bucket holds: what a key may spend at once (at least 1).
    burst: f64,
    /// Tokens a bucket regains per second; 0 turns the limit off.
    per_second: f64,
    /// The most keys tracked at once.
    max_entries: usize,
    buckets: HashMap<K, TokenBucket>,
    /// Shared by the keys that found the table full; made full on first use
    /// (no clock is read here).
    overflow: Option<TokenBucket>,
    /// When full buckets were last swept out, to sweep at most once a second.
    last_sweep: Option<Instant>,
}

/// One token bucket on the wall clock: `burst` at once, then `per_second`
/// (the caller keeps both, so a table of buckets stores only this). The one
/// bucket every per-address and per-session limit of Hearth's drivers uses;
/// a line's limits count in ticks instead (`hearth_game::TickBucket`), to
/// stay deterministic.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            updated: now,
        }
    }

    /// Takes one token at `now`; `Err(wait)` until the next one.
    pub fn take(&mut self, now: Instant, burst: u32, per_second: f64) -> Result<(), Duration> {
        take(self, now, f64::from(burst.max(1)), per_second)
    }

    /// Whole tokens at hand at `now`.
    pub fn available(&self, now: Instant, burst: u32, per_second: f64) -> u32 {
        refilled(self, now, per_second).min(f64::from(burst.max(1))) as u32
    }

    /// Gives back a token taken for work that was then not done.
    pub fn refund(&mut self, burst: u32) {
        self.tokens = (self.tokens + 1.0).min(f64::from(burst.max(1)));
    }
}

impl<K: std::hash::Hash + Eq + Copy> RateLimit<K> {
    /// `burst` at once, then `per_second`; a rate of 0 means no limit.
    pub fn new(burst: u32, per_second: u32, max_entries: usize) -> Self {
        Self::with_rate(burst, f64::from(per_second), max_entries)
    }

    /// `burst` at once, then `per_minute`; a rate of 0 means no limit.
    pub fn per_minute(burst: u32, per_minute: u32, max_entries: usize) -> Self {
        Self::with_rate(burst, f64::from(per_minute) / 60.0, max_entries)
    }

    fn with_rate(burst: u32, per_second: f64, max_entries: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second,
            max_entries: max_entries.max(1),
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
        }
    }

    /// Whether `key` may start one more; takes a token when it may.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        self.check(key, now).is_ok()
    }

    /// Takes one token for `key` at `now`; `Err(wait)` says how long until
    /// its next token (for a Retry-After).
    pub fn check(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_entries {
            self.sweep(now);
        }
        let full = TokenBucket {
            tokens: self.burst,
            updated: now,
        };
        let bucket = if self.buckets.len() < self.max_entries || self.buckets.contains_key(&key) {
            self.buckets.entry(key).or_insert(full)
        } else {
            self.overflow.get_or_insert(full)
        };
        take(bucket, now, self.burst, self.per_second)
    }

    /// Keys tracked now.
    pub fn entries(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets the buckets that have refilled completely.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let (burst, per_second) = (self.burst, self.per_second);
        self.buckets
            .retain(|_, bucket| refilled(bucket, now, per_second) < burst);
    }
}

/// The tokens `bucket` holds at `now`, before the cap.
fn refilled(bucket: &TokenBucket, now: Instant, per_second: f64) -> f64 {
    bucket.tokens + now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second
}

fn take(
    bucket: &mut TokenBucket,
    now: Instant,
    burst: f64,
    per_second: f64,
) -> Result<(), Duration> {
    bucket.tokens = refilled(bucket, now, per_second).min(burst);
    bucket.updated = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn loopback_is_recognised_however_it_is_written() {
        for text in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(text.parse().unwrap()), "{text}");
        }
        for text in ["10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "::"] {
            assert!(!is_loopback(text.parse().unwrap()), "{text}");
        }
    }

    fn key(n: u8) -> AddressPrefix {
        AddressPrefix::V4([10, 0, 0, n])
    }

    #[test]
    fn a_burst_then_one_token_per_interval_with_the_wait_told() {
        let start = Instant::now();
        let mut limit = RateLimit::per_minute(3, 60, 16);
        assert!((0..3).all(|_| limit.allow(key(1), start)));
        let wait = limit.check(key(1), start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(limit.allow(key(2), start), "another key has its own bucket");
        assert!(limit.allow(key(1), start + Duration::from_secs(1)));
        assert!(!limit.allow(key(1), start + Duration::from_secs(1)));
        let mut per_second = RateLimit::new(3, 2, 16);
        assert!((0..3).all(|_| per_second.allow(key(1), start)));
        assert!(!per_second.allow(key(1), start), "burst spent");
        assert!(
            per_second.allow(key(1), start + Duration::from_millis(500)),
            "refilled one"
        );
    }

    #[test]
    fn ipv6_rates_are_per_64_and_mapped_ipv4_shares_the_ipv4_bucket() {
        let now = Instant::now();
        let mut limit = RateLimit::per_minute(2, 1, 16);
        let prefix = |text: &str| AddressPrefix::from(text.parse::<IpAddr>().unwrap());
        assert!(limit.allow(prefix("2001:db8:1:2::1"), now));
        assert!(limit.allow(prefix("2001:db8:1:2:ffff::9"), now));
        assert!(!limit.allow(prefix("2001:db8:1:2::abcd"), now));
        assert!(limit.allow(prefix("2001:db8:1:3::1"), now));
        assert!(limit.allow(prefix("192.0.2.7"), now));
        assert!(limit.allow(prefix("::ffff:192.0.2.7"), now));
        assert!(!limit.allow(prefix("192.0.2.7"), now));
        assert_eq!(
            SitePrefix::of(prefix("2001:db8:1:2::1")),
            SitePrefix::of(prefix("2001:db8:1:ffff::1"))
        );
    }

    #[test]
    fn the_table_stays_bounded_newcomers_share_a_bucket_and_idle_keys_are_forgotten() {
        let now = Instant::now();
        let mut limit = RateLimit::per_minute(1, 60, 4);
        for n in 0..4 {
            assert!(limit.allow(key(n), now));
        }
        // The table is full of busy keys: newcomers share the overflow
        // bucket, which allows one and then refuses.
        assert!(limit.allow(key(10), now));
        assert!(!limit.allow(key(11), now));
        assert_eq!(limit.entries(), 4);
        // Half a second on, nothing is swept (a sweep ran at `now`), and the
        // overflow bucket has not refilled yet.
        assert!(!limit.allow(key(12), now + Duration::from_millis(500)));
        // Two seconds on every bucket has refilled: they are swept and the
        // newcomer gets a bucket of its own.
        assert!(limit.allow(key(11), now + Duration::from_secs(2)));
        assert_eq!(limit.entries(), 1);
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let now = Instant::now();
        let mut limit = RateLimit::per_minute(1, 0, 1);
        assert!((0..100).all(|n| limit.allow(key(n), now)));
        assert_eq!(limit.entries(), 0);
        let mut limit = RateLimit::new(0, 0, 1);
        assert!((0..100).all(|_| limit.allow(key(1), now)));
    }
}
