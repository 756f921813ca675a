//! The server gates: N shard tasks (one per core by default), each driving
//! its own `hearth_proto::Server` for the sessions whose ids name it, for
//! every way in — a batched UDP socket per shard on one shared port
//! (SO_REUSEPORT), TCP connections with length-prefixed framing, and
//! WebSocket connections handed over by the web server, each stream joining
//! the shard of its session. The application sees sessions through a
//! handler, and through a cloneable [`GateHandle`] from anywhere else,
//! which routes each command to the shard of the session it names.
//!
//! A handler runs one of two ways:
//!
//! - inline, a [`Handler`]: one clone per shard, called inside the shard's
//!   task between its packets. No hop and no copy, so an echo or a router
//!   that only forwards to bounded queues costs nothing extra; but whatever
//!   time it takes, every session of the shard waits for (heartbeats, KCP
//!   acknowledgements, handshakes).
//! - offloaded, a [`QueuedHandler`] behind [`Offload`]: the shard only puts
//!   each event into a bounded queue, and the handler runs on its own
//!   thread per shard, in order, acting through commands. One hop each
//!   way, and a slow or blocking handler delays only its own events; a full
//!   queue drops unreliable messages and sheds sessions by a documented
//!   policy (the `offload` module), counted in [`GateMetrics`].
//!
//! Use the inline path for what is cheap and never waits; offload game code
//! whose cost is not bounded by a few microseconds per event.

mod echo;
mod metrics;
mod offload;
mod outbox;
mod shard;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::{
    ChannelSpec, EndpointStats, Event, SendError, Server, ServerConfig, ServerIdentity, Session,
    Shard, ShardSet,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

pub use echo::EchoHandler;
pub use metrics::{CutReason, GateMetrics, HandlerQueueMetrics};
pub use offload::{Offload, OffloadConfig, QueuedCtx, QueuedHandler, OVERLOADED};

use crate::ws::WebSocket;

#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Game port for UDP; `None` serves no UDP.
    pub udp: Option<SocketAddr>,
    /// Game port for TCP; `None` serves no TCP.
    pub tcp: Option<SocketAddr>,
    pub protocol: ServerConfig,
    /// A connection that sends no complete frame within this is dropped.
    pub first_frame_timeout: Duration,
    /// Packets queued for one stream before the client counts as too slow.
    pub stream_queue: usize,
    /// Bytes queued for one stream (including those being written) before
    /// the client counts as too slow.
    pub stream_queue_bytes: usize,
    /// A write to a stream that does not complete within this cuts the
    /// connection as a slow consumer; its session waits for a resume.
    pub stream_write_timeout: Duration,
    /// Concurrent stream connections from one IP address (IPv6: one /64).
    pub max_streams_per_ip: usize,
    /// Concurrent stream connections in total.
    pub max_streams: usize,
    /// Make the UDP side bad on purpose (network conditioner): `up` applies
    /// to what clients send, `down` to what the gate sends.
    pub impair: Option<crate::conditioner::LinkImpairment>,
    /// Shard tasks, each with its own sessions and UDP socket; 0: one per core.
    pub shards: usize,
    /// Have the kernel deliver each protected datagram to its session's
    /// shard (Linux); off, or where the kernel cannot, the shard it lands on
    /// forwards it (one more hop).
    pub steer_datagrams: bool,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            protocol: ServerConfig::default(),
            first_frame_timeout: Duration::from_secs(5),
            stream_queue: 4096,
            // Twice the session's default unacknowledged window: a healthy
            // client never gets near it.
            stream_queue_bytes: 8 << 20,
            stream_write_timeout: Duration::from_secs(10),
            max_streams_per_ip: 256,
            max_streams: 50_000,
            impair: None,
            shards: 0,
            steer_datagrams: true,
        }
    }
}

impl GateConfig {
    /// Largest TCP frame or WebSocket message accepted: one stream packet.
    pub fn max_frame(&self) -> usize {
        self.protocol.session.max_stream_packet
    }

    /// How many shards `start` makes of this configuration.
    pub fn shard_count(&self) -> usize {
        let wanted = match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        wanted.clamp(1, hearth_proto::MAX_SHARDS)
    }
}

