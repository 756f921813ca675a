//! The session state and its application-facing API: send, receive, time.

use std::collections::VecDeque;

use crate::ack_list::AckList;
use crate::arena::ByteArena;
use crate::config::{Config, REFERENCE_FRAGMENT_LIMIT};
use crate::datagram_buffer::{DatagramBuffer, Transmits};
use crate::error::{ConfigError, SendError};
use crate::send_ring::SendRing;
use crate::stats::Stats;

pub(crate) const RTO_DEFAULT: u32 = 200;
pub(crate) const RTO_MAX: u32 = 60_000;
pub(crate) const THRESH_INIT: u32 = 2;
pub(crate) const THRESH_MIN: u32 = 2;
/// First window-probe delay; the classic ikcp.c release everyone ships uses 7 s.
pub(crate) const PROBE_INIT: u32 = 7_000;
pub(crate) const PROBE_LIMIT: u32 = 120_000;
pub(crate) const ASK_SEND: u8 = 1;
pub(crate) const ASK_TELL: u8 = 2;
/// Buffers kept for segments that arrive out of order (the only payloads not kept
/// in an arena); more than this go back to the allocator.
const POOL_LIMIT: usize = 64;

/// Signed distance between two wrapping 32-bit counters (timestamps or sequence
/// numbers), as ikcp.c's `_itimediff`.
#[inline]
pub(crate) fn diff(later: u32, earlier: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

/// A segment that arrived ahead of a gap, waiting for the gap to fill.
#[derive(Debug)]
pub(crate) struct Reordered {
    pub frg: u8,
    pub data: Vec<u8>,
}

/// A segment of the send ring: queued by the application (no sequence number yet,
/// `sn` meaningless), or sent at least once and awaiting its acknowledgement.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Segment {
    pub sn: u32,
    pub ts: u32,
    pub resend_at: u32,
    pub rto: u32,
    pub fastack: u32,
    pub xmit: u32,
    /// Payload: `len` bytes at offset `at` of the send arena.
    pub at: u64,
    pub len: u32,
    pub frg: u8,
    /// Copies sent ahead of any loss (`Config::redundant_copies`).
    pub copies: u8,
    /// Acknowledged out of order; the slot stays until everything before it is acked.
    pub acked: bool,
}

/// Each message in the receive arena is a record: `len: u32 | segments: u32`
/// (native order; `segments` is the receive-window slots it holds until read), then
/// its bytes. The header of the message being reassembled is filled in when its
/// last fragment arrives.
pub(crate) const MESSAGE_HEADER: usize = 8;

/// A message record's header (see [`MESSAGE_HEADER`]).
#[inline]
pub(crate) fn message_header(len: u32, segments: u32) -> [u8; MESSAGE_HEADER] {
    let mut header = [0; MESSAGE_HEADER];
    header[..4].copy_from_slice(&len.to_ne_bytes());
    header[4..].copy_from_slice(&segments.to_ne_bytes());
    header
}

/// One KCP session, sans-IO: feed it datagrams with [`Kcp::input`], drive its timers
/// with [`Kcp::update`], read messages with [`Kcp::recv`] and send the datagrams from
/// [`Kcp::drain_transmits`]. It never reads a clock: `now_ms` is a wrapping
/// millisecond counter of the caller's choosing.
// Fields are laid out by hand, hottest first: with thousands of sessions a round
// touches each session's state once, so what costs is the number of distinct cache
// lines a send, a flush and an input touch, not the instructions.
#[derive(Debug)]
#[repr(C)]
pub struct Kcp {
    // Touched by every send, flush and input.
    pub(crate) conv: u32,
    pub(crate) current: u32,
    pub(crate) ts_flush: u32,
    pub(crate) interval: u32,
    pub(crate) snd_una: u32,
    pub(crate) snd_nxt: u32,
    pub(crate) rcv_nxt: u32,
    pub(crate) snd_wnd: u32,
    pub(crate) rcv_wnd: u32,
    pub(crate) rmt_wnd: u32,
    pub(crate) cwnd: u32,
    pub(crate) incr: u32,
    pub(crate) ssthresh: u32,
    pub(crate) in_flight: u32,
    /// Receive-window slots in use by the application's unread data.
    pub(crate) nrcv_que: u32,
    pub(crate) rx_rto: u32,
    pub(crate) rx_srtt: i32,
    pub(crate) rx_rttval: i32,
    /// Earliest retransmission deadline as of the last flush (may be early, never late).
    pub(crate) earliest_resend: Option<u32>,
    pub(crate) partial_segments: u32,
    /// Complete messages in `ready_bytes`.
    pub(crate) ready: u32,
    /// Segments at the back of `snd_buf` not yet given a sequence number.
    pub(crate) queued: u32,
    pub(crate) probe: u8,
    pub(crate) updated: bool,
    pub(crate) flush_requested: bool,
    /// Skipping the rest of a message that grew too large.
    pub(crate) discarding: bool,
    /// Payload bytes per segment (the MTU is at most 65,507).
    pub(crate) mss: u32,
    /// Window probing's current back-off (0 while the peer's window is open):
    /// read by every flush, so it lives here, not with `ts_probe`.
    pub(crate) probe_wait: u32,
    /// Messages shorter than this go out as one segment without further checks:
    /// one more than the smaller of the MSS and the message limit, or 0 in stream
    /// mode (where every send may top up the last segment).
    pub(crate) one_segment_below: usize,
    /// Bytes and fragments of the message being reassembled (the arena's tail).
    pub(crate) partial_len: usize,

