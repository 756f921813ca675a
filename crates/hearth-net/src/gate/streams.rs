//! Stream connections (TCP and WebSocket): one task each, reading packets
//! into the gate task and writing what it sends back. Bounded everywhere: the
//! frame size, the first-frame deadline, the outgoing queue (packets and
//! bytes), the time one write may take, connections per address and in total.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hearth_proto::StreamId;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodecError};

use super::outbox::{self, OutboxReceiver, Outgoing};
use super::{CutReason, GateConfig, GateMetrics, Input};
use crate::admission::{self, Admission, Refusal};
use crate::framing;
use crate::ws::{Message, WebSocket, WsError};

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
            admission: Admission::new(config.max_streams, config.max_streams_per_ip),
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

    /// A write that did not finish in time: the peer stopped reading.
    fn write_timed_out(&self, peer: SocketAddr, transport: &str) {
        self.metrics.count_cut(CutReason::SlowConsumer);
        tracing::debug!(
            %peer,
            "closing {transport} connection: a write did not complete within {:?}",
            self.write_timeout
        );
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
    let Some((id, mut outgoing)) = open_stream(&shared, &inputs, peer).await else {
        return;
    };
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, framing::codec(shared.max_frame));
    let first_frame = tokio::time::sleep(shared.first_frame_timeout);
    tokio::pin!(first_frame);
    let mut heard = false;
    let mut buffer = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(packet)) => {
                    heard = true;
                    if inputs.send(Input::StreamPacket { id, packet: packet.freeze() }).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    let oversized = e.get_ref().is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
                    if oversized {
                        shared.metrics.count_cut(CutReason::OversizedFrame);
                        tracing::debug!(%peer, "closing TCP connection: frame over {} bytes", shared.max_frame);
                    }
                    break;
                }
                None => break,
            },
            out = outgoing.recv() => {
                let mut close = out.is_none();
                let mut next = out;
                // Coalesce everything queued into one write.
                while let Some(item) = next {
                    match item {
                        Outgoing::Packet(packet) => framing::write_frame(&mut buffer, &packet),
                        Outgoing::Close => { close = true; break; }
                    }
                    next = outgoing.try_recv();
                }
                if !buffer.is_empty() {
                    match tokio::time::timeout(shared.write_timeout, write.write_all(&buffer)).await {
                        Ok(Ok(())) => outgoing.written(),
                        Ok(Err(_)) => break,
                        Err(_) => {
                            shared.write_timed_out(peer, "TCP");
                            break;
                        }
                    }
                }
                buffer.clear();
                if close {
                    let _ = tokio::time::timeout(shared.write_timeout, write.shutdown()).await;
                    break;
                }
            }
            () = &mut first_frame, if !heard => {
                shared.metrics.count_cut(CutReason::SilentConnection);
                tracing::debug!(%peer, "closing TCP connection: nothing received within {:?}", shared.first_frame_timeout);
                break;
            }
        }
    }
    let _ = inputs.send(Input::StreamClosed { id }).await;
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
            let _ = flush(&shared, &mut socket, peer).await;
            return;
        }
    };
    socket.protocol().set_max_message(shared.max_frame);
    let Some((id, mut outgoing)) = open_stream(&shared, &inputs, peer).await else {
        return;
    };
    let first_frame = tokio::time::sleep(shared.first_frame_timeout);
    tokio::pin!(first_frame);
    let mut heard = false;
    'connection: loop {
        loop {
            match socket.decode() {
                Ok(Some(Message::Binary(packet))) => {
                    heard = true;
                    if inputs
                        .send(Input::StreamPacket { id, packet })
                        .await
                        .is_err()
                    {
                        break 'connection;
                    }
                }
                Ok(Some(Message::Text(_))) => {
                    shared.metrics.count_cut(CutReason::MalformedFrame);
                    socket
                        .protocol()
                        .close_with(1003, "Hearth sessions use binary messages");
                    fail_gracefully(&shared, &mut socket, peer).await;
                    break 'connection;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    shared.metrics.count_cut(match error {
                        WsError::TooBig { .. } => CutReason::OversizedFrame,
                        _ => CutReason::MalformedFrame,
                    });
                    tracing::debug!(%peer, "closing WebSocket: {error}");
                    socket.protocol().fail(&error);
                    fail_gracefully(&shared, &mut socket, peer).await;
                    break 'connection;
                }
            }
        }
        if flush(&shared, &mut socket, peer).await.is_err() || socket.protocol().is_done() {
            break;
        }
        outgoing.written();
        tokio::select! {
            read = socket.read_more() => {
                if !matches!(read, Ok(n) if n > 0) {
                    break;
                }
            }
            out = outgoing.recv() => {
                let mut close = out.is_none();
                let mut next = out;
                while let Some(item) = next {
                    match item {
                        Outgoing::Packet(packet) => {
                            let _ = socket.protocol().send_binary(&packet);
                        }
                        Outgoing::Close => {
                            close = true;
                            break;
                        }
                    }
                    next = outgoing.try_recv();
                }
                if close {
                    socket.protocol().close_with(1000, "session closed");
                    if flush(&shared, &mut socket, peer).await.is_ok() {
                        // Give the client a moment to answer the close handshake.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Ok(Some(_)) = socket.recv().await {}
                        })
                        .await;
                    }
                    break;
                }
            }
            () = &mut first_frame, if !heard => {
                shared.metrics.count_cut(CutReason::SilentConnection);
                socket.protocol().close_with(1008, "nothing received in time");
                let _ = flush(&shared, &mut socket, peer).await;
                break;
            }
        }
    }
    let _ = inputs.send(Input::StreamClosed { id }).await;
}

/// Writes what the WebSocket has queued, within the write timeout.
async fn flush<S>(shared: &Shared, socket: &mut WebSocket<S>, peer: SocketAddr) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tokio::time::timeout(shared.write_timeout, socket.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            shared.write_timed_out(peer, "WebSocket");
            Err(())
        }
    }
}

/// Sends the queued close frame, then discards what the client still sends
/// for a moment, so the close frame is read before the socket goes away.
async fn fail_gracefully<S>(shared: &Shared, socket: &mut WebSocket<S>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if flush(shared, socket, peer).await.is_ok() {
        socket.drain(Duration::from_secs(1), 4 << 20).await;
    }
}
