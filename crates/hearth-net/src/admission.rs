//! Connection admission: a cap on connections in total and per address, with
//! a slot that gives its place back when dropped, however the connection ends.
//!
//! IPv6 addresses count per /64: one host is commonly handed a whole /64 and
//! could otherwise open a fresh address for every connection.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached.
    Full,
    /// The cap for this address (or IPv6 /64) is reached.
    TooManyFromAddress,
}

/// The key a peer's connections are counted under: an IPv4 address (also when
/// written as an IPv4-mapped IPv6 address) or an IPv6 /64 prefix.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// Counts open connections against the caps. Cloning shares the counts.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_address: usize,
    /// Loopback clients (bots and load tests on this machine) skip the
    /// per-address cap; they still count towards the total.
    exempt_loopback: bool,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self::with_loopback(max_total, max_per_address, false)
    }

    /// As `new`, letting loopback clients past the per-address cap when
    /// `exempt_loopback` (the total still holds).
    pub fn with_loopback(max_total: usize, max_per_address: usize, exempt_loopback: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total,
                max_per_address,
                exempt_loopback,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// Takes a place for a connection from `ip`, or says which cap refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = address_key(ip);
        let mut counts = self.inner.counts.lock().expect("not poisoned");
        if counts.total >= self.inner.max_total {
            return Err(Refusal::Full);
        }
        let from_address = counts.per_address.entry(key).or_insert(0);
        if *from_address >= self.inner.max_per_address
            && !(self.inner.exempt_loopback && ip.is_loopback())
        {
            return Err(Refusal::TooManyFromAddress);
        }
        *from_address += 1;
        counts.total += 1;
        Ok(Slot {
            inner: self.inner.clone(),
            key,
        })
    }

    /// Connections admitted and not yet ended.
    pub fn open(&self) -> usize {
        self.inner.counts.lock().expect("not poisoned").total
    }
}

/// One admitted connection's place; dropping it frees the place.
pub struct Slot {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.inner.counts.lock().expect("not poisoned");
        counts.total -= 1;
        if let Some(count) = counts.per_address.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn loopback_may_pass_the_per_address_cap_but_never_the_total() {
        let admission = Admission::with_loopback(4, 2, true);
        let held: Vec<Slot> = (0..4)
            .map(|_| admission.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(admission.admit(ip("::1")).err(), Some(Refusal::Full));
        drop(held);
        let strict = Admission::new(4, 2);
        let _held: Vec<Slot> = (0..2)
            .map(|_| strict.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            strict.admit(ip("127.0.0.1")).err(),
            Some(Refusal::TooManyFromAddress)
        );
    }

    #[test]
    fn caps_refuse_and_dropped_slots_give_their_place_back() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit(ip("2001:db8::1")).unwrap();
        let _a2 = admission.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8::3")).err(),
            Some(Refusal::TooManyFromAddress),
            "the same /64"
        );
        let _b = admission.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(admission.admit(ip("192.0.2.2")).err(), Some(Refusal::Full));
        drop(a1);
        assert_eq!(admission.open(), 2);
        let _a3 = admission.admit(ip("2001:db8::3")).unwrap();
        assert_eq!(admission.open(), 3);
    }
}
