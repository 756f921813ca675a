//! One session: its links, channels, reliable sequencing, login state,
//! liveness and statistics. Shared by the server (one per client) and the
//! client. The endpoints route datagrams and stream packets to it and give it
//! an `Outbox` for what it wants sent and reported.

mod channels;
mod flush;
pub(crate) mod login;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use thiserror::Error;

use crate::bunch::{
    flags, Bunch, ChannelKind, Delivery, OwnedBunch, CONTROL_CHANNEL, MAX_CHANNELS,
};
use crate::codec::DecodeError;
use crate::config::SessionConfig;
use crate::event::{CloseReason, Event, LinkKind, StreamId, Transmit};
use crate::frame::{self, Frame, Frames};
use crate::link::{DatagramLink, Liveness, Role, StreamLink};
use crate::reassembly::Reassembly;
use crate::reliable::{Arrival, ReliableReceiver, ReliableSender};
use crate::stats::{DropReason, SessionStats};
use crate::stream_handshake::StreamCrypto;

use channels::Channel;
pub use channels::ChannelSpec;
use login::Login;
pub use login::LoginParams;

/// Where sessions put what they want sent and reported.
#[derive(Debug, Default)]
pub struct Outbox {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<(u64, Event)>,
}

/// Why `send` (or `open_channel`) refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("the session is closed")]
    Closed,
    #[error("the session is not logged in yet: wait for Welcome or Joined")]
    NotLoggedIn,
    #[error("channel {0} is not open: call open_channel first")]
    ChannelNotOpen(u16),
    #[error("channel {0} is already open")]
    ChannelAlreadyOpen(u16),
    #[error("channel {0} is reserved or out of range (1..={max})", max = MAX_CHANNELS)]
    BadChannel(u16),
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("too much unacknowledged data is queued; retry after the peer catches up")]
    Backpressure,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Active,
    /// `close` was called: waiting for reliable messages to be acknowledged.
    Draining {
        deadline: Instant,
        code: u16,
        reason: String,
    },
    /// No link: waiting for a resume until the deadline.
    Detached {
        deadline: Instant,
    },
    Closed,
}

/// How a stream link attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamResume {
    /// A fresh stream (new session, or a second link).
    No,
    /// Client: re-attach (the keys prove the resume token); wait for `Resumed`.
    Request,
    /// Server: the client proved the token and reported `peer_received`.
    Answer { peer_received: u64 },
}

/// How often a closing session with unacknowledged data probes the peer.
const CLOSE_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Largest bunch header: flags, 3-byte channel, 10-byte sequence, 5-byte
/// part index, open, 3-byte length.
pub(crate) const BUNCH_OVERHEAD: usize = 1 + 3 + 10 + 5 + 2 + 3;

pub struct Session {
    pub(crate) id: u64,
    pub(crate) role: Role,
    pub(crate) config: SessionConfig,
    pub(crate) epoch: Instant,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) datagram: Option<DatagramLink>,
    pub(crate) stream: Option<StreamLink>,
    channels: HashMap<u16, Channel>,
    reliable_tx: ReliableSender,
    reliable_rx: ReliableReceiver<OwnedBunch>,
    reassembly: Reassembly,
    login: Login,
    pub(crate) state: State,
    ack_sent: u64,
    ack_due: Option<Instant>,
    /// Send an Ack even if the count did not move: the peer sent a duplicate
    /// or a Ping, so our last Ack may have been lost.
    ack_repeat: bool,
    pub(crate) stats: SessionStats,
    /// Secret for resume and UDP tickets; server-chosen, learned by the client in Welcome.
    pub(crate) attach_secret: [u8; 32],
    /// The server's static key as proven in the datagram handshake (client side).
    pub(crate) proven_server_key: Option<[u8; 32]>,
    net_speed: Option<u32>,
    /// Close frame to put on every link at the next flush.
    closing_frame: Option<(u16, String)>,
    /// A new reliable bunch went into KCP: flush it now, not at the next tick.
    kcp_dirty: bool,
    /// Server: the address slot this session holds until its login is accepted.
    pub(crate) logging_in_from: Option<crate::server::AddressPrefix>,
    /// Server: where the session's first link came from (for the login hook).
    pub(crate) origin: Option<std::net::SocketAddr>,
}

