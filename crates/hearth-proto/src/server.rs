//! The server endpoint: answers handshakes statelessly, owns the sessions,
//! routes datagrams and stream packets to them, and keeps their timers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::config::ServerConfig;
use crate::cookie::{CookieError, CookieSecrets, MAX_COOKIE_AGE_MS};
use crate::crypto::{secure_eq, InitialNumbers, PacketKey, SessionKeys};
use crate::event::{Event, StreamId, Transmit};
use crate::frame::Frame;
use crate::handshake::{
    attach_proof, cookie_params, handshake_transcript, kind, restart_params, AckBody,
    HandshakePacket, Mode, ProtectedHeader, RejectReason, PROTOCOL_VERSION,
    RESTART_RESPONSE_HEADER_LEN,
};
use crate::link::{DatagramCrypto, DatagramLink, Role};
use crate::session::login::Welcome;
use crate::session::{ChannelSpec, Outbox, SendError, Session, StreamResume};
use crate::stats::{DropReason, EndpointStats};

/// The server's long-term X25519 key. Clients may pin its public half.
#[derive(Clone)]
pub struct ServerIdentity {
    secret: StaticSecret,
}

impl ServerIdentity {
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self {
            secret: StaticSecret::from(secret),
        }
    }

    pub fn generate(seed: [u8; 32]) -> Self {
        Self {
            secret: StaticSecret::random_from_rng(ChaCha20Rng::from_seed(seed)),
        }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.secret).to_bytes()
    }
}

/// How much the server holds, for proving that floods cost nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSize {
    pub sessions: usize,
    pub completed_handshakes: usize,
    pub pending_streams: usize,
    pub queued_transmits: usize,
    pub queued_events: usize,
    pub timers: usize,
}

struct CompletedHandshake {
    session_id: u64,
    ack: Vec<u8>,
    expires: Instant,
}

pub struct Server {
    config: ServerConfig,
    epoch: Instant,
    rng: ChaCha20Rng,
    identity: ServerIdentity,
    identity_public: [u8; 32],
    cookies: CookieSecrets,
    sessions: HashMap<u64, Session>,
    /// Responses already answered, so a resent Response gets the same Ack
    /// instead of a second session. Expires with the cookie.
    completed: HashMap<[u8; 32], CompletedHandshake>,
    completed_order: VecDeque<(Instant, [u8; 32])>,
    streams: HashMap<StreamId, u64>,
    pending_streams: HashMap<StreamId, Instant>,
    pending_order: VecDeque<(Instant, StreamId)>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    scheduled: HashMap<u64, Instant>,
    out: Outbox,
    stats: EndpointStats,
    scratch: Vec<u8>,
}

