//! Reliable game messages the game host could not take yet (its bounded
//! queue was full), per session, in order: the session's receiving is
//! paused meanwhile (`GateCtx::pause_receive`), so its client stops at its
//! own unacknowledged limit instead of losing messages or being cut off,
//! and the messages are handed on, then receiving resumed, once the host
//! has room again (retried every [`RETRY_EVERY`] by the gate shard).
//!
//! What is held is only what was already delivered when the session was
//! paused (the rest waits in the session, unacknowledged): at most
//! [`MAX_HELD_ENTRIES`] messages and [`MAX_HELD_BYTES`] bytes a session;
//! beyond that the session is closed saying why, as before.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How often the gate shard offers the held messages to the host again.
pub const RETRY_EVERY: Duration = Duration::from_millis(10);
/// Messages held for one session, at most.
pub const MAX_HELD_ENTRIES: usize = 256;
/// Bytes held for one session, at most.
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// One session's held messages and their bytes.
#[derive(Debug, Default, Clone)]
struct Held {
    messages: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// Held messages of a gate shard's sessions (a shard's handler is a clone
/// of one made before any session: it starts empty).
#[derive(Debug, Default, Clone)]
pub struct HeldMessages {
    by_session: HashMap<u64, Held>,
    /// When the next retry is due, while anything is held.
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

impl HeldMessages {
    /// The session has messages waiting: a new one goes behind them.
    pub fn is_holding(&self, session: u64) -> bool {
        self.by_session.contains_key(&session)
    }

    /// Holds `message` of `session` at the end of its queue.
    pub fn hold(&mut self, now: Instant, session: u64, message: Vec<u8>) -> HoldOutcome {
        let first = !self.by_session.contains_key(&session);
        let held = self.by_session.entry(session).or_default();
        if held.messages.len() >= MAX_HELD_ENTRIES || held.bytes + message.len() > MAX_HELD_BYTES {
            self.by_session.remove(&session);
            return HoldOutcome::Overflow;
        }
        held.bytes += message.len();
        held.messages.push_back(message);
        self.retry_at.get_or_insert(now + RETRY_EVERY);
        if first {
            HoldOutcome::Paused
        } else {
            HoldOutcome::Queued
        }
    }

    /// When the gate shard should call [`HeldMessages::retry`].
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Offers each session's held messages, oldest first, to `hand_on`
    /// (which gives a message back when there is still no room); returns
    /// the sessions emptied, whose receiving may resume.
    pub fn retry(
        &mut self,
        now: Instant,
        mut hand_on: impl FnMut(u64, Vec<u8>) -> Result<(), Vec<u8>>,
    ) -> Vec<u64> {
        let mut emptied = Vec::new();
        'sessions: for (&session, held) in self.by_session.iter_mut() {
            while let Some(message) = held.messages.pop_front() {
                let len = message.len();
                match hand_on(session, message) {
                    Ok(()) => held.bytes -= len,
                    Err(message) => {
                        held.messages.push_front(message);
                        // No room: the others will not find any either.
                        break 'sessions;
                    }
                }
            }
            emptied.push(session);
        }
        for session in &emptied {
            self.by_session.remove(session);
        }
        self.retry_at = (!self.by_session.is_empty()).then_some(now + RETRY_EVERY);
        emptied
    }

    /// The session ended: what it held is of no use any more.
    pub fn forget(&mut self, session: u64) {
        self.by_session.remove(&session);
        if self.by_session.is_empty() {
            self.retry_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_messages_go_on_in_order_once_there_is_room_and_each_session_is_bounded() {
        let now = Instant::now();
        let mut held = HeldMessages::default();
        assert_eq!(held.hold(now, 1, vec![1]), HoldOutcome::Paused);
        assert_eq!(held.hold(now, 1, vec![2]), HoldOutcome::Queued);
        assert!(held.is_holding(1));
        assert_eq!(held.retry_at(), Some(now + RETRY_EVERY));
        // Room for one message only.
        let mut room = 1;
        let mut taken = Vec::new();
        let emptied = held.retry(now, |_, m| {
            if room == 0 {
                return Err(m);
            }
            room -= 1;
            taken.push(m);
            Ok(())
        });
        assert!(emptied.is_empty());
        assert_eq!(taken, vec![vec![1]]);
        let emptied = held.retry(now, |_, m| {
            taken.push(m);
            Ok(())
        });
        assert_eq!(emptied, vec![1]);
        assert_eq!(taken, vec![vec![1], vec![2]]);
        assert_eq!(held.retry_at(), None);
        // Bounded in entries and in bytes.
        for n in 0..MAX_HELD_ENTRIES {
            assert_ne!(held.hold(now, 2, vec![n as u8]), HoldOutcome::Overflow);
        }
        assert_eq!(held.hold(now, 2, vec![0]), HoldOutcome::Overflow);
        assert!(!held.is_holding(2), "an overflowing session is let go");
        assert_eq!(
            held.hold(now, 3, vec![0; MAX_HELD_BYTES + 1]),
            HoldOutcome::Overflow
        );
    }
}
