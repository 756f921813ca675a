//! What arrives: opening packets, frames, KCP, reliable ordering across
//! links, reassembly, channel rules, and nothing game-bound before login.

use std::time::{Duration, Instant};

use super::*;

impl Session {
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
        self.defer_flush(now);
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
        self.defer_flush(now);
    }

    pub(super) fn handle_frames(
        &mut self,
        now: Instant,
        kind: LinkKind,
        payload: &[u8],
        out: &mut Outbox,
    ) {
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

    pub(super) fn malformed(
        &mut self,
        now: Instant,
        kind: LinkKind,
        error: DecodeError,
        out: &mut Outbox,
    ) {
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

    pub(super) fn live_mut(&mut self, kind: LinkKind) -> &mut Liveness {
        match kind {
            LinkKind::Datagram => &mut self.datagram.as_mut().expect("frame came from it").live,
            LinkKind::Stream => &mut self.stream.as_mut().expect("frame came from it").live,
        }
    }

    pub(super) fn handle_kcp(&mut self, now: Instant, bytes: &[u8], out: &mut Outbox) {
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

    pub(super) fn handle_reliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
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
                    return;
                }
                self.limit_before_login(now, out);
                return;
            }
            Arrival::Next => {
                self.reliable_rx.advance();
                self.deliver_reliable(now, bunch, out);
                self.limit_before_login(now, out);
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

    /// A server holds little for a peer that has not logged in: the whole
    /// login fits in `PRE_LOGIN_BUFFER`, so a peer that makes the server
    /// buffer more (gaps in the reliable sequence, unfinished partial
    /// messages on the control channel) before Welcome is closed. Without
    /// this, every half-open session could hold the full reorder and
    /// reassembly budgets (about 6 MiB) for a login step's 10 s.
    fn limit_before_login(&mut self, now: Instant, out: &mut Outbox) {
        if self.role != Role::Server || self.login.is_welcomed() || self.state == State::Closed {
            return;
        }
        let held = self.reliable_rx.stored_bytes() + self.reassembly.buffered_bytes();
        if held > PRE_LOGIN_BUFFER {
            self.stats.drops.add(DropReason::BeforeLogin);
            let why = format!(
                "{held} bytes buffered before the login was accepted (a login needs at most {PRE_LOGIN_BUFFER})"
            );
            self.fail(now, CloseReason::ProtocolError(why), out);
        }
    }

    /// Game traffic from a peer whose login was not accepted (or, where the
    /// game asks for it, who has not joined) ends the session: nothing
    /// unauthenticated reaches the application. True when it did.
    pub(super) fn refuse_before_login(
        &mut self,
        now: Instant,
        channel: u16,
        out: &mut Outbox,
    ) -> bool {
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

    pub(super) fn deliver_reliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
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
            self.deliver_or_hold(now, message, out);
        }
    }

    /// Feeds a bunch to reassembly, counting what it had to drop.
    pub(super) fn reassemble(&mut self, bunch: &Bunch) -> Option<crate::reassembly::Message> {
        let (message, dropped) = self.reassembly.accept(bunch);
        if let Some(reason) = dropped {
            self.stats.drops.add(reason);
        }
        message
    }

    pub(super) fn deliver(&mut self, message: crate::reassembly::Message, out: &mut Outbox) {
        self.stats.messages_in += 1;
        let event = Event::Message {
            channel: message.channel,
            payload: message.payload,
        };
        out.events.push_back((self.id, event));
    }

    pub(super) fn handle_unreliable(&mut self, now: Instant, bunch: Bunch, out: &mut Outbox) {
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

    pub(super) fn handle_control(&mut self, now: Instant, payload: &[u8], out: &mut Outbox) {
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
}
