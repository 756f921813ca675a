//! The client connector: drives `hearth_proto::Client` over real sockets.
//!
//! Transports, as seed 000 describes: `Auto` logs in over TCP, takes the UDP
//! ticket from Welcome and binds UDP (resent every second by the protocol);
//! when UDP does not come up within `udp_wait` everything stays on TCP and the
//! game does not notice. `Udp` logs in over UDP alone, `Tcp` never tries UDP,
//! `WebSocket` logs in over a WebSocket on the web port (`wss://` when
//! [`ConnectConfig::tls`] is set). When the stream drops the connector
//! reconnects and resumes the session within the grace window. A stream write
//! that does not complete within [`ConnectConfig::write_timeout`] (the server
//! stopped reading) drops the link the same way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hearth_proto::{
    ChannelSpec, Client, ClientConfig, Event, LinkKind, SendError, SessionStats, Transmit,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::pump::{pump_tcp, pump_websocket, PumpEnd, PumpLimits};
use crate::tls::{self, ClientTls};
use crate::ws::{Limits, WebSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP login, then UDP by ticket, TCP alone when UDP is blocked.
    Auto,
    Udp,
    Tcp,
    WebSocket,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    pub transport: Transport,
    /// The game port (TCP and UDP), or the web port for WebSocket.
    pub server: SocketAddr,
    /// Host header and path for WebSocket.
    pub ws_host: String,
    pub ws_path: String,
    pub protocol: ClientConfig,
    /// In `Auto`, how long UDP may take to come up before the session settles on TCP.
    pub udp_wait: Duration,
    /// Reconnect and resume when the stream or datagram link drops.
    pub reconnect: bool,
    /// Bounds the TCP connect, and the TLS and WebSocket handshakes.
    pub connect_timeout: Duration,
    /// A stream write that takes longer drops the link (then resume).
    pub write_timeout: Duration,
    /// WebSocket only: speak TLS (`wss://`), verifying the server's
    /// certificate for the host in `ws_host` against these roots.
    pub tls: Option<ClientTls>,
    /// Make the UDP link bad on purpose (network conditioner): `up` applies
    /// to what this client sends, `down` to what it receives.
    pub impair: Option<crate::conditioner::LinkImpairment>,
}

impl ConnectConfig {
    pub fn new(transport: Transport, server: SocketAddr) -> Self {
        Self {
            transport,
            server,
            ws_host: server.to_string(),
            ws_path: "/ws".to_owned(),
            protocol: ClientConfig::default(),
            udp_wait: Duration::from_secs(3),
            reconnect: true,
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            tls: None,
            impair: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not reach {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {0} timed out")]
    Timeout(SocketAddr),
    #[error("{0}")]
    Tls(String),
    #[error("WebSocket upgrade failed: {0}")]
    WebSocket(String),
    #[error("could not open a UDP socket: {0}")]
    Udp(std::io::Error),
}

enum Command {
    Send {
        channel: u16,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    OpenChannel {
        channel: u16,
        spec: ChannelSpec,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Close {
        code: u16,
        reason: String,
    },
    Stats(oneshot::Sender<SessionStats>),
    ServerKey(oneshot::Sender<Option<[u8; 32]>>),
    /// Test and tooling hook: drop the stream link as if the network cut it.
    DropStream,
}

/// A session seen from the game: send on channels, read events.
pub struct Connection {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
}

impl Connection {
    /// Connects and starts the login; watch [`Connection::next_event`] for
    /// `Welcomed`, `Joined` or `Closed`.
    pub async fn connect(config: ConnectConfig) -> Result<Self, ConnectError> {
        let mut protocol = config.protocol.clone();
        if config.transport == Transport::Auto {
            protocol.handshake_timeout = config.udp_wait;
        }
        let now = Instant::now();
        let mut client = Client::new(protocol, now, hearth_proto::os_seed());
        let conditioner = config
            .impair
            .map(|i| crate::conditioner::DatagramConditioner::new(i.down, i.up, i.seed));
        let mut driver = Driver {
            config,
            udp: None,
            conditioner,
            stream: None,
            reconnecting_since: None,
            retry_at: None,
        };
        match driver.config.transport {
            Transport::Udp => {
                driver.bind_udp().await?;
                client.connect_datagram(now, driver.config.server);
            }
            Transport::Auto | Transport::Tcp | Transport::WebSocket => {
                driver.open_stream().await?;
                client.connect_stream(now);
            }
        }
        let (commands, command_rx) = mpsc::channel(1024);
        let (event_tx, events) = mpsc::channel(4096);
        tokio::spawn(driver.run(client, command_rx, event_tx));
        Ok(Self { commands, events })
    }

    /// The next protocol event; `None` once the session is closed and the
    /// connector has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for an event matching `wanted`, returning the events passed over,
    /// or an error describing why the session ended first.
    pub async fn wait_for(
        &mut self,
        wanted: impl Fn(&Event) -> bool,
    ) -> Result<Vec<Event>, String> {
        let mut seen = Vec::new();
        while let Some(event) = self.next_event().await {
            if wanted(&event) {
                seen.push(event);
                return Ok(seen);
            }
            if let Event::Closed(reason) = &event {
                return Err(reason.to_string());
            }
            seen.push(event);
        }
        Err("the connection stopped".to_owned())
    }

    pub async fn send(&self, channel: u16, payload: &[u8]) -> Result<(), SendError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            channel,
            payload: payload.to_vec(),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(SendError::Closed);
        }
        answer.await.unwrap_or(Err(SendError::Closed))
    }

    pub async fn open_channel(&self, channel: u16, spec: ChannelSpec) -> Result<(), SendError> {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::OpenChannel {
                channel,
                spec,
                reply,
            })
            .await
            .is_err()
        {
            return Err(SendError::Closed);
        }
        answer.await.unwrap_or(Err(SendError::Closed))
    }

    pub async fn close(&self, code: u16, reason: &str) {
        let _ = self
            .commands
            .send(Command::Close {
                code,
                reason: reason.to_owned(),
            })
            .await;
    }

    pub async fn stats(&self) -> Option<SessionStats> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Stats(reply)).await.ok()?;
        answer.await.ok()
    }

