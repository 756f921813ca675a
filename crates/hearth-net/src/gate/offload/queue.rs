//! One shard's handler queue: a single FIFO bounded in entries and payload
//! bytes, with the admission policy of the `offload` module's doc. The
//! shard's adapter pushes under the lock without ever waiting; the worker
//! takes chunks and releases them once handled, so what counts against the
//! bounds is every event not yet handled, the worker's chunk included.
//!
//! Lifecycle events of a session the handler knows are admitted past the
//! bounds: that tail of the one FIFO is the "side list" of the policy, and
//! keeping it in the same FIFO is what keeps every session's events in order
//! (its Closed after all the rest) without any merging.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use hearth_proto::Event;

use crate::gate::metrics::QueueDepth;

/// Lifecycle events of one session queued past the bounds at a time, at
/// most; one more and the session is shed. A session produces a handful per
/// incident (LinkDown, Detached, LinkUp, Resumed, Migrated); only a link
/// flapping for as long as the handler is stuck gets near this.
pub(super) const PAST_BOUNDS_PER_SESSION: u32 = 16;

/// Queue slots kept allocated between bursts.
const KEEP: usize = 1024;

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

/// What the adapter does with an event after `admit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// In the queue; `past_bounds` when it went past a full queue's bounds.
    Queued { past_bounds: bool },
    /// An unreliable message at a full queue: gone, as its channel allows.
    Dropped,
    /// The queue could not take an event that must not be lost: close the
    /// session now (refuse it, when `login`).
    Shed { login: bool },
    /// An event of a session already shed (or turned away unseen), which
    /// the handler will not get.
    Discarded,
}

/// How an event may be treated at a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A message: droppable when its channel is unreliable.
    Message {
        channel: u16,
    },
    /// A login request, or a channel opened or closed by the peer: arrived
    /// reliably, and the handler's picture is wrong without it.
    Vital {
        login: bool,
    },
    /// State changes of the session: never dropped.
    Lifecycle,
    Closed,
}

impl Kind {
    fn of(event: &Event) -> Self {
        match event {
            Event::Message { channel, .. } => Kind::Message { channel: *channel },
            Event::LoginRequest(_) => Kind::Vital { login: true },
            Event::ChannelOpened { .. } | Event::ChannelClosed { .. } => {
                Kind::Vital { login: false }
            }
            Event::Closed(_) => Kind::Closed,
            Event::Welcomed { .. }
            | Event::Joined
            | Event::LinkUp(_)
            | Event::LinkDown(_)
            | Event::Migrated { .. }
            | Event::Detached
            | Event::Resumed
            | Event::DatagramUnavailable => Kind::Lifecycle,
        }
    }
}

/// What an event weighs against the byte bound: what the peer chose the
/// size of. The rest is small and fixed, and bounded by the entry count.
fn weight(event: &Event) -> usize {
    match event {
        Event::Message { payload, .. } => payload.len(),
        Event::LoginRequest(request) => {
            let credentials = match &request.credentials {
                hearth_proto::Credentials::Password { account, password } => {
                    account.len() + password.len()
                }
                hearth_proto::Credentials::Token(token) => token.len(),
                hearth_proto::Credentials::Anonymous => 0,
            };
            credentials + request.player_name.len() + request.options.len()
        }
        _ => 0,
    }
}

/// Where a session stands with the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Its events reach the handler; `past_bounds` of them wait beyond the
    /// bounds now.
    Delivering { past_bounds: u32 },
    /// Being closed for overload: only its Closed still reaches the handler.
    Shed,
    /// First seen at a full queue and closed before the handler heard of it:
    /// nothing of it reaches the handler, its Closed neither.
    TurnedAway,
}

pub(super) struct Entry {
    pub session: u64,
    pub event: Event,
    pub receipt: Receipt,
}

/// What releasing a handled entry gives back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Receipt {
    session: u64,
    bytes: usize,
    past_bounds: bool,
}