impl Session {
    pub(crate) fn new(
        role: Role,
        id: u64,
        config: SessionConfig,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut attach_secret = [0u8; 32];
        rng.fill_bytes(&mut attach_secret);
        let login = Login::new(role, now, &config);
        Self {
            id,
            role,
            reliable_rx: ReliableReceiver::new(config.max_unacked_bytes),
            reassembly: Reassembly::new(config.max_message_size, config.max_reassembly_bytes),
            config,
            epoch: now,
            rng,
            datagram: None,
            stream: None,
            channels: HashMap::new(),
            reliable_tx: ReliableSender::default(),
            login,
            state: State::Active,
            ack_sent: 0,
            ack_due: None,
            ack_repeat: false,
            stats: SessionStats::default(),
            attach_secret,
            proven_server_key: None,
            net_speed: None,
            closing_frame: None,
            kcp_dirty: false,
            logging_in_from: None,
            origin: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn stats(&self) -> SessionStats {
        let mut stats = self.stats.clone();
        if let Some(link) = &self.datagram {
            stats.packets_lost += link.crypto.lost;
        }
        stats
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn is_detached(&self) -> bool {
        matches!(self.state, State::Detached { .. })
    }

    pub fn has_link(&self, kind: LinkKind) -> bool {
        match kind {
            LinkKind::Datagram => self.datagram.is_some(),
            LinkKind::Stream => self.stream.is_some(),
        }
    }

    /// Parts of unfinished messages held for reassembly.
    pub fn buffered_parts(&self) -> usize {
        self.reassembly.buffered_parts()
    }

    pub fn net_speed(&self) -> Option<u32> {
        self.net_speed
    }

    pub fn login_welcomed(&self) -> bool {
        self.login.is_welcomed()
    }

    pub fn is_joined(&self) -> bool {
        self.login.is_joined()
    }

    /// Reliable messages received in order so far (what a resume presents).
    pub fn reliable_received(&self) -> u64 {
        self.reliable_rx.received()
    }

    /// Milliseconds since the session began, in 64 bits: never wraps.
    pub(crate) fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The 32-bit millisecond clock that KCP and heartbeat timestamps use.
    /// It wraps after 49.7 days; everything that reads it (KCP's timers, the
    /// round-trip from a Pong) takes differences with wrapping arithmetic, and
    /// deadlines are turned back into `Instant`s as offsets from `now`.
    pub(crate) fn clock32(&self, now: Instant) -> u32 {
        self.now_ms(now) as u32
    }

    // ---- links -------------------------------------------------------------

    /// A datagram link is up (handshake done). `peer_received` is what the
    /// peer reported having received when this link resumes a session.
    pub(crate) fn attach_datagram(
        &mut self,
        now: Instant,
        link: DatagramLink,
        peer_received: Option<u64>,
        out: &mut Outbox,
    ) {
        let replaced = self.datagram.replace(link).is_some();
        out.events
            .push_back((self.id, Event::LinkUp(LinkKind::Datagram)));
        self.after_attach(now, LinkKind::Datagram, peer_received, replaced, out);
    }

    /// A stream link is up (its handshake done, `crypto` from it). A server
    /// resuming over it first tells the client how much it has received
    /// (`Resumed`); a client resuming over it sends `Resume` first, then waits
    /// for that answer before resending.
    pub(crate) fn attach_stream(
        &mut self,
        now: Instant,
        stream: StreamId,
        crypto: StreamCrypto,
        resume: StreamResume,
        out: &mut Outbox,
    ) {
        let replaced = match self.stream.take() {
            Some(old) => {
                out.transmits
                    .push_back(Transmit::CloseStream { stream: old.id });
                true
            }
            None => false,
        };
        let mut link = StreamLink {
            id: stream,
            live: Liveness::new(now),
            crypto,
        };
        match resume {
            StreamResume::No => {}
            StreamResume::Request => {
                let mut frame = Vec::new();
                Frame::Resume {
                    session_id: self.id,
                    received: self.reliable_rx.received(),
                }
                .encode(&mut frame);
                // Alone in the stream's first sealed packet: the server reads it
                // before it attaches the stream to the session.
                link.crypto.seal(&mut frame);
                out.transmits.push_back(Transmit::Stream {
                    stream,
                    bytes: frame,
                });
            }
            StreamResume::Answer { .. } => {
                let mut frame = Vec::new();
                Frame::Resumed {
                    received: self.reliable_rx.received(),
                }
                .encode(&mut frame);
                link.live.enqueue(frame, usize::MAX);
            }
        }
        self.stream = Some(link);
        out.events
            .push_back((self.id, Event::LinkUp(LinkKind::Stream)));
        match resume {
            StreamResume::Request => self.flush(now, out),
            StreamResume::Answer { peer_received } => {
                self.after_attach(now, LinkKind::Stream, Some(peer_received), replaced, out)
            }
            StreamResume::No => self.after_attach(now, LinkKind::Stream, None, replaced, out),
        }
    }

    fn after_attach(
        &mut self,
        now: Instant,
        kind: LinkKind,
        peer_received: Option<u64>,
        replaced: bool,
        out: &mut Outbox,
    ) {
        // Resend what may have died with the old link, or while there was none.
        let resuming = self.is_detached() || replaced;
        if let Some(received) = peer_received {
            if !self.reliable_tx.acknowledge(received) {
                self.fail(
                    now,
                    CloseReason::ProtocolError("resume claims messages never sent".into()),
                    out,
                );
                return;
            }
        }
        if self.is_detached() {
            self.state = State::Active;
            self.stats.resumes += 1;
            out.events.push_back((self.id, Event::Resumed));
        }
        if resuming {
            self.resend_unacked(kind);
        }
        login::on_link_up(self, now, out);
        self.flush(now, out);
    }

    /// A RestartResponse proved that the client moved to `from`: checks the tag
    /// under the session key and the rate limit, then moves the datagram link.
    /// `Ok(false)` when it is already there (a repeated RestartResponse).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rebind_datagram(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        packet_number: u64,
        header: &[u8],
        tag: [u8; 16],
        min_interval: Duration,
        out: &mut Outbox,
    ) -> Result<bool, DropReason> {
        let Some(link) = self.datagram.as_mut() else {
            return Err(DropReason::Unexpected);
        };
        if link.peer == from {
            return Ok(false);
        }
        let mut sealed = header.to_vec();
        sealed.extend_from_slice(&tag);
        if link
            .crypto
            .receive_key()
            .open(packet_number, &mut sealed, header.len())
            .is_none()
        {
            // Only a holder of the session keys can move the session.
            self.stats.drops.add(DropReason::AuthFailed);
            return Err(DropReason::AuthFailed);
        }
        if link.last_rebind.is_some_and(|at| now < at + min_interval) {
            return Err(DropReason::RebindRateLimited);
        }
        link.crypto.accept_number(packet_number)?;
        let old = std::mem::replace(&mut link.peer, from);
        link.last_rebind = Some(now);
        link.live.last_received = now;
        link.live.ping_due = true;
        self.stats.migrations += 1;
        out.events.push_back((
            self.id,
            Event::Migrated {
                from: old,
                to: from,
            },
        ));
        self.flush(now, out);
        Ok(true)
    }

    /// The stream link ended (the driver saw the connection close).
    pub fn stream_lost(&mut self, now: Instant, out: &mut Outbox) {
        if self.stream.is_some() {
            self.lose_link(now, LinkKind::Stream, out);
        }
    }

    pub(crate) fn lose_link(&mut self, now: Instant, kind: LinkKind, out: &mut Outbox) {
        match kind {
            LinkKind::Datagram => {
                self.datagram = None;
            }
            LinkKind::Stream => {
                if let Some(stream) = self.stream.take() {
                    out.transmits
                        .push_back(Transmit::CloseStream { stream: stream.id });
                }
            }
        }
        if self.state == State::Closed {
            return;
        }
        out.events.push_back((self.id, Event::LinkDown(kind)));
        let orphaned = self.reassembly.abandon_unreliable();
        for _ in 0..orphaned {
            self.stats.drops.add(DropReason::PartialIncomplete);
        }
        if let Some(other) = self.any_link() {
            // Whatever was in flight on the lost link goes again on the other.
            self.resend_unacked(other);
            return;
        }
        if !self.login.can_resume() || self.config.resume_grace.is_zero() {
            self.finish_close(CloseReason::Timeout, out);
            return;
        }
        if !self.is_detached() {
            self.state = State::Detached {
                deadline: now + self.config.resume_grace,
            };
            out.events.push_back((self.id, Event::Detached));
        }
    }

    fn any_link(&self) -> Option<LinkKind> {
        if self.datagram.is_some() {
            Some(LinkKind::Datagram)
        } else if self.stream.is_some() {
            Some(LinkKind::Stream)
        } else {
            None
        }
    }

    fn resend_unacked(&mut self, kind: LinkKind) {
        let pending: Vec<Vec<u8>> = self
            .reliable_tx
            .unacknowledged()
            .map(<[u8]>::to_vec)
            .collect();
        for encoded in pending {
            self.put_reliable_on(kind, &encoded);
        }
    }

    /// Puts one encoded reliable bunch on a link (KCP on datagram links).
    fn put_reliable_on(&mut self, kind: LinkKind, encoded: &[u8]) {
        match kind {
            LinkKind::Datagram => {
                if let Some(link) = self.datagram.as_mut() {
                    // Bunches are sized to one segment; KCP refuses only
                    // messages beyond 127 segments, which a bunch never is.
                    if link.kcp.send(encoded).is_ok() {
                        self.kcp_dirty = true;
                    }
                }
            }
            LinkKind::Stream => {
                if let Some(link) = self.stream.as_mut() {
                    let mut frame = Vec::with_capacity(encoded.len() + 1);
                    frame.push(frame::kind::BUNCH);
                    frame.extend_from_slice(encoded);
                    // Reliable data is bounded by max_unacked_bytes, not the queue limit.
                    link.live.enqueue(frame, usize::MAX);
                }
            }
        }
    }

    // ---- input -------------------------------------------------------------

    /// A datagram from the bound address: authenticate, then process frames.
    pub(crate) fn handle_datagram(&mut self, now: Instant, packet: &mut [u8], out: &mut Outbox) {
        let Some(link) = self.datagram.as_mut() else {
            self.stats.drops.add(DropReason::Unexpected);
            return;
        };
        let range = match link.crypto.open(packet) {
            Ok(range) => range,
            Err(reason) => {
                self.stats.drops.add(reason);
                return;
            }
        };
        link.live.last_received = now;
        self.stats.packets_in += 1;
        self.stats.bytes_in += packet.len() as u64;
        self.handle_frames(now, LinkKind::Datagram, &packet[range], out);
        self.flush(now, out);
    }

    /// One sealed stream packet (a TCP frame or a WebSocket message),
    /// decrypted in place.
    pub(crate) fn handle_stream(&mut self, now: Instant, packet: &mut [u8], out: &mut Outbox) {
        let Some(link) = self.stream.as_mut() else {
            self.stats.drops.add(DropReason::Unexpected);
            return;
        };
        let Some(len) = link.crypto.open(packet) else {
            // A stream neither loses nor reorders: this is tampering or a broken peer.
            self.stats.drops.add(DropReason::AuthFailed);
            let why = "a stream packet failed authentication".to_owned();
            self.fail(now, CloseReason::ProtocolError(why), out);
            return;
        };
        self.handle_stream_plaintext(now, &packet[..len], out);
    }

    /// The frames of a stream packet already opened (by `handle_stream`, or by
    /// the server endpoint while it checked the stream handshake's proof).
    pub(crate) fn handle_stream_plaintext(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &mut Outbox,
    ) {
        let Some(link) = self.stream.as_mut() else {
            self.stats.drops.add(DropReason::Unexpected);
            return;
        };
        link.live.last_received = now;
        self.stats.packets_in += 1;
        self.stats.bytes_in += (plaintext.len() + crate::crypto::TAG_LEN) as u64;
        self.handle_frames(now, LinkKind::Stream, plaintext, out);
        self.flush(now, out);
    }

    fn handle_frames(&mut self, now: Instant, kind: LinkKind, payload: &[u8], out: &mut Outbox) {
        for frame in Frames::new(payload) {
            if self.state == State::Closed {
                return;
            }
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    self.malformed(now, kind, error, out);
                    return;
                }
            };
            match frame {
                Frame::Padding => {}
                Frame::Kcp(bytes) if kind == LinkKind::Datagram => self.handle_kcp(now, bytes, out),
                Frame::Bunch(bunch) if bunch.is(flags::RELIABLE) => {
                    if kind == LinkKind::Datagram {
                        // Reliable bunches on datagram links travel inside KCP only.
                        self.stats.drops.add(DropReason::Unexpected);
                    } else {
                        self.handle_reliable(now, bunch, out);
                    }
                }
                Frame::Bunch(bunch) => self.handle_unreliable(now, bunch, out),
                Frame::Ack { received } => {
                    if !self.reliable_tx.acknowledge(received) {
                        self.fail(
                            now,
                            CloseReason::ProtocolError(
                                "acknowledgement of messages never sent".into(),
                            ),
                            out,
                        );
                    }
                }
                Frame::Ping { sent_ms } => {
                    self.live_mut(kind).add_pong(sent_ms);
                    // Every Pong carries our Ack: a lost final Ack is repaired
                    // by the peer's next heartbeat or closing probe.
                    if self.reliable_rx.received() > 0 {
                        self.ack_repeat = true;
                    }
                }
                Frame::Pong { echo_ms } => {
                    let rtt = self.clock32(now).wrapping_sub(echo_ms);
                    if rtt < 60_000 {
                        self.stats
                            .rtt
                            .add_sample(Duration::from_millis(u64::from(rtt)));
                    }
                }
                Frame::Close { code, reason } => {
                    self.finish_close(CloseReason::from_peer(code, reason), out);
                }
                Frame::Resumed { received }
                    if kind == LinkKind::Stream && self.role == Role::Client =>
                {
                    self.after_attach(now, LinkKind::Stream, Some(received), false, out);
                }
                Frame::Kcp(_) | Frame::Resume { .. } | Frame::Resumed { .. } => {
                    self.stats.drops.add(DropReason::Unexpected);
                }
            }
        }
    }

