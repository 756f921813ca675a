//! Datagrams: the stateless cookie handshake (Initial -> Challenge ->
//! Response -> Ack), routing of protected datagrams to their session, and
//! the restart challenge when a session's client appears at a new address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{AddressPrefix, CompletedHandshake, Server};
use crate::cookie::{CookieError, MAX_COOKIE_AGE_MS};
use crate::crypto::{secure_eq, InitialNumbers};
use crate::event::Transmit;
use crate::handshake::{
    attach_proof, cookie_params, handshake_transcript, kind, restart_params, AckBody, Cookie,
    HandshakePacket, Mode, ProtectedHeader, RejectReason, PROTOCOL_VERSION,
    RESTART_RESPONSE_HEADER_LEN,
};
use crate::link::{DatagramCrypto, DatagramLink, Role};
use crate::stats::DropReason;

/// A Response whose cookie checked out, on its way to becoming a link.
struct VerifiedResponse {
    from: SocketAddr,
    mode: Mode,
    client_public: [u8; 32],
    cookie_mac: [u8; 32],
    cookie_timestamp: u64,
    proof: [u8; 32],
    received: u64,
}

impl Server {
    pub fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        match datagram.first() {
            None => self.count_drop(DropReason::Malformed),
            Some(&kind::PROTECTED) => self.handle_protected(now, from, datagram),
            Some(_) => self.handle_handshake(now, from, datagram),
        }
    }

    fn handle_protected(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(header) = ProtectedHeader::decode(datagram) else {
            return self.count_drop(DropReason::Malformed);
        };
        let Some(session) = self.sessions.get_mut(&header.session_id) else {
            return self.count_drop(DropReason::UnknownSession);
        };
        let Some(link) = session.datagram.as_mut() else {
            return self.count_drop(DropReason::Unexpected);
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
            return self.count_drop(DropReason::WrongAddress);
        }
        if link
            .last_restart
            .is_some_and(|at| now < at + self.config.restart_interval)
        {
            return self.count_drop(DropReason::RebindRateLimited);
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
            return self.count_drop(DropReason::AmplificationLimit);
        }
        let session = self
            .sessions
            .get_mut(&header.session_id)
            .expect("found above");
        session.datagram.as_mut().expect("found above").last_restart = Some(now);
        self.stats.restarts_sent += 1;
        self.count_drop(DropReason::WrongAddress);
        self.reply(from, bytes);
    }

    fn handle_handshake(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let packet = match HandshakePacket::decode(datagram) {
            Ok(packet) => packet,
            Err(_) => return self.count_drop(DropReason::Malformed),
        };
        match packet {
            HandshakePacket::Initial {
                version,
                mode,
                client_public,
            } => {
                if version != PROTOCOL_VERSION {
                    self.count_drop(DropReason::VersionMismatch);
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
                    return self.count_drop(DropReason::VersionMismatch);
                }
                if !self.cookie_valid(
                    now,
                    &cookie,
                    from,
                    &cookie_params(version, mode, &client_public),
                ) {
                    return;
                }
                let response = VerifiedResponse {
                    from,
                    mode,
                    client_public,
                    cookie_mac: cookie.mac,
                    cookie_timestamp: cookie.timestamp,
                    proof,
                    received,
                };
                self.complete_handshake(now, response);
            }
            HandshakePacket::RestartResponse {
                session_id,
                cookie,
                packet_number,
                tag,
                ..
            } => {
                if !self.cookie_valid(now, &cookie, from, &restart_params(session_id)) {
                    return;
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
            _ => self.count_drop(DropReason::Unexpected),
        }
    }

    fn cookie_valid(
        &mut self,
        now: Instant,
        cookie: &Cookie,
        from: SocketAddr,
        params: &[u8],
    ) -> bool {
        match self
            .cookies
            .verify(self.now_ms(now), cookie, &from, &[params])
        {
            Ok(()) => true,
            Err(error) => {
                self.count_drop(cookie_drop(error));
                false
            }
        }
    }

    fn reject(
        &mut self,
        to: SocketAddr,
        cookie_mac: [u8; 32],
        reason: RejectReason,
        drop: DropReason,
    ) {
        self.count_drop(drop);
        let packet = HandshakePacket::Reject {
            version: PROTOCOL_VERSION,
            cookie_mac,
            reason,
        };
        self.reply(to, packet.to_vec());
    }

    fn complete_handshake(&mut self, now: Instant, response: VerifiedResponse) {
        let VerifiedResponse {
            from,
            mode,
            client_public,
            cookie_mac,
            cookie_timestamp,
            proof,
            received,
        } = response;
        if let Some(done) = self.completed.get(&cookie_mac) {
            // The client did not get our Ack, or someone replays its Response:
            // say the same again, create nothing.
            let ack = done.ack.clone();
            self.count_drop(DropReason::Duplicate);
            return self.reply(from, ack);
        }
        if self
            .completed_floor
            .is_some_and(|floor| cookie_timestamp <= floor)
        {
            // Minted before a handshake we no longer remember: it might be a
            // replay of that one. A real client's cookie is seconds old.
            return self.count_drop(DropReason::CookieExpired);
        }
        if self.completed.len() >= self.config.max_recent_handshakes {
            self.forget_oldest_handshake();
        }
        let prefix = AddressPrefix::of(from);
        let attach_secret = match mode {
            Mode::New => {
                if !self.shard.set.has_room() {
                    return self.reject(
                        from,
                        cookie_mac,
                        RejectReason::ServerFull,
                        DropReason::ServerFull,
                    );
                }
                let held = self.shard.set.limits().logging_in.held(prefix);
                if held >= self.logging_in_limit(from) {
                    // Checked before the key agreement: its X25519 work is the cost.
                    return self.reject(
                        from,
                        cookie_mac,
                        RejectReason::TooManyFromAddress,
                        DropReason::TooManyFromAddress,
                    );
                }
                None
            }
            Mode::Attach { session_id } => {
                if self
                    .sessions
                    .get(&session_id)
                    .and_then(|s| s.last_datagram_attach)
                    .is_some_and(|at| now < at + self.config.rebind_interval)
                {
                    // Each attach costs a key agreement and a remembered handshake.
                    return self.count_drop(DropReason::RebindRateLimited);
                }
                let Some(session) = self.sessions.get(&session_id).filter(|s| !s.is_closed())
                else {
                    return self.reject(
                        from,
                        cookie_mac,
                        RejectReason::UnknownSession,
                        DropReason::UnknownSession,
                    );
                };
                let expected = attach_proof(
                    &session.attach_secret,
                    &cookie_mac,
                    &client_public,
                    received,
                );
                if !secure_eq(&expected, &proof) {
                    return self.reject(
                        from,
                        cookie_mac,
                        RejectReason::BadProof,
                        DropReason::BadProof,
                    );
                }
                Some(session.attach_secret)
            }
        };
        if !self.may_agree_keys(now, from) {
            return self.reject(
                from,
                cookie_mac,
                RejectReason::TooManyFromAddress,
                DropReason::TooManyFromAddress,
            );
        }
        let server_static = self.identity_public;
        let agreed = self.agree_keys(client_public, attach_secret.as_ref(), |ephemeral| {
            handshake_transcript(
                &cookie_mac,
                &client_public,
                ephemeral,
                &server_static,
                mode,
                received,
            )
        });
        let Some((keys, ephemeral_public)) = agreed else {
            return self.count_drop(DropReason::Malformed);
        };
        let session_id = match mode {
            Mode::New => {
                let id = self.fresh_session_id();
                if !self.create_session(now, id, prefix) {
                    // Another shard took the last place since the check above.
                    return self.reject(
                        from,
                        cookie_mac,
                        RejectReason::ServerFull,
                        DropReason::ServerFull,
                    );
                }
                self.shard.set.limits().logging_in.take(prefix);
                id
            }
            Mode::Attach { session_id } => session_id,
        };
        let session = self
            .sessions
            .get_mut(&session_id)
            .expect("created or found above");
        let sealed = AckBody {
            session_id,
            received: session.reliable_received(),
        }
        .seal(&keys.confirm);
        let ack = HandshakePacket::Ack {
            version: PROTOCOL_VERSION,
            cookie_mac,
            server_ephemeral: ephemeral_public,
            server_static,
            sealed,
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
        if peer_received.is_some() {
            session.last_datagram_attach = Some(now);
        }
        session.attach_datagram(now, link, peer_received, &mut self.out);
        let expires = now + Duration::from_millis(MAX_COOKIE_AGE_MS);
        let entry = CompletedHandshake {
            ack,
            expires,
            cookie_timestamp,
        };
        self.completed.insert(cookie_mac, entry);
        self.completed_order.push_back((expires, cookie_mac));
        self.stats.handshakes_completed += 1;
        self.touch(now, session_id);
    }

    /// The table of answered Responses is full: forget the oldest, and from
    /// now on refuse Responses whose cookies are not newer than it, so that a
    /// forgotten one cannot be replayed into a second session. A flood that
    /// fills the table therefore costs old cookies, not new clients.
    fn forget_oldest_handshake(&mut self) {
        while let Some((_, mac)) = self.completed_order.pop_front() {
            if let Some(entry) = self.completed.remove(&mac) {
                self.completed_floor = self.completed_floor.max(Some(entry.cookie_timestamp));
                return;
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
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return self.count_drop(DropReason::UnknownSession);
        };
        match session.rebind_datagram(
            now,
            from,
            packet_number,
            header,
            tag,
            self.config.rebind_interval,
            &mut self.out,
        ) {
            Ok(true) => self.stats.rebinds += 1,
            Ok(false) => {}
            Err(reason) => self.count_drop(reason),
        }
        self.touch(now, session_id);
    }
}

fn cookie_drop(error: CookieError) -> DropReason {
    match error {
        CookieError::Expired => DropReason::CookieExpired,
        CookieError::FromTheFuture | CookieError::BadMac => DropReason::CookieInvalid,
    }
}
