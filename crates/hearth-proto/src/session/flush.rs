//! Turning queued frames into packets: protected datagrams of at most
//! `max_datagram` bytes, and stream packets of at most `max_stream_packet`.

use std::time::Instant;

use crate::event::{LinkKind, Transmit};
use crate::frame::{self, Frame};
use crate::link::{Role, DATAGRAM_OVERHEAD};

use super::{Outbox, Session};

/// Client datagrams are padded to this size so that the server may answer a
/// restart challenge without sending more than it received.
pub(crate) const MIN_CLIENT_DATAGRAM: usize = 64;
/// When an idle KCP is looked at again without anything happening: never,
/// in practice (a send or an input comes first).
const KCP_IDLE_MS: u32 = 3_600_000;

impl Session {
    /// Sends everything that is due on every link.
    pub fn flush(&mut self, now: Instant, out: &mut Outbox) {
        self.flush_deferred = None;
        self.flush_datagram(now, out);
        self.flush_stream(now, out);
    }

    /// Asks for a flush at the endpoint's next `poll_transmit` instead of now.
    /// An input is handled and its events reach the game before the endpoint
    /// is polled for transmits: what the game sends in reply then leaves in the
    /// same packets as the input's acknowledgement (a KCP ack and the reply's
    /// segment in one datagram, not two), and several sends in one turn share
    /// packets.
    pub(crate) fn defer_flush(&mut self, now: Instant) {
        if self.flush_deferred.is_none() {
            self.flush_unlisted = true;
        }
        self.flush_deferred = Some(now);
    }

    /// Whether a flush was deferred since the endpoint last asked: it lists
    /// the session once for its next `poll_transmit`.
    pub(crate) fn take_unlisted_flush(&mut self) -> bool {
        std::mem::take(&mut self.flush_unlisted)
    }

    /// When a deferred flush was asked for, if one is waiting.
    pub(crate) fn deferred_flush(&self) -> Option<Instant> {
        self.flush_deferred
    }

    /// The deferred flush, if one is waiting (with the time it was asked at).
    pub(crate) fn flush_if_deferred(&mut self, out: &mut Outbox) {
        if let Some(now) = self.flush_deferred {
            self.flush(now, out);
        }
    }

    /// Whether an Ack frame should go out now: piggybacked when `other_traffic`,
    /// alone once the delay has passed.
    fn ack_frame(&mut self, now: Instant, other_traffic: bool) -> Option<Vec<u8>> {
        let received = self.reliable_acknowledged();
        if received == self.ack_sent && !self.ack_repeat {
            self.ack_due = None;
            return None;
        }
        if !other_traffic && self.ack_due.is_some_and(|due| now < due) {
            return None;
        }
        self.ack_sent = received;
        self.ack_repeat = false;
        self.ack_due = None;
        let mut frame = Vec::with_capacity(11);
        Frame::Ack { received }.encode(&mut frame);
        Some(frame)
    }

    fn control_frames(
        &mut self,
        now: Instant,
        kind: LinkKind,
        other_traffic: bool,
    ) -> Vec<Vec<u8>> {
        let now_ms = self.clock32(now);
        let mut frames = Vec::new();
        if let Some(ack) = self.ack_frame(now, other_traffic) {
            frames.push(ack);
        }
        let closing = self.closing_frame.clone();
        let live = match kind {
            LinkKind::Datagram => &mut self.datagram.as_mut().expect("flushing it").live,
            LinkKind::Stream => &mut self.stream.as_mut().expect("flushing it").live,
        };
        for echo_ms in live.pongs.drain(..) {
            let mut frame = Vec::with_capacity(5);
            Frame::Pong { echo_ms }.encode(&mut frame);
            frames.push(frame);
        }
        if live.ping_due {
            live.ping_due = false;
            live.last_ping = now;
            let mut frame = Vec::with_capacity(5);
            Frame::Ping { sent_ms: now_ms }.encode(&mut frame);
            frames.push(frame);
        }
        if let Some((code, reason)) = closing {
            let mut frame = Vec::new();
            Frame::Close {
                code,
                reason: &reason,
            }
            .encode(&mut frame);
            frames.push(frame);
        }
        frames
    }