impl Server {
    pub fn new(
        config: ServerConfig,
        identity: ServerIdentity,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let cookies = CookieSecrets::new(&mut rng, 0);
        let identity_public = identity.public_key();
        Self {
            config,
            epoch: now,
            rng,
            identity,
            identity_public,
            cookies,
            sessions: HashMap::new(),
            completed: HashMap::new(),
            completed_order: VecDeque::new(),
            streams: HashMap::new(),
            pending_streams: HashMap::new(),
            pending_order: VecDeque::new(),
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            out: Outbox::default(),
            stats: EndpointStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.identity_public
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    pub fn session(&self, id: u64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn session_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.sessions.keys().copied()
    }

    pub fn state_size(&self) -> StateSize {
        StateSize {
            sessions: self.sessions.len(),
            completed_handshakes: self.completed.len(),
            pending_streams: self.pending_streams.len(),
            queued_transmits: self.out.transmits.len(),
            queued_events: self.out.events.len(),
            timers: self.timers.len(),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn drop(&mut self, reason: DropReason) {
        self.stats.drops.add(reason);
    }

    /// Queues a stateless reply, unless the queue is full.
    fn reply(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.out.transmits.len() >= self.config.max_queued_replies {
            self.drop(DropReason::ReplyQueueFull);
            return;
        }
        self.out
            .transmits
            .push_back(Transmit::Datagram { to, bytes });
    }

    // ---- driver interface ----------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.out.transmits.pop_front()?;
        if let Transmit::Datagram { bytes, .. } = &transmit {
            self.stats.datagrams_out += 1;
            self.stats.bytes_out += bytes.len() as u64;
        }
        Some(transmit)
    }

    pub fn poll_event(&mut self) -> Option<(u64, Event)> {
        self.out.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let rotation =
            self.epoch + std::time::Duration::from_millis(self.cookies.next_rotation_ms());
        let mut earliest = rotation;
        if let Some(Reverse((at, _))) = self.timers.peek() {
            earliest = earliest.min(*at);
        }
        if let Some((at, _)) = self.pending_order.front() {
            earliest = earliest.min(*at + self.config.session.login_step_timeout);
        }
        if let Some((at, _)) = self.completed_order.front() {
            earliest = earliest.min(*at);
        }
        Some(earliest)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.now_ms(now);
        self.cookies.maintain(&mut self.rng, now_ms);
        while let Some((opened, stream)) = self.pending_order.front().copied() {
            if now < opened + self.config.session.login_step_timeout {
                break;
            }
            self.pending_order.pop_front();
            if self.pending_streams.get(&stream) == Some(&opened) {
                // Connected and said nothing: the login deadline.
                self.pending_streams.remove(&stream);
                self.out
                    .transmits
                    .push_back(Transmit::CloseStream { stream });
            }
        }
        while let Some((expires, mac)) = self.completed_order.front().copied() {
            if now < expires {
                break;
            }
            self.completed_order.pop_front();
            if self.completed.get(&mac).is_some_and(|c| c.expires <= now) {
                self.completed.remove(&mac);
            }
        }
        // Collect first, so a session due again at once waits for the next call
        // instead of spinning here.
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.scheduled.get(&id) == Some(&at) {
                self.scheduled.remove(&id);
                due.push(id);
            }
            // Otherwise superseded by an earlier deadline.
        }
        for id in due {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.on_timeout(now, &mut self.out);
            }
            self.touch(now, id);
        }
        if self.timers.len() > 8 * self.sessions.len() + 1024 {
            self.rebuild_timers();
        }
    }

    fn rebuild_timers(&mut self) {
        self.timers = self
            .scheduled
            .iter()
            .map(|(id, at)| Reverse((*at, *id)))
            .collect();
    }

    /// After anything touched a session: drop it if closed, else (re)arm its timer.
    fn touch(&mut self, now: Instant, id: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        if session.is_closed() {
            self.remove_session(id);
            return;
        }
        let Some(deadline) = session.next_deadline() else {
            return;
        };
        let deadline = deadline.max(now);
        match self.scheduled.get(&id) {
            Some(at) if *at <= deadline && *at > now => {}
            _ => {
                self.scheduled.insert(id, deadline);
                self.timers.push(Reverse((deadline, id)));
            }
        }
    }

    fn remove_session(&mut self, id: u64) {
        if self.sessions.remove(&id).is_some() {
            self.stats.sessions_closed += 1;
        }
        self.scheduled.remove(&id);
        self.streams.retain(|_, session| *session != id);
        self.completed.retain(|_, c| c.session_id != id);
    }

    // ---- datagrams -----------------------------------------------------------

    pub fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        match datagram.first() {
            None => self.drop(DropReason::Malformed),
            Some(&kind::PROTECTED) => self.handle_protected(now, from, datagram),
            Some(_) => self.handle_handshake(now, from, datagram),
        }
    }

    fn handle_protected(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(header) = ProtectedHeader::decode(datagram) else {
            return self.drop(DropReason::Malformed);
        };
        let Some(session) = self.sessions.get_mut(&header.session_id) else {
            return self.drop(DropReason::UnknownSession);
        };
        let Some(link) = session.datagram.as_mut() else {
            return self.drop(DropReason::Unexpected);
        };
        if link.peer == from {
            self.scratch.clear();
            self.scratch.extend_from_slice(datagram);
            session.handle_datagram(now, &mut self.scratch, &mut self.out);
            return self.touch(now, header.session_id);
        }
        // A datagram for a known session from a new address: if it is
        // authentic, challenge the new address (the client's NAT mapping or
        // network changed). Nothing from it is delivered before the proof.
        if !link.crypto.is_authentic(datagram) {
            session.stats.drops.add(DropReason::AuthFailed);
            return self.drop(DropReason::WrongAddress);
        }
        if link
            .last_restart
            .is_some_and(|at| now < at + self.config.restart_interval)
        {
            return self.drop(DropReason::RebindRateLimited);
        }
        let cookie = self.cookies.mint(
            self.now_ms(now),
            &from,
            &[&restart_params(header.session_id)],
        );
        let restart = HandshakePacket::Restart {
            version: PROTOCOL_VERSION,
            session_id: header.session_id,
            cookie,
        };
        let bytes = restart.to_vec();
        if bytes.len() > datagram.len() {
            return self.drop(DropReason::AmplificationLimit);
        }
        let session = self
            .sessions
            .get_mut(&header.session_id)
            .expect("found above");
        session.datagram.as_mut().expect("found above").last_restart = Some(now);
        self.stats.restarts_sent += 1;
        self.drop(DropReason::WrongAddress);
        self.reply(from, bytes);
    }

