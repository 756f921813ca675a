//! Connection admission: a cap on connections in total and per address, with
//! a slot that gives its place back when dropped, however the connection ends.
//!
//! Addresses are counted as every per-address limit counts them (IPv6 per
//! /64, see `hearth_proto::address_limit`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hearth_proto::address_limit::{is_loopback, AddressPrefix};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached.
    Full,
    /// The cap for this address (or IPv6 /64) is reached.
    TooManyFromAddress,
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
    per_address: HashMap<AddressPrefix, usize>,
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
        let key = AddressPrefix::from(ip);
        let mut counts = self.inner.counts.lock().expect("not poisoned");
        if counts.total >= self.inner.max_total {
            return Err(Refusal::Full);
        }
        let from_address = counts.per_address.entry(key).or_insert(0);
        if *from_address >= self.inner.max_per_address
            && !(self.inner.exempt_loopback && is_loopback(ip))
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
    key: AddressPrefix,
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
    fn loopback_may_pass_the_per_address_cap_but_never_the_total() {
        let admission = Admission::with_loopback(4, 2, true);
        let held: Vec<Slot> = (0..4)
            .map(|_| admission.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(admission.admit(ip("::1")).err(), Some(Refusal::Full));
        drop(held);
        // Loopback as a dual-stack socket reports it is loopback too.
        let _mapped: Vec<Slot> = (0..3)
            .map(|_| admission.admit(ip("::ffff:127.0.0.1")).unwrap())
            .collect();
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
        let one_each = Admission::new(8, 1);
        let _plain = one_each.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            one_each.admit(ip("::ffff:192.0.2.1")).err(),
            Some(Refusal::TooManyFromAddress),
            "an IPv4-mapped address is the IPv4 address"
        );
    }
}
