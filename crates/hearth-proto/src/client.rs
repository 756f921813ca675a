//! The client endpoint: one session, reached over a datagram handshake, a
//! stream, or both (the seed-000 TCP login with a UDP ticket).

use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::config::ClientConfig;
use crate::crypto::{secure_eq, InitialNumbers};
use crate::event::{CloseReason, Event, LinkKind, StreamId, Transmit};
use crate::handshake::{
    attach_proof, confirm_answer, handshake_transcript, kind, Cookie, HandshakePacket, Mode,
    Unconfirmed, PROTOCOL_VERSION, RESTART_RESPONSE_HEADER_LEN,
};
use crate::link::{DatagramCrypto, DatagramLink, Role};
use crate::session::{ChannelSpec, LoginParams, Outbox, SendError, Session, StreamResume};
use crate::stats::DropReason;
use crate::stream_handshake::{StreamAnswerError, StreamOpener, StreamRefusal};

/// The stream id a client uses for its single stream link.
pub const CLIENT_STREAM: StreamId = StreamId(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A new session over UDP.
    Connect,
    /// Add or replace the datagram link of a logged-in session (ticket, resume).
    Attach,
}

struct Handshake {
    server: SocketAddr,
    mode: Mode,
    purpose: Purpose,
    secret: StaticSecret,
    public: [u8; 32],
    cookie: Option<Cookie>,
    /// The resume count sent in the Response (bound into proof and keys).
    received: u64,
    packet: Vec<u8>,
    last_sent: Instant,
    started: Instant,
}

/// A stream key agreement in flight: StreamHello sent, Accept awaited.
struct StreamHandshakeState {
    opener: StreamOpener,
    purpose: Purpose,
    started: Instant,
}

pub struct Client {
    config: ClientConfig,
    rng: ChaCha20Rng,
    session: Session,
    handshake: Option<Handshake>,
    stream_handshake: Option<StreamHandshakeState>,
    server: Option<SocketAddr>,
    out: Outbox,
    scratch: Vec<u8>,
}