    /// The server's static key as proven in the key agreement (pin it with
    /// `ClientConfig::server_key` next time).
    pub async fn server_key(&self) -> Option<[u8; 32]> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::ServerKey(reply)).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Cuts the stream link without telling the server, as a network failure would.
    pub async fn drop_stream(&self) {
        let _ = self.commands.send(Command::DropStream).await;
    }
}

struct StreamConnection {
    packets: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Vec<u8>>,
}

struct Driver {
    config: ConnectConfig,
    udp: Option<UdpSocket>,
    conditioner: Option<crate::conditioner::DatagramConditioner>,
    stream: Option<StreamConnection>,
    reconnecting_since: Option<Instant>,
    /// When to try reconnecting again after a failed attempt.
    retry_at: Option<Instant>,
}

const RECONNECT_RETRY: Duration = Duration::from_secs(1);

impl Driver {
    async fn bind_udp(&mut self) -> Result<(), ConnectError> {
        let local: SocketAddr = if self.config.server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        self.udp = Some(UdpSocket::bind(local).await.map_err(ConnectError::Udp)?);
        Ok(())
    }

    async fn open_stream(&mut self) -> Result<(), ConnectError> {
        let addr = self.config.server;
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        let within = |future| tokio::time::timeout_at(deadline, future);
        let tcp = within(TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr))?
            .map_err(|source| ConnectError::Unreachable { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let (packet_tx, packets) = mpsc::channel(1024);
        let (outgoing, out_rx) = mpsc::channel(1024);
        let limits = PumpLimits {
            max_frame: self.config.protocol.session.max_stream_packet,
            write_timeout: self.config.write_timeout,
            first_packet: None,
            close_reason: "client closed",
        };
        if self.config.transport != Transport::WebSocket {
            tokio::spawn(async move {
                report_end(
                    "TCP",
                    pump_tcp(tcp, limits, out_rx, packet_tx).await,
                    limits,
                );
            });
        } else if let Some(tls) = &self.config.tls {
            let host = tls::host_of(&self.config.ws_host).to_owned();
            let stream = tokio::time::timeout_at(deadline, tls.connect(&host, tcp))
                .await
                .map_err(|_| ConnectError::Timeout(addr))?
                .map_err(|e| ConnectError::Tls(tls::handshake_failure(&host, &e)))?;
            let socket = tokio::time::timeout_at(deadline, self.websocket(stream))
                .await
                .map_err(|_| ConnectError::Timeout(addr))??;
            spawn_websocket_pump(socket, limits, out_rx, packet_tx);
        } else {
            let socket = tokio::time::timeout_at(deadline, self.websocket(tcp))
                .await
                .map_err(|_| ConnectError::Timeout(addr))??;
            spawn_websocket_pump(socket, limits, out_rx, packet_tx);
        }
        self.stream = Some(StreamConnection { packets, outgoing });
        Ok(())
    }

    /// The WebSocket upgrade over a connected transport.
    async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: S,
    ) -> Result<WebSocket<S>, ConnectError> {
        let limits = Limits {
            max_message: self.config.protocol.session.max_stream_packet,
        };
        let (socket, _) = WebSocket::connect(
            io,
            &self.config.ws_host,
            &self.config.ws_path,
            &["hearth.v1"],
            limits,
        )
        .await
        .map_err(|e| ConnectError::WebSocket(e.to_string()))?;
        Ok(socket)
    }

