//! The handler's side of an offloaded shard: its own thread takes events
//! from the shard's queue in order, and a [`QueuedCtx`] gathers what the
//! handler does to sessions into one command per shard, sent back through
//! the shards' ordinary input queues.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::{ChannelSpec, ShardSet};
use tokio::sync::mpsc;

use super::queue::{Entry, Queue};
use super::QueuedHandler;
use crate::gate::{GateCtx, Input};

/// Events the worker takes from the queue per lock.
const CHUNK: usize = 64;
/// Session operations held before they go to the shards at once, at most
/// in number and in age: batching saves the shards a queue hop per event,
/// and the age bound keeps a slow handler's answers from waiting on its
/// next events.
const FLUSH_OPS: usize = 256;
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// What an offloaded handler can do, from its own thread. Operations are
/// carried out in the task of the shard that holds the session, in the
/// order they were asked for. They leave when the handler returns from an
/// event and either no other event waits or the oldest of them has waited
/// a millisecond; call [`QueuedCtx::flush`] to send them at once, before a
/// long piece of work.
///
/// Their results are not returned (the session may have gone meanwhile):
/// failures are logged at debug level, as the inline echo's are. Work that
/// needs an answer from a shard uses [`QueuedCtx::run`].
pub struct QueuedCtx {
    shard: usize,
    set: Arc<ShardSet>,
    shards: Vec<mpsc::WeakSender<Input>>,
    runtime: tokio::runtime::Handle,
    /// Operations not yet sent, by shard.
    ops: Vec<Vec<Op>>,
    pending: usize,
    oldest: Option<Instant>,
}

enum Op {
    Send {
        session: u64,
        channel: u16,
        payload: Vec<u8>,
    },
    OpenChannel {
        session: u64,
        channel: u16,
        spec: ChannelSpec,
    },
    AcceptLogin {
        session: u64,
        map: Option<String>,
    },
    RefuseLogin {
        session: u64,
        reason: String,
    },
    Close {
        session: u64,
        code: u16,
        reason: String,
    },
    Run(crate::gate::Command),
}

impl Op {
    fn session(&self) -> Option<u64> {
        match self {
            Op::Send { session, .. }
            | Op::OpenChannel { session, .. }
            | Op::AcceptLogin { session, .. }
            | Op::RefuseLogin { session, .. }
            | Op::Close { session, .. } => Some(*session),
            Op::Run(_) => None,
        }
    }

    fn apply(self, gate: &mut GateCtx<'_>) {
        match self {
            Op::Send {
                session,
                channel,
                payload,
            } => {
                if let Err(e) = gate.send(session, channel, &payload) {
                    tracing::debug!(session, channel, "queued handler's send failed: {e}");
                }
            }
            Op::OpenChannel {
                session,
                channel,
                spec,
            } => {
                if let Err(e) = gate.open_channel(session, channel, spec) {
                    tracing::debug!(
                        session,
                        channel,
                        "queued handler's open_channel failed: {e}"
                    );
                }
            }
            Op::AcceptLogin { session, map } => {
                if !gate.accept_login(session, map.as_deref()) {
                    tracing::debug!(session, "login accepted too late: no login awaits");
                }
            }
            Op::RefuseLogin { session, reason } => {
                gate.refuse_login(session, &reason);
            }
            Op::Close {
                session,
                code,
                reason,
            } => gate.close(session, code, &reason),
            Op::Run(command) => command(gate),
        }
    }
}

impl QueuedCtx {
    pub(super) fn new(gate: &GateCtx<'_>) -> Self {
        let shards = gate.shards.to_vec();
        Self {
            shard: gate.shard(),
            set: gate.server.shard().set.clone(),
            ops: shards.iter().map(|_| Vec::new()).collect(),
            shards,
            // The shard task runs on the gate's runtime, so this is it.
            runtime: tokio::runtime::Handle::current(),
            pending: 0,
            oldest: None,
        }
    }

    /// The shard whose events this handler gets.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The shard that holds `session`.
    pub fn shard_of(&self, session: u64) -> usize {
        self.set.shard_of(session)
    }