impl Client {
    pub fn new(config: ClientConfig, now: Instant, seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut session_seed = [0u8; 32];
        rng.fill_bytes(&mut session_seed);
        let mut session = Session::new(Role::Client, 0, config.session.clone(), now, session_seed);
        session.set_login_params(LoginParams {
            credentials: config.credentials.clone(),
            player_name: config.player_name.clone(),
            options: config.options.clone(),
            net_speed: config.net_speed,
        });
        if let Some(key) = config.server_key {
            session.proven_server_key = Some(key);
        }
        Self {
            config,
            rng,
            session,
            handshake: None,
            stream_handshake: None,
            server: None,
            out: Outbox::default(),
            scratch: Vec::new(),
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Starts a new session over UDP: Initial, resent until answered.
    pub fn connect_datagram(&mut self, now: Instant, server: SocketAddr) {
        self.start_handshake(now, server, Mode::New, Purpose::Connect);
    }

    /// Starts a new session over a stream the driver has connected: the
    /// stream key agreement first, then the login inside sealed packets.
    pub fn connect_stream(&mut self, now: Instant) {
        self.start_stream_handshake(now, Mode::New, Purpose::Connect);
    }

    /// Binds a datagram link to the logged-in session (the UDP ticket), or
    /// re-attaches one after the old link was lost (resume over UDP).
    pub fn attach_datagram(&mut self, now: Instant, server: SocketAddr) -> Result<(), SendError> {
        if !self.session.login_welcomed() || self.session.is_closed() {
            return Err(SendError::NotLoggedIn);
        }
        let mode = Mode::Attach {
            session_id: self.session.id(),
        };
        self.start_handshake(now, server, mode, Purpose::Attach);
        Ok(())
    }

    /// Re-attaches the session over a new stream connection (resume over TCP/WebSocket).
    pub fn resume_stream(&mut self, now: Instant) -> Result<(), SendError> {
        if !self.session.login_welcomed() || self.session.is_closed() {
            return Err(SendError::NotLoggedIn);
        }
        let mode = Mode::Attach {
            session_id: self.session.id(),
        };
        self.start_stream_handshake(now, mode, Purpose::Attach);
        Ok(())
    }

    fn start_stream_handshake(&mut self, now: Instant, mode: Mode, purpose: Purpose) {
        let opener = StreamOpener::new(&mut self.rng, mode);
        self.out.transmits.push_back(Transmit::Stream {
            stream: CLIENT_STREAM,
            bytes: opener.hello(),
        });
        self.stream_handshake = Some(StreamHandshakeState {
            opener,
            purpose,
            started: now,
        });
    }

    fn start_handshake(&mut self, now: Instant, server: SocketAddr, mode: Mode, purpose: Purpose) {
        let secret = StaticSecret::random_from_rng(&mut self.rng);
        let public = PublicKey::from(&secret).to_bytes();
        let packet = HandshakePacket::Initial {
            version: PROTOCOL_VERSION,
            mode,
            client_public: public,
        }
        .to_vec();
        self.server = Some(server);
        self.out.transmits.push_back(Transmit::Datagram {
            to: server,
            bytes: packet.clone(),
        });
        self.handshake = Some(Handshake {
            server,
            mode,
            purpose,
            secret,
            public,
            cookie: None,
            received: 0,
            packet,
            last_sent: now,
            started: now,
        });
    }

    // ---- driver interface ----------------------------------------------------

    /// The next datagram or stream packet to send; call it until `None`
    /// after handling input and sending (the session flushes here what those
    /// left it, so several sends in one turn share packets).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        // What an input or a send deferred (see `Session::defer_flush`).
        self.session.take_unlisted_flush();
        self.session.flush_if_deferred(&mut self.out);
        self.out.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front().map(|(_, event)| event)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self.handshake.as_ref().map(|h| {
            (h.last_sent + self.config.handshake_resend)
                .min(h.started + self.config.handshake_timeout)
        });
        let stream_handshake = self
            .stream_handshake
            .as_ref()
            .map(|h| h.started + self.config.handshake_timeout);
        [handshake, stream_handshake, self.session.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(handshake) = self.handshake.as_mut() {
            if now >= handshake.started + self.config.handshake_timeout {
                let purpose = handshake.purpose;
                self.handshake = None;
                self.handshake_failed(purpose, CloseReason::HandshakeTimeout);
            } else if now >= handshake.last_sent + self.config.handshake_resend {
                handshake.last_sent = now;
                let to = handshake.server;
                self.out.transmits.push_back(Transmit::Datagram {
                    to,
                    bytes: handshake.packet.clone(),
                });
            }
        }
        if self
            .stream_handshake
            .as_ref()
            .is_some_and(|h| now >= h.started + self.config.handshake_timeout)
        {
            let handshake = self.stream_handshake.take().expect("checked");
            self.stream_handshake_failed(handshake.purpose, CloseReason::HandshakeTimeout, false);
        }
        self.session.on_timeout(now, &mut self.out);
    }

    /// A stream handshake failed: a new session ends; a resume ends the
    /// session only when retrying cannot help (`fatal`: the server has no such
    /// session, speaks another version, or did not prove the pinned key), and
    /// otherwise leaves it to its other link or its grace window while the
    /// driver retries. A dropped connection or a busy server during a resume
    /// must not cost the player the session.
    fn stream_handshake_failed(&mut self, purpose: Purpose, reason: CloseReason, fatal: bool) {
        self.out.transmits.push_back(Transmit::CloseStream {
            stream: CLIENT_STREAM,
        });
        if purpose == Purpose::Connect || fatal {
            self.session.finish_close(reason, &mut self.out);
        }
    }

    fn handshake_failed(&mut self, purpose: Purpose, reason: CloseReason) {
        match purpose {
            Purpose::Connect => self.session.finish_close(reason, &mut self.out),
            // The stream (if any) carries on; the game does not notice.
            Purpose::Attach => self
                .out
                .events
                .push_back((self.session.id(), Event::DatagramUnavailable)),
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.server != Some(from) {
            self.session.stats.drops.add(DropReason::WrongAddress);
            return;
        }
        match datagram.first() {
            None => self.session.stats.drops.add(DropReason::Malformed),
            Some(&kind::PROTECTED) => {
                if self.session.datagram.is_none() {
                    self.session.stats.drops.add(DropReason::Unexpected);
                    return;
                }
                self.scratch.clear();
                self.scratch.extend_from_slice(datagram);
                self.session
                    .handle_datagram(now, &mut self.scratch, &mut self.out);
            }
            Some(_) => self.handle_handshake(now, datagram),
        }
    }

    pub fn handle_stream(&mut self, now: Instant, packet: &[u8]) {
        if self.stream_handshake.is_some() {
            return self.handle_stream_handshake(now, packet);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        self.session
            .handle_stream(now, &mut self.scratch, &mut self.out);
    }

    pub fn stream_closed(&mut self, now: Instant) {
        if let Some(handshake) = self.stream_handshake.take() {
            let why = "the server closed the connection during the stream handshake".to_owned();
            let reason = CloseReason::HandshakeRejected(why);
            return self.stream_handshake_failed(handshake.purpose, reason, false);
        }
        self.session.stream_lost(now, &mut self.out);
    }

    fn handle_stream_handshake(&mut self, now: Instant, packet: &[u8]) {
        let handshake = self.stream_handshake.take().expect("caller checked");
        let mode = handshake.opener.mode();
        let attach_secret =
            matches!(mode, Mode::Attach { .. }).then_some(self.session.attach_secret);
        let pinned = self.session.proven_server_key;
        let opened = match handshake
            .opener
            .finish(packet, pinned.as_ref(), attach_secret.as_ref())
        {
            Ok(opened) => opened,
            Err(error) => {
                let fatal = matches!(
                    error,
                    StreamAnswerError::Refused(StreamRefusal::UnknownSession)
                        | StreamAnswerError::VersionMismatch { .. }
                        | StreamAnswerError::WrongKey
                ) || (error == StreamAnswerError::NoProof && pinned.is_some());
                let reason = match error {
                    StreamAnswerError::WrongKey => CloseReason::ServerKeyMismatch,
                    StreamAnswerError::NoProof if pinned.is_some() => {
                        CloseReason::ServerKeyMismatch
                    }
                    StreamAnswerError::Refused(_) => {
                        CloseReason::HandshakeRejected(error.to_string())
                    }
                    StreamAnswerError::VersionMismatch { .. } => {
                        CloseReason::VersionMismatch(error.to_string())
                    }
                    StreamAnswerError::Malformed(_)
                    | StreamAnswerError::NoProof
                    | StreamAnswerError::Unexpected => {
                        self.session.stats.drops.add(DropReason::Malformed);
                        CloseReason::ProtocolError(error.to_string())
                    }
                };
                return self.stream_handshake_failed(handshake.purpose, reason, fatal);
            }
        };
        self.session.proven_server_key = Some(opened.server_key);
        match mode {
            Mode::New => {
                self.session.id = opened.session_id;
                self.session.attach_stream(
                    now,
                    CLIENT_STREAM,
                    opened.crypto,
                    StreamResume::No,
                    &mut self.out,
                );
            }
            Mode::Attach { session_id } => {
                if opened.session_id != session_id {
                    let why = "the server attached another session".to_owned();
                    return self
                        .session
                        .fail(now, CloseReason::ProtocolError(why), &mut self.out);
                }
                self.session.attach_stream(
                    now,
                    CLIENT_STREAM,
                    opened.crypto,
                    StreamResume::Request,
                    &mut self.out,
                );
            }
        }
    }

    fn handle_handshake(&mut self, now: Instant, datagram: &[u8]) {
        let Ok(packet) = HandshakePacket::decode(datagram) else {
            self.session.stats.drops.add(DropReason::Malformed);
            return;
        };
        match packet {
            HandshakePacket::Challenge { version, cookie } if version == PROTOCOL_VERSION => {
                let Some(handshake) = self.handshake.as_mut().filter(|h| h.cookie.is_none()) else {
                    // Answered already (a duplicate, or the answer to a resent
                    // Initial): a second Response would make a second session.
                    return self.session.stats.drops.add(DropReason::Duplicate);
                };
                let received = match handshake.mode {
                    Mode::New => 0,
                    Mode::Attach { .. } => self.session.reliable_received(),
                };
                let proof = match handshake.mode {
                    Mode::New => [0; 32],
                    Mode::Attach { .. } => attach_proof(
                        &self.session.attach_secret,
                        &cookie.mac,
                        &handshake.public,
                        received,
                    ),
                };
                handshake.received = received;
                let response = HandshakePacket::Response {
                    version: PROTOCOL_VERSION,
                    mode: handshake.mode,
                    client_public: handshake.public,
                    cookie,
                    proof,
                    received,
                };
                handshake.cookie = Some(cookie);
                handshake.packet = response.to_vec();
                handshake.last_sent = now;
                self.out.transmits.push_back(Transmit::Datagram {
                    to: handshake.server,
                    bytes: handshake.packet.clone(),
                });
            }
            HandshakePacket::Ack {
                cookie_mac,
                server_ephemeral,
                server_static,
                sealed,
                ..
            } => {
                self.handle_ack(now, cookie_mac, server_ephemeral, server_static, sealed);
            }
            HandshakePacket::VersionMismatch {
                server_version,
                client_version,
            } => {
                let Some(handshake) = self.handshake.take() else {
                    return;
                };
                let why = format!(
                    "upgrade required: the server speaks protocol version {server_version}, this client {client_version}"
                );
                self.handshake_failed(handshake.purpose, CloseReason::VersionMismatch(why));
            }
            HandshakePacket::Reject {
                cookie_mac, reason, ..
            } => {
                let matches = self
                    .handshake
                    .as_ref()
                    .and_then(|h| h.cookie)
                    .is_some_and(|c| c.mac == cookie_mac);
                if !matches {
                    return self.session.stats.drops.add(DropReason::Unexpected);
                }
                let handshake = self.handshake.take().expect("matched");
                self.handshake_failed(
                    handshake.purpose,
                    CloseReason::HandshakeRejected(format!("{reason:?}")),
                );
            }
            HandshakePacket::Restart {
                session_id, cookie, ..
            } => self.answer_restart(session_id, cookie),
            _ => self.session.stats.drops.add(DropReason::Unexpected),
        }
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        cookie_mac: [u8; 32],
        server_ephemeral: [u8; 32],
        server_static: [u8; 32],
        sealed: [u8; 32],
    ) {
        let Some(handshake) = self.handshake.as_ref() else {
            // A repeated Ack after the link is up.
            return self.session.stats.drops.add(DropReason::Duplicate);
        };
        if handshake.cookie.is_none_or(|c| c.mac != cookie_mac) {
            return self.session.stats.drops.add(DropReason::Unexpected);
        }
        let handshake = self.handshake.as_ref().expect("checked above");
        let transcript = handshake_transcript(
            &cookie_mac,
            &handshake.public,
            &server_ephemeral,
            &server_static,
            handshake.mode,
            handshake.received,
        );
        let attach_secret =
            matches!(handshake.mode, Mode::Attach { .. }).then_some(self.session.attach_secret);
        let pinned = self.session.proven_server_key;
        let (keys, body) = match confirm_answer(
            &handshake.secret,
            server_ephemeral,
            server_static,
            sealed,
            pinned.as_ref(),
            attach_secret.as_ref(),
            &transcript,
        ) {
            Ok(confirmed) => confirmed,
            Err(Unconfirmed::WrongKey) => {
                self.handshake = None;
                return self
                    .session
                    .finish_close(CloseReason::ServerKeyMismatch, &mut self.out);
            }
            Err(Unconfirmed::NoProof) if pinned.is_some() => {
                // Pinned key, but the peer could not prove it holds it.
                self.handshake = None;
                return self
                    .session
                    .finish_close(CloseReason::ServerKeyMismatch, &mut self.out);
            }
            // Not from the server we talk to (forged); the real Ack may follow.
            Err(Unconfirmed::NoProof) => {
                return self.session.stats.drops.add(DropReason::AuthFailed)
            }
        };
        let handshake = self.handshake.take().expect("checked above");
        if let Mode::Attach { session_id } = handshake.mode {
            if body.session_id != session_id {
                let why = "the server attached another session".to_owned();
                return self
                    .session
                    .fail(now, CloseReason::ProtocolError(why), &mut self.out);
            }
        }
        self.session.id = body.session_id;
        self.session.proven_server_key = Some(server_static);
        let numbers = InitialNumbers::from_cookie(&cookie_mac);
        let crypto = DatagramCrypto::new(
            Role::Client,
            body.session_id,
            &keys,
            numbers.client_packet,
            numbers.server_packet,
        );
        let link = DatagramLink::new(
            now,
            handshake.server,
            crypto,
            numbers.kcp_conv,
            self.config.session.max_datagram,
            self.config.session.kcp_window,
        );
        let peer_received = (handshake.purpose == Purpose::Attach).then_some(body.received);
        self.session
            .attach_datagram(now, link, peer_received, &mut self.out);
    }

    /// The server saw us at a new address and asks us to prove we hold the keys.
    fn answer_restart(&mut self, session_id: u64, cookie: Cookie) {
        let Some(link) = self.session.datagram.as_mut() else {
            return self.session.stats.drops.add(DropReason::Unexpected);
        };
        if session_id != self.session.id {
            return self.session.stats.drops.add(DropReason::UnknownSession);
        }
        let packet_number = link.crypto.take_packet_number();
        let mut packet = HandshakePacket::RestartResponse {
            version: PROTOCOL_VERSION,
            session_id,
            cookie,
            packet_number,
            tag: [0; 16],
        }
        .to_vec();
        packet.truncate(RESTART_RESPONSE_HEADER_LEN);
        link.crypto
            .send_key()
            .seal(packet_number, &mut packet, RESTART_RESPONSE_HEADER_LEN);
        let to = link.peer;
        self.out
            .transmits
            .push_back(Transmit::Datagram { to, bytes: packet });
    }

    // ---- application interface ----------------------------------------------

    pub fn send(&mut self, now: Instant, channel: u16, payload: &[u8]) -> Result<(), SendError> {
        self.session.send(now, channel, payload, &mut self.out)
    }

    pub fn open_channel(
        &mut self,
        now: Instant,
        channel: u16,
        spec: ChannelSpec,
    ) -> Result<(), SendError> {
        self.session.open_channel(now, channel, spec, &mut self.out)
    }

    pub fn close_channel(&mut self, now: Instant, channel: u16) -> Result<(), SendError> {
        self.session.close_channel(now, channel, &mut self.out)
    }

    pub fn close(&mut self, now: Instant, code: u16, reason: &str) {
        self.session.close(now, code, reason, &mut self.out);
    }

    /// The link the next handshake or resume should use, for drivers.
    pub fn is_handshaking(&self) -> bool {
        self.handshake.is_some()
    }

    pub fn has_link(&self, kind: LinkKind) -> bool {
        self.session.has_link(kind)
    }

    /// The server key proven in the handshake or learned from Welcome.
    pub fn server_key(&self) -> Option<[u8; 32]> {
        self.session.proven_server_key
    }

    /// Constant-time check, for drivers comparing keys from configuration.
    pub fn server_key_is(&self, key: &[u8; 32]) -> bool {
        self.session
            .proven_server_key
            .is_some_and(|k| secure_eq(&k, key))
    }
}