    async fn run(
        mut self,
        mut client: Client,
        mut commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) {
        let mut buf = vec![0u8; 65536];
        let mut stopped = false;
        loop {
            self.flush(&mut client).await;
            while let Some(event) = client.poll_event() {
                self.react(&mut client, &event).await;
                let closed = matches!(event, Event::Closed(_));
                let _ = events.send(event).await;
                if closed {
                    stopped = true;
                }
            }
            self.flush(&mut client).await;
            if stopped {
                return;
            }
            let wake = client
                .poll_timeout()
                .into_iter()
                .chain(self.retry_at)
                .chain(self.conditioner.as_ref().and_then(|c| c.next_due()))
                .min()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(&mut client, command),
                    None => client.close(Instant::now(), hearth_proto::close_code::NORMAL, "client dropped"),
                },
                received = recv_datagram(self.udp.as_ref(), &mut buf) => {
                    if let Ok((len, from)) = received {
                        match self.conditioner.as_mut() {
                            Some(conditioner) => conditioner.inbound.push(Instant::now(), (from, buf[..len].to_vec())),
                            None => client.handle_datagram(Instant::now(), from, &buf[..len]),
                        }
                    }
                }
                packet = recv_packet(self.stream.as_mut()) => match packet {
                    Some(packet) => client.handle_stream(Instant::now(), &packet),
                    None => {
                        self.stream = None;
                        client.stream_closed(Instant::now());
                    }
                },
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            if let Some(conditioner) = self.conditioner.as_mut() {
                while let Some((from, bytes)) = conditioner.inbound.poll(now) {
                    client.handle_datagram(now, from, &bytes);
                }
            }
            if client.poll_timeout().is_some_and(|t| t <= now) {
                client.handle_timeout(now);
            }
            if self.retry_at.is_some_and(|t| t <= now) {
                self.retry_at = None;
                self.reconnect(&mut client).await;
            }
        }
    }

    fn command(&mut self, client: &mut Client, command: Command) {
        let now = Instant::now();
        match command {
            Command::Send {
                channel,
                payload,
                reply,
            } => {
                let _ = reply.send(client.send(now, channel, &payload));
            }
            Command::OpenChannel {
                channel,
                spec,
                reply,
            } => {
                let _ = reply.send(client.open_channel(now, channel, spec));
            }
            Command::Close { code, reason } => client.close(now, code, &reason),
            Command::Stats(reply) => {
                let _ = reply.send(client.session().stats());
            }
            Command::ServerKey(reply) => {
                let _ = reply.send(client.server_key());
            }
            Command::DropStream => {
                self.stream = None;
                client.stream_closed(now);
            }
        }
    }

    /// The connector's part of the seed-000 flow: bind UDP on a ticket,
    /// reconnect and resume when links drop.
    async fn react(&mut self, client: &mut Client, event: &Event) {
        let now = Instant::now();
        match event {
            Event::Welcomed {
                ticket: Some(ticket),
                ..
            } if self.config.transport == Transport::Auto => {
                let udp_addr = SocketAddr::new(self.config.server.ip(), ticket.port);
                if self.bind_udp().await.is_ok() {
                    let _ = client.attach_datagram(now, udp_addr);
                }
            }
            Event::DatagramUnavailable => {
                tracing::info!("UDP did not come up; the session stays on the stream");
                if self.config.transport == Transport::Auto {
                    self.udp = None;
                }
            }
            Event::Detached | Event::LinkDown(LinkKind::Stream) if self.config.reconnect => {
                self.reconnect(client).await;
            }
            Event::Resumed => {
                self.reconnecting_since = None;
                self.retry_at = None;
            }
            _ => {}
        }
    }

    async fn reconnect(&mut self, client: &mut Client) {
        let now = Instant::now();
        let grace = self.config.protocol.session.resume_grace;
        let since = *self.reconnecting_since.get_or_insert(now);
        if now.duration_since(since) > grace {
            return;
        }
        match self.config.transport {
            Transport::Udp => {
                if !client.has_link(LinkKind::Datagram) && self.bind_udp().await.is_ok() {
                    let _ = client.attach_datagram(now, self.config.server);
                }
            }
            _ => {
                if self.stream.is_some() {
                    return;
                }
                match self.open_stream().await {
                    Ok(()) => {
                        let _ = client.resume_stream(Instant::now());
                    }
                    Err(e) => {
                        tracing::info!(
                            "reconnect failed, trying again in {RECONNECT_RETRY:?}: {e}"
                        );
                        self.retry_at = Some(Instant::now() + RECONNECT_RETRY);
                    }
                }
            }
        }
    }

    /// The stream's pump has stopped. What it read before is still to be
    /// handled, first: the server's Close frame is often the last of it, and
    /// a write failing (the server has closed) can be noticed before it.
    fn stream_ended(&mut self, client: &mut Client) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        while let Ok(packet) = stream.packets.try_recv() {
            client.handle_stream(Instant::now(), &packet);
        }
        client.stream_closed(Instant::now());
    }

    async fn flush(&mut self, client: &mut Client) {
        while let Some(transmit) = client.poll_transmit() {
            match transmit {
                Transmit::Datagram { to, bytes } => match self.conditioner.as_mut() {
                    Some(conditioner) => conditioner.outbound.push(Instant::now(), (to, bytes)),
                    None => {
                        if let Some(udp) = &self.udp {
                            let _ = udp.send_to(&bytes, to).await;
                        }
                    }
                },
                Transmit::Stream { bytes, .. } => {
                    if let Some(stream) = &self.stream {
                        if stream.outgoing.send(bytes).await.is_err() {
                            self.stream_ended(client);
                        }
                    }
                }
                Transmit::CloseStream { .. } => self.stream = None,
            }
        }
        if let (Some(conditioner), Some(udp)) = (self.conditioner.as_mut(), &self.udp) {
            while let Some((to, bytes)) = conditioner.outbound.poll(Instant::now()) {
                let _ = udp.send_to(&bytes, to).await;
            }
        }
    }
}

async fn recv_datagram(
    udp: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn recv_packet(stream: Option<&mut StreamConnection>) -> Option<Bytes> {
    match stream {
        Some(link) => link.packets.recv().await,
        None => std::future::pending().await,
    }
}

fn spawn_websocket_pump<S>(
    mut socket: WebSocket<S>,
    limits: PumpLimits,
    outgoing: mpsc::Receiver<Vec<u8>>,
    packets: mpsc::Sender<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let end = pump_websocket(&mut socket, limits, outgoing, packets).await;
        report_end("WebSocket", end, limits);
    });
}

/// Logs why the stream ended when it tells the user something; the session
/// sees the stream close either way and resumes if it can.
fn report_end(transport: &str, end: PumpEnd, limits: PumpLimits) {
    match end {
        PumpEnd::WriteTimeout => tracing::info!(
            "the server stopped reading for {:?}; dropping the {transport} link",
            limits.write_timeout
        ),
        PumpEnd::Oversized | PumpEnd::Malformed => {
            tracing::info!("the server broke the {transport} framing ({end:?}); dropping the link")
        }
        PumpEnd::PeerClosed | PumpEnd::LocalClose | PumpEnd::WriteFailed | PumpEnd::Silent => {}
    }
}