    fn handle_handshake(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let packet = match HandshakePacket::decode(datagram) {
            Ok(packet) => packet,
            Err(_) => return self.drop(DropReason::Malformed),
        };
        match packet {
            HandshakePacket::Initial {
                version,
                mode,
                client_public,
            } => {
                if version != PROTOCOL_VERSION {
                    self.drop(DropReason::VersionMismatch);
                    let answer = HandshakePacket::VersionMismatch {
                        server_version: PROTOCOL_VERSION,
                        client_version: version,
                    };
                    return self.reply(from, answer.to_vec());
                }
                let params = cookie_params(version, mode, &client_public);
                let cookie = self.cookies.mint(self.now_ms(now), &from, &[&params]);
                self.stats.challenges_sent += 1;
                self.reply(
                    from,
                    HandshakePacket::Challenge { version, cookie }.to_vec(),
                );
            }
            HandshakePacket::Response {
                version,
                mode,
                client_public,
                cookie,
                proof,
                received,
            } => {
                if version != PROTOCOL_VERSION {
                    return self.drop(DropReason::VersionMismatch);
                }
                let params = cookie_params(version, mode, &client_public);
                if let Err(error) =
                    self.cookies
                        .verify(self.now_ms(now), &cookie, &from, &[&params])
                {
                    return self.drop(cookie_drop(error));
                }
                self.complete_handshake(
                    now,
                    from,
                    mode,
                    client_public,
                    cookie.mac,
                    proof,
                    received,
                );
            }
            HandshakePacket::RestartResponse {
                session_id,
                cookie,
                packet_number,
                tag,
                ..
            } => {
                let params = restart_params(session_id);
                if let Err(error) =
                    self.cookies
                        .verify(self.now_ms(now), &cookie, &from, &[&params])
                {
                    return self.drop(cookie_drop(error));
                }
                self.rebind(
                    now,
                    from,
                    session_id,
                    packet_number,
                    &datagram[..RESTART_RESPONSE_HEADER_LEN],
                    tag,
                );
            }
            _ => self.drop(DropReason::Unexpected),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn complete_handshake(
        &mut self,
        now: Instant,
        from: SocketAddr,
        mode: Mode,
        client_public: [u8; 32],
        cookie_mac: [u8; 32],
        proof: [u8; 32],
        received: u64,
    ) {
        if let Some(done) = self.completed.get(&cookie_mac) {
            // The client did not get our Ack: say it again, create nothing.
            let ack = done.ack.clone();
            return self.reply(from, ack);
        }
        let reject = |server: &mut Self, reason: RejectReason, drop: DropReason| {
            server.drop(drop);
            let packet = HandshakePacket::Reject {
                version: PROTOCOL_VERSION,
                cookie_mac,
                reason,
            };
            server.reply(from, packet.to_vec());
        };
        let attach_secret = match mode {
            Mode::New => {
                if self.sessions.len() >= self.config.max_sessions {
                    return reject(self, RejectReason::ServerFull, DropReason::ServerFull);
                }
                None
            }
            Mode::Attach { session_id } => {
                let Some(session) = self.sessions.get(&session_id).filter(|s| !s.is_closed())
                else {
                    return reject(
                        self,
                        RejectReason::UnknownSession,
                        DropReason::UnknownSession,
                    );
                };
                if !secure_eq(
                    &attach_proof(&session.attach_secret, &cookie_mac, &client_public),
                    &proof,
                ) {
                    return reject(self, RejectReason::BadProof, DropReason::BadProof);
                }
                Some(session.attach_secret)
            }
        };
        let ephemeral = StaticSecret::random_from_rng(&mut self.rng);
        let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
        let client_key = PublicKey::from(client_public);
        let ephemeral_dh = ephemeral.diffie_hellman(&client_key);
        let static_dh = self.identity.secret.diffie_hellman(&client_key);
        if !ephemeral_dh.was_contributory() || !static_dh.was_contributory() {
            // A low-order client key would make the shared secret predictable.
            return self.drop(DropReason::Malformed);
        }
        let transcript = handshake_transcript(
            &cookie_mac,
            &client_public,
            &ephemeral_public,
            &self.identity_public,
            mode,
        );
        let keys = SessionKeys::derive(
            ephemeral_dh.as_bytes(),
            static_dh.as_bytes(),
            attach_secret.as_ref(),
            &transcript,
        );
        let session_id = match mode {
            Mode::New => {
                let id = self.fresh_session_id();
                let mut seed = [0u8; 32];
                self.rng.fill_bytes(&mut seed);
                let session =
                    Session::new(Role::Server, id, self.config.session.clone(), now, seed);
                self.sessions.insert(id, session);
                self.stats.sessions_opened += 1;
                id
            }
            Mode::Attach { session_id } => session_id,
        };
        let session = self
            .sessions
            .get_mut(&session_id)
            .expect("created or found above");
        let body = AckBody {
            session_id,
            received: session.reliable_received(),
        };
        let mut sealed = body.to_bytes().to_vec();
        PacketKey::new(&keys.confirm).seal(0, &mut sealed, 0);
        let ack = HandshakePacket::Ack {
            version: PROTOCOL_VERSION,
            cookie_mac,
            server_ephemeral: ephemeral_public,
            server_static: self.identity_public,
            sealed: sealed.try_into().expect("16 bytes + tag"),
        }
        .to_vec();
        // The Ack goes before anything the session sends on the new link.
        self.out.transmits.push_back(Transmit::Datagram {
            to: from,
            bytes: ack.clone(),
        });
        let numbers = InitialNumbers::from_cookie(&cookie_mac);
        let crypto = DatagramCrypto::new(
            Role::Server,
            session_id,
            &keys,
            numbers.server_packet,
            numbers.client_packet,
        );
        let link = DatagramLink::new(
            now,
            from,
            crypto,
            numbers.kcp_conv,
            self.config.session.max_datagram,
            self.config.session.kcp_window,
        );
        let peer_received = matches!(mode, Mode::Attach { .. }).then_some(received);
        session.attach_datagram(now, link, peer_received, &mut self.out);
        let expires = now + std::time::Duration::from_millis(MAX_COOKIE_AGE_MS);
        self.completed.insert(
            cookie_mac,
            CompletedHandshake {
                session_id,
                ack,
                expires,
            },
        );
        self.completed_order.push_back((expires, cookie_mac));
        self.stats.handshakes_completed += 1;
        self.touch(now, session_id);
    }

    fn fresh_session_id(&mut self) -> u64 {
        loop {
            let id = self.rng.next_u64();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn rebind(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session_id: u64,
        packet_number: u64,
        header: &[u8],
        tag: [u8; 16],
    ) {
        let rebind_interval = self.config.rebind_interval;
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return self.drop(DropReason::UnknownSession);
        };
        let Some(link) = session.datagram.as_mut() else {
            return self.drop(DropReason::Unexpected);
        };
        if link.peer == from {
            return; // already rebound by an earlier copy
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
            session.stats.drops.add(DropReason::AuthFailed);
            return self.drop(DropReason::AuthFailed);
        }
        if link
            .last_rebind
            .is_some_and(|at| now < at + rebind_interval)
        {
            return self.drop(DropReason::RebindRateLimited);
        }
        if let Err(reason) = link.crypto.accept_number(packet_number) {
            return self.drop(reason);
        }
        let old = std::mem::replace(&mut link.peer, from);
        link.last_rebind = Some(now);
        link.live.last_received = now;
        link.live.ping_due = true;
        session.stats.migrations += 1;
        self.stats.rebinds += 1;
        self.out.events.push_back((
            session_id,
            Event::Migrated {
                from: old,
                to: from,
            },
        ));
        session.flush(now, &mut self.out);
        self.touch(now, session_id);
    }

    // ---- streams -------------------------------------------------------------

    /// The driver accepted a stream connection (TCP or WebSocket).
    pub fn stream_opened(&mut self, now: Instant, stream: StreamId) {
        if self.pending_streams.len() >= self.config.max_pending_streams
            || self.sessions.len() >= self.config.max_sessions
        {
            self.drop(DropReason::ServerFull);
            self.out
                .transmits
                .push_back(Transmit::CloseStream { stream });
            return;
        }
        self.pending_streams.insert(stream, now);
        self.pending_order.push_back((now, stream));
    }

    /// One stream packet arrived.
    pub fn handle_stream(&mut self, now: Instant, stream: StreamId, packet: &[u8]) {
        if let Some(&id) = self.streams.get(&stream) {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.handle_stream(now, packet, &mut self.out);
            }
            return self.touch(now, id);
        }
        if self.pending_streams.remove(&stream).is_none() {
            return self.drop(DropReason::Unexpected);
        }
        let mut reader = crate::codec::Reader::new(packet);
        match Frame::decode(&mut reader) {
            Ok(Frame::Resume {
                session_id,
                token,
                received,
            }) => {
                let rest = reader.rest();
                self.resume_stream(now, stream, session_id, token, received, rest);
            }
            Ok(_) => {
                if self.sessions.len() >= self.config.max_sessions {
                    self.drop(DropReason::ServerFull);
                    self.out
                        .transmits
                        .push_back(Transmit::CloseStream { stream });
                    return;
                }
                let id = self.fresh_session_id();
                let mut seed = [0u8; 32];
                self.rng.fill_bytes(&mut seed);
                let mut session =
                    Session::new(Role::Server, id, self.config.session.clone(), now, seed);
                session.attach_stream(now, stream, StreamResume::No, &mut self.out);
                session.handle_stream(now, packet, &mut self.out);
                self.sessions.insert(id, session);
                self.streams.insert(stream, id);
                self.stats.sessions_opened += 1;
                self.touch(now, id);
            }
            Err(_) => {
                self.drop(DropReason::Malformed);
                self.out
                    .transmits
                    .push_back(Transmit::CloseStream { stream });
            }
        }
    }

    fn resume_stream(
        &mut self,
        now: Instant,
        stream: StreamId,
        id: u64,
        token: [u8; 32],
        received: u64,
        rest: &[u8],
    ) {
        let refused = match self.sessions.get(&id) {
            None => Some(DropReason::UnknownSession),
            Some(session) if session.is_closed() => Some(DropReason::UnknownSession),
            Some(session) if !secure_eq(&session.attach_secret, &token) => {
                Some(DropReason::BadProof)
            }
            Some(_) => None,
        };
        if let Some(reason) = refused {
            self.drop(reason);
            self.out
                .transmits
                .push_back(Transmit::CloseStream { stream });
            return;
        }
        let session = self.sessions.get_mut(&id).expect("checked");
        session.attach_stream(
            now,
            stream,
            StreamResume::Answer {
                peer_received: received,
            },
            &mut self.out,
        );
        if !rest.is_empty() {
            session.handle_stream(now, rest, &mut self.out);
        }
        self.streams.retain(|_, session| *session != id);
        self.streams.insert(stream, id);
        self.touch(now, id);
    }

    /// The driver saw a stream connection end.
    pub fn stream_closed(&mut self, now: Instant, stream: StreamId) {
        self.pending_streams.remove(&stream);
        let Some(id) = self.streams.remove(&stream) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&id) {
            if session
                .stream
                .as_ref()
                .is_some_and(|link| link.id == stream)
            {
                session.stream_lost(now, &mut self.out);
            }
        }
        self.touch(now, id);
    }

    // ---- application interface ----------------------------------------------

    fn with_session<T>(
        &mut self,
        now: Instant,
        id: u64,
        act: impl FnOnce(&mut Session, &mut Outbox) -> T,
    ) -> Option<T> {
        let session = self.sessions.get_mut(&id)?;
        let result = act(session, &mut self.out);
        self.touch(now, id);
        Some(result)
    }

    pub fn send(
        &mut self,
        now: Instant,
        id: u64,
        channel: u16,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.send(now, channel, payload, out))
            .unwrap_or(Err(SendError::Closed))
    }

