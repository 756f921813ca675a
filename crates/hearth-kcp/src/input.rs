//! Incoming datagrams: acknowledgements, data, window probes.

use crate::error::InputError;
use crate::header::{peek_conv, Command, Header, HEADER_LEN};
use crate::kcp::{diff, message_header, Kcp, Reordered, ASK_TELL, MESSAGE_HEADER, RTO_MAX};

impl Kcp {
    /// Applies one datagram from the peer. It may hold several segments; those before
    /// a bad one are applied (as in ikcp.c), the rest of the datagram is dropped.
    pub fn input(&mut self, datagram: &[u8]) -> Result<(), InputError> {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        let result = self.input_segments(datagram);
        if let Err(error) = &result {
            let counter = match error {
                InputError::Truncated { .. } => &mut self.stats.rejected_truncated,
                InputError::ConvMismatch { .. } => &mut self.stats.rejected_conv,
                InputError::BadLength { .. } => &mut self.stats.rejected_length,
                InputError::UnknownCommand(_) => &mut self.stats.rejected_command,
                InputError::MessageTooLarge { .. } => &mut self.stats.oversized_messages,
            };
            *counter += 1;
        }
        result
    }

    fn input_segments(&mut self, datagram: &[u8]) -> Result<(), InputError> {
        if datagram.len() < HEADER_LEN {
            return Err(InputError::Truncated {
                len: datagram.len(),
            });
        }
        let prev_una = self.snd_una;
        // Highest acknowledged sequence number in this datagram, for fast resend.
        let mut max_ack: Option<(u32, u32)> = None;
        let mut oversized = false;
        let mut rest = datagram;
        while rest.len() >= HEADER_LEN {
            if let Some(conv) = peek_conv(rest).filter(|&conv| conv != self.conv) {
                return Err(InputError::ConvMismatch {
                    expected: self.conv,
                    got: conv,
                });
            }
            let (header, payload) = Header::decode(rest)?;
            rest = &rest[HEADER_LEN + payload.len()..];

            self.rmt_wnd = u32::from(header.wnd);
            self.acknowledge_below(header.una);
            match header.cmd {
                Command::Ack => {
                    let rtt = diff(self.current, header.ts);
                    if rtt >= 0 {
                        self.sample_rtt(rtt);
                    }
                    self.acknowledge(header.sn);
                    max_ack = match max_ack {
                        None => Some((header.sn, header.ts)),
                        // Only a newer transmission counts as evidence of a skip
                        // (ikcp.c's IKCP_FASTACK_CONSERVE).
                        Some((sn, ts)) if diff(header.sn, sn) > 0 && diff(header.ts, ts) > 0 => {
                            Some((header.sn, header.ts))
                        }
                        keep => keep,
                    };
                }
                Command::Push => {
                    self.stats.segments_received += 1;
                    let window_end = self.rcv_nxt.wrapping_add(self.rcv_wnd);
                    if diff(header.sn, window_end) < 0 {
                        self.acks.push(header.sn, header.ts);
                        if diff(header.sn, self.rcv_nxt) >= 0 {
                            oversized |= self.accept_data(header.sn, header.frg, payload);
                        } else {
                            self.stats.duplicate_segments += 1;
                        }
                    } else {
                        self.stats.out_of_window_segments += 1;
                    }
                }
                Command::WindowAsk => self.probe |= ASK_TELL,
                Command::WindowTell => {}
            }
        }

        if let Some((sn, ts)) = max_ack {
            self.count_skips_below(sn, ts);
        }
        if diff(self.snd_una, prev_una) > 0 {
            // Without congestion control the window never reads `cwnd`: growing
            // it (a division per acknowledgement) would change nothing on the wire.
            if !self.config.no_congestion_control {
                self.grow_congestion_window();
            }
            if self.config.flush_on_una_advance {
                self.flush_requested = true;
            }
        }
        if self.config.immediate_ack && !self.acks.is_empty() {
            self.flush_requested = true;
        }
        if oversized {
            return Err(InputError::MessageTooLarge {
                limit: self.config.max_message_size,
            });
        }
        Ok(())
    }

