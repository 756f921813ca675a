//! When a lease holder renews, and when it must stop: sans-IO, time passed
//! in.
//!
//! The database decides who holds a lease, on its own clock: a renewal
//! that succeeds moves the lease's end to the database's `now + lease`. The
//! holder cannot read that clock, so it counts from what it knows for sure:
//! the instant it *sent* the last renewal that succeeded, which is no later
//! than the instant the database committed it. The lease therefore lasts at
//! least until `sent + lease` on the holder's clock, and the holder stops
//! using it (ticking the line, writing its saves) a margin before that:
//! a node that cannot reach the database stops before anyone else may take
//! its lines, so two nodes never run one line at once.

use std::time::{Duration, Instant};

/// What a lease holder should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held, and no renewal is due yet.
    Held,
    /// Held; a renewal is due (a third of the lease has passed since the
    /// last one was sent).
    RenewDue,
    /// No longer safely held: stop using it now (stop ticking the line;
    /// its saves would be refused anyway).
    MustStop,
}

/// The holder's view of one lease.
#[derive(Debug, Clone, Copy)]
pub struct LeaseClock {
    /// How long the database grants a lease for, from a take or renewal.
    lease: Duration,
    /// The send instant of the last take or renewal that succeeded.
    confirmed_from: Instant,
}

impl LeaseClock {
    /// A lease just taken, whose take was sent at `sent`.
    pub fn taken(lease: Duration, sent: Instant) -> Self {
        Self {
            lease,
            confirmed_from: sent,
        }
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&mut self, sent: Instant) {
        self.confirmed_from = self.confirmed_from.max(sent);
    }

    /// When the next renewal is due: a third of the lease after the last
    /// confirmed one, so two more attempts fit before [`Self::stop_at`].
    pub fn renew_at(&self) -> Instant {
        self.confirmed_from + self.lease / 3
    }

    /// When the holder must have stopped using the lease: a sixth of it
    /// before the soonest the database could let it lapse. The margin
    /// covers clocks that run at slightly different rates and a tick in
    /// progress when the moment comes.
    pub fn stop_at(&self) -> Instant {
        self.confirmed_from + self.lease - self.lease / 6
    }

    pub fn state(&self, now: Instant) -> LeaseState {
        if now >= self.stop_at() {
            LeaseState::MustStop
        } else if now >= self.renew_at() {
            LeaseState::RenewDue
        } else {
            LeaseState::Held
        }
    }

    /// How long the database grants a lease for.
    pub fn lease(&self) -> Duration {
        self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_a_third_and_the_holder_stops_before_the_lease_can_lapse() {
        let lease = Duration::from_millis(6_000);
        let start = Instant::now();
        let mut clock = LeaseClock::taken(lease, start);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(clock.state(at(0)), LeaseState::Held);
        assert_eq!(clock.state(at(1_999)), LeaseState::Held);
        assert_eq!(clock.state(at(2_000)), LeaseState::RenewDue);
        assert_eq!(clock.state(at(4_999)), LeaseState::RenewDue);
        assert_eq!(clock.state(at(5_000)), LeaseState::MustStop);
        // A renewal sent at 2 s that succeeded: counted from 2 s.
        clock.renewed(at(2_000));
        assert_eq!(clock.state(at(3_999)), LeaseState::Held);
        assert_eq!(clock.state(at(6_999)), LeaseState::RenewDue);
        assert_eq!(clock.state(at(7_000)), LeaseState::MustStop);
        // A late answer to an older renewal never moves the count back.
        clock.renewed(at(1_000));
        assert_eq!(clock.stop_at(), at(7_000));
    }
}