pub(super) struct State {
    limits: Limits,
    events: VecDeque<Entry>,
    /// Entries not yet handled: queued plus the worker's chunk.
    entries: usize,
    bytes: usize,
    /// The sessions with an event seen and their Closed not yet: at most the
    /// shard's sessions.
    sessions: HashMap<u64, Standing>,
}

impl State {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            events: VecDeque::new(),
            entries: 0,
            bytes: 0,
            sessions: HashMap::new(),
        }
    }

    /// An empty queue takes anything, so that one message larger than the
    /// byte bound is not refused forever.
    fn has_room(&self, bytes: usize) -> bool {
        self.entries == 0
            || (self.entries < self.limits.max_entries
                && self.bytes + bytes <= self.limits.max_bytes)
    }

    /// Decides what becomes of `event`. `droppable(channel)` says whether a
    /// message on `channel` may be lost; asked only at a full queue.
    pub fn admit(
        &mut self,
        session: u64,
        event: Event,
        droppable: impl FnOnce(u16) -> bool,
    ) -> Verdict {
        let kind = Kind::of(&event);
        let bytes = weight(&event);
        let room = self.has_room(bytes);
        let standing = match self.sessions.entry(session) {
            MapEntry::Occupied(known) => known.into_mut(),
            MapEntry::Vacant(_) if kind == Kind::Closed => {
                // Closed before anything else was seen: nothing to tell.
                return Verdict::Discarded;
            }
            MapEntry::Vacant(new) if !room => {
                // Admitting a new session past the bounds would let a flood
                // of short sessions grow the queue without limit.
                new.insert(Standing::TurnedAway);
                return Verdict::Shed {
                    login: kind == Kind::Vital { login: true },
                };
            }
            MapEntry::Vacant(new) => new.insert(Standing::Delivering { past_bounds: 0 }),
        };
        let past_bounds = match (*standing, kind) {
            (Standing::TurnedAway, Kind::Closed) => {
                self.sessions.remove(&session);
                return Verdict::Discarded;
            }
            (Standing::TurnedAway, _) | (Standing::Shed, _) if kind != Kind::Closed => {
                return Verdict::Discarded;
            }
            (_, Kind::Closed) => {
                // Always taken: one per session, and the handler's cue to let go.
                self.sessions.remove(&session);
                !room
            }
            _ if room => false,
            (Standing::Delivering { past_bounds }, Kind::Lifecycle) => {
                if past_bounds >= PAST_BOUNDS_PER_SESSION {
                    *standing = Standing::Shed;
                    return Verdict::Shed { login: false };
                }
                *standing = Standing::Delivering {
                    past_bounds: past_bounds + 1,
                };
                true
            }
            (_, Kind::Message { channel }) => {
                if droppable(channel) {
                    return Verdict::Dropped;
                }
                *standing = Standing::Shed;
                return Verdict::Shed { login: false };
            }
            (_, Kind::Vital { login }) => {
                *standing = Standing::Shed;
                return Verdict::Shed { login };
            }
            (_, Kind::Lifecycle) => unreachable!("shed and turned-away sessions returned above"),
        };
        self.entries += 1;
        self.bytes += bytes;
        self.events.push_back(Entry {
            session,
            event,
            receipt: Receipt {
                session,
                bytes,
                past_bounds,
            },
        });
        Verdict::Queued { past_bounds }
    }

    /// Gives back what handled entries held.
    fn release(&mut self, done: impl IntoIterator<Item = Receipt>) {
        for receipt in done {
            self.entries -= 1;
            self.bytes -= receipt.bytes;
            if receipt.past_bounds {
                if let Some(Standing::Delivering { past_bounds }) =
                    self.sessions.get_mut(&receipt.session)
                {
                    *past_bounds = past_bounds.saturating_sub(1);
                }
            }
        }
    }

    /// Moves up to `max` entries to `into`, oldest first; they still count
    /// until released.
    fn take(&mut self, max: usize, into: &mut Vec<Entry>) {
        let count = max.min(self.events.len());
        into.extend(self.events.drain(..count));
        // A burst's room is given back once it has passed, not held for good.
        if self.events.is_empty() && self.events.capacity() > KEEP {
            self.events.shrink_to(KEEP);
        }
    }

    fn held(&self) -> (usize, usize) {
        (self.entries, self.bytes)
    }
}

