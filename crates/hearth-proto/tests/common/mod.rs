//! A deterministic network for whole-protocol tests: a seeded datagram path
//! with loss, delay, jitter (hence reordering) and duplication, an in-order
//! stream pipe, and helpers that run a server and a client against each other.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearth_kcp::sim::SimRng;
use hearth_proto::{
    ChannelKind, ChannelSpec, Client, ClientConfig, Delivery, Event, Server, ServerConfig,
    ServerIdentity, StreamId, Transmit,
};

#[derive(Debug, Clone, Copy)]
pub struct LinkProfile {
    pub loss_percent: u32,
    pub duplicate_percent: u32,
    pub delay_ms: u64,
    pub jitter_ms: u64,
}

impl LinkProfile {
    pub const PERFECT: Self = Self {
        loss_percent: 0,
        duplicate_percent: 0,
        delay_ms: 5,
        jitter_ms: 0,
    };
    pub const BAD: Self = Self {
        loss_percent: 10,
        duplicate_percent: 5,
        delay_ms: 30,
        jitter_ms: 50,
    };
}

struct InFlight {
    at: Instant,
    order: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

pub const SERVER_ADDR: &str = "10.0.0.1:7777";
pub const CLIENT_ADDR: &str = "10.0.0.2:50000";
pub const SERVER_STREAM: StreamId = StreamId(1);

pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// What the harness does with login requests.
#[derive(Debug, Clone)]
pub enum Hook {
    Accept,
    Refuse(&'static str),
    /// Leave the decision pending (tests the decision deadline).
    Ignore,
}

pub struct World {
    pub now: Instant,
    pub rng: SimRng,
    pub profile: LinkProfile,
    pub server: Server,
    pub client: Client,
    pub server_addr: SocketAddr,
    pub client_addr: SocketAddr,
    flights: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    /// Stream pipe: (arrival, bytes), in order, each direction.
    to_server_stream: VecDeque<(Instant, Vec<u8>)>,
    to_client_stream: VecDeque<(Instant, Vec<u8>)>,
    pub stream_open: bool,
    pub stream_delay: Duration,
    pub udp_blocked: bool,
    /// Datagrams are dropped in both directions (a cut cable).
    pub cut: bool,
    /// Datagrams from the server to the client are dropped (one-way loss).
    pub drop_to_client: bool,
    /// Handshake Responses from the client are dropped (they are still captured).
    pub drop_responses: bool,
    pub hook: Hook,
    pub server_events: Vec<(u64, Event)>,
    pub client_events: Vec<Event>,
    /// Every datagram the client sent, as the server would receive it.
    pub captured_to_server: Vec<(SocketAddr, Vec<u8>)>,
    pub capture: bool,
    /// The server sends every message on this channel back, as a game
    /// handler would: while it handles the events, before its transmits
    /// are polled.
    pub echo_channel: Option<u16>,
    /// Datagrams the server has put on the wire.
    pub server_datagrams: u64,
}

impl World {
    pub fn new(
        seed: u64,
        profile: LinkProfile,
        server_config: ServerConfig,
        client_config: ClientConfig,
    ) -> Self {
        let now = Instant::now();
        let mut rng = SimRng::new(seed);
        let bytes = |rng: &mut SimRng| {
            let mut out = [0u8; 32];
            for chunk in out.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            out
        };
        let identity = ServerIdentity::generate(bytes(&mut rng));
        let server = Server::new(server_config, identity, now, bytes(&mut rng));
        let client = Client::new(client_config, now, bytes(&mut rng));
        Self {
            now,
            rng,
            profile,
            server,
            client,
            server_addr: addr(SERVER_ADDR),
            client_addr: addr(CLIENT_ADDR),
            flights: BinaryHeap::new(),
            order: 0,
            to_server_stream: VecDeque::new(),
            to_client_stream: VecDeque::new(),
            stream_open: false,
            stream_delay: Duration::from_millis(20),
            udp_blocked: false,
            cut: false,
            drop_to_client: false,
            drop_responses: false,
            hook: Hook::Accept,
            server_events: Vec::new(),
            client_events: Vec::new(),
            captured_to_server: Vec::new(),
            capture: false,
            echo_channel: None,
            server_datagrams: 0,
        }
    }

