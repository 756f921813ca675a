//! Stream connections (TCP and WebSocket): one task each, reading packets
//! into a gate shard and writing what it sends back. The first packet picks
//! the shard: a Hello that resumes or attaches names its session, whose
//! shard it joins; a new session goes to the shard its stream number picks.
//! Bounded everywhere: the frame size, the first-frame deadline, the
//! outgoing queue (packets and bytes), the time one write may take,
//! connections per address and in total.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_proto::{ShardSet, StreamId};
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::outbox::{self, OutboxReceiver, OutboxSender};
use super::shard::ForwardQueue;
use super::{CutReason, GateConfig, GateMetrics, Input};
use crate::admission::{self, Admission, Refusal};
use crate::pump::{self, pump_tcp, pump_websocket, PacketSink, PumpEnd, PumpLimits};
use crate::ws::WebSocket;

/// The shards' queues, indexed by shard.
pub(crate) type Shards = Arc<[mpsc::Sender<Input>]>;

pub(crate) struct Shared {
    pub metrics: GateMetrics,
    pub set: Arc<ShardSet>,
    /// Datagrams in flight to each shard from the others.
    pub forward: Vec<ForwardQueue>,
    /// Connections that have not sent their first packet (so belong to no
    /// shard yet), and how many may: the gate-wide bound on half-open
    /// connections, beyond which new ones are closed at once.
    unopened: std::sync::atomic::AtomicUsize,
    max_unopened: usize,
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
    pub fn new(config: &GateConfig, set: Arc<ShardSet>) -> Self {
        Self {
            metrics: GateMetrics::default(),
            forward: (0..set.count()).map(|_| ForwardQueue::default()).collect(),
            unopened: std::sync::atomic::AtomicUsize::new(0),
            max_unopened: config.protocol.max_pending_streams,
            set,
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

/// A connection's place among those not yet in a shard, held until its
/// first packet or its end.
struct UnopenedSlot(Arc<Shared>);

impl Drop for UnopenedSlot {
    fn drop(&mut self) {
        self.0.unopened.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// A place for one more connection still waiting for its first packet,
    /// or `None` (counted) when as many as the pending-stream cap wait.
    fn await_first_packet(self: &Arc<Self>) -> Option<UnopenedSlot> {
        let held = self.unopened.fetch_add(1, Ordering::AcqRel);
        let slot = UnopenedSlot(self.clone());
        if held >= self.max_unopened {
            self.metrics.count_cut(CutReason::Overloaded);
            return None;
        }
        Some(slot)
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

pub(crate) async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, shards: Shards) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // The gate stopped: release the port now, not at the next connection.
            () = shards[0].closed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared.metrics.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_tcp(shared.clone(), shards.clone(), stream, peer));
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A stream's number and its outgoing queue; the stream opens in its shard
/// when its first packet shows which shard that is. `None` when too many
/// connections already wait for their first packet.
fn new_stream(
    shared: &Arc<Shared>,
    shards: Shards,
    peer: SocketAddr,
) -> Option<(GateSink, OutboxReceiver)> {
    let waiting = shared.await_first_packet()?;
    let id = StreamId(shared.next_stream.fetch_add(1, Ordering::Relaxed));
    let (writer, receiver) = outbox::outbox(shared.stream_queue, shared.stream_queue_bytes);
    let sink = GateSink {
        shards,
        set: shared.set.clone(),
        id,
        peer,
        unopened: Some((writer, waiting)),
        shard: None,
    };
    Some((sink, receiver))
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

async fn serve_tcp(shared: Arc<Shared>, shards: Shards, stream: TcpStream, peer: SocketAddr) {
    let Ok(_slot) = shared.admit(peer.ip()) else {
        return;
    };
    configure_tcp(&shared, &stream);
    let Some((mut sink, outgoing)) = new_stream(&shared, shards, peer) else {
        return;
    };
    let end = pump_tcp(stream, shared.pump_limits(), outgoing, &mut sink).await;
    shared.count_end(end, peer, "TCP");
    sink.closed().await;
}

/// Packets read from a connection go to its shard, named by stream.
struct GateSink {
    shards: Shards,
    set: Arc<ShardSet>,
    id: StreamId,
    peer: SocketAddr,
    /// The writer and the half-open place, until the first packet opens the
    /// stream in its shard.
    unopened: Option<(OutboxSender, UnopenedSlot)>,
    /// The shard the stream joined.
    shard: Option<usize>,
}

impl GateSink {
    /// Tells the stream's shard that the connection ended (if it had opened).
    async fn closed(&self) {
        if let Some(shard) = self.shard {
            let _ = self.shards[shard]
                .send(Input::StreamClosed { id: self.id })
                .await;
        }
    }
}

impl PacketSink for &mut GateSink {
    async fn deliver(&mut self, packet: bytes::Bytes) -> bool {
        let shard = match self.shard {
            Some(shard) => shard,
            None => {
                let shard = self.set.stream_shard(&packet, self.id.0);
                let (writer, _waiting) = self
                    .unopened
                    .take()
                    .expect("opened once, with the first packet");
                let opened = Input::StreamOpened {
                    id: self.id,
                    writer,
                    peer: self.peer,
                };
                if self.shards[shard].send(opened).await.is_err() {
                    return false;
                }
                self.shard = Some(shard);
                shard
            }
        };
        let input = Input::StreamPacket {
            id: self.id,
            packet,
        };
        self.shards[shard].send(input).await.is_ok()
    }
}

pub(crate) fn spawn_websocket<S>(
    shared: Arc<Shared>,
    shards: Shards,
    socket: WebSocket<S>,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    shared.metrics.ws_accepted.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(serve_websocket(shared, shards, socket, peer));
}

async fn serve_websocket<S>(
    shared: Arc<Shared>,
    shards: Shards,
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
    let Some((mut sink, outgoing)) = new_stream(&shared, shards, peer) else {
        socket
            .protocol()
            .close_with(1013, "the server is busy, try again later");
        let _ = pump::flush(&mut socket, shared.pump_limits()).await;
        return;
    };
    let end = pump_websocket(&mut socket, shared.pump_limits(), outgoing, &mut sink).await;
    shared.count_end(end, peer, "WebSocket");
    sink.closed().await;
}
