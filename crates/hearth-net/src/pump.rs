//! The loop that moves stream packets between a socket and a session, for
//! TCP (length-prefixed frames) and WebSocket (binary messages). The gate runs
//! one per client connection and the client connector one for its stream;
//! what differs between them (where packets come from and go to, what is
//! counted) is in the queue and sink they pass and in what they do with the
//! `PumpEnd` they get back.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodecError};

use crate::framing;
use crate::ws::{Message, WebSocket, WsError};

/// What a pump is asked to write.
pub(crate) enum Outgoing {
    Packet(Vec<u8>),
    /// Send what came before, then close the connection.
    Close,
}

/// Where a pump takes packets to write from.
pub(crate) trait PacketQueue: Send {
    /// The next item; `None` when the session side is gone. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Outgoing>> + Send;
    /// The next item if one is queued now.
    fn try_recv(&mut self) -> Option<Outgoing>;
    /// Everything taken so far is on the socket.
    fn written(&mut self) {}
}

impl PacketQueue for mpsc::Receiver<Vec<u8>> {
    async fn recv(&mut self) -> Option<Outgoing> {
        mpsc::Receiver::recv(self).await.map(Outgoing::Packet)
    }

    fn try_recv(&mut self) -> Option<Outgoing> {
        mpsc::Receiver::try_recv(self).ok().map(Outgoing::Packet)
    }
}

/// Where a pump hands the packets it reads.
pub(crate) trait PacketSink: Send {
    /// False when the session side is gone.
    fn deliver(&mut self, packet: Bytes) -> impl Future<Output = bool> + Send;
}

impl PacketSink for mpsc::Sender<Bytes> {
    async fn deliver(&mut self, packet: Bytes) -> bool {
        self.send(packet).await.is_ok()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PumpLimits {
    pub max_frame: usize,
    pub write_timeout: Duration,
    /// A peer that sends no packet within this is cut (servers only).
    pub first_packet: Option<Duration>,
    /// The WebSocket close reason when the session side closes.
    pub close_reason: &'static str,
}

/// Why a pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// The peer closed the connection (or reading failed).
    PeerClosed,
    /// The session side asked to close, or went away.
    LocalClose,
    /// A frame or message over `max_frame`.
    Oversized,
    /// A broken WebSocket frame, or text where binary is expected.
    Malformed,
    /// Nothing arrived within the first-packet deadline.
    Silent,
    /// The peer stopped reading: a write did not finish within the timeout.
    WriteTimeout,
    WriteFailed,
}

/// First read buffer of a TCP connection.
const READ_CAPACITY: usize = 512;
/// Write buffer kept between writes.
const WRITE_KEEP: usize = 16 * 1024;

/// Runs a TCP connection until it ends: frames in go to `sink`, packets from
/// `queue` are framed and coalesced into one write per wakeup.
pub(crate) async fn pump_tcp(
    stream: TcpStream,
    limits: PumpLimits,
    mut queue: impl PacketQueue,
    mut sink: impl PacketSink,
) -> PumpEnd {
    let (read, mut write) = stream.into_split();
    // Small to start: an idle session's frames are tens of bytes, and the
    // buffer grows (by doubling) for the connections that send more.
    let mut frames =
        FramedRead::with_capacity(read, framing::codec(limits.max_frame), READ_CAPACITY);
    let first_packet = first_packet_deadline(limits);
    tokio::pin!(first_packet);
    let mut heard = limits.first_packet.is_none();
    let mut buffer = Vec::new();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(packet)) => {
                    heard = true;
                    if !sink.deliver(packet.freeze()).await {
                        // The session side is gone, often right after queueing
                        // its Close frame: that still goes out.
                        let mut next = queue.try_recv();
                        while let Some(Outgoing::Packet(packet)) = next {
                            framing::write_frame(&mut buffer, &packet);
                            next = queue.try_recv();
                        }
                        let rest = write.write_all(&buffer);
                        let wrote = tokio::time::timeout(limits.write_timeout, rest).await;
                        if let Ok(Ok(())) = wrote {
                            close_gracefully(write, frames.into_inner(), limits).await;
                        }
                        return PumpEnd::LocalClose;
                    }
                }
                Some(Err(e)) if e.get_ref().is_some_and(|inner| inner.is::<LengthDelimitedCodecError>()) => {
                    return PumpEnd::Oversized;
                }
                _ => return PumpEnd::PeerClosed,
            },
            out = queue.recv() => {
                let mut close = out.is_none();
                let mut next = out;
                while let Some(item) = next {
                    match item {
                        Outgoing::Packet(packet) => framing::write_frame(&mut buffer, &packet),
                        Outgoing::Close => { close = true; break; }
                    }
                    next = queue.try_recv();
                }
                if !buffer.is_empty() {
                    match tokio::time::timeout(limits.write_timeout, write.write_all(&buffer)).await {
                        Ok(Ok(())) => queue.written(),
                        Ok(Err(_)) => return PumpEnd::WriteFailed,
                        Err(_) => return PumpEnd::WriteTimeout,
                    }
                    buffer.clear();
                    // A burst's room is given back rather than held by an idle session.
                    if buffer.capacity() > WRITE_KEEP {
                        buffer.shrink_to(WRITE_KEEP);
                    }
                }
                if close {
                    close_gracefully(write, frames.into_inner(), limits).await;
                    return PumpEnd::LocalClose;
                }
            }
            () = &mut first_packet, if !heard => return PumpEnd::Silent,
        }
    }
}

