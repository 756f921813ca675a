//! One Hearth session driven directly through hearth-proto over a real
//! socket (no SDK task in between), so a load generator costs as little as
//! it can: `echo-load`'s session modes and `login-flood`'s legitimate
//! clients.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use hearth_proto::{Client, ClientConfig, Event, Transmit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::Decoder;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Link {
    Udp,
    Tcp,
    /// Hearth's stream protocol in binary WebSocket messages (the web port's `/ws`).
    Ws,
}

/// The subprotocol `hearth serve`'s `/ws` speaks.
const WS_PROTOCOL: &str = "hearth.v1";

/// The largest datagram a Hearth server sends, with room to spare.
const DATAGRAM_BUFFER: usize = 2048;

/// One session driven directly through hearth-proto (no SDK task in
/// between), so the load generator costs as little as it can.
pub struct SessionIo {
    pub client: Client,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    ws: Option<WebSocketStream<TcpStream>>,
    inbound: BytesMut,
    codec: tokio_util::codec::LengthDelimitedCodec,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl SessionIo {
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(transmit) = self.client.poll_transmit() {
            match transmit {
                Transmit::Datagram { to, bytes } => {
                    self.udp
                        .as_ref()
                        .context("no udp")?
                        .send_to(&bytes, to)
                        .await?;
                }
                Transmit::Stream { bytes, .. } => match &mut self.ws {
                    Some(ws) => ws.feed(Message::Binary(bytes.to_vec().into())).await?,
                    None => hearth_net::framing::write_frame(&mut self.out, &bytes),
                },
                Transmit::CloseStream { .. } => {}
            }
        }
        if !self.out.is_empty() {
            self.tcp
                .as_mut()
                .context("no tcp")?
                .write_all(&self.out)
                .await?;
            self.out.clear();
        }
        if let Some(ws) = &mut self.ws {
            ws.flush().await?;
        }
        Ok(())
    }

    /// Waits for input or a timer, up to `limit`; feeds it to the client.
    pub async fn step(&mut self, limit: Instant) -> anyhow::Result<()> {
        let wake = self.client.poll_timeout().map_or(limit, |t| t.min(limit));
        let wake = tokio::time::Instant::from_std(wake);
        if let Some(udp) = &self.udp {
            if let Ok(received) = tokio::time::timeout_at(wake, udp.recv_from(&mut self.buf)).await
            {
                let (len, from) = received?;
                self.client
                    .handle_datagram(Instant::now(), from, &self.buf[..len]);
            }
        } else if let Some(tcp) = &mut self.tcp {
            // Grown on demand: tens of thousands of idle sessions stay small.
            self.inbound.reserve(16 * 1024);
            if let Ok(read) = tokio::time::timeout_at(wake, tcp.read_buf(&mut self.inbound)).await {
                if read? == 0 {
                    bail!("server closed the connection");
                }
                while let Some(packet) = self.codec.decode(&mut self.inbound)? {
                    self.client.handle_stream(Instant::now(), &packet);
                }
            }
        } else if let Some(ws) = &mut self.ws {
            if let Ok(message) = tokio::time::timeout_at(wake, ws.next()).await {
                match message.transpose()? {
                    Some(Message::Binary(packet)) => {
                        self.client.handle_stream(Instant::now(), &packet)
                    }
                    Some(Message::Close(_)) | None => bail!("server closed the WebSocket"),
                    Some(_) => {}
                }
            }
        }
        let now = Instant::now();
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        self.flush().await
    }
}

impl SessionIo {
    /// Starts a handshake with the server at `addr` over `link`; `index`
    /// varies the seed so sessions differ.
    pub async fn connect(link: Link, addr: SocketAddr, index: usize) -> anyhow::Result<Self> {
        Self::connect_from(link, addr, index, None, "").await
    }

    /// As [`SessionIo::connect`], from the local address `source` when
    /// given (spreading tens of thousands of sessions over several loopback
    /// addresses keeps each within its ephemeral ports), with the login's
    /// URL `options` (e.g. `?world=off`).
    pub async fn connect_from(
        link: Link,
        addr: SocketAddr,
        index: usize,
        source: Option<IpAddr>,
        options: &str,
    ) -> anyhow::Result<Self> {
        let now = Instant::now();
        let local = SocketAddr::new(
            source.unwrap_or(if addr.is_ipv4() {
                IpAddr::from([0, 0, 0, 0])
            } else {
                IpAddr::from([0u16; 8])
            }),
            0,
        );
        let mut seed = hearth_proto::os_seed();
        seed[0] ^= index as u8;
        let mut io = SessionIo {
            client: Client::new(
                ClientConfig {
                    options: options.to_owned(),
                    ..ClientConfig::default()
                },
                now,
                seed,
            ),
            udp: None,
            tcp: None,
            ws: None,
            inbound: BytesMut::new(),
            codec: hearth_net::framing::codec(1 << 20),
            buf: Vec::new(),
            out: Vec::new(),
        };
        match link {
            Link::Udp => {
                io.udp = Some(UdpSocket::bind(local).await?);
                io.buf = vec![0u8; DATAGRAM_BUFFER];
                io.client.connect_datagram(now, addr);
            }
            Link::Tcp => {
                io.tcp = Some(tcp_from(local, addr).await?);
                io.client.connect_stream(now);
            }
            Link::Ws => {
                let tcp = tcp_from(local, addr).await?;
                let mut request = format!("ws://{addr}/ws").into_client_request()?;
                request
                    .headers_mut()
                    .insert("sec-websocket-protocol", WS_PROTOCOL.parse()?);
                let (ws, _) = tokio_tungstenite::client_async(request, tcp)
                    .await
                    .context("WebSocket upgrade")?;
                io.ws = Some(ws);
                io.client.connect_stream(now);
            }
        }
        io.flush().await?;
        Ok(io)
    }

    /// The link's local address (UDP and TCP; WebSocket's TCP connection).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        if let Some(udp) = &self.udp {
            return udp.local_addr().ok();
        }
        if let Some(tcp) = &self.tcp {
            return tcp.local_addr().ok();
        }
        self.ws
            .as_ref()
            .and_then(|ws| ws.get_ref().local_addr().ok())
    }

    /// Drives the handshake and login until Joined, or fails after `within`.
    pub async fn join(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.step(deadline).await?;
            while let Some(event) = self.client.poll_event() {
                match event {
                    Event::Joined => return Ok(()),
                    Event::Closed(reason) => bail!("login failed: {reason}"),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!("no login within {} s", within.as_secs_f64());
            }
        }
    }
}

/// A TCP connection to `addr` from `local` (port 0: any), without Nagle.
async fn tcp_from(local: SocketAddr, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if !local.ip().is_unspecified() {
        socket.bind(local)?;
    }
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}
