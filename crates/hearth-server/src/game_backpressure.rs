//! Reliable game messages the game host cannot take yet (its bounded queue
//! is full, or the session is past its message rate), per session, in
//! order: the session's receiving is paused meanwhile
//! (`GateCtx::pause_receive`), so its client stops at its own
//! unacknowledged limit instead of losing messages or being cut off. Every
//! [`RETRY_EVERY`] the gate shard offers them to the host again, session by
//! session in turn (the first to wait goes first), then resumes each
//! session's receiving as far as the host has room.
//!
//! What is held here is only what was already delivered when the session
//! was paused (the rest waits in the session, unacknowledged): at most
//! [`MAX_HELD_ENTRIES`] messages and [`MAX_HELD_BYTES`] bytes a session;
//! beyond that the session is closed saying why.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How often the gate shard offers the held messages to the host again.
pub const RETRY_EVERY: Duration = Duration::from_millis(10);
/// Messages held for one session, at most.
pub const MAX_HELD_ENTRIES: usize = 256;
/// Bytes held for one session, at most.
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// One paused session's held messages and their bytes.
#[derive(Debug, Default, Clone)]
struct Held {
    messages: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// The paused sessions of a gate shard (a shard's handler is a clone of one
/// made before any session: it starts empty).
#[derive(Debug, Default, Clone)]
pub struct HeldMessages {
    by_session: HashMap<u64, Held>,
    /// The paused sessions, the longest waiting first.
    order: VecDeque<u64>,
    /// When the next retry is due, while any session is paused.
    retry_at: Option<Instant>,
}

/// What holding a message came to.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held; the session's receiving should be paused (it was not yet).
    Paused,
    /// Held behind earlier ones of the same session (already paused).
    Queued,
    /// Past the session's bound: close it.
    Overflow,
}

/// What the host made of a held message offered to it.
pub enum Offer {
    Taken,
    /// No room in the host for anyone: the round ends.
    Full(Vec<u8>),
    /// Not this session's turn yet (its rate): the others go on.
    NotYet(Vec<u8>),
}

impl HeldMessages {
    /// The session is paused: a new reliable message of it goes behind
    /// those held.
    pub fn is_holding(&self, session: u64) -> bool {
        self.by_session.contains_key(&session)
    }

    /// Some session is paused: a newcomer's message waits behind theirs.
    pub fn any(&self) -> bool {
        !self.by_session.is_empty()
    }

    /// Holds `message` of `session` at the end of its queue.
    pub fn hold(&mut self, now: Instant, session: u64, message: Vec<u8>) -> HoldOutcome {
        let first = !self.by_session.contains_key(&session);
        let held = self.by_session.entry(session).or_default();
        if held.messages.len() >= MAX_HELD_ENTRIES || held.bytes + message.len() > MAX_HELD_BYTES {
            self.forget(session);
            return HoldOutcome::Overflow;
        }
        held.bytes += message.len();
        held.messages.push_back(message);
        self.retry_at.get_or_insert(now + RETRY_EVERY);
        if first {
            self.order.push_back(session);
            HoldOutcome::Paused
        } else {
            HoldOutcome::Queued
        }
    }

    /// When the gate shard should call [`HeldMessages::retry`].
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// One round over the paused sessions, the longest waiting first: each
    /// one's held messages, oldest first, to `offer`; once all of them are
    /// taken, `resume` (true: the session's receiving resumed, and it is
    /// paused no more). A session that must wait goes to the end; the
    /// round ends when the host is full.
    pub fn retry(
        &mut self,
        now: Instant,
        mut offer: impl FnMut(u64, Vec<u8>) -> Offer,
        mut resume: impl FnMut(u64) -> bool,
    ) {
        'sessions: for _ in 0..self.order.len() {
            let Some(session) = self.order.pop_front() else {
                break;
            };
            let Some(held) = self.by_session.get_mut(&session) else {
                continue;
            };
            while let Some(message) = held.messages.pop_front() {
                let len = message.len();
                match offer(session, message) {
                    Offer::Taken => held.bytes -= len,
                    Offer::Full(message) => {
                        held.messages.push_front(message);
                        self.order.push_front(session);
                        break 'sessions;
                    }
                    Offer::NotYet(message) => {
                        held.messages.push_front(message);
                        self.order.push_back(session);
                        continue 'sessions;
                    }
                }
            }
            if resume(session) {
                self.by_session.remove(&session);
            } else {
                self.order.push_back(session);
            }
        }
        self.retry_at = self.any().then_some(now + RETRY_EVERY);
    }

    /// The session ended (or is closed for holding too much): what it held
    /// is of no use any more.
    pub fn forget(&mut self, session: u64) {
        if self.by_session.remove(&session).is_some() {
            self.order.retain(|s| *s != session);
        }
        if self.by_session.is_empty() {
            self.retry_at = None;
        }
    }

    /// Every paused session, for closing them all (the host is gone).
    pub fn take_all(&mut self) -> Vec<u64> {
        self.by_session.clear();
        self.retry_at = None;
        std::mem::take(&mut self.order).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_messages_go_on_in_order_the_longest_waiting_first_and_each_session_is_bounded() {
        let now = Instant::now();
        let mut held = HeldMessages::default();
        assert_eq!(held.hold(now, 1, vec![1]), HoldOutcome::Paused);
        assert_eq!(held.hold(now, 1, vec![2]), HoldOutcome::Queued);
        assert_eq!(held.hold(now, 2, vec![3]), HoldOutcome::Paused);
        assert!(held.is_holding(1) && held.any());
        assert_eq!(held.retry_at(), Some(now + RETRY_EVERY));
        // Room for one message only: session 1's first; it stays first.
        let mut room = 1;
        let mut taken = Vec::new();
        let mut resumed = Vec::new();
        held.retry(
            now,
            |s, m| {
                if room == 0 {
                    return Offer::Full(m);
                }
                room -= 1;
                taken.push((s, m));
                Offer::Taken
            },
            |s| {
                resumed.push(s);
                true
            },
        );
        assert_eq!(taken, vec![(1, vec![1])]);
        assert!(resumed.is_empty());
        // Session 1 must wait (its rate): session 2 goes on meanwhile.
        held.retry(
            now,
            |s, m| {
                if s == 1 {
                    return Offer::NotYet(m);
                }
                taken.push((s, m));
                Offer::Taken
            },
            |s| {
                resumed.push(s);
                true
            },
        );
        assert_eq!(taken, vec![(1, vec![1]), (2, vec![3])]);
        assert_eq!(resumed, vec![2]);
        // Then the rest; a session still paused in its own layer stays.
        held.retry(
            now,
            |s, m| {
                taken.push((s, m));
                Offer::Taken
            },
            |_| false,
        );
        assert_eq!(taken.last(), Some(&(1, vec![2])));
        assert!(held.is_holding(1), "its session still holds messages");
        held.retry(now, |_, _| Offer::Taken, |_| true);
        assert!(!held.any());
        assert_eq!(held.retry_at(), None);
        // Bounded in entries and in bytes.
        for n in 0..MAX_HELD_ENTRIES {
            assert_ne!(held.hold(now, 3, vec![n as u8]), HoldOutcome::Overflow);
        }
        assert_eq!(held.hold(now, 3, vec![0]), HoldOutcome::Overflow);
        assert!(!held.is_holding(3), "an overflowing session is let go");
        assert_eq!(
            held.hold(now, 4, vec![0; MAX_HELD_BYTES + 1]),
            HoldOutcome::Overflow
        );
    }
}