/// The queue as shared by a shard's adapter and its worker.
pub(super) struct Queue {
    inner: Mutex<Shared>,
    ready: Condvar,
    /// What `State` holds, published for the metrics after each change.
    depth: Arc<QueueDepth>,
}

struct Shared {
    state: State,
    /// The worker sleeps on `ready`: the next push wakes it. Tracked so a
    /// busy shard does not pay a wake-up call per event.
    waiting: bool,
    /// The adapter is gone (its shard stopped): the worker finishes what
    /// is queued and ends.
    closed: bool,
}

impl Queue {
    pub fn new(limits: Limits, depth: Arc<QueueDepth>) -> Self {
        Self {
            inner: Mutex::new(Shared {
                state: State::new(limits),
                waiting: false,
                closed: false,
            }),
            ready: Condvar::new(),
            depth,
        }
    }

    /// Called under the lock, so the published depth follows the state's.
    fn publish(&self, state: &State) {
        let (events, bytes) = state.held();
        self.depth.events.store(events as u64, Ordering::Relaxed);
        self.depth.bytes.store(bytes as u64, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic under this lock leaves consistent counts (each change is
        // one statement); the worker reports its own panics.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard's side: never waits beyond the lock.
    pub fn admit(
        &self,
        session: u64,
        event: Event,
        droppable: impl FnOnce(u16) -> bool,
    ) -> Verdict {
        let mut shared = self.lock();
        let verdict = shared.state.admit(session, event, droppable);
        if matches!(verdict, Verdict::Queued { .. }) {
            self.publish(&shared.state);
            if shared.waiting {
                shared.waiting = false;
                self.ready.notify_one();
            }
        }
        verdict
    }

    pub fn close(&self) {
        let mut shared = self.lock();
        shared.closed = true;
        self.ready.notify_one();
    }

    /// The worker's side: releases `done`, then moves up to `max` entries
    /// to `into`. With `wait`, sleeps until there is one; false when the
    /// queue is closed and empty (then `into` stays empty).
    pub fn take(
        &self,
        done: &mut Vec<Receipt>,
        max: usize,
        into: &mut Vec<Entry>,
        wait: bool,
    ) -> bool {
        let mut shared = self.lock();
        if !done.is_empty() {
            shared.state.release(done.drain(..));
            self.publish(&shared.state);
        }
        loop {
            shared.state.take(max, into);
            if !into.is_empty() {
                return true;
            }
            if shared.closed {
                return false;
            }
            if !wait {
                return true;
            }
            shared.waiting = true;
            shared = self.ready.wait(shared).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::{CloseReason, LinkKind};

    fn message(channel: u16, len: usize) -> Event {
        Event::Message {
            channel,
            payload: vec![0; len],
        }
    }

    fn closed() -> Event {
        Event::Closed(CloseReason::Timeout)
    }

    fn small() -> State {
        State::new(Limits {
            max_entries: 3,
            max_bytes: 100,
        })
    }

    fn reliable(_: u16) -> bool {
        false
    }

    fn handle_all(state: &mut State) -> Vec<(u64, Event)> {
        let mut taken = Vec::new();
        state.take(usize::MAX, &mut taken);
        state.release(taken.iter().map(|e| e.receipt));
        taken.into_iter().map(|e| (e.session, e.event)).collect()
    }

    #[test]
    fn bounded_in_entries_and_bytes_and_an_empty_queue_takes_anything() {
        let mut state = small();
        assert_eq!(
            state.admit(1, message(1, 500), reliable),
            Verdict::Queued { past_bounds: false },
            "alone, even over the byte bound"
        );
        assert_eq!(
            state.admit(1, message(1, 1), |_| true),
            Verdict::Dropped,
            "not empty any more, and over the byte bound"
        );
        handle_all(&mut state);
        assert_eq!(state.held(), (0, 0));
        for _ in 0..3 {
            assert!(matches!(
                state.admit(1, message(1, 10), reliable),
                Verdict::Queued { .. }
            ));
        }
        assert_eq!(state.admit(1, message(2, 0), |_| true), Verdict::Dropped);
        assert_eq!(state.held(), (3, 30));
    }

    #[test]
    fn a_reliable_message_at_a_full_queue_sheds_its_session_and_only_its_close_follows() {
        let mut state = small();
        for _ in 0..3 {
            state.admit(1, message(1, 10), reliable);
        }
        assert_eq!(
            state.admit(1, message(1, 10), reliable),
            Verdict::Shed { login: false }
        );
        handle_all(&mut state);
        // Room again, but nothing after the hole may be delivered.
        assert_eq!(state.admit(1, message(1, 10), reliable), Verdict::Discarded);
        assert_eq!(
            state.admit(1, Event::LinkDown(LinkKind::Stream), reliable),
            Verdict::Discarded
        );
        assert!(matches!(
            state.admit(1, closed(), reliable),
            Verdict::Queued { .. }
        ));
        let delivered = handle_all(&mut state);
        assert_eq!(delivered, vec![(1, closed())]);
        assert!(state.sessions.is_empty());
    }

    #[test]
    fn lifecycle_events_go_past_the_bounds_in_order_up_to_a_per_session_budget() {
        let mut state = small();
        for session in 1..=3 {
            state.admit(session, message(1, 10), reliable);
        }
        assert_eq!(
            state.admit(1, Event::Detached, reliable),
            Verdict::Queued { past_bounds: true }
        );
        assert_eq!(
            state.admit(1, closed(), reliable),
            Verdict::Queued { past_bounds: true }
        );
        for _ in 0..PAST_BOUNDS_PER_SESSION {
            assert_eq!(
                state.admit(2, Event::LinkUp(LinkKind::Datagram), reliable),
                Verdict::Queued { past_bounds: true }
            );
        }
        assert_eq!(
            state.admit(2, Event::LinkUp(LinkKind::Datagram), reliable),
            Verdict::Shed { login: false },
            "one past the budget"
        );
        let delivered = handle_all(&mut state);
        let first: Vec<&Event> = delivered
            .iter()
            .filter(|(s, _)| *s == 1)
            .map(|(_, e)| e)
            .collect();
        assert_eq!(first, vec![&message(1, 10), &Event::Detached, &closed()]);
        assert_eq!(delivered.len(), 3 + 2 + PAST_BOUNDS_PER_SESSION as usize);
        assert_eq!(state.held(), (0, 0));
    }

    #[test]
    fn a_session_first_seen_at_a_full_queue_is_turned_away_unheard() {
        let mut state = small();
        for _ in 0..3 {
            state.admit(1, message(1, 10), reliable);
        }
        assert_eq!(
            state.admit(9, Event::LinkUp(LinkKind::Stream), reliable),
            Verdict::Shed { login: false }
        );
        handle_all(&mut state);
        assert_eq!(state.admit(9, message(1, 1), reliable), Verdict::Discarded);
        assert_eq!(state.admit(9, closed(), reliable), Verdict::Discarded);
        assert_eq!(state.sessions.len(), 1, "only session 1 is still known");
        let login = Event::LoginRequest(hearth_proto::LoginRequest {
            credentials: hearth_proto::Credentials::Anonymous,
            player_name: "p".into(),
            options: String::new(),
            address: None,
        });
        for _ in 0..3 {
            state.admit(1, message(1, 10), reliable);
        }
        assert_eq!(
            state.admit(10, login, reliable),
            Verdict::Shed { login: true }
        );
    }
}
