//! The server gates: one task drives `hearth_proto::Server` for every way in —
//! one batched UDP socket, TCP connections with length-prefixed framing, and
//! WebSocket connections handed over by the web server. The application sees
//! sessions through a [`Handler`] called inside that task (so an echo costs
//! no extra hop) and through a cloneable [`GateHandle`] from anywhere else.

mod echo;
mod endpoint;
mod metrics;
mod outbox;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::{ChannelSpec, Event, SendError, Server, ServerConfig, ServerIdentity, Session};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

pub use echo::EchoHandler;
pub use metrics::{CutReason, GateMetrics};

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
        }
    }
}

impl GateConfig {
    /// Largest TCP frame or WebSocket message accepted: one stream packet.
    pub fn max_frame(&self) -> usize {
        self.protocol.session.max_stream_packet
    }
}

/// The application's view from inside the gate task.
pub trait Handler: Send + 'static {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event);
}

/// Session operations available to a [`Handler`].
pub struct GateCtx<'a> {
    server: &'a mut Server,
    now: Instant,
}

impl GateCtx<'_> {
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn send(&mut self, session: u64, channel: u16, payload: &[u8]) -> Result<(), SendError> {
        self.server.send(self.now, session, channel, payload)
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

    /// Sessions held by the gate, including detached ones awaiting a resume.
    pub fn session_ids(&self) -> Vec<u64> {
        self.server.session_ids().collect()
    }

    pub fn session_count(&self) -> usize {
        self.server.session_count()
    }

    /// The endpoint's counters now (`GateMetrics::endpoint` may be 100 ms old).
    pub fn endpoint_stats(&self) -> &hearth_proto::EndpointStats {
        self.server.stats()
    }
}

/// A command for the gate task, from outside it.
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
    Run(Command),
    Impair(Option<crate::conditioner::LinkImpairment>),
    Shutdown {
        reason: String,
        done: oneshot::Sender<()>,
    },
}

/// Reaches the gate task from any task: run session operations, accept
/// WebSocket connections, shut down.
#[derive(Clone)]
pub struct GateHandle {
    inputs: mpsc::Sender<Input>,
    shared: Arc<streams::Shared>,
    ended: watch::Receiver<Option<GateEnd>>,
    /// Where the sockets ended up (useful with port 0).
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub public_key: [u8; 32],
}

impl GateHandle {
    /// Runs `command` inside the gate task with access to every session.
    /// Fails only when the gate has stopped.
    pub async fn run(
        &self,
        command: impl FnOnce(&mut GateCtx<'_>) + Send + 'static,
    ) -> Result<(), GateStopped> {
        self.inputs
            .send(Input::Run(Box::new(command)))
            .await
            .map_err(|_| GateStopped)
    }

    /// Runs `query` in the gate task and returns its answer.
    pub async fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut GateCtx<'_>) -> T + Send + 'static,
    ) -> Result<T, GateStopped> {
        let (tx, rx) = oneshot::channel();
        self.run(move |ctx| {
            let _ = tx.send(query(ctx));
        })
        .await?;
        rx.await.map_err(|_| GateStopped)
    }

    /// Makes the UDP side bad on purpose from now on (`None`: a clean link
    /// again): the network conditioner, at run time.
    pub async fn set_impairment(
        &self,
        impair: Option<crate::conditioner::LinkImpairment>,
    ) -> Result<(), GateStopped> {
        self.inputs
            .send(Input::Impair(impair))
            .await
            .map_err(|_| GateStopped)
    }

    /// Serves a WebSocket whose upgrade is done as a session stream.
    pub fn accept_websocket<S>(&self, socket: WebSocket<S>, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        streams::spawn_websocket(self.shared.clone(), self.inputs.clone(), socket, peer);
    }

    pub fn metrics(&self) -> &GateMetrics {
        &self.shared.metrics
    }

    /// How the gate task ended; `None` while it runs.
    pub fn end(&self) -> Option<GateEnd> {
        self.ended.borrow().clone()
    }

    /// Waits until the gate task ends, by shutdown or by a panic.
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
    /// closes to be sent (at most the close linger plus a little), then stops.
    pub async fn shutdown(&self, reason: &str) {
        let (done, wait) = oneshot::channel();
        let sent = self
            .inputs
            .send(Input::Shutdown {
                reason: reason.to_owned(),
                done,
            })
            .await;
        if sent.is_ok() {
            let _ = wait.await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gate has stopped")]
pub struct GateStopped;

/// How the gate task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEnd {
    /// Shut down, or every handle was dropped.
    Stopped,
    /// The task panicked (in the protocol or in the handler) with this message.
    Panicked(String),
}

impl std::fmt::Display for GateEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateEnd::Stopped => f.write_str("the gate has stopped"),
            GateEnd::Panicked(message) => write!(f, "the gate task panicked: {message}"),
        }
    }
}

/// Waits for the gate task and publishes how it ended, so that a panic in it
/// is seen (health checks, the server's supervisor) rather than leaving a
/// process whose other ports still answer.
async fn supervise(task: tokio::task::JoinHandle<()>, ended: watch::Sender<Option<GateEnd>>) {
    let end = match task.await {
        Ok(()) => GateEnd::Stopped,
        Err(error) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!("the gate task panicked: {message}");
            GateEnd::Panicked(message)
        }
        Err(_) => GateEnd::Stopped,
    };
    let _ = ended.send(Some(end));
}

/// Binds the configured sockets and starts the gate task.
pub async fn start(
    mut config: GateConfig,
    identity: ServerIdentity,
    handler: impl Handler,
) -> std::io::Result<GateHandle> {
    let udp = match config.udp {
        Some(addr) => Some(crate::udp::BatchSocket::bind(addr).await?),
        None => None,
    };
    let udp_addr = udp.as_ref().map(|s| s.local_addr()).transpose()?;
    if config.protocol.udp_ticket_port.is_none() {
        config.protocol.udp_ticket_port = udp_addr.map(|a| a.port());
    }
    let tcp = match config.tcp {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let (inputs, receiver) = mpsc::channel(8192);
    let shared = Arc::new(streams::Shared::new(&config));
    let server = Server::new(
        config.protocol.clone(),
        identity,
        Instant::now(),
        hearth_proto::os_seed(),
    );
    let public_key = server.public_key();
    if let Some(listener) = tcp {
        tokio::spawn(streams::accept_tcp(
            listener,
            shared.clone(),
            inputs.clone(),
        ));
    }
    let task = tokio::spawn(endpoint::run(
        server,
        udp,
        config.impair,
        receiver,
        handler,
        shared.clone(),
    ));
    let (ended_tx, ended) = watch::channel(None);
    tokio::spawn(supervise(task, ended_tx));
    Ok(GateHandle {
        inputs,
        shared,
        ended,
        udp_addr,
        tcp_addr,
        public_key,
    })
}
