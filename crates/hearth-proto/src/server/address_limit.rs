//! Sessions still in their handshake or login, counted per client address,
//! so that one address cannot fill the server with half-open sessions (each
//! cost three X25519 operations and a login deadline). IPv6 clients are
//! counted per /64, the block one subscriber usually holds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

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
}
