//! The stream table: stream connections (TCP, WebSocket) from the moment the
//! driver accepts them, through the stream key agreement, to the session they
//! carry. A stream holds no session until its client proved the keys; it
//! holds its address's login slot from the start.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{AddressPrefix, Server};
use crate::codec::Reader;
use crate::crypto::SessionKeys;
use crate::event::{StreamId, Transmit};
use crate::frame::Frame;
use crate::handshake::{AckBody, Mode, PROTOCOL_VERSION};
use crate::link::Role;
use crate::link::StreamCrypto;
use crate::session::StreamResume;
use crate::stats::DropReason;
use crate::stream_handshake::{stream_transcript, StreamHandshake, StreamRefusal};

enum Stage {
    /// Connected; the first packet must be a StreamHello.
    AwaitHello,
    /// Accept sent; the next packet must open under the new keys.
    AwaitProof {
        mode: Mode,
        session_id: u64,
        keys: SessionKeys,
    },
}

struct PendingStream {
    opened: Instant,
    prefix: AddressPrefix,
    /// The address's login slot, held from connect until the Hello shows a
    /// resume (which logs nobody in) or the session's login is accepted.
    holds_slot: bool,
    peer: SocketAddr,
    stage: Stage,
}

#[derive(Default)]
pub(super) struct StreamTable {
    /// Streams carrying a session.
    attached: HashMap<StreamId, u64>,
    /// The reverse: each session's stream, so removing a session is O(1).
    by_session: HashMap<u64, StreamId>,
    pending: HashMap<StreamId, PendingStream>,
    pending_order: VecDeque<(Instant, StreamId)>,
}

impl StreamTable {
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn deadlines_len(&self) -> usize {
        self.pending_order.len()
    }

    pub(super) fn next_deadline(&self, login_step: Duration) -> Option<Instant> {
        self.pending_order.front().map(|(at, _)| *at + login_step)
    }

    fn attach(&mut self, stream: StreamId, session: u64) {
        if let Some(old) = self.by_session.insert(session, stream) {
            self.attached.remove(&old);
        }
        self.attached.insert(stream, session);
    }

    /// Drops deadline entries of streams that already left the pending set,
    /// so that connect-and-close churn cannot grow the queue beyond a
    /// multiple of the pending cap (amortised: it runs when the queue doubles).
    fn compact(&mut self, max_pending: usize) {
        if self.pending_order.len() <= 2 * max_pending + 64 {
            return;
        }
        let pending = &self.pending;
        self.pending_order
            .retain(|(opened, stream)| pending.get(stream).is_some_and(|p| p.opened == *opened));
    }

    pub(super) fn forget_session(&mut self, session: u64) {
        if let Some(stream) = self.by_session.remove(&session) {
            self.attached.remove(&stream);
        }
    }
}

impl Server {
    /// The driver accepted a stream connection (TCP or WebSocket) from `peer`.
    pub fn stream_opened(&mut self, now: Instant, stream: StreamId, peer: SocketAddr) {
        let prefix = AddressPrefix::of(peer);
        let refusal = if self.streams.pending.len() >= self.config.max_pending_streams
            || !self.shard.set.has_room()
        {
            Some(DropReason::ServerFull)
        } else if !self
            .shard
            .set
            .limits()
            .logging_in
            .try_take(prefix, self.logging_in_limit(peer))
        {
            Some(DropReason::TooManyFromAddress)
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.count_drop(reason);
            // Said, so that a client resuming a session knows to retry.
            let tell = match reason {
                DropReason::TooManyFromAddress => StreamRefusal::TooManyFromAddress,
                _ => StreamRefusal::ServerFull,
            };
            return self.refuse_stream(stream, Some(tell));
        }
        self.streams.pending.insert(
            stream,
            PendingStream {
                opened: now,
                prefix,
                holds_slot: true,
                peer,
                stage: Stage::AwaitHello,
            },
        );
        self.streams.pending_order.push_back((now, stream));
        self.streams.compact(self.config.max_pending_streams);
    }

    /// Streams that connected and did not complete their handshake in time.
    pub(super) fn expire_pending_streams(&mut self, now: Instant) {
        let step = self.config.session.login_step_timeout;
        while let Some((opened, stream)) = self.streams.pending_order.front().copied() {
            if now < opened + step {
                break;
            }
            self.streams.pending_order.pop_front();
            if self
                .streams
                .pending
                .get(&stream)
                .is_some_and(|p| p.opened == opened)
            {
                self.refuse_stream(stream, None);
            }
        }
    }