    pub fn with_defaults(seed: u64, profile: LinkProfile) -> Self {
        Self::new(
            seed,
            profile,
            ServerConfig::default(),
            ClientConfig::default(),
        )
    }

    fn send_datagram(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        if self.cut || self.udp_blocked || (self.drop_to_client && to == self.client_addr) {
            return;
        }
        if self.drop_responses && bytes.first() == Some(&hearth_proto::handshake::kind::RESPONSE) {
            return;
        }
        if self.rng.percent(self.profile.loss_percent) {
            return;
        }
        let copies = if self.rng.percent(self.profile.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.profile.jitter_ms > 0 {
                self.rng.below(self.profile.jitter_ms as u32 + 1) as u64
            } else {
                0
            };
            let at = self.now + Duration::from_millis(self.profile.delay_ms + jitter);
            self.order += 1;
            self.flights.push(Reverse(InFlight {
                at,
                order: self.order,
                from,
                to,
                bytes: bytes.clone(),
            }));
        }
    }

    /// Copies of the stream packets now travelling in both directions.
    pub fn stream_bytes_in_flight(&self) -> Vec<Vec<u8>> {
        self.to_server_stream
            .iter()
            .chain(self.to_client_stream.iter())
            .map(|(_, bytes)| bytes.clone())
            .collect()
    }

    /// Opens the stream connection (TCP connect + accept).
    pub fn open_stream(&mut self) {
        self.stream_open = true;
        self.to_server_stream.clear();
        self.to_client_stream.clear();
        self.server
            .stream_opened(self.now, SERVER_STREAM, self.client_addr);
    }

    /// The stream connection breaks under both ends.
    pub fn break_stream(&mut self) {
        self.stream_open = false;
        self.to_server_stream.clear();
        self.to_client_stream.clear();
        self.server.stream_closed(self.now, SERVER_STREAM);
        self.client.stream_closed(self.now);
    }

    fn pump_transmits(&mut self) {
        while let Some(transmit) = self.client.poll_transmit() {
            match transmit {
                Transmit::Datagram { to, bytes } => {
                    if self.capture {
                        self.captured_to_server
                            .push((self.client_addr, bytes.clone()));
                    }
                    let from = self.client_addr;
                    self.send_datagram(from, to, bytes);
                }
                Transmit::Stream { bytes, .. } => {
                    if self.stream_open {
                        self.to_server_stream
                            .push_back((self.now + self.stream_delay, bytes));
                    }
                }
                Transmit::CloseStream { .. } => {
                    if self.stream_open {
                        self.stream_open = false;
                        self.server.stream_closed(self.now, SERVER_STREAM);
                    }
                }
            }
        }
        while let Some(transmit) = self.server.poll_transmit() {
            match transmit {
                Transmit::Datagram { to, bytes } => {
                    let from = self.server_addr;
                    self.server_datagrams += 1;
                    self.send_datagram(from, to, bytes);
                }
                Transmit::Stream { bytes, .. } => {
                    if self.stream_open {
                        self.to_client_stream
                            .push_back((self.now + self.stream_delay, bytes));
                    }
                }
                Transmit::CloseStream { .. } => {
                    if self.stream_open {
                        self.stream_open = false;
                        self.to_server_stream.clear();
                        self.to_client_stream.clear();
                        self.client.stream_closed(self.now);
                    }
                }
            }
        }
    }

    fn collect_events(&mut self) {
        while let Some((id, event)) = self.server.poll_event() {
            if let Event::LoginRequest(_) = &event {
                match self.hook {
                    Hook::Accept => {
                        self.server.accept_login(self.now, id, None);
                    }
                    Hook::Refuse(reason) => {
                        self.server.refuse_login(self.now, id, reason);
                    }
                    Hook::Ignore => {}
                }
            }
            if let Event::Message { channel, payload } = &event {
                if self.echo_channel == Some(*channel) {
                    self.server.send(self.now, id, *channel, payload).unwrap();
                }
            }
            self.server_events.push((id, event));
        }
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
    }

