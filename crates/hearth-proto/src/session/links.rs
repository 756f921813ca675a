//! A session's links: attaching datagram and stream links, rebinding a
//! moved client, losing a link, and resending what it carried.

use std::time::{Duration, Instant};

use super::*;

impl Session {
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
                    received: self.reliable_acknowledged(),
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
                    received: self.reliable_acknowledged(),
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

    pub(super) fn after_attach(
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

    pub(super) fn any_link(&self) -> Option<LinkKind> {
        if self.datagram.is_some() {
            Some(LinkKind::Datagram)
        } else if self.stream.is_some() {
            Some(LinkKind::Stream)
        } else {
            None
        }
    }

    pub(super) fn resend_unacked(&mut self, kind: LinkKind) {
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
    pub(super) fn put_reliable_on(&mut self, kind: LinkKind, encoded: &[u8]) {
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
}