    // Sending.
    /// The send ring: segments in flight (sequence numbers `snd_una..snd_nxt`, the
    /// front never acked), then the last `queued` ones the application queued.
    /// One ring instead of ikcp.c's two queues: a send and the flush that sends it
    /// touch the same memory.
    pub(crate) snd_buf: SendRing,
    /// Payloads of `snd_buf`, in order.
    pub(crate) send_bytes: ByteArena,

    // Receiving.
    /// The records of the complete messages in order, then the one being
    /// reassembled from in-order fragments (see [`MESSAGE_HEADER`]).
    pub(crate) ready_bytes: ByteArena,
    /// Slot `i` holds sequence number `rcv_nxt + i`, if it arrived out of order.
    pub(crate) rcv_buf: VecDeque<Option<Reordered>>,

    pub(crate) config: Config,
    pub(crate) acks: AckList,
    /// Its first counters are hot (see `Stats`).
    pub(crate) stats: Stats,

    // Rarely touched.
    /// The session's own datagram buffer, for callers that do not pass theirs.
    pub(crate) datagrams: DatagramBuffer,
    pub(crate) ts_probe: u32,
    pub(crate) dead: bool,
    pool: Vec<Vec<u8>>,
}

impl Kcp {
    /// A session for conversation `conv`. Both ends must use the same `conv`.
    pub fn new(conv: u32, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            conv,
            mss: config.mss() as u32,
            one_segment_below: if config.stream {
                0
            } else {
                config.mss().min(config.max_message_size) + 1
            },
            interval: config.interval.clamp(10, 5000),
            snd_wnd: u32::from(config.send_window),
            rcv_wnd: config.effective_receive_window(),
            snd_una: 0,
            snd_nxt: 0,
            queued: 0,
            send_bytes: ByteArena::default(),
            snd_buf: SendRing::default(),
            in_flight: 0,
            rmt_wnd: REFERENCE_FRAGMENT_LIMIT as u32,
            cwnd: 0,
            incr: 0,
            ssthresh: THRESH_INIT,
            rcv_nxt: 0,
            rcv_buf: VecDeque::new(),
            ready: 0,
            ready_bytes: ByteArena::default(),
            partial_len: 0,
            partial_segments: 0,
            discarding: false,
            nrcv_que: 0,
            acks: AckList::default(),
            probe: 0,
            ts_probe: 0,
            probe_wait: 0,
            rx_srtt: 0,
            rx_rttval: 0,
            rx_rto: RTO_DEFAULT,
            current: 0,
            ts_flush: config.interval,
            updated: false,
            flush_requested: false,
            earliest_resend: None,
            dead: false,
            datagrams: DatagramBuffer::default(),
            pool: Vec::new(),
            stats: Stats::default(),
            config,
        })
    }

    pub fn conv(&self) -> u32 {
        self.conv
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Queues a message (or, in stream mode, bytes). It leaves at the next flush the
    /// windows allow.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        if msg.len() < self.one_segment_below {
            // The common case, one fragment.
            let at = self.send_bytes.push(msg);
            self.queue_segment(at, msg.len(), 0);
            return Ok(());
        }
        self.send_fragments(msg)
    }

    /// A message of more than one fragment, or bytes in stream mode; out of
    /// line so that the common case saves no registers for it.
    #[inline(never)]
    fn send_fragments(&mut self, mut msg: &[u8]) -> Result<(), SendError> {
        let mss = self.mss as usize;
        if msg.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                len: msg.len(),
                limit: self.config.max_message_size,
            });
        }
        if self.config.stream {
            // Top up the last queued segment first, as ikcp.c does.
            if let Some(last) = self.snd_buf.back_mut().filter(|_| self.queued > 0) {
                // The last queued segment's bytes are the arena's tail.
                debug_assert_eq!(last.at + u64::from(last.len), self.send_bytes.end());
                let room = mss.saturating_sub(last.len as usize);
                let take = room.min(msg.len());
                self.send_bytes.push(&msg[..take]);
                last.len += take as u32;
                msg = &msg[take..];
                if msg.is_empty() {
                    return Ok(());
                }
            }
        }
        let fragments = msg.len().div_ceil(mss).max(1);
        let unlimited = self.config.stream || self.config.large_messages;
        if !unlimited && fragments >= REFERENCE_FRAGMENT_LIMIT {
            return Err(SendError::TooManyFragments {
                len: msg.len(),
                fragments,
                limit: REFERENCE_FRAGMENT_LIMIT - 1,
            });
        }
        let mut chunks = msg.chunks(mss);
        for index in 0..fragments {
            let chunk = chunks.next().unwrap_or(&[]);
            let at = self.send_bytes.push(chunk);
            let remaining_after = fragments - index - 1;
            // Large messages count down like ikcp.c and saturate: the receiver only
            // looks for the final fragment (0), so any length works.
            let frg = if self.config.stream {
                0
            } else {
                remaining_after.min(255) as u8
            };
            self.queue_segment(at, chunk.len(), frg);
        }
        Ok(())
    }

    #[inline]
    fn queue_segment(&mut self, at: u64, len: usize, frg: u8) {
        self.snd_buf.push_back(Segment {
            sn: 0,
            ts: 0,
            resend_at: 0,
            rto: 0,
            fastack: 0,
            xmit: 0,
            at,
            len: len as u32,
            frg,
            copies: 0,
            acked: false,
        });
        self.queued += 1;
    }

    /// Size of the next complete message, if there is one.
    pub fn peek_size(&self) -> Option<usize> {
        (self.ready > 0).then(|| self.ready_bytes.u32_at(self.ready_bytes.start()) as usize)
    }

    /// The next complete message, in order.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.pop_ready(<[u8]>::to_vec)
    }

    /// Like [`Kcp::recv`], but copies into `out` (cleared first) so that a caller who
    /// reuses `out` allocates nothing. Returns the message length.
    #[inline]
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        // Callers read until None: that last call must cost next to nothing.
        if self.ready == 0 {
            return None;
        }
        Some(self.pop_ready_into(out))
    }

    /// The work of `recv_into` once a message is known to be there, kept out
    /// of line so that the final, empty call stays a load and a branch.
    #[inline(never)]
    fn pop_ready_into(&mut self, out: &mut Vec<u8>) -> usize {
        self.pop_ready(|msg| {
            out.clear();
            crate::small_copy::append(out, msg);
            msg.len()
        })
        .expect("a message is ready")
    }

    /// Hands the next complete message to `take`, then frees its bytes and window.
    #[inline]
    fn pop_ready<R>(&mut self, take: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.ready == 0 {
            return None;
        }
        self.ready -= 1;
        let at = self.ready_bytes.start();
        let (len, segments) = self.ready_bytes.record_header_at(at);
        let len = len as usize;
        let body = at + MESSAGE_HEADER as u64;
        let taken = take(self.ready_bytes.get(body, len));
        self.ready_bytes.release_before(body + len as u64);
        let window_was_full = self.nrcv_que >= self.rcv_wnd;
        self.nrcv_que -= segments;
        self.move_to_receive_queue();
        if window_was_full && self.nrcv_que < self.rcv_wnd {
            // The peer may be waiting on our closed window: tell it at once.
            self.probe |= ASK_TELL;
        }
        Some(taken)
    }

    /// Advances the clock. Flushes when the interval elapsed, or earlier when an
    /// improvement asks for it (an RTO deadline, an advanced `una`, an ack to send).
    pub fn update(&mut self, now_ms: u32) {
        if self.update_due(now_ms) {
            self.flush();
        }
    }

    /// Like [`Kcp::update`], flushing into the caller's buffer: a server driving many
    /// sessions passes one buffer to all of them (see [`DatagramBuffer`]).
    pub fn update_into(&mut self, now_ms: u32, out: &mut DatagramBuffer) {
        if self.update_due(now_ms) {
            self.flush_into(out);
        }
    }

    /// Advances the clock; whether a flush is due.
    #[inline]
    fn update_due(&mut self, now_ms: u32) -> bool {
        self.current = now_ms;
        if !self.updated {
            self.updated = true;
            self.ts_flush = now_ms;
        }
        let mut slap = diff(now_ms, self.ts_flush);
        if !(-10_000..10_000).contains(&slap) {
            self.ts_flush = now_ms;
            slap = 0;
        }
        let tick = slap >= 0;
        if tick {
            self.ts_flush = self.ts_flush.wrapping_add(self.interval);
            if diff(now_ms, self.ts_flush) >= 0 {
                self.ts_flush = now_ms.wrapping_add(self.interval);
            }
        }
        let resend_due =
            self.config.exact_rto && self.earliest_resend.is_some_and(|at| diff(now_ms, at) >= 0);
        tick || self.flush_requested || resend_due
    }

    /// When `update` should next be called, assuming no `input` or `send` before then.
    pub fn check(&self, now_ms: u32) -> u32 {
        if !self.updated || self.flush_requested {
            return now_ms;
        }
        let mut ts_flush = self.ts_flush;
        if !(-10_000..10_000).contains(&diff(now_ms, ts_flush)) {
            ts_flush = now_ms;
        }
        if diff(now_ms, ts_flush) >= 0 {
            return now_ms;
        }
        let until_flush = diff(ts_flush, now_ms) as u32;
        let until_resend = match self.earliest_resend {
            Some(at) if diff(at, now_ms) <= 0 => return now_ms,
            Some(at) => diff(at, now_ms) as u32,
            None => u32::MAX,
        };
        now_ms.wrapping_add(until_flush.min(until_resend).min(self.interval))
    }

    /// Datagrams produced since the last call, to put on the wire in order.
    pub fn drain_transmits(&mut self) -> Transmits<'_> {
        self.datagrams.drain()
    }

    /// Whether datagrams are waiting in [`Kcp::drain_transmits`].
    pub fn has_transmits(&self) -> bool {
        !self.datagrams.is_empty()
    }

    /// A segment was sent `dead_link` times without an acknowledgement.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Payload bytes held: queued and unacknowledged on the sending side, arrived
    /// out of order or complete but unread on the receiving side (with 8 bytes of
    /// framing per unread message). Zero for a session with nothing in flight and
    /// nothing unread.
    pub fn buffered_bytes(&self) -> usize {
        let reordered: usize = self.rcv_buf.iter().flatten().map(|s| s.data.len()).sum();
        self.send_bytes.len() + self.ready_bytes.len() + reordered
    }

    /// Segments not yet acknowledged: queued plus in flight (ikcp_waitsnd).
    pub fn waiting_to_send(&self) -> usize {
        self.queued as usize + self.in_flight as usize
    }

    /// Nothing to send, resend, acknowledge or probe: no flush has work to do
    /// until the next `send` or `input`, whatever `check` says (a KCP left
    /// without `update` for a while reports a flush due at once, for nothing).
    pub fn is_idle(&self) -> bool {
        self.snd_buf.is_empty() && self.acks.is_empty() && self.probe == 0 && !self.flush_requested
    }

    pub fn stats(&self) -> Stats {
        Stats {
            srtt_ms: self.rx_srtt.max(0) as u32,
            rttvar_ms: self.rx_rttval.max(0) as u32,
            rto_ms: self.rx_rto,
            in_flight: self.in_flight,
            queued: self.queued,
            cwnd: self.cwnd,
            send_window: self.snd_wnd,
            receive_window: self.rcv_wnd,
            receive_window_free: self.window_unused(),
            remote_window: self.rmt_wnd,
            ..self.stats
        }
    }

    pub(crate) fn window_unused(&self) -> u32 {
        self.rcv_wnd.saturating_sub(self.nrcv_que)
    }

    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    pub(crate) fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT && buffer.capacity() > 0 {
            buffer.clear();
            self.pool.push(buffer);
        }
    }
}
