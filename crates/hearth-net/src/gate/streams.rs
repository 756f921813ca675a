//! Stream connections (TCP and WebSocket): one task each, reading packets
//! into the gate task and writing what it sends back. Bounded everywhere: the
//! frame size, the first-frame deadline, the outgoing queue (packets and
//! bytes), the time one write may take, connections per address and in total.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_proto::StreamId;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::outbox::{self, OutboxReceiver};
use super::{CutReason, GateConfig, GateMetrics, Input};
use crate::admission::{self, Admission, Refusal};
use crate::pump::{self, pump_tcp, pump_websocket, PacketSink, PumpEnd, PumpLimits};
use crate::ws::WebSocket;

pub(crate) struct Shared {
    pub metrics: GateMetrics,
    next_stream: AtomicU64,
    admission: Admission,
    max_frame: usize,
    first_frame_timeout: Duration,
    stream_queue: usize,
    stream_queue_bytes: usize,
    write_timeout: Duration,
    heartbeat: Duration,
    idle_timeout: Duration,
}

impl Shared {
    pub fn new(config: &GateConfig) -> Self {
        Self {
            metrics: GateMetrics::default(),
            next_stream: AtomicU64::new(1),
            // The per-address cap follows the other per-address limits:
            // loopback is exempt unless `limit_loopback` says otherwise.
            admission: Admission::with_loopback(
                config.max_streams,
                config.max_streams_per_ip,
                !config.protocol.limit_loopback,
            ),
            max_frame: config.max_frame(),
            first_frame_timeout: config.first_frame_timeout,
            stream_queue: config.stream_queue,
            stream_queue_bytes: config.stream_queue_bytes,
            write_timeout: config.stream_write_timeout,
            heartbeat: config.protocol.session.heartbeat_interval,
            idle_timeout: config.protocol.session.idle_timeout,
        }
    }

    /// Counts a connection from `ip`, or refuses (and counts) it over a cap.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Result<StreamSlot, Refusal> {
        match self.admission.admit(ip) {
            Ok(slot) => {
                self.metrics.streams_open.fetch_add(1, Ordering::Relaxed);
                Ok(StreamSlot {
                    shared: self.clone(),
                    _slot: slot,
                })
            }
            Err(refusal) => {
                self.metrics.count_cut(match refusal {
                    Refusal::TooManyFromAddress => CutReason::TooManyFromAddress,
                    Refusal::Full => CutReason::Overloaded,
                });
                Err(refusal)
            }
        }
    }

    fn pump_limits(&self) -> PumpLimits {
        PumpLimits {
            max_frame: self.max_frame,
            write_timeout: self.write_timeout,
            first_packet: Some(self.first_frame_timeout),
            close_reason: "session closed",
        }
    }

    /// Counts how a connection ended, when it is something to count.
    fn count_end(&self, end: PumpEnd, peer: SocketAddr, transport: &str) {
        let cut = match end {
            PumpEnd::PeerClosed | PumpEnd::LocalClose | PumpEnd::WriteFailed => return,
            PumpEnd::Oversized => CutReason::OversizedFrame,
            PumpEnd::Malformed => CutReason::MalformedFrame,
            PumpEnd::Silent => CutReason::SilentConnection,
            // The peer stopped reading.
            PumpEnd::WriteTimeout => CutReason::SlowConsumer,
        };
        self.metrics.count_cut(cut);
        tracing::debug!(%peer, "closing {transport} connection: {end:?}");
    }
}

/// Holds the connection's admission and the open-streams gauge until it ends,
/// however it ends.
struct StreamSlot {
    shared: Arc<Shared>,
    _slot: admission::Slot,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.shared
            .metrics
            .streams_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) async fn accept_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // The gate stopped: release the port now, not at the next connection.
            () = inputs.closed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.metrics.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_tcp(shared.clone(), inputs.clone(), stream, peer));
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Opens the stream in the gate task; `None` when the gate has stopped.
async fn open_stream(
    shared: &Shared,
    inputs: &mpsc::Sender<Input>,
    peer: SocketAddr,
) -> Option<(StreamId, OutboxReceiver)> {
    let id = StreamId(shared.next_stream.fetch_add(1, Ordering::Relaxed));
    let (writer, receiver) = outbox::outbox(shared.stream_queue, shared.stream_queue_bytes);
    inputs
        .send(Input::StreamOpened { id, writer, peer })
        .await
        .ok()?;
    Some((id, receiver))
}

fn configure_tcp(shared: &Shared, stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    // Keepalive backs up the application heartbeat: it notices a dead peer
    // even when the application is idle on both ends or stuck.
    let keepalive = TcpKeepalive::new()
        .with_time(shared.idle_timeout)
        .with_interval(shared.heartbeat)
        .with_retries(3);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!("could not set TCP keepalive: {e}");
    }
}

async fn serve_tcp(
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let Ok(_slot) = shared.admit(peer.ip()) else {
        return;
    };
    configure_tcp(&shared, &stream);
    let Some((id, outgoing)) = open_stream(&shared, &inputs, peer).await else {
        return;
    };
    let sink = GateSink {
        inputs: inputs.clone(),
        id,
    };
    let end = pump_tcp(stream, shared.pump_limits(), outgoing, sink).await;
    shared.count_end(end, peer, "TCP");
    let _ = inputs.send(Input::StreamClosed { id }).await;
}

/// Packets read from a connection go to the gate task, named by stream.
struct GateSink {
    inputs: mpsc::Sender<Input>,
    id: StreamId,
}

impl PacketSink for GateSink {
    async fn deliver(&mut self, packet: bytes::Bytes) -> bool {
        let input = Input::StreamPacket {
            id: self.id,
            packet,
        };
        self.inputs.send(input).await.is_ok()
    }
}

pub(crate) fn spawn_websocket<S>(
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    socket: WebSocket<S>,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.metrics.ws_accepted.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(serve_websocket(shared, inputs, socket, peer));
}

async fn serve_websocket<S>(
    shared: Arc<Shared>,
    inputs: mpsc::Sender<Input>,
    mut socket: WebSocket<S>,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _slot = match shared.admit(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            let reason = match refusal {
                Refusal::TooManyFromAddress => "too many connections from this address",
                Refusal::Full => "the server is full, try again later",
            };
            socket.protocol().close_with(1008, reason);
            if let Err(end) = pump::flush(&mut socket, shared.pump_limits()).await {
                shared.count_end(end, peer, "WebSocket");
            }
            return;
        }
    };
    socket.protocol().set_max_message(shared.max_frame);
    let Some((id, outgoing)) = open_stream(&shared, &inputs, peer).await else {
        return;
    };
    let sink = GateSink {
        inputs: inputs.clone(),
        id,
    };
    let end = pump_websocket(&mut socket, shared.pump_limits(), outgoing, sink).await;
    shared.count_end(end, peer, "WebSocket");
    let _ = inputs.send(Input::StreamClosed { id }).await;
}
