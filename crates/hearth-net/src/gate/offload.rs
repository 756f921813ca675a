//! Handlers off the I/O tasks: [`Offload`] is an inline [`Handler`] that
//! only puts each event into its shard's bounded queue; one worker thread
//! per shard takes them in order and calls a [`QueuedHandler`], which acts
//! on sessions through a [`QueuedCtx`] whose operations go back to the
//! shards as commands. A slow handler then delays only its own events: the
//! shard keeps answering heartbeats, acknowledging, handshaking and
//! resuming every session meanwhile.
//!
//! Why a thread and a synchronous trait: a handler that blocks (a
//! synchronous database call, a long computation, a bug) stalls nothing
//! but itself, not a runtime worker that other tasks (other shards among
//! them) need. The world and Hearth's handlers are synchronous state
//! machines anyway; async work is still at hand through
//! [`QueuedCtx::runtime`].
//!
//! # Order
//!
//! One queue and one worker per shard: the handler gets each session's
//! events in the order the protocol produced them, its `Closed` last.
//! Operations reach the session's shard in the order the handler asked for
//! them.
//!
//! # Bounds and the policy when full
//!
//! Each shard's queue holds at most [`OffloadConfig::max_entries`] events
//! and [`OffloadConfig::max_bytes`] bytes of payload (message payloads and
//! login requests), counting every event not yet handled. When an event
//! does not fit (each outcome counted in `GateMetrics::handler_queue`):
//!
//! - a message on an unreliable channel is dropped, as its channel allows
//!   (`handler_queue.unreliable_dropped`);
//! - a message on a reliable channel, a channel opened or closed by the
//!   peer, or a login request sheds the session: it is closed with
//!   [`OVERLOADED`] (code `close_code::OVERLOADED`; a login is refused with
//!   that reason instead), so that one player waits for a new session rather
//!   than every player of the shard for the handler
//!   (`handler_queue.sessions_shed`). Nothing is lost silently: from there
//!   on the handler gets only the session's `Closed`, and the client is
//!   told why (`handler_queue.shed_events` counts what was not delivered);
//! - a lifecycle event (`Joined`, `LinkUp`/`LinkDown`, `Migrated`,
//!   `Detached`, `Resumed`, `Closed` ...) of a session the handler knows is
//!   never dropped: it goes past the bounds into a side list, which is the
//!   tail of the same FIFO, so it is delivered in order once the handler
//!   gets there (`handler_queue.deferred`). Each session may have at most
//!   16 such events waiting (then it is shed) plus its `Closed`, and a
//!   session seen for the first time at a full queue is turned away before
//!   the handler hears of it (closed as overloaded, none of its events
//!   delivered), so the side list stays within 17 events per session of the
//!   shard, however many sessions come and go.
//!
//! A message's channel delivery is read from the session's channel table
//! (`Session::channel_delivery`), and only when the queue is full. That
//! covers channels the server opened, which no `ChannelOpened` event shows.
//! The table can be ahead of the event: a message whose channel was closed
//! later in the same batch finds no channel and counts as reliable, the
//! safe side.
//!
//! A panic in a queued handler ends the gate as one in an inline handler
//! does (`GateEnd::Panicked`).

mod queue;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hearth_proto::{close_code, Event};

use super::metrics::QueueDepth;
use super::{GateCtx, Handler};
use queue::{Limits, Queue, Verdict};
pub use worker::QueuedCtx;

/// The reason a shed session is closed (or its login refused) with.
pub const OVERLOADED: &str = "server overloaded: its handler queue is full; try again";

/// The application, run on its own thread per shard behind [`Offload`].
/// One clone per shard; each sees the events of its shard's sessions, in
/// order. It may block: only its own shard's events wait meanwhile.
pub trait QueuedHandler: Clone + Send + 'static {
    fn on_event(&mut self, gate: &mut QueuedCtx, session: u64, event: Event);
}

/// The bounds of each shard's handler queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadConfig {
    /// Events waiting for one shard's handler (its current batch included),
    /// at most; lifecycle events may go past it (see the module doc).
    pub max_entries: usize,
    /// Payload bytes waiting for one shard's handler, at most. An empty
    /// queue takes one message of any size.
    pub max_bytes: usize,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self {
            // About a second of a busy shard's traffic (2,000 players at 30
            // messages a second): a handler this far behind is broken, not
            // busy.
            max_entries: 65_536,
            // 64 of the protocol's largest (1 MiB) messages.
            max_bytes: 64 << 20,
        }
    }
}

/// Runs a [`QueuedHandler`] off the shards' tasks: give it to
/// [`super::start`] in place of an inline handler. Each shard's clone starts
/// its worker thread at the shard's first event and stops it when the
/// shard stops (after the events still queued).
pub struct Offload<H> {
    handler: H,
    config: OffloadConfig,
    queue: Option<Arc<Queue>>,
}

impl<H: QueuedHandler> Offload<H> {
    pub fn new(handler: H) -> Self {
        Self::with_config(handler, OffloadConfig::default())
    }

    pub fn with_config(handler: H, config: OffloadConfig) -> Self {
        Self {
            handler,
            config,
            queue: None,
        }
    }

    fn start(&mut self, gate: &GateCtx<'_>) {
        let depth = Arc::new(QueueDepth::default());
        gate.metrics.handler_queue.track(depth.clone());
        let limits = Limits {
            max_entries: self.config.max_entries.max(1),
            max_bytes: self.config.max_bytes,
        };
        let queue = Arc::new(Queue::new(limits, depth));
        let ctx = QueuedCtx::new(gate);
        let handler = self.handler.clone();
        let worker_queue = queue.clone();
        let shard = gate.shard();
        std::thread::Builder::new()
            .name(format!("hearth-handler-{shard}"))
            .spawn(move || worker::run(handler, worker_queue, ctx))
            .unwrap_or_else(|e| {
                panic!(
                    "could not start the handler thread of gate shard {shard}: {e} \
                     (the process may be at its thread limit: see `ulimit -u`)"
                )
            });
        self.queue = Some(queue);
    }
}

/// A clone is another shard's adapter: it shares nothing with this one
/// but the handler it clones and starts its own worker.
impl<H: Clone> Clone for Offload<H> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            config: self.config,
            queue: None,
        }
    }
}

impl<H> Drop for Offload<H> {
    fn drop(&mut self) {
        if let Some(queue) = &self.queue {
            queue.close();
        }
    }
}

impl<H: QueuedHandler> Handler for Offload<H> {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        if self.queue.is_none() {
            self.start(gate);
        }
        let queue = self.queue.as_ref().expect("started above");
        let verdict = queue.admit(session, event, |channel| {
            gate.session(session)
                .and_then(|s| s.channel_delivery(channel))
                .is_some_and(|delivery| !delivery.is_reliable())
        });
        let counts = &gate.metrics.handler_queue;
        match verdict {
            Verdict::Queued { past_bounds } => {
                counts.queued.fetch_add(1, Ordering::Relaxed);
                if past_bounds {
                    counts.deferred.fetch_add(1, Ordering::Relaxed);
                }
            }
            Verdict::Dropped => {
                counts.unreliable_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Discarded => {
                counts.shed_events.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Shed { login } => {
                counts.sessions_shed.fetch_add(1, Ordering::Relaxed);
                counts.shed_events.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    shard = gate.shard(),
                    session,
                    "shedding a session: its shard's handler queue is full"
                );
                if !(login && gate.refuse_login(session, OVERLOADED)) {
                    gate.close(session, close_code::OVERLOADED, OVERLOADED);
                }
            }
        }
    }
}
