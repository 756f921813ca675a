//! The accounts' per-address rate limits: token buckets per address (IPv6:
//! per /64), a bounded number of addresses tracked, refusals counted for
//! /metrics. The buckets and the address key are the ones every per-address
//! limit uses (`hearth_proto::address_limit`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_proto::address_limit::{is_loopback, AddressPrefix, RateLimit};

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
    login: Mutex<RateLimit<AddressPrefix>>,
    register: Mutex<RateLimit<AddressPrefix>>,
    /// Charge loopback clients too (`limit_loopback`); otherwise bots and
    /// load tests on the server's machine pass, as on the game port.
    limit_loopback: bool,
    refused_login: AtomicU64,
    refused_register: AtomicU64,
}

impl AddressLimits {
    pub fn new(config: &AccountsConfig, limit_loopback: bool) -> Self {
        let limit = |burst, per_minute| {
            Mutex::new(RateLimit::per_minute(
                burst,
                per_minute,
                config.tracked_addresses,
            ))
        };
        Self {
            login: limit(config.login_burst, config.login_per_minute),
            register: limit(config.register_burst, config.register_per_minute),
            limit_loopback,
            refused_login: AtomicU64::new(0),
            refused_register: AtomicU64::new(0),
        }
    }

    /// Charges one `action` to `address`; `Err(wait)` when it has made too
    /// many recently, with the time until it may try again.
    pub fn check(&self, action: Action, address: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.exempt(address) {
            return Ok(());
        }
        let (limit, refused) = match action {
            Action::Login => (&self.login, &self.refused_login),
            Action::Register => (&self.register, &self.refused_register),
        };
        let checked = limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(AddressPrefix::from(address), now);
        checked.inspect_err(|_| {
            refused.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Whether `address` is spared the limits (loopback, unless
    /// `limit_loopback`).
    pub fn exempt(&self, address: IpAddr) -> bool {
        !self.limit_loopback && is_loopback(address)
    }

    /// Counts a refusal made elsewhere (by the cluster's shared budgets).
    pub fn count_refusal(&self, action: Action) {
        let refused = match action {
            Action::Login => &self.refused_login,
            Action::Register => &self.refused_register,
        };
        refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, action: Action) -> u64 {
        match action {
            Action::Login => self.refused_login.load(Ordering::Relaxed),
            Action::Register => self.refused_register.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(limit_loopback: bool) -> AddressLimits {
        let config = AccountsConfig {
            login_burst: 2,
            login_per_minute: 1,
            register_burst: 1,
            register_per_minute: 1,
            ..AccountsConfig::default()
        };
        AddressLimits::new(&config, limit_loopback)
    }

    #[test]
    fn logins_and_registrations_have_their_own_budgets_and_refusals_are_counted() {
        let limits = limits(false);
        let (now, from) = (Instant::now(), "192.0.2.7".parse().unwrap());
        limits.check(Action::Register, from, now).unwrap();
        let wait = limits.check(Action::Register, from, now).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        limits.check(Action::Login, from, now).unwrap();
        limits.check(Action::Login, from, now).unwrap();
        assert!(limits.check(Action::Login, from, now).is_err());
        assert!(limits.check(Action::Login, from, now).is_err());
        assert_eq!(
            (
                limits.refused(Action::Login),
                limits.refused(Action::Register)
            ),
            (2, 1)
        );
    }

    #[test]
    fn loopback_is_charged_only_when_limit_loopback_says_so() {
        let now = Instant::now();
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let local: IpAddr = local.parse().unwrap();
            let exempt = limits(false);
            assert!((0..10).all(|_| exempt.check(Action::Register, local, now).is_ok()));
            let limited = limits(true);
            limited.check(Action::Register, local, now).unwrap();
            assert!(limited.check(Action::Register, local, now).is_err());
            assert_eq!(limited.refused(Action::Register), 1);
        }
    }
}