    /// Advances time by one millisecond, delivering what is due.
    pub fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        while self.flights.peek().is_some_and(|f| f.0.at <= self.now) {
            let flight = self.flights.pop().unwrap().0;
            if flight.to == self.server_addr {
                self.server.handle(self.now, flight.from, &flight.bytes);
            } else if flight.to == self.client_addr {
                self.client
                    .handle_datagram(self.now, flight.from, &flight.bytes);
            }
            // Anything else went to an address nobody holds any more.
        }
        while self
            .to_server_stream
            .front()
            .is_some_and(|(at, _)| *at <= self.now)
        {
            let (_, bytes) = self.to_server_stream.pop_front().unwrap();
            self.server.handle_stream(self.now, SERVER_STREAM, &bytes);
        }
        while self
            .to_client_stream
            .front()
            .is_some_and(|(at, _)| *at <= self.now)
        {
            let (_, bytes) = self.to_client_stream.pop_front().unwrap();
            self.client.handle_stream(self.now, &bytes);
        }
        if self.server.poll_timeout().is_some_and(|at| at <= self.now) {
            self.server.handle_timeout(self.now);
        }
        if self.client.poll_timeout().is_some_and(|at| at <= self.now) {
            self.client.handle_timeout(self.now);
        }
        self.collect_events();
        self.pump_transmits();
    }

    /// Runs until `done` or `limit` of simulated time; returns the time taken.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        self.collect_events();
        self.pump_transmits();
        while self.now - start < limit {
            if done(self) {
                return Some(self.now - start);
            }
            self.tick();
        }
        done(self).then(|| self.now - start)
    }

    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(duration, |_| false);
    }

    pub fn client_has(&self, wanted: &Event) -> bool {
        self.client_events.iter().any(|e| e == wanted)
    }

    pub fn server_has(&self, wanted: &Event) -> bool {
        self.server_events.iter().any(|(_, e)| e == wanted)
    }

    pub fn client_closed(&self) -> Option<&hearth_proto::CloseReason> {
        self.client_events.iter().find_map(|e| match e {
            Event::Closed(reason) => Some(reason),
            _ => None,
        })
    }

    pub fn server_closed(&self) -> Option<&hearth_proto::CloseReason> {
        self.server_events.iter().find_map(|(_, e)| match e {
            Event::Closed(reason) => Some(reason),
            _ => None,
        })
    }

    pub fn session_id(&self) -> u64 {
        self.server.session_ids().next().expect("a session exists")
    }

    /// Both ends joined.
    pub fn joined(&self) -> bool {
        self.client_has(&Event::Joined) && self.server_has(&Event::Joined)
    }

    /// Connects over UDP and completes the login.
    pub fn login_over_udp(&mut self) -> Duration {
        let server = self.server_addr;
        self.client.connect_datagram(self.now, server);
        self.run_until(Duration::from_secs(30), |w| w.joined())
            .expect("login over UDP completes")
    }

    /// Connects over the stream and completes the login.
    pub fn login_over_stream(&mut self) -> Duration {
        self.open_stream();
        self.client.connect_stream(self.now);
        self.run_until(Duration::from_secs(30), |w| w.joined())
            .expect("login over the stream completes")
    }

    /// Opens channel `channel` from the client side and waits until the server has it.
    pub fn open_channel(&mut self, channel: u16, spec: ChannelSpec) {
        self.client.open_channel(self.now, channel, spec).unwrap();
        let wanted = Event::ChannelOpened {
            channel,
            kind: spec.kind,
            delivery: spec.delivery,
        };
        self.run_until(Duration::from_secs(30), |w| w.server_has(&wanted))
            .expect("channel opens");
    }

    pub fn messages_at_server(&self, channel: u16) -> Vec<Vec<u8>> {
        self.server_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message {
                    channel: c,
                    payload,
                } if *c == channel => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn messages_at_client(&self, channel: u16) -> Vec<Vec<u8>> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    channel: c,
                    payload,
                } if *c == channel => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }
}

pub fn reliable(kind: ChannelKind) -> ChannelSpec {
    ChannelSpec::new(kind, Delivery::ReliableOrdered)
}

/// A message whose content encodes its index, of a size that varies with it.
pub fn numbered_message(index: u32, size: usize) -> Vec<u8> {
    let mut message = index.to_be_bytes().to_vec();
    message.extend(
        (0..size.saturating_sub(4)).map(|n| (n as u32).wrapping_mul(31).wrapping_add(index) as u8),
    );
    message
}

