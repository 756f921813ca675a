//! What the gate counts: connections by kind, rejections by reason, and the
//! protocol endpoint's own counters (drops by reason) copied out of its task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hearth_proto::EndpointStats;

/// Why the gate closed or refused a stream connection before or outside the
/// session protocol. The protocol's own drops are in `EndpointStats::drops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// Connected and sent nothing within the first-frame deadline.
    SilentConnection,
    /// A TCP frame longer than the maximum.
    OversizedFrame,
    /// A WebSocket protocol error (bad frame, bad UTF-8, text where binary is expected).
    MalformedFrame,
    /// The client did not read fast enough and its queue filled.
    SlowConsumer,
    /// Too many connections from one address.
    TooManyFromAddress,
    /// The gate is shutting down or full.
    Overloaded,
}

impl CutReason {
    pub const ALL: [CutReason; 6] = [
        CutReason::SilentConnection,
        CutReason::OversizedFrame,
        CutReason::MalformedFrame,
        CutReason::SlowConsumer,
        CutReason::TooManyFromAddress,
        CutReason::Overloaded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CutReason::SilentConnection => "silent_connection",
            CutReason::OversizedFrame => "oversized_frame",
            CutReason::MalformedFrame => "malformed_frame",
            CutReason::SlowConsumer => "slow_consumer",
            CutReason::TooManyFromAddress => "too_many_from_address",
            CutReason::Overloaded => "overloaded",
        }
    }
}

#[derive(Default)]
pub struct GateMetrics {
    pub tcp_accepted: AtomicU64,
    pub ws_accepted: AtomicU64,
    pub streams_open: AtomicU64,
    pub udp_datagrams_in: AtomicU64,
    pub udp_datagrams_out: AtomicU64,
    rejects: [AtomicU64; 6],
    /// Each shard's endpoint counters, by shard.
    endpoint: Mutex<Vec<EndpointStats>>,
    /// Sessions held by every shard together.
    pub sessions_live: AtomicU64,
    /// Datagrams a shard received for another shard's session (a client
    /// whose address changed) and handed over.
    pub udp_forwarded: AtomicU64,
    /// The same, dropped because the owning shard's queue was full.
    pub udp_forward_dropped: AtomicU64,
    /// What the queues in front of offloaded handlers ([`super::Offload`])
    /// did with each event.
    pub handler_queue: HandlerQueueMetrics,
}

/// The handler queues of [`super::Offload`], every shard's summed. The
/// policy they count is in the `offload` module's documentation.
#[derive(Default)]
pub struct HandlerQueueMetrics {
    /// Events handed to a handler's queue (deferred ones included).
    pub queued: AtomicU64,
    /// Lifecycle events queued past the bounds because the queue was full:
    /// never dropped, they wait their turn.
    pub deferred: AtomicU64,
    /// Messages on unreliable channels dropped at a full queue.
    pub unreliable_dropped: AtomicU64,
    /// Sessions closed (or logins refused) because their shard's queue was
    /// full when a message that must not be lost arrived: load shedding.
    pub sessions_shed: AtomicU64,
    /// Events of shed sessions that the handler never got: the one that did
    /// not fit and what came after it, up to the session's close.
    pub shed_events: AtomicU64,
    /// Each started queue's depth, read by [`HandlerQueueMetrics::waiting`].
    depths: Mutex<Vec<Arc<QueueDepth>>>,
}

/// How much one handler queue holds now: events not yet handled (queued
/// plus the worker's chunk) and their bytes.
#[derive(Default)]
pub(crate) struct QueueDepth {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

impl HandlerQueueMetrics {
    /// Events waiting for offloaded handlers and their bytes, every shard's
    /// queue summed: a handler that falls behind shows here before its
    /// queue fills and sheds.
    pub fn waiting(&self) -> (u64, u64) {
        let depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
        depths.iter().fold((0, 0), |(events, bytes), depth| {
            (
                events + depth.events.load(Ordering::Relaxed),
                bytes + depth.bytes.load(Ordering::Relaxed),
            )
        })
    }

    /// A queue that started (one per shard at most).
    pub(crate) fn track(&self, depth: Arc<QueueDepth>) {
        let mut depths = self.depths.lock().unwrap_or_else(|e| e.into_inner());
        depths.push(depth);
    }
}

impl GateMetrics {
    pub fn count_cut(&self, reason: CutReason) {
        let index = CutReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.rejects[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn cuts(&self, reason: CutReason) -> u64 {
        let index = CutReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.rejects[index].load(Ordering::Relaxed)
    }

    /// The protocol endpoints' counters, every shard's summed, as of their
    /// last updates (at most 100 ms old).
    pub fn endpoint(&self) -> EndpointStats {
        let shards = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = EndpointStats::default();
        for stats in shards.iter() {
            total.merge(stats);
        }
        total
    }

    pub(crate) fn set_endpoint(&self, shard: usize, stats: &EndpointStats) {
        let mut shards = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if shards.len() <= shard {
            shards.resize_with(shard + 1, EndpointStats::default);
        }
        shards[shard].clone_from(stats);
    }
}