    /// The gate's runtime: `block_on` a future from the handler (its thread
    /// is not a runtime worker), or `spawn` work that reports back through
    /// a `GateHandle`.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub fn send(&mut self, session: u64, channel: u16, payload: impl Into<Vec<u8>>) {
        self.push(Op::Send {
            session,
            channel,
            payload: payload.into(),
        });
    }

    pub fn open_channel(&mut self, session: u64, channel: u16, spec: ChannelSpec) {
        self.push(Op::OpenChannel {
            session,
            channel,
            spec,
        });
    }

    pub fn accept_login(&mut self, session: u64, map: Option<&str>) {
        self.push(Op::AcceptLogin {
            session,
            map: map.map(str::to_owned),
        });
    }

    pub fn refuse_login(&mut self, session: u64, reason: &str) {
        self.push(Op::RefuseLogin {
            session,
            reason: reason.to_owned(),
        });
    }

    pub fn close(&mut self, session: u64, code: u16, reason: &str) {
        self.push(Op::Close {
            session,
            code,
            reason: reason.to_owned(),
        });
    }

    /// Runs `command` in the task of the shard that holds `session`, after
    /// the operations asked for before it.
    pub fn run(&mut self, session: u64, command: impl FnOnce(&mut GateCtx<'_>) + Send + 'static) {
        let shard = self.shard_of(session);
        self.push_to(shard, Op::Run(Box::new(command)));
    }

    /// Sends the operations asked for so far to their shards now. Waits
    /// while a shard's input queue is full (backpressure on this handler,
    /// never on the shard); operations for a stopped gate are dropped.
    pub fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.pending = 0;
        self.oldest = None;
        for (shard, ops) in self.ops.iter_mut().enumerate() {
            if ops.is_empty() {
                continue;
            }
            let ops = std::mem::take(ops);
            let Some(inputs) = self.shards[shard].upgrade() else {
                continue;
            };
            let command = Box::new(move |gate: &mut GateCtx<'_>| {
                for op in ops {
                    op.apply(gate);
                }
            });
            // Fails only when the shard has stopped.
            let _ = inputs.blocking_send(Input::Run(command));
        }
    }

    fn push(&mut self, op: Op) {
        let shard = op.session().map_or(self.shard, |s| self.shard_of(s));
        self.push_to(shard, op);
    }

    fn push_to(&mut self, shard: usize, op: Op) {
        self.ops[shard].push(op);
        self.pending += 1;
        self.oldest.get_or_insert_with(Instant::now);
    }

    fn flush_due(&self) -> bool {
        self.pending >= FLUSH_OPS || self.oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
    }

    /// Makes the shard's task panic with `message`, so that the gate ends as
    /// it would had an inline handler panicked (`GateEnd::Panicked`).
    fn report_panic(&mut self, message: String) {
        self.flush();
        if let Some(inputs) = self.shards[self.shard].upgrade() {
            let command = Box::new(move |_: &mut GateCtx<'_>| panic!("{message}"));
            let _ = inputs.blocking_send(Input::Run(command));
        }
    }
}

/// The worker thread's loop: every event of the shard, in order, until the
/// shard stops and the queue is empty.
pub(super) fn run<H: QueuedHandler>(mut handler: H, queue: Arc<Queue>, mut ctx: QueuedCtx) {
    let mut chunk: Vec<Entry> = Vec::with_capacity(CHUNK);
    let mut done = Vec::with_capacity(CHUNK);
    loop {
        queue.take(&mut done, CHUNK, &mut chunk, false);
        if chunk.is_empty() {
            // Nothing waits: the answers go out before the worker sleeps.
            ctx.flush();
            if !queue.take(&mut done, CHUNK, &mut chunk, true) {
                break;
            }
        }
        for entry in chunk.drain(..) {
            done.push(entry.receipt);
            let handled = catch_unwind(AssertUnwindSafe(|| {
                handler.on_event(&mut ctx, entry.session, entry.event)
            }));
            if let Err(payload) = handled {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                ctx.report_panic(message);
                return;
            }
            if ctx.flush_due() {
                ctx.flush();
            }
        }
    }
    ctx.flush();
}