/// A server with default settings and a random key, outside any `World`.
pub fn bare_server(now: Instant) -> Server {
    server_with(ServerConfig::default(), now)
}

/// A server with `config` and a random key, outside any `World`.
pub fn server_with(config: ServerConfig, now: Instant) -> Server {
    let seed = hearth_proto::os_seed();
    Server::new(config, ServerIdentity::generate(seed), now, seed)
}

/// A hand-driven stream client for a bare `Server`: it runs the stream key
/// agreement the way a real client does, then seals whatever plaintext a test
/// wants, so tests can put arbitrary (or hostile) frames inside a properly
/// sealed stream, as an attacker with a real connection could.
pub struct RawStream {
    pub stream: StreamId,
    crypto: hearth_proto::stream_handshake::StreamCrypto,
    /// Set once the server asked the driver to close this stream.
    pub closed: bool,
    pub session_id: u64,
}

impl RawStream {
    /// Connects `stream` from `peer` and completes the key agreement.
    /// `attach` = Some((session id, resume token)) resumes a session.
    pub fn connect(
        server: &mut Server,
        now: Instant,
        stream: StreamId,
        peer: SocketAddr,
        attach: Option<(u64, [u8; 32])>,
    ) -> Result<Self, String> {
        use hearth_proto::handshake::Mode;
        use hearth_proto::stream_handshake::StreamOpener;
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(hearth_proto::os_seed());
        let mode = match attach {
            None => Mode::New,
            Some((session_id, _)) => Mode::Attach { session_id },
        };
        let opener = StreamOpener::new(&mut rng, mode);
        server.stream_opened(now, stream, peer);
        server.handle_stream(now, stream, &opener.hello());
        let (packets, closed) = drain_stream(server, stream);
        let answer = packets.first().ok_or("no answer to the Hello")?;
        let token = attach.map(|(_, token)| token);
        let opened = opener
            .finish(answer, None, token.as_ref())
            .map_err(|e| e.to_string())?;
        if closed {
            return Err("closed after Accept".into());
        }
        Ok(Self {
            stream,
            crypto: opened.crypto,
            closed: false,
            session_id: opened.session_id,
        })
    }

    /// Seals `plaintext` (frames) and hands it to the server as one stream packet.
    pub fn send(&mut self, server: &mut Server, now: Instant, plaintext: &[u8]) {
        let mut packet = plaintext.to_vec();
        self.crypto.seal(&mut packet);
        server.handle_stream(now, self.stream, &packet);
    }

    /// Opens what the server sent on this stream since the last call.
    pub fn receive(&mut self, server: &mut Server) -> Vec<Vec<u8>> {
        let (packets, closed) = drain_stream(server, self.stream);
        self.closed |= closed;
        packets
            .into_iter()
            .map(|mut packet| {
                let len = self.crypto.open(&mut packet).expect("server packets open");
                packet.truncate(len);
                packet
            })
            .collect()
    }
}

/// The server's stream packets for `stream` (others are discarded), and
/// whether it closed that stream.
fn drain_stream(server: &mut Server, stream: StreamId) -> (Vec<Vec<u8>>, bool) {
    let mut packets = Vec::new();
    let mut closed = false;
    while let Some(transmit) = server.poll_transmit() {
        match transmit {
            Transmit::Stream { stream: to, bytes } if to == stream => packets.push(bytes),
            Transmit::CloseStream { stream: to } if to == stream => closed = true,
            _ => {}
        }
    }
    (packets, closed)
}

/// A reliable control message as a Bunch frame, ready to seal.
pub fn control_frame(message: &hearth_proto::control::ControlMessage, sequence: u64) -> Vec<u8> {
    bunch_frame(
        0,
        sequence,
        hearth_proto::bunch::flags::RELIABLE,
        None,
        &message.to_vec(),
    )
}

/// Any bunch as a frame, ready to seal.
pub fn bunch_frame(
    channel: u16,
    sequence: u64,
    flags: u8,
    open: Option<(ChannelKind, Delivery)>,
    payload: &[u8],
) -> Vec<u8> {
    let bunch = hearth_proto::bunch::Bunch {
        flags,
        channel,
        sequence,
        part: 0,
        open,
        payload,
    };
    let mut packet = Vec::new();
    hearth_proto::frame::Frame::Bunch(bunch).encode(&mut packet);
    packet
}