    fn flush_datagram(&mut self, now: Instant, out: &mut Outbox) {
        let now_ms = self.clock32(now);
        let Some(link) = self.datagram.as_mut() else {
            return;
        };
        // The endpoint's one KCP buffer is drained below, in this function, every
        // time: another session's segments must never be sealed for this one.
        debug_assert!(
            out.kcp_datagrams.is_empty(),
            "a flush left KCP datagrams behind"
        );
        out.kcp_datagrams.drain();
        let kcp_out = &mut out.kcp_datagrams;
        if self.kcp_dirty {
            self.kcp_dirty = false;
            link.kcp.update_into(now_ms, kcp_out);
            link.kcp.flush_into(kcp_out);
        } else if now >= link.kcp_due {
            link.kcp.update_into(now_ms, kcp_out);
        }
        let other = !kcp_out.is_empty()
            || !link.live.queue.is_empty()
            || link.live.ping_due
            || !link.live.pongs.is_empty();
        let small = self.control_frames(
            now,
            LinkKind::Datagram,
            other || self.closing_frame.is_some(),
        );
        let max_datagram = self.config.max_datagram;
        let max_plain = max_datagram - DATAGRAM_OVERHEAD;
        let pad_to = if self.role == Role::Client {
            MIN_CLIENT_DATAGRAM
        } else {
            0
        };
        let link = self.datagram.as_mut().expect("still there");
        let peer = link.peer;
        let mut packets = PacketSink {
            buffer: Vec::new(),
            plaintext_len: 0,
            max_plain,
            pad_to,
            sent: Vec::new(),
        };
        packets.start(&link.crypto);
        for frame in &small {
            packets.push(&mut link.crypto, frame);
        }
        for segment in out.kcp_datagrams.drain() {
            packets.push_kcp(&mut link.crypto, segment);
        }
        while let Some(frame) = link.live.dequeue() {
            packets.push(&mut link.crypto, &frame);
        }
        if self.closing_frame.is_some() {
            // Said twice: a lost Close costs the peer a whole idle timeout.
            packets.finish(&mut link.crypto);
            packets.start(&link.crypto);
            packets.push(&mut link.crypto, small.last().expect("close frame is last"));
        }
        packets.finish(&mut link.crypto);
        let retransmits = link.kcp.stats().retransmits;
        self.stats.retransmits += retransmits - link.retransmits_counted;
        link.retransmits_counted = retransmits;
        // An offset from now, not from the epoch: KCP's clock wraps every 49.7 days.
        // With nothing unacknowledged and nothing to acknowledge, KCP has no
        // work until the next send or input (both flush it): an idle session
        // is not woken every KCP interval for nothing.
        let until_due = if link.kcp.is_idle() {
            KCP_IDLE_MS
        } else {
            link.kcp.check(now_ms).wrapping_sub(now_ms)
        };
        link.kcp_due = now + std::time::Duration::from_millis(u64::from(until_due));
        let link = self.datagram.as_mut().expect("still there");
        if !packets.sent.is_empty() {
            link.live.last_sent = now;
        }
        for bytes in packets.sent {
            self.stats.packets_out += 1;
            self.stats.bytes_out += bytes.len() as u64;
            out.transmits
                .push_back(Transmit::Datagram { to: peer, bytes });
        }
    }

    fn flush_stream(&mut self, now: Instant, out: &mut Outbox) {
        let Some(link) = self.stream.as_ref() else {
            return;
        };
        let other =
            !link.live.queue.is_empty() || link.live.ping_due || !link.live.pongs.is_empty();
        let small =
            self.control_frames(now, LinkKind::Stream, other || self.closing_frame.is_some());
        let max = crate::link::StreamCrypto::max_plaintext(self.config.max_stream_packet);
        let link = self.stream.as_mut().expect("still there");
        let mut packets: Vec<Vec<u8>> = Vec::new();
        let mut current = Vec::new();
        let mut emit = |frame: &[u8], current: &mut Vec<u8>| {
            if !current.is_empty() && current.len() + frame.len() > max {
                packets.push(std::mem::take(current));
            }
            current.extend_from_slice(frame);
        };
        for frame in &small {
            emit(frame, &mut current);
        }
        while let Some(frame) = link.live.dequeue() {
            emit(&frame, &mut current);
        }
        if !current.is_empty() {
            packets.push(current);
        }
        if !packets.is_empty() {
            link.live.last_sent = now;
        }
        let stream = link.id;
        for bytes in &mut packets {
            link.crypto.seal(bytes);
        }
        for bytes in packets {
            self.stats.packets_out += 1;
            self.stats.bytes_out += bytes.len() as u64;
            out.transmits.push_back(Transmit::Stream { stream, bytes });
        }
    }
}

/// Packs frames into sealed datagrams.
struct PacketSink {
    buffer: Vec<u8>,
    plaintext_len: usize,
    max_plain: usize,
    pad_to: usize,
    sent: Vec<Vec<u8>>,
}

impl PacketSink {
    /// Starts a new packet. Nothing is allocated until a frame goes in, so a
    /// flush with nothing to send (most timer wakeups) allocates nothing.
    fn start(&mut self, _crypto: &crate::link::DatagramCrypto) {
        self.buffer = Vec::new();
        self.plaintext_len = 0;
    }

    fn make_room(&mut self, crypto: &mut crate::link::DatagramCrypto, len: usize) {
        if self.plaintext_len > 0 && self.plaintext_len + len > self.max_plain {
            self.finish(crypto);
            self.start(crypto);
        }
        if self.buffer.is_empty() {
            self.buffer
                .reserve_exact(self.max_plain + DATAGRAM_OVERHEAD);
            crypto.begin(&mut self.buffer);
        }
    }

    fn push(&mut self, crypto: &mut crate::link::DatagramCrypto, frame: &[u8]) {
        self.make_room(crypto, frame.len());
        self.buffer.extend_from_slice(frame);
        self.plaintext_len += frame.len();
    }

    fn push_kcp(&mut self, crypto: &mut crate::link::DatagramCrypto, segment: &[u8]) {
        use crate::codec::{varint_len, Writer};
        let len = 1 + varint_len(segment.len() as u64) + segment.len();
        self.make_room(crypto, len);
        self.buffer.put_u8(frame::kind::KCP);
        self.buffer.put_len_prefixed(segment);
        self.plaintext_len += len;
    }

    fn finish(&mut self, crypto: &mut crate::link::DatagramCrypto) {
        if self.plaintext_len == 0 {
            return;
        }
        let sealed_len = self.buffer.len() + crate::crypto::TAG_LEN;
        if sealed_len < self.pad_to {
            self.buffer.push(frame::kind::PADDING);
            let target = self.pad_to - crate::crypto::TAG_LEN;
            self.buffer.resize(target.max(self.buffer.len()), 0);
        }
        crypto.seal(&mut self.buffer);
        self.sent.push(std::mem::take(&mut self.buffer));
        self.plaintext_len = 0;
    }
}
