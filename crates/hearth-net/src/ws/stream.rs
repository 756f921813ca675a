//! The async driver: owns the transport and a read buffer, feeds [`Protocol`].

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::deflate::{self, DeflateConfig, PerMessageDeflate};
use super::handshake;
use super::{Limits, Message, Protocol, Role, WsError};

const READ_CHUNK: usize = 16 * 1024;
/// The first read buffer: an idle connection's frames are tens of bytes, so
/// it starts small and grows, doubling up to `READ_CHUNK` a read, for the
/// connections that send more.
const FIRST_READ: usize = 512;

pub struct WebSocket<S> {
    io: S,
    read_buf: BytesMut,
    protocol: Protocol,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a transport whose opening handshake is done. `leftover` holds
    /// bytes read past the handshake.
    pub fn new(io: S, role: Role, limits: Limits, leftover: &[u8]) -> Self {
        let mut read_buf = BytesMut::with_capacity(FIRST_READ.max(leftover.len()));
        read_buf.extend_from_slice(leftover);
        Self {
            io,
            read_buf,
            protocol: Protocol::new(role, limits),
        }
    }

    /// Client side: sends the upgrade request on a connected transport and
    /// checks the answer. Returns the socket and the protocol the server chose.
    pub async fn connect(
        io: S,
        host: &str,
        path: &str,
        protocols: &[&str],
        limits: Limits,
    ) -> Result<(Self, Option<String>), WsError> {
        Self::connect_with_deflate(io, host, path, protocols, limits, DeflateConfig::default())
            .await
    }

    /// [`connect`](Self::connect), offering permessage-deflate when
    /// `deflate.enabled`; the socket compresses only if the server accepts.
    pub async fn connect_with_deflate(
        mut io: S,
        host: &str,
        path: &str,
        protocols: &[&str],
        limits: Limits,
        deflate: DeflateConfig,
    ) -> Result<(Self, Option<String>), WsError> {
        let offer = deflate::client_offer(&deflate);
        let (request, key) = handshake::client_request(host, path, protocols, offer.as_deref());
        io.write_all(&request).await?;
        io.flush().await?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(answer) =
                handshake::parse_client_response(&buf, &key).map_err(WsError::Io)?
            {
                let codec = match &answer.extensions {
                    None => None,
                    Some(value) => {
                        let params =
                            deflate::accept_response(value, &deflate).map_err(WsError::Io)?;
                        Some(PerMessageDeflate::new(Role::Client, &params, &deflate))
                    }
                };
                let mut socket = Self::new(io, Role::Client, limits, &buf[answer.header_len..]);
                if let Some(codec) = codec {
                    socket.protocol.enable_deflate(codec);
                }
                return Ok((socket, answer.protocol));
            }
            if buf.len() > 16 * 1024 {
                return Err(WsError::Io("upgrade response headers too large".into()));
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Err(WsError::Io("connection closed during the upgrade".into()));
            }
        }
    }

    pub fn protocol(&mut self) -> &mut Protocol {
        &mut self.protocol
    }

    /// The next message already in the read buffer, without touching the transport.
    pub fn decode(&mut self) -> Result<Option<Message>, WsError> {
        self.protocol.decode(&mut self.read_buf)
    }

    /// Reads more bytes from the transport; 0 means end of stream. Cancel-safe,
    /// so a driver may `select!` on it against its outgoing queue.
    pub async fn read_more(&mut self) -> Result<usize, WsError> {
        let want = self.read_buf.capacity().clamp(FIRST_READ, READ_CHUNK);
        if self.read_buf.capacity() - self.read_buf.len() < want / 4 {
            self.read_buf.reserve(want);
        }
        Ok(self.io.read_buf(&mut self.read_buf).await?)
    }

    /// Writes everything queued (our frames, pongs, close replies).
    pub async fn flush(&mut self) -> Result<(), WsError> {
        if !self.protocol.out.is_empty() {
            self.io.write_all(&self.protocol.out).await?;
            self.protocol.out.clear();
            // A TLS session may hold the last records back until flushed; for
            // a plain socket this is free.
            self.io.flush().await?;
        }
        if self.protocol.is_done() {
            // Section 7.1.1: the server closes the TCP connection first.
            let _ = self.io.shutdown().await;
        }
        Ok(())
    }

    /// Waits for the next message. Pings are answered; a decode error fails
    /// the connection with the matching close code before it is returned.
    /// `Ok(None)` after the close handshake or when the transport ends.
    pub async fn recv(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            match self.decode() {
                Ok(Some(message)) => {
                    if matches!(message, Message::Close(_)) {
                        self.flush().await?;
                    }
                    return Ok(Some(message));
                }
                Ok(None) if self.protocol.is_done() => {
                    self.flush().await?;
                    return Ok(None);
                }
                Ok(None) => {}
                Err(error) => {
                    self.protocol.fail(&error);
                    let _ = self.flush().await;
                    return Err(error);
                }
            }
            self.flush().await?;
            if self.read_more().await? == 0 {
                return if self.protocol.is_closing() {
                    Ok(None)
                } else {
                    Err(WsError::Io("connection ended without a close frame".into()))
                };
            }
        }
    }

    /// Queues and writes one message.
    pub async fn send(&mut self, message: &Message) -> Result<(), WsError> {
        self.protocol.send(message)?;
        self.flush().await
    }

    /// Queues and writes one binary message.
    pub async fn send_binary(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.protocol.send_binary(payload)?;
        self.flush().await
    }

    /// Starts the close handshake and waits (bounded by the caller) for the answer.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), WsError> {
        self.protocol.close_with(code, reason);
        self.flush().await?;
        while self.recv().await?.is_some() {}
        Ok(())
    }

    /// After failing the connection: reads and discards what the peer still
    /// sends (bounded in time and bytes) so that closing the socket does not
    /// reset it and destroy the close frame before the peer reads it.
    pub async fn drain(&mut self, time: std::time::Duration, max_bytes: usize) {
        let mut discarded = 0;
        let _ = tokio::time::timeout(time, async {
            while discarded < max_bytes {
                self.read_buf.clear();
                match self.read_more().await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }

    pub fn into_inner(self) -> S {
        self.io
    }
}