    /// Closes a pending stream, telling the client why when there is a reason
    /// it can act on, and frees its address slot.
    fn refuse_stream(&mut self, stream: StreamId, tell: Option<StreamRefusal>) {
        if let Some(pending) = self.streams.pending.remove(&stream) {
            self.release_slot(&pending);
        }
        if let Some(reason) = tell {
            let packet = StreamHandshake::Reject {
                version: PROTOCOL_VERSION,
                reason,
            };
            self.out.transmits.push_back(Transmit::Stream {
                stream,
                bytes: packet.to_vec(),
            });
        }
        self.out
            .transmits
            .push_back(Transmit::CloseStream { stream });
    }

    fn release_slot(&mut self, pending: &PendingStream) {
        if pending.holds_slot {
            self.shard.set.limits().logging_in.release(pending.prefix);
        }
    }

    /// One stream packet arrived.
    pub fn handle_stream(&mut self, now: Instant, stream: StreamId, packet: &[u8]) {
        if let Some(&id) = self.streams.attached.get(&stream) {
            if let Some(session) = self.sessions.get_mut(&id) {
                self.scratch.clear();
                self.scratch.extend_from_slice(packet);
                session.handle_stream(now, &mut self.scratch, &mut self.out);
            }
            return self.touch(now, id);
        }
        let Some(pending) = self.streams.pending.get(&stream) else {
            return self.count_drop(DropReason::Unexpected);
        };
        match pending.stage {
            Stage::AwaitHello => self.stream_hello(now, stream, packet),
            Stage::AwaitProof { .. } => self.stream_proof(now, stream, packet),
        }
    }

    fn stream_hello(&mut self, now: Instant, stream: StreamId, packet: &[u8]) {
        if let Some(version) = StreamHandshake::hello_version(packet) {
            if version != PROTOCOL_VERSION {
                self.count_drop(DropReason::VersionMismatch);
                let answer = StreamHandshake::VersionMismatch {
                    server_version: PROTOCOL_VERSION,
                    client_version: version,
                };
                self.out.transmits.push_back(Transmit::Stream {
                    stream,
                    bytes: answer.to_vec(),
                });
                return self.refuse_stream(stream, None);
            }
        }
        let Ok(StreamHandshake::Hello {
            mode,
            client_public,
            ..
        }) = StreamHandshake::decode(packet)
        else {
            self.count_drop(DropReason::Malformed);
            return self.refuse_stream(stream, None);
        };
        let (session_id, received, attach_secret) = match mode {
            Mode::New => {
                if !self.shard.set.has_room() {
                    self.count_drop(DropReason::ServerFull);
                    return self.refuse_stream(stream, Some(StreamRefusal::ServerFull));
                }
                (self.fresh_session_id(), 0, None)
            }
            Mode::Attach { session_id } => {
                if self.sessions.get(&session_id).is_none_or(|s| s.is_closed()) {
                    self.count_drop(DropReason::UnknownSession);
                    return self.refuse_stream(stream, Some(StreamRefusal::UnknownSession));
                }
                // A resume logs nobody in: it gives its address's slot back.
                let pending = self
                    .streams
                    .pending
                    .get_mut(&stream)
                    .expect("caller found it");
                if std::mem::take(&mut pending.holds_slot) {
                    self.shard.set.limits().logging_in.release(pending.prefix);
                }
                let session = self.sessions.get(&session_id).expect("found above");
                (
                    session_id,
                    session.reliable_received(),
                    Some(session.attach_secret),
                )
            }
        };
        let peer = self
            .streams
            .pending
            .get(&stream)
            .expect("caller found it")
            .peer;
        if !self.may_agree_keys(now, peer) {
            return self.refuse_stream(stream, Some(StreamRefusal::TooManyFromAddress));
        }
        let server_static = self.identity_public;
        // In Attach mode only a holder of the resume token derives these keys:
        // the token proves itself without crossing the link.
        let agreed = self.agree_keys(client_public, attach_secret.as_ref(), |ephemeral| {
            stream_transcript(
                PROTOCOL_VERSION,
                &client_public,
                ephemeral,
                &server_static,
                mode,
            )
        });
        let Some((keys, ephemeral_public)) = agreed else {
            self.count_drop(DropReason::Malformed);
            return self.refuse_stream(stream, None);
        };
        let accept = StreamHandshake::Accept {
            version: PROTOCOL_VERSION,
            server_ephemeral: ephemeral_public,
            server_static,
            sealed: AckBody {
                session_id,
                received,
            }
            .seal(&keys.confirm),
        };
        self.out.transmits.push_back(Transmit::Stream {
            stream,
            bytes: accept.to_vec(),
        });
        let pending = self
            .streams
            .pending
            .get_mut(&stream)
            .expect("caller found it");
        pending.stage = Stage::AwaitProof {
            mode,
            session_id,
            keys,
        };
    }