    fn sample_rtt(&mut self, rtt: i32) {
        // ikcp.c's arithmetic, widened: a forged ack echoing a timestamp from long ago
        // overflows i32 there (undefined behaviour in C); identical results otherwise.
        let rtt = i64::from(rtt);
        let (mut srtt, mut rttval) = (i64::from(self.rx_srtt), i64::from(self.rx_rttval));
        if srtt == 0 {
            srtt = rtt;
            rttval = rtt / 2;
        } else {
            let delta = (rtt - srtt).abs();
            rttval = (3 * rttval + delta) / 4;
            srtt = ((7 * srtt + rtt) / 8).max(1);
        }
        let saturate = |value: i64| value.clamp(0, i64::from(i32::MAX)) as i32;
        self.rx_srtt = saturate(srtt);
        self.rx_rttval = saturate(rttval);
        let rto = srtt + i64::from(self.interval).max(4 * rttval);
        self.rx_rto = rto.clamp(i64::from(self.config.min_rto), i64::from(RTO_MAX)) as u32;
    }

    /// The peer has everything before `una`.
    fn acknowledge_below(&mut self, una: u32) {
        let mut popped = false;
        while let Some(front) = self.snd_buf.front() {
            if self.snd_buf.len() == self.queued as usize || diff(una, front.sn) <= 0 {
                break;
            }
            let segment = self.snd_buf.pop_front().expect("front exists");
            if !segment.acked {
                self.in_flight -= 1;
            }
            popped = true;
        }
        // An unchanged front is still unacknowledged and still names `snd_una`.
        if popped {
            self.drop_acked_front();
        }
    }

    fn acknowledge(&mut self, sn: u32) {
        if diff(sn, self.snd_una) < 0 || diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        let Some(front) = self.snd_buf.front() else {
            return;
        };
        let index = sn.wrapping_sub(front.sn) as usize;
        let Some(segment) = self.snd_buf.get_mut(index) else {
            return;
        };
        if segment.acked {
            return;
        }
        segment.acked = true;
        self.in_flight -= 1;
        if index == 0 {
            self.drop_acked_front();
        }
    }

    /// Keeps the invariant that the front of `snd_buf` is unacknowledged, and `snd_una`
    /// names it; frees the payload bytes of everything before it.
    #[inline]
    fn drop_acked_front(&mut self) {
        while self.snd_buf.front().is_some_and(|segment| segment.acked) {
            self.snd_buf.pop_front();
        }
        if self.snd_buf.is_empty() {
            // Back to the ring's first slot: the next send reuses the cache
            // line this one used instead of walking the ring's whole memory.
            self.snd_buf.clear();
        }
        let in_flight_front = self.snd_buf.len() > self.queued as usize;
        let (una, first_live) = match self.snd_buf.front() {
            Some(segment) if in_flight_front => (segment.sn, segment.at),
            Some(queued) => (self.snd_nxt, queued.at),
            None => (self.snd_nxt, self.send_bytes.end()),
        };
        self.snd_una = una;
        self.send_bytes.release_before(first_live);
    }

    fn count_skips_below(&mut self, max_sn: u32, max_ts: u32) {
        if diff(max_sn, self.snd_una) < 0 || diff(max_sn, self.snd_nxt) >= 0 {
            return;
        }
        let flying = self.snd_buf.len() - self.queued as usize;
        for index in 0..flying {
            let segment = self.snd_buf.at_mut(index);
            if diff(max_sn, segment.sn) <= 0 {
                break;
            }
            if !segment.acked && diff(max_ts, segment.ts) >= 0 {
                segment.fastack += 1;
            }
        }
    }

