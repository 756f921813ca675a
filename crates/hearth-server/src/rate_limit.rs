//! Per-address token buckets with a bounded number of tracked addresses.
//!
//! IPv6 addresses are grouped by their /64: one subscriber usually gets a
//! whole /64, so limiting single IPv6 addresses would limit nothing.
//! IPv4-mapped IPv6 addresses count as the IPv4 address they carry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::AccountsConfig;

/// What an address is charged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Anything that checks a password: API logins, password changes and
    /// game logins share one budget, so no way in doubles a guesser's rate.
    Login,
    Register,
}

/// The accounts' per-address limits, with refusals counted for /metrics.
pub struct AddressLimits {
    login: KeyedLimiter,
    register: KeyedLimiter,
    refused_login: AtomicU64,
    refused_register: AtomicU64,
}

impl AddressLimits {
    pub fn new(config: &AccountsConfig) -> Self {
        let limiter = |burst, per_minute| {
            KeyedLimiter::new(Rate { burst, per_minute }, config.tracked_addresses)
        };
        Self {
            login: limiter(config.login_burst, config.login_per_minute),
            register: limiter(config.register_burst, config.register_per_minute),
            refused_login: AtomicU64::new(0),
            refused_register: AtomicU64::new(0),
        }
    }

    pub fn check(&self, action: Action, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let (limiter, refused) = match action {
            Action::Login => (&self.login, &self.refused_login),
            Action::Register => (&self.register, &self.refused_register),
        };
        limiter.check(address, now).inspect_err(|_| {
            refused.fetch_add(1, Ordering::Relaxed);
        })
    }

    pub fn refused(&self, action: Action) -> u64 {
        match action {
            Action::Login => self.refused_login.load(Ordering::Relaxed),
            Action::Register => self.refused_register.load(Ordering::Relaxed),
        }
    }
}

/// The part of an address that is limited as one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4([u8; 4]),
    V6Prefix64([u8; 8]),
}

impl From<IpAddr> for AddressKey {
    fn from(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let octets = v6.octets();
                AddressKey::V6Prefix64(octets[..8].try_into().expect("8 of 16 bytes"))
            }
        }
    }
}

/// How much a limiter allows: `burst` at once, refilled at `per_minute`.
/// `per_minute == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Keyed token buckets. When `capacity` addresses are tracked, buckets that
/// have refilled completely (idle ones: forgetting them changes nothing) are
/// evicted; if every one is still in use, new addresses share one overflow
/// bucket, so memory stays bounded and a flood of fresh addresses is still
/// limited as a whole.
pub struct KeyedLimiter {
    rate: Rate,
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    buckets: HashMap<AddressKey, Bucket>,
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

impl KeyedLimiter {
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: f64::from(rate.burst.max(1)),
                    updated: Instant::now(),
                },
                last_sweep: None,
            }),
        }
    }

    /// Takes one token for `address` at `now`; `Err(wait)` says how long until
    /// the next token.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.rate.per_minute == 0 {
            return Ok(());
        }
        let key = AddressKey::from(address);
        let mut state = self.state.lock().expect("not poisoned");
        if !state.buckets.contains_key(&key) && state.buckets.len() >= self.capacity {
            self.sweep(&mut state, now);
        }
        let fresh = Bucket {
            tokens: f64::from(self.burst()),
            updated: now,
        };
        let bucket = if state.buckets.len() < self.capacity || state.buckets.contains_key(&key) {
            state.buckets.entry(key).or_insert(fresh)
        } else {
            &mut state.overflow
        };
        self.take(bucket, now)
    }

    /// Addresses tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.state.lock().expect("not poisoned").buckets.len()
    }

    fn burst(&self) -> u32 {
        self.rate.burst.max(1)
    }

    fn per_second(&self) -> f64 {
        f64::from(self.rate.per_minute) / 60.0
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second()).min(f64::from(self.burst()));
        bucket.updated = now;
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second(),
            ))
        }
    }

    /// Forgets full buckets. Runs at most once a second so that a table full
    /// of busy addresses does not cost a scan per request.
    fn sweep(&self, state: &mut State, now: Instant) {
        if state
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        state.last_sweep = Some(now);
        let burst = f64::from(self.burst());
        let per_second = self.per_second();
        state.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let limiter = KeyedLimiter::new(
            Rate {
                burst: 3,
                per_minute: 60,
            },
            16,
        );
        let start = Instant::now();
        for _ in 0..3 {
            limiter.check(ip("10.0.0.1"), start).unwrap();
        }
        let wait = limiter.check(ip("10.0.0.1"), start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // Another address has its own bucket.
        limiter.check(ip("10.0.0.2"), start).unwrap();
        limiter
            .check(ip("10.0.0.1"), start + Duration::from_secs(1))
            .unwrap();
        assert!(limiter
            .check(ip("10.0.0.1"), start + Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = KeyedLimiter::new(
            Rate {
                burst: 2,
                per_minute: 1,
            },
            16,
        );
        let now = Instant::now();
        limiter.check(ip("2001:db8:1:2::1"), now).unwrap();
        limiter.check(ip("2001:db8:1:2:ffff::9"), now).unwrap();
        assert!(limiter.check(ip("2001:db8:1:2::abcd"), now).is_err());
        limiter.check(ip("2001:db8:1:3::1"), now).unwrap();
        limiter.check(ip("192.0.2.7"), now).unwrap();
        limiter.check(ip("::ffff:192.0.2.7"), now).unwrap();
        assert!(limiter.check(ip("192.0.2.7"), now).is_err());
    }

    #[test]
    fn the_table_stays_bounded_and_idle_addresses_are_forgotten() {
        let rate = Rate {
            burst: 1,
            per_minute: 60,
        };
        let limiter = KeyedLimiter::new(rate, 4);
        let now = Instant::now();
        for last in 0..4u8 {
            limiter.check(IpAddr::from([10, 0, 0, last]), now).unwrap();
        }
        // The table is full of busy addresses: newcomers share the overflow
        // bucket, which allows one and then refuses.
        limiter.check(ip("10.0.1.1"), now).unwrap();
        assert!(limiter.check(ip("10.0.1.2"), now).is_err());
        assert_eq!(limiter.tracked(), 4);
        // Two seconds later every bucket has refilled: they are swept and
        // the newcomer gets a bucket of its own.
        let later = now + Duration::from_secs(2);
        limiter.check(ip("10.0.1.2"), later).unwrap();
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let limiter = KeyedLimiter::new(
            Rate {
                burst: 1,
                per_minute: 0,
            },
            1,
        );
        let now = Instant::now();
        for _ in 0..100 {
            limiter.check(ip("10.0.0.1"), now).unwrap();
        }
        assert_eq!(limiter.tracked(), 0);
    }
}