    pub fn open_channel(
        &mut self,
        now: Instant,
        id: u64,
        channel: u16,
        spec: ChannelSpec,
    ) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.open_channel(now, channel, spec, out))
            .unwrap_or(Err(SendError::Closed))
    }

    pub fn close_channel(&mut self, now: Instant, id: u64, channel: u16) -> Result<(), SendError> {
        self.with_session(now, id, |s, out| s.close_channel(now, channel, out))
            .unwrap_or(Err(SendError::Closed))
    }

    /// The pre-login hook accepts: Welcome goes out naming `map` (or the default).
    pub fn accept_login(&mut self, now: Instant, id: u64, map: Option<&str>) -> bool {
        let welcome = Welcome {
            map: map.unwrap_or(&self.config.default_map).to_owned(),
            ticket_port: self.config.udp_ticket_port,
            server_key: self.identity_public,
        };
        self.with_session(now, id, |s, out| s.accept_login(now, welcome, out))
            .unwrap_or(false)
    }

    /// The pre-login hook refuses: the client gets Failure with `reason`.
    pub fn refuse_login(&mut self, now: Instant, id: u64, reason: &str) -> bool {
        self.with_session(now, id, |s, out| s.refuse_login(now, reason, out))
            .unwrap_or(false)
    }

    /// Graceful close (use `close_code::KICKED` to kick).
    pub fn close(&mut self, now: Instant, id: u64, code: u16, reason: &str) {
        self.with_session(now, id, |s, out| s.close(now, code, reason, out));
    }
}

fn cookie_drop(error: CookieError) -> DropReason {
    match error {
        CookieError::Expired => DropReason::CookieExpired,
        CookieError::FromTheFuture | CookieError::BadMac => DropReason::CookieInvalid,
    }
}