    fn malformed(&mut self, now: Instant, kind: LinkKind, error: DecodeError, out: &mut Outbox) {
        self.stats.drops.add(DropReason::Malformed);
        if kind == LinkKind::Stream {
            // A stream cannot lose or corrupt data by itself: the peer is broken.
            self.fail(
                now,
                CloseReason::ProtocolError(format!("malformed frame: {error}")),
                out,
            );
        }
    }

    fn live_mut(&mut self, kind: LinkKind) -> &mut Liveness {
        match kind {
            LinkKind::Datagram => &mut self.datagram.as_mut().expect("frame came from it").live,
            LinkKind::Stream => &mut self.stream.as_mut().expect("frame came from it").live,
        }
    }

    fn handle_kcp(&mut self, now: Instant, bytes: &[u8], out: &mut Outbox) {
        let Some(link) = self.datagram.as_mut() else {
            return;
        };
        if link.kcp.input(bytes).is_err() {
            self.stats.drops.add(DropReason::Malformed);
        }
        // Acknowledge KCP segments promptly.
        self.kcp_dirty = true;
        let mut message = Vec::new();
        loop {
            let Some(link) = self.datagram.as_mut() else {
                return;
            };
            if link.kcp.recv_into(&mut message).is_none() {
                return;
            }
            match Bunch::decode_exact(&message) {
                Ok(bunch) if bunch.is(flags::RELIABLE) => self.handle_reliable(now, bunch, out),
                Ok(_) | Err(_) => {
                    // Authenticated, so this is the peer's bug, not the network's.
                    self.fail(
                        now,
                        CloseReason::ProtocolError("bad reliable bunch inside KCP".into()),
                        out,
                    );
                    return;
                }
            }
            if self.state == State::Closed {
                return;
            }
        }
    }