/// Runs a WebSocket until it ends: binary messages in go to `sink`, packets
/// from `queue` go out as binary messages. Protocol errors and text messages
/// close with the right status and a moment for the peer to read it.
pub(crate) async fn pump_websocket<S>(
    socket: &mut WebSocket<S>,
    limits: PumpLimits,
    mut queue: impl PacketQueue,
    mut sink: impl PacketSink,
) -> PumpEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let first_packet = first_packet_deadline(limits);
    tokio::pin!(first_packet);
    let mut heard = limits.first_packet.is_none();
    loop {
        loop {
            match socket.decode() {
                Ok(Some(Message::Binary(packet))) => {
                    heard = true;
                    if !sink.deliver(packet).await {
                        // The session side is gone, often right after
                        // queueing its Close packet: that still goes out.
                        while let Some(Outgoing::Packet(packet)) = queue.try_recv() {
                            let _ = socket.protocol().send_binary(&packet);
                        }
                        close_websocket(socket, limits).await;
                        return PumpEnd::LocalClose;
                    }
                }
                Ok(Some(Message::Text(_))) => {
                    socket
                        .protocol()
                        .close_with(1003, "Hearth sessions use binary messages");
                    fail_gracefully(socket, limits).await;
                    return PumpEnd::Malformed;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    socket.protocol().fail(&error);
                    fail_gracefully(socket, limits).await;
                    return match error {
                        WsError::TooBig { .. } => PumpEnd::Oversized,
                        _ => PumpEnd::Malformed,
                    };
                }
            }
        }
        if let Err(end) = flush(socket, limits).await {
            return end;
        }
        if socket.protocol().is_done() {
            return PumpEnd::PeerClosed;
        }
        queue.written();
        tokio::select! {
            read = socket.read_more() => {
                if !matches!(read, Ok(n) if n > 0) {
                    return PumpEnd::PeerClosed;
                }
            }
            out = queue.recv() => {
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
                    next = queue.try_recv();
                }
                if close {
                    close_websocket(socket, limits).await;
                    return PumpEnd::LocalClose;
                }
            }
            () = &mut first_packet, if !heard => {
                socket.protocol().close_with(1008, "nothing received in time");
                let _ = flush(socket, limits).await;
                return PumpEnd::Silent;
            }
        }
    }
}

/// Sends what is queued and a close frame, then gives the peer a moment to
/// answer the close handshake.
async fn close_websocket<S>(socket: &mut WebSocket<S>, limits: PumpLimits)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    socket.protocol().close_with(1000, limits.close_reason);
    if flush(socket, limits).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(Some(_)) = socket.recv().await {}
        })
        .await;
    }
}

/// Sends FIN after what was written, then reads and drops what the peer
/// still sends until it closes too, for a moment and a few MiB at most.
/// Closing a socket with unread bytes makes the kernel answer with a reset,
/// which throws away what is not yet on the wire or not yet read by the
/// peer: the Close frame just written, so a peer that was sending at the
/// time would never learn why.
async fn close_gracefully(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut read: tokio::net::tcp::OwnedReadHalf,
    limits: PumpLimits,
) {
    use tokio::io::AsyncReadExt;
    if !matches!(
        tokio::time::timeout(limits.write_timeout, write.shutdown()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let mut scratch = vec![0u8; 4096];
    let mut left = 4usize << 20;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while left > 0 {
            match read.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn first_packet_deadline(limits: PumpLimits) {
    match limits.first_packet {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Writes what the WebSocket has queued, within the write timeout.
pub(crate) async fn flush<S>(socket: &mut WebSocket<S>, limits: PumpLimits) -> Result<(), PumpEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(limits.write_timeout, socket.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(PumpEnd::WriteFailed),
        Err(_) => Err(PumpEnd::WriteTimeout),
    }
}

/// Sends the queued close frame, then discards what the peer still sends
/// for a moment, so the close frame is read before the socket goes away.
async fn fail_gracefully<S>(socket: &mut WebSocket<S>, limits: PumpLimits)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if flush(socket, limits).await.is_ok() {
        socket.drain(Duration::from_secs(1), 4 << 20).await;
    }
}