/// The application's view from inside a gate shard's task: the inline
/// path. Each shard has its own clone and sees the events of its own
/// sessions; state shared across sessions of different shards belongs
/// behind an `Arc`.
///
/// `on_event` runs between the shard's packets, so it must never block or
/// wait: slow work goes to another task through a bounded queue, and its
/// answer comes back as a command (`GateHandle::run_on`). Hearth's game
/// handler works so: password checks and saved places are read in spawned
/// tasks, world messages go into the world's bounded input queue (dropped
/// and counted when it is full), and the world's lines send their output
/// as one command per shard per tick.
///
/// A handler that cannot promise that — it blocks, or its cost per event
/// grows with the game — is a [`QueuedHandler`] given to the gate as
/// [`Offload`]`::new(handler)`, which is itself a `Handler` that does
/// nothing but queue.
pub trait Handler: Clone + Send + 'static {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event);

    /// When the handler holds work it could not hand on yet (see
    /// [`GateCtx::pause_receive`]), the time it wants [`Handler::on_wake`]
    /// called: the shard wakes for it even if nothing else happens.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Called once [`Handler::wake_at`] has passed.
    fn on_wake(&mut self, _gate: &mut GateCtx<'_>) {}
}

/// Session operations available to a [`Handler`] and to commands, on the
/// sessions of one shard.
pub struct GateCtx<'a> {
    server: &'a mut Server,
    now: Instant,
    /// Every shard's queue, this one's included (weak: a handler's worker
    /// must not keep a stopped gate alive).
    shards: &'a [mpsc::WeakSender<Input>],
    metrics: &'a GateMetrics,
}

impl GateCtx<'_> {
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn send(&mut self, session: u64, channel: u16, payload: &[u8]) -> Result<(), SendError> {
        self.server.send(self.now, session, channel, payload)
    }

    /// Stops taking the session's reliable messages until
    /// [`GateCtx::resume_receive`] (see `hearth_proto::Server::pause_receive`):
    /// what a handler whose own queue is full does, so that its senders wait
    /// rather than lose messages.
    pub fn pause_receive(&mut self, session: u64) -> bool {
        self.server.pause_receive(self.now, session)
    }

    /// Delivers up to `max` of the messages the session sent while paused,
    /// in order, to the handler; receiving resumes once none is left. True
    /// when it did.
    pub fn resume_receive(&mut self, session: u64, max: usize) -> bool {
        self.server.resume_receive(self.now, session, max)
    }

    pub fn open_channel(
        &mut self,
        session: u64,
        channel: u16,
        spec: ChannelSpec,
    ) -> Result<(), SendError> {
        self.server.open_channel(self.now, session, channel, spec)
    }

    pub fn accept_login(&mut self, session: u64, map: Option<&str>) -> bool {
        self.server.accept_login(self.now, session, map)
    }

    pub fn refuse_login(&mut self, session: u64, reason: &str) -> bool {
        self.server.refuse_login(self.now, session, reason)
    }

    pub fn close(&mut self, session: u64, code: u16, reason: &str) {
        self.server.close(self.now, session, code, reason)
    }

    pub fn session(&self, session: u64) -> Option<&Session> {
        self.server.session(session)
    }

    /// Sessions held by this shard, including detached ones awaiting a resume.
    pub fn session_ids(&self) -> Vec<u64> {
        self.server.session_ids().collect()
    }

    /// Sessions held by this shard.
    pub fn session_count(&self) -> usize {
        self.server.session_count()
    }

    /// Sessions held by the whole gate, every shard (exact).
    pub fn total_sessions(&self) -> usize {
        self.server.total_sessions()
    }

    /// Which shard this is.
    pub fn shard(&self) -> usize {
        self.server.shard().index
    }

    /// This shard's endpoint counters now (`GateMetrics::endpoint` sums all
    /// shards', up to 100 ms old).
    pub fn endpoint_stats(&self) -> &hearth_proto::EndpointStats {
        self.server.stats()
    }
}