    fn handle_reliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
        if self.role == Role::Server && self.refuse_before_login(now, bunch.channel, out) {
            return;
        }
        match self.reliable_rx.classify(bunch.sequence) {
            Arrival::Duplicate => {
                self.stats.drops.add(DropReason::Duplicate);
                // Our acknowledgement may have been lost: say it again soon.
                self.ack_repeat = true;
                self.ack_due.get_or_insert(now + self.config.ack_delay);
                return;
            }
            Arrival::Early => {
                let len = bunch.payload.len();
                if !self
                    .reliable_rx
                    .store(bunch.sequence, bunch.to_owned_bunch(), len)
                {
                    self.fail(
                        now,
                        CloseReason::ProtocolError("reliable reorder buffer overflow".into()),
                        out,
                    );
                }
                return;
            }
            Arrival::Next => {
                self.reliable_rx.advance();
                self.deliver_reliable(now, bunch, out);
            }
        }
        while self.state != State::Closed {
            let Some(stored) = self.reliable_rx.take_ready() else {
                break;
            };
            self.deliver_reliable(now, stored.as_bunch(), out);
        }
        if self.ack_due.is_none() {
            self.ack_due = Some(now + self.config.ack_delay);
        }
    }

    /// Game traffic from a peer whose login was not accepted (or, where the
    /// game asks for it, who has not joined) ends the session: nothing
    /// unauthenticated reaches the application. True when it did.
    fn refuse_before_login(&mut self, now: Instant, channel: u16, out: &mut Outbox) -> bool {
        if channel == CONTROL_CHANNEL {
            return false;
        }
        let allowed = if self.config.require_join && self.role == Role::Server {
            self.login.is_joined()
        } else {
            self.login.is_welcomed()
        };
        if allowed {
            return false;
        }
        self.stats.drops.add(DropReason::BeforeLogin);
        let step = if self.config.require_join {
            "join"
        } else {
            "login"
        };
        let why = format!("message on channel {channel} before the {step} was accepted");
        self.fail(now, CloseReason::ProtocolError(why), out);
        true
    }

    fn deliver_reliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
        if self.refuse_before_login(now, bunch.channel, out) {
            return;
        }
        if let Some((kind, delivery)) = bunch.open {
            if bunch.channel == CONTROL_CHANNEL {
                self.fail(
                    now,
                    CloseReason::ProtocolError("peer tried to open the control channel".into()),
                    out,
                );
                return;
            }
            self.channels.insert(
                bunch.channel,
                Channel::new(ChannelSpec::new(kind, delivery)),
            );
            out.events.push_back((
                self.id,
                Event::ChannelOpened {
                    channel: bunch.channel,
                    kind,
                    delivery,
                },
            ));
        }
        if bunch.is(flags::CLOSE) {
            if self.channels.remove(&bunch.channel).is_some() {
                out.events.push_back((
                    self.id,
                    Event::ChannelClosed {
                        channel: bunch.channel,
                    },
                ));
            }
            return;
        }
        if bunch.open.is_some() && bunch.payload.is_empty() && !bunch.is(flags::PARTIAL) {
            return;
        }
        if bunch.channel != CONTROL_CHANNEL && !self.channels.contains_key(&bunch.channel) {
            let why = format!(
                "reliable message on channel {} which is not open",
                bunch.channel
            );
            self.fail(now, CloseReason::ProtocolError(why), out);
            return;
        }
        let Some(message) = self.reassemble(&bunch) else {
            return;
        };
        if message.channel == CONTROL_CHANNEL {
            self.handle_control(now, &message.payload, out);
        } else {
            self.deliver(message, out);
        }
    }

    /// Feeds a bunch to reassembly, counting what it had to drop.
    fn reassemble(&mut self, bunch: &Bunch) -> Option<crate::reassembly::Message> {
        let (message, dropped) = self.reassembly.accept(bunch);
        if let Some(reason) = dropped {
            self.stats.drops.add(reason);
        }
        message
    }

    fn deliver(&mut self, message: crate::reassembly::Message, out: &mut Outbox) {
        self.stats.messages_in += 1;
        let event = Event::Message {
            channel: message.channel,
            payload: message.payload,
        };
        out.events.push_back((self.id, event));
    }

    fn handle_unreliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
        if self.role == Role::Server && self.refuse_before_login(now, bunch.channel, out) {
            return;
        }
        let Some(channel) = self.channels.get(&bunch.channel) else {
            self.stats.drops.add(DropReason::UnknownChannel);
            return;
        };
        if channel.spec.delivery.is_reliable() || bunch.open.is_some() || bunch.is(flags::CLOSE) {
            self.stats.drops.add(DropReason::Unexpected);
            return;
        }
        let Some(message) = self.reassemble(&bunch) else {
            return;
        };
        let channel = self
            .channels
            .get_mut(&bunch.channel)
            .expect("checked above");
        if channel.spec.delivery == Delivery::UnreliableSequenced {
            if channel
                .newest_delivered
                .is_some_and(|newest| message.sequence <= newest)
            {
                self.stats.drops.add(DropReason::Stale);
                return;
            }
            channel.newest_delivered = Some(message.sequence);
        }
        self.deliver(message, out);
    }

    fn handle_control(&mut self, now: Instant, payload: &[u8], out: &mut Outbox) {
        match crate::control::ControlMessage::decode(payload) {
            Ok(message) => login::handle(self, now, message, out),
            Err(error) => {
                self.stats.drops.add(DropReason::Malformed);
                self.fail(
                    now,
                    CloseReason::ProtocolError(format!("bad control message: {error}")),
                    out,
                );
            }
        }
    }

    // ---- output ------------------------------------------------------------

    /// Sends `payload` on an open channel with that channel's delivery mode.
    pub fn send(
        &mut self,
        now: Instant,
        channel: u16,
        payload: &[u8],
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        if payload.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.config.max_message_size,
            });
        }
        let spec = self
            .channels
            .get(&channel)
            .ok_or(SendError::ChannelNotOpen(channel))?
            .spec;
        if spec.delivery.is_reliable() {
            if self.reliable_tx.unacked_bytes() + payload.len() > self.config.max_unacked_bytes {
                return Err(SendError::Backpressure);
            }
            self.send_reliable(channel, 0, None, payload, spec.prefer_stream);
        } else {
            self.send_unreliable(channel, payload, spec.prefer_stream)?;
        }
        self.stats.messages_out += 1;
        self.flush(now, out);
        Ok(())
    }

    fn check_sendable(&self, channel: u16) -> Result<(), SendError> {
        match self.state {
            State::Closed | State::Draining { .. } => return Err(SendError::Closed),
            State::Active | State::Detached { .. } => {}
        }
        if !self.login.is_welcomed() {
            return Err(SendError::NotLoggedIn);
        }
        if channel == CONTROL_CHANNEL || channel > MAX_CHANNELS {
            return Err(SendError::BadChannel(channel));
        }
        Ok(())
    }

    /// Opens `channel` on both ends; the peer gets `Event::ChannelOpened`.
    pub fn open_channel(
        &mut self,
        now: Instant,
        channel: u16,
        spec: ChannelSpec,
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        if self.channels.contains_key(&channel) {
            return Err(SendError::ChannelAlreadyOpen(channel));
        }
        self.channels.insert(channel, Channel::new(spec));
        self.send_reliable(
            channel,
            flags::OPEN,
            Some((spec.kind, spec.delivery)),
            &[],
            spec.prefer_stream,
        );
        self.flush(now, out);
        Ok(())
    }

    pub fn close_channel(
        &mut self,
        now: Instant,
        channel: u16,
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        let spec = self
            .channels
            .remove(&channel)
            .ok_or(SendError::ChannelNotOpen(channel))?
            .spec;
        self.send_reliable(channel, flags::CLOSE, None, &[], spec.prefer_stream);
        self.flush(now, out);
        Ok(())
    }

    pub(crate) fn send_control(&mut self, message: &crate::control::ControlMessage) {
        let payload = message.to_vec();
        self.send_reliable(CONTROL_CHANNEL, 0, None, &payload, true);
    }

    fn reliable_part_size(&self) -> usize {
        let kcp_mss = self.config.max_datagram
            - crate::link::DATAGRAM_OVERHEAD
            - crate::link::KCP_FRAME_OVERHEAD
            - hearth_kcp::HEADER_LEN;
        kcp_mss - BUNCH_OVERHEAD
    }

    fn unreliable_part_size(&self) -> usize {
        self.config.max_datagram - crate::link::DATAGRAM_OVERHEAD - 1 - BUNCH_OVERHEAD
    }

    fn route(&self, prefer_stream: bool) -> Option<LinkKind> {
        match (self.datagram.is_some(), self.stream.is_some()) {
            (true, true) if prefer_stream => Some(LinkKind::Stream),
            (true, _) => Some(LinkKind::Datagram),
            (false, true) => Some(LinkKind::Stream),
            (false, false) => None,
        }
    }

    fn send_reliable(
        &mut self,
        channel: u16,
        extra: u8,
        open: Option<(ChannelKind, Delivery)>,
        payload: &[u8],
        prefer_stream: bool,
    ) {
        let route = self.route(prefer_stream);
        let parts = crate::reassembly::split(payload, self.reliable_part_size());
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            let sequence = self.reliable_tx.allocate();
            let bunch = Bunch {
                flags: flags::RELIABLE | extra | crate::reassembly::part_flags(index, count),
                channel,
                sequence,
                part: index as u32,
                open: if index == 0 { open } else { None },
                payload: part,
            };
            let mut encoded = Vec::with_capacity(bunch.encoded_len());
            bunch.encode(&mut encoded);
            if let Some(kind) = route {
                self.put_reliable_on(kind, &encoded);
            }
            // Kept until acknowledged, also when no link is up (resume sends it).
            self.reliable_tx.retain(sequence, encoded);
        }
    }

    fn send_unreliable(
        &mut self,
        channel: u16,
        payload: &[u8],
        prefer_stream: bool,
    ) -> Result<(), SendError> {
        let Some(route) = self.route(prefer_stream) else {
            return Ok(()); // Unreliable traffic without a link is simply lost.
        };
        let parts = crate::reassembly::split(payload, self.unreliable_part_size());
        let count = parts.len();
        let needed: usize = payload.len() + count * (BUNCH_OVERHEAD + 1);
        let live = match route {
            LinkKind::Datagram => &self.datagram.as_ref().expect("routed").live,
            LinkKind::Stream => &self.stream.as_ref().expect("routed").live,
        };
        if live.queued_bytes + needed > crate::link::MAX_QUEUED_BYTES {
            return Err(SendError::Backpressure);
        }
        let state = self.channels.get_mut(&channel).expect("caller checked");
        let sequence = state.next_unreliable;
        state.next_unreliable += 1;
        let mut frames = Vec::with_capacity(count);
        for (index, part) in parts.into_iter().enumerate() {
            let bunch = Bunch {
                flags: crate::reassembly::part_flags(index, count),
                channel,
                sequence,
                part: index as u32,
                open: None,
                payload: part,
            };
            let mut frame = Vec::with_capacity(bunch.encoded_len() + 1);
            Frame::Bunch(bunch).encode(&mut frame);
            frames.push(frame);
        }
        let live = match route {
            LinkKind::Datagram => &mut self.datagram.as_mut().expect("routed").live,
            LinkKind::Stream => &mut self.stream.as_mut().expect("routed").live,
        };
        for frame in frames {
            live.enqueue(frame, usize::MAX);
        }
        Ok(())
    }

    // ---- close -------------------------------------------------------------

    /// Graceful close: waits up to `close_linger` for reliable messages to be
    /// acknowledged, then tells the peer `code` and `reason`.
    pub fn close(&mut self, now: Instant, code: u16, reason: &str, out: &mut Outbox) {
        match self.state {
            State::Closed | State::Draining { .. } => return,
            State::Detached { .. } => {
                self.finish_close(CloseReason::Local { code }, out);
                return;
            }
            State::Active => {}
        }
        self.state = State::Draining {
            deadline: now + self.config.close_linger,
            code,
            reason: reason.to_owned(),
        };
        self.on_timeout(now, out);
    }

    /// Ends the session at once because of `reason`, telling the peer.
    pub(crate) fn fail(&mut self, now: Instant, reason: CloseReason, out: &mut Outbox) {
        if self.state == State::Closed {
            return;
        }
        let text = reason.wire_text();
        self.send_control(&crate::control::ControlMessage::Failure {
            code: reason.code(),
            reason: text.clone(),
        });
        self.closing_frame = Some((reason.code(), text));
        self.flush(now, out);
        self.finish_close(reason, out);
    }

    /// Marks the session closed and reports it; what is queued is sent.
    pub(crate) fn finish_close(&mut self, reason: CloseReason, out: &mut Outbox) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        if let Some(stream) = self.stream.take() {
            out.transmits
                .push_back(Transmit::CloseStream { stream: stream.id });
        }
        self.datagram = None;
        out.events.push_back((self.id, Event::Closed(reason)));
    }

    // ---- time --------------------------------------------------------------

    /// The earliest moment `on_timeout` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        };
        match &self.state {
            State::Closed => return None,
            State::Draining { deadline, .. } | State::Detached { deadline } => {
                consider(Some(*deadline))
            }
            State::Active => {}
        }
        consider(self.login.deadline());
        if self.datagram.is_some() || self.stream.is_some() {
            // An acknowledgement needs a link; without one it waits for the resume.
            consider(self.ack_due);
        }
        let interval = self.heartbeat_now();
        let idle = self.config.idle_timeout;
        if let Some(link) = &self.datagram {
            consider(Some(link.live.last_ping + interval));
            consider(Some(link.live.last_received + idle));
            consider(Some(link.kcp_due));
        }
        if let Some(link) = &self.stream {
            consider(Some(link.live.last_ping + interval));
            consider(Some(link.live.last_received + idle));
        }
        earliest
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Outbox) {
        match self.state.clone() {
            State::Closed => return,
            State::Detached { deadline } if now >= deadline => {
                self.finish_close(CloseReason::Timeout, out);
                return;
            }
            State::Draining {
                deadline,
                code,
                reason,
            } if self.reliable_tx.is_idle() || now >= deadline => {
                self.closing_frame = Some((code, reason));
                self.flush(now, out);
                self.finish_close(CloseReason::Local { code }, out);
                return;
            }
            _ => {}
        }
        if let Some(what) = self.login.expired(now) {
            self.fail(
                now,
                CloseReason::LoginTimeout(format!(
                    "no {what} within {:?}",
                    self.config.login_step_timeout
                )),
                out,
            );
            return;
        }
        let idle = self.config.idle_timeout;
        let interval = self.heartbeat_now();
        if let Some(link) = self.datagram.as_mut() {
            if now >= link.live.last_received + idle {
                self.lose_link(now, LinkKind::Datagram, out);
            } else if now >= link.live.last_ping + interval {
                link.live.ping_due = true;
            }
        }
        if let Some(link) = self.stream.as_mut() {
            if now >= link.live.last_received + idle {
                self.lose_link(now, LinkKind::Stream, out);
            } else if now >= link.live.last_ping + interval {
                link.live.ping_due = true;
            }
        }
        if self.state != State::Closed {
            self.flush(now, out);
        }
    }

    /// The heartbeat interval, shortened while a closing session waits for
    /// acknowledgements: each Ping makes the peer repeat its Ack, so a lost
    /// final Ack costs a probe interval instead of the whole linger.
    fn heartbeat_now(&self) -> Duration {
        match self.state {
            State::Draining { .. } if !self.reliable_tx.is_idle() => {
                CLOSE_PROBE_INTERVAL.min(self.config.heartbeat_interval)
            }
            _ => self.config.heartbeat_interval,
        }
    }

    pub(crate) fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.fill_bytes(&mut out);
        out
    }
}