    /// The first sealed packet: it proves the client derived the same keys
    /// (and, in Attach mode, holds the resume token). Only now does the stream
    /// open a session or join one.
    fn stream_proof(&mut self, now: Instant, stream: StreamId, packet: &[u8]) {
        let PendingStream {
            prefix,
            holds_slot,
            peer,
            stage,
            ..
        } = self
            .streams
            .pending
            .remove(&stream)
            .expect("caller found it");
        let Stage::AwaitProof {
            mode,
            session_id,
            keys,
        } = stage
        else {
            unreachable!("caller matched AwaitProof");
        };
        let mut crypto = StreamCrypto::new(Role::Server, &keys);
        let mut plaintext = std::mem::take(&mut self.scratch);
        plaintext.clear();
        plaintext.extend_from_slice(packet);
        let Some(len) = crypto.open(&mut plaintext) else {
            self.count_drop(match mode {
                Mode::New => DropReason::AuthFailed,
                Mode::Attach { .. } => DropReason::BadProof,
            });
            if holds_slot {
                self.shard.set.limits().logging_in.release(prefix);
            }
            self.scratch = plaintext;
            return self.refuse_stream(stream, None);
        };
        plaintext.truncate(len);
        self.stats.stream_handshakes_completed += 1;
        match mode {
            Mode::New => self.open_stream_session(
                now,
                stream,
                (prefix, peer),
                session_id,
                crypto,
                &plaintext,
            ),
            Mode::Attach { .. } => {
                if holds_slot {
                    self.shard.set.limits().logging_in.release(prefix);
                }
                self.resume_stream(now, stream, session_id, crypto, &plaintext);
            }
        }
        self.scratch = plaintext;
    }

    fn open_stream_session(
        &mut self,
        now: Instant,
        stream: StreamId,
        (prefix, peer): (AddressPrefix, SocketAddr),
        id: u64,
        crypto: StreamCrypto,
        plaintext: &[u8],
    ) {
        // Taken since the Hello, or the server (any shard) filled up: try again.
        if self.sessions.contains_key(&id) || !self.create_session(now, id, prefix) {
            self.shard.set.limits().logging_in.release(prefix);
            self.count_drop(DropReason::ServerFull);
            return self.refuse_stream(stream, Some(StreamRefusal::ServerFull));
        }
        // The stream's address slot passed to the session until its login is accepted.
        let session = self.sessions.get_mut(&id).expect("just created");
        session.origin = Some(peer);
        session.attach_stream(now, stream, crypto, StreamResume::No, &mut self.out);
        session.handle_stream_plaintext(now, plaintext, &mut self.out);
        self.streams.attach(stream, id);
        self.touch(now, id);
    }

    fn resume_stream(
        &mut self,
        now: Instant,
        stream: StreamId,
        id: u64,
        crypto: StreamCrypto,
        plaintext: &[u8],
    ) {
        let mut reader = Reader::new(plaintext);
        let received = match Frame::decode(&mut reader) {
            Ok(Frame::Resume {
                session_id,
                received,
            }) if session_id == id => received,
            _ => {
                self.count_drop(DropReason::Malformed);
                return self.refuse_stream(stream, None);
            }
        };
        let Some(session) = self.sessions.get_mut(&id).filter(|s| !s.is_closed()) else {
            self.count_drop(DropReason::UnknownSession);
            return self.refuse_stream(stream, Some(StreamRefusal::UnknownSession));
        };
        session.attach_stream(
            now,
            stream,
            crypto,
            StreamResume::Answer {
                peer_received: received,
            },
            &mut self.out,
        );
        let rest = reader.rest();
        if !rest.is_empty() {
            session.handle_stream_plaintext(now, rest, &mut self.out);
        }
        self.streams.attach(stream, id);
        self.touch(now, id);
    }

    /// The driver saw a stream connection end.
    pub fn stream_closed(&mut self, now: Instant, stream: StreamId) {
        if let Some(pending) = self.streams.pending.remove(&stream) {
            self.release_slot(&pending);
            return;
        }
        let Some(id) = self.streams.attached.remove(&stream) else {
            return;
        };
        if self.streams.by_session.get(&id) == Some(&stream) {
            self.streams.by_session.remove(&id);
        }
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
}