    fn grow_congestion_window(&mut self) {
        if self.cwnd >= self.rmt_wnd {
            return;
        }
        let mss = self.mss;
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
            self.incr = self.incr.wrapping_add(mss);
        } else {
            self.incr = self.incr.max(mss);
            self.incr = self
                .incr
                .wrapping_add(mss.wrapping_mul(mss) / self.incr + mss / 16);
            if (self.cwnd + 1).wrapping_mul(mss) <= self.incr {
                self.cwnd = self.incr.wrapping_add(mss - 1) / mss.max(1);
            }
        }
        if self.cwnd > self.rmt_wnd {
            self.cwnd = self.rmt_wnd;
            self.incr = self.rmt_wnd.wrapping_mul(mss);
        }
    }

    /// Stores an in-window data segment. Returns whether a message was discarded for
    /// growing past the size limit.
    #[inline]
    fn accept_data(&mut self, sn: u32, frg: u8, payload: &[u8]) -> bool {
        let slot = sn.wrapping_sub(self.rcv_nxt) as usize;
        if slot == 0 && self.rcv_buf.is_empty() && self.nrcv_que < self.rcv_wnd {
            // The common case, the next segment in order: straight from the datagram
            // into the message arena.
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            return self.reassemble(frg, payload);
        }
        self.accept_out_of_order(slot, frg, payload)
    }

    /// Keeps a segment that arrived ahead of a gap (or behind a full window)
    /// until the segments before it are in.
    #[inline(never)]
    fn accept_out_of_order(&mut self, slot: usize, frg: u8, payload: &[u8]) -> bool {
        if self.rcv_buf.len() <= slot {
            self.rcv_buf.resize_with(slot + 1, || None);
        }
        if self.rcv_buf[slot].is_some() {
            self.stats.duplicate_segments += 1;
            return false;
        }
        let mut data = self.take_buffer();
        data.extend_from_slice(payload);
        self.rcv_buf[slot] = Some(Reordered { frg, data });
        self.move_to_receive_queue()
    }

    /// Moves in-order segments into messages while the receive window has room.
    /// Returns whether a message was discarded for growing past the size limit.
    #[inline]
    pub(crate) fn move_to_receive_queue(&mut self) -> bool {
        // Nothing arrived out of order: the common case, checked without a call.
        if self.rcv_buf.is_empty() {
            return false;
        }
        self.move_reordered()
    }

    #[cold]
    fn move_reordered(&mut self) -> bool {
        let mut oversized = false;
        while self.nrcv_que < self.rcv_wnd {
            let Some(Some(_)) = self.rcv_buf.front() else {
                break;
            };
            let segment = self.rcv_buf.pop_front().flatten().expect("front is filled");
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            oversized |= self.reassemble(segment.frg, &segment.data);
            self.recycle(segment.data);
        }
        oversized
    }

    /// Appends one in-order fragment to the message being reassembled. Returns whether
    /// a message was discarded for growing past the size limit.
    #[inline(always)]
    fn reassemble(&mut self, frg: u8, payload: &[u8]) -> bool {
        if frg == 0
            && self.partial_segments == 0
            && !self.discarding
            && payload.len() <= self.config.max_message_size
        {
            // The common case, a message in one segment: its record in one go.
            self.ready_bytes
                .push_record(payload.len() as u32, 1, payload);
            self.nrcv_que += 1;
            self.ready += 1;
            return false;
        }
        self.reassemble_fragment(frg, payload)
    }

    /// [`Kcp::reassemble`] for a fragment of a longer message, or while a
    /// message too large is being skipped.
    #[inline(never)]
    fn reassemble_fragment(&mut self, frg: u8, payload: &[u8]) -> bool {
        let last_fragment = frg == 0;
        if self.discarding {
            self.discarding = !last_fragment;
            return false;
        }
        let large = self.config.large_messages;
        let too_big = self.partial_len + payload.len() > self.config.max_message_size
            // Without large messages, a message must fit the window or it never completes.
            || (!large && !last_fragment && self.partial_segments + 1 >= self.rcv_wnd);
        if too_big {
            if !large {
                self.nrcv_que -= self.partial_segments;
            }
            // The partial message is the arena's tail, after every complete one.
            if self.partial_segments > 0 {
                let record = self.ready_bytes.end() - (MESSAGE_HEADER + self.partial_len) as u64;
                self.ready_bytes.truncate(record);
            }
            self.partial_len = 0;
            self.partial_segments = 0;
            self.discarding = !last_fragment;
            return true;
        }
        if self.partial_segments == 0 {
            self.ready_bytes.push(&[0; MESSAGE_HEADER]);
        }
        self.ready_bytes.push(payload);
        self.partial_len += payload.len();
        self.partial_segments += 1;
        // ikcp.c counts fragments against the window as they arrive; large messages
        // count once complete, or a message longer than the window could never finish.
        if !large {
            self.nrcv_que += 1;
        }
        if last_fragment {
            let segments = std::mem::take(&mut self.partial_segments);
            if large {
                self.nrcv_que += segments;
            }
            let len = std::mem::take(&mut self.partial_len);
            let record = self.ready_bytes.end() - (MESSAGE_HEADER + len) as u64;
            self.ready_bytes
                .write_at(record, &message_header(len as u32, segments));
            self.ready += 1;
        }
        false
    }
}