/// A command for a gate shard, from outside it.
pub type Command = Box<dyn FnOnce(&mut GateCtx<'_>) + Send>;

pub(crate) enum Input {
    StreamOpened {
        id: hearth_proto::StreamId,
        writer: outbox::OutboxSender,
        peer: SocketAddr,
    },
    StreamPacket {
        id: hearth_proto::StreamId,
        packet: bytes::Bytes,
    },
    StreamClosed {
        id: hearth_proto::StreamId,
    },
    /// Datagrams another shard received for sessions of this one.
    Datagrams(Vec<(SocketAddr, Vec<u8>)>),
    Run(Command),
    Impair(Option<crate::conditioner::LinkImpairment>),
    Shutdown {
        reason: String,
        done: oneshot::Sender<()>,
    },
}

/// Reaches the gate's shards from any task: run session operations, accept
/// WebSocket connections, shut down.
#[derive(Clone)]
pub struct GateHandle {
    shards: Arc<[mpsc::Sender<Input>]>,
    set: Arc<ShardSet>,
    shared: Arc<streams::Shared>,
    ended: watch::Receiver<Option<GateEnd>>,
    /// Where the sockets ended up (useful with port 0).
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub public_key: [u8; 32],
}

impl GateHandle {
    /// How many shards the gate runs.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that holds `session`.
    pub fn shard_of(&self, session: u64) -> usize {
        self.set.shard_of(session)
    }

    /// Sessions held by every shard together, exact and without a round trip.
    pub fn session_count(&self) -> usize {
        self.set.sessions()
    }

    /// Runs `command` in shard `shard`'s task with access to its sessions.
    /// Fails only when the gate has stopped.
    pub async fn run_on_shard(
        &self,
        shard: usize,
        command: impl FnOnce(&mut GateCtx<'_>) + Send + 'static,
    ) -> Result<(), GateStopped> {
        self.shards[shard % self.shards.len()]
            .send(Input::Run(Box::new(command)))
            .await
            .map_err(|_| GateStopped)
    }

    /// Runs `command` in the task of the shard that holds `session`.
    pub async fn run_on(
        &self,
        session: u64,
        command: impl FnOnce(&mut GateCtx<'_>) + Send + 'static,
    ) -> Result<(), GateStopped> {
        self.run_on_shard(self.shard_of(session), command).await
    }

    /// Runs `query` in the task of the shard that holds `session` and
    /// returns its answer.
    pub async fn query_on<T: Send + 'static>(
        &self,
        session: u64,
        query: impl FnOnce(&mut GateCtx<'_>) -> T + Send + 'static,
    ) -> Result<T, GateStopped> {
        let (tx, rx) = oneshot::channel();
        self.run_on(session, move |ctx| {
            let _ = tx.send(query(ctx));
        })
        .await?;
        rx.await.map_err(|_| GateStopped)
    }

    /// Runs `query` in every shard (one after another, each in its own
    /// task) and returns their answers in shard order.
    pub async fn query_each<T: Send + 'static>(
        &self,
        query: impl Fn(&mut GateCtx<'_>) -> T + Clone + Send + 'static,
    ) -> Result<Vec<T>, GateStopped> {
        let mut answers = Vec::with_capacity(self.shards.len());
        let mut waits = Vec::with_capacity(self.shards.len());
        for shard in 0..self.shards.len() {
            let (tx, rx) = oneshot::channel();
            let query = query.clone();
            self.run_on_shard(shard, move |ctx| {
                let _ = tx.send(query(ctx));
            })
            .await?;
            waits.push(rx);
        }
        for wait in waits {
            answers.push(wait.await.map_err(|_| GateStopped)?);
        }
        Ok(answers)
    }

    /// Every shard's endpoint counters now, summed.
    pub async fn endpoint_stats(&self) -> Result<EndpointStats, GateStopped> {
        let each = self.query_each(|ctx| ctx.endpoint_stats().clone()).await?;
        let mut total = EndpointStats::default();
        for stats in &each {
            total.merge(stats);
        }
        Ok(total)
    }

    /// Makes the UDP side bad on purpose from now on (`None`: a clean link
    /// again): the network conditioner, at run time, on every shard.
    pub async fn set_impairment(
        &self,
        impair: Option<crate::conditioner::LinkImpairment>,
    ) -> Result<(), GateStopped> {
        for shard in self.shards.iter() {
            shard
                .send(Input::Impair(impair))
                .await
                .map_err(|_| GateStopped)?;
        }
        Ok(())
    }

    /// Serves a WebSocket whose upgrade is done as a session stream.
    pub fn accept_websocket<S>(&self, socket: WebSocket<S>, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        streams::spawn_websocket(self.shared.clone(), self.shards.clone(), socket, peer);
    }

    pub fn metrics(&self) -> &GateMetrics {
        &self.shared.metrics
    }

    /// How the gate task ended; `None` while it runs.
    pub fn end(&self) -> Option<GateEnd> {
        self.ended.borrow().clone()
    }

    /// Waits until the gate ends, by shutdown or by a panic in a shard.
    pub async fn ended(&self) -> GateEnd {
        let mut ended = self.ended.clone();
        let result = ended.wait_for(Option::is_some).await;
        match result {
            Ok(end) => end.clone().expect("waited for Some"),
            // The supervisor went away without a word: the runtime is stopping.
            Err(_) => GateEnd::Stopped,
        }
    }

    /// Closes every session with `reason` (clients see it), waits for the
    /// closes to be sent (at most the close linger plus a little), then
    /// stops every shard.
    pub async fn shutdown(&self, reason: &str) {
        let mut waits = Vec::new();
        for shard in self.shards.iter() {
            let (done, wait) = oneshot::channel();
            let sent = shard
                .send(Input::Shutdown {
                    reason: reason.to_owned(),
                    done,
                })
                .await;
            if sent.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gate has stopped")]
pub struct GateStopped;

/// How the gate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    /// Shut down, or every handle was dropped.
    Stopped,
    /// A shard's task panicked (in the protocol or in the handler) with this message.
    Panicked(String),
}

impl std::fmt::Display for GateEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateEnd::Stopped => f.write_str("the gate has stopped"),
            GateEnd::Panicked(message) => write!(f, "a gate shard panicked: {message}"),
        }
    }
}

/// Waits for the shard tasks and publishes how the gate ended: at the first
/// panic (so that it is seen by health checks and the server's supervisor
/// rather than leaving a process whose other ports still answer), or when
/// every shard has stopped.
async fn supervise(mut tasks: tokio::task::JoinSet<()>, ended: watch::Sender<Option<GateEnd>>) {
    while let Some(result) = tasks.join_next().await {
        let Err(error) = result else { continue };
        if !error.is_panic() {
            continue;
        }
        let payload = error.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!("a gate shard panicked: {message}");
        // Its sessions are gone and its state may be half-changed: the
        // whole gate stops, so that commands fail and the ports are freed
        // at once, as they would with one task.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let _ = ended.send(Some(GateEnd::Panicked(message)));
        return;
    }
    let _ = ended.send(Some(GateEnd::Stopped));
}

/// Binds the configured sockets and starts the shard tasks, each with its
/// own clone of `handler`.
pub async fn start(
    mut config: GateConfig,
    identity: ServerIdentity,
    handler: impl Handler,
) -> std::io::Result<GateHandle> {
    let count = config.shard_count();
    let mut udp_sockets = Vec::with_capacity(count);
    if let Some(addr) = config.udp {
        let first = if count == 1 {
            crate::udp::BatchSocket::bind(addr).await?
        } else {
            crate::udp::BatchSocket::bind_reuse_port(addr)?
        };
        // Port 0 picked a port: the other shards join that one.
        let bound = first.local_addr()?;
        udp_sockets.push(first);
        for _ in 1..count {
            udp_sockets.push(crate::udp::BatchSocket::bind_reuse_port(bound)?);
        }
        if count > 1 && config.steer_datagrams {
            // Socket i is shard i: they were bound in that order.
            if let Err(error) = udp_sockets[0].steer_by_session_shard(count) {
                tracing::warn!(
                    "the kernel will not steer datagrams to their shard ({error}); \
                     the shards forward them to each other instead"
                );
            }
        }
    }
    let udp_addr = udp_sockets.first().map(|s| s.local_addr()).transpose()?;
    if config.protocol.udp_ticket_port.is_none() {
        config.protocol.udp_ticket_port = udp_addr.map(|a| a.port());
    }
    let tcp = match config.tcp {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let set = ShardSet::new(count, &config.protocol, hearth_proto::os_seed());
    let shared = Arc::new(streams::Shared::new(&config, set.clone()));
    // One epoch for all: the shards' cookie secrets rotate on its schedule.
    let epoch = Instant::now();
    let mut senders = Vec::with_capacity(count);
    let mut receivers = Vec::with_capacity(count);
    for _ in 0..count {
        let (sender, receiver) = mpsc::channel(8192);
        senders.push(sender);
        receivers.push(receiver);
    }
    let shards: Arc<[mpsc::Sender<Input>]> = senders.into();
    let peers: Vec<mpsc::WeakSender<Input>> = shards.iter().map(|s| s.downgrade()).collect();
    let mut udp_sockets = udp_sockets.into_iter();
    let mut tasks = tokio::task::JoinSet::new();
    let mut public_key = [0u8; 32];
    for (index, inputs) in receivers.into_iter().enumerate() {
        let server = Server::new_shard(
            config.protocol.clone(),
            identity.clone(),
            epoch,
            hearth_proto::os_seed(),
            Shard {
                index,
                set: set.clone(),
            },
        );
        public_key = server.public_key();
        tasks.spawn(shard::run(shard::ShardParts {
            index,
            server,
            udp: udp_sockets.next(),
            impair: config.impair,
            inputs,
            peers: peers.clone(),
            handler: handler.clone(),
            shared: shared.clone(),
        }));
    }
    if let Some(listener) = tcp {
        tokio::spawn(streams::accept_tcp(
            listener,
            shared.clone(),
            shards.clone(),
        ));
    }
    let (ended_tx, ended) = watch::channel(None);
    tokio::spawn(supervise(tasks, ended_tx));
    Ok(GateHandle {
        shards,
        set,
        shared,
        ended,
        udp_addr,
        tcp_addr,
        public_key,
    })
}
