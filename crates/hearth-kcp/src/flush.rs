//! Outgoing datagrams: acknowledgements, window probes, new and resent data.

use crate::datagram_buffer::DatagramBuffer;
use crate::header::{Command, Header};
use crate::kcp::{diff, Kcp, ASK_SEND, ASK_TELL, PROBE_INIT, PROBE_LIMIT, THRESH_MIN};

/// Largest per-segment timeout: well inside the range where wrapping time comparisons
/// still order correctly (about 12 days).
const SEGMENT_RTO_CAP: u32 = 1 << 30;

impl Kcp {
    /// Writes everything that is due into the session's datagram buffer, packing
    /// segments into datagrams of at most `mtu` bytes in ikcp.c's order: acks, probes,
    /// data.
    pub fn flush(&mut self) {
        let mut out = std::mem::take(&mut self.datagrams);
        self.flush_into(&mut out);
        self.datagrams = out;
    }

    /// Like [`Kcp::flush`], into the caller's buffer (see [`DatagramBuffer`]).
    pub fn flush_into(&mut self, out: &mut DatagramBuffer) {
        if !self.updated {
            return;
        }
        let mtu = self.config.mtu;
        let (datagrams_before, bytes_before) = out.begin(mtu);
        self.flush_requested = false;
        let current = self.current;
        let mut header = Header {
            conv: self.conv,
            cmd: Command::Ack,
            frg: 0,
            wnd: self.window_unused() as u16,
            ts: 0,
            sn: 0,
            una: self.rcv_nxt,
            len: 0,
        };

        for (sn, ts) in self.acks.iter() {
            // ikcp.c reuses one header for acks and probes, so a probe carries the
            // sn/ts of the last ack before it; doing the same keeps us byte-identical.
            header.sn = sn;
            header.ts = ts;
            out.push_header(header.to_bytes(), mtu);
        }
        self.acks.clear();

        self.schedule_window_probe();
        for (bit, cmd) in [
            (ASK_SEND, Command::WindowAsk),
            (ASK_TELL, Command::WindowTell),
        ] {
            if self.probe & bit != 0 {
                header.cmd = cmd;
                out.push_header(header.to_bytes(), mtu);
            }
        }
        self.probe = 0;

        let mut window = self.snd_wnd.min(self.rmt_wnd);
        if !self.config.no_congestion_control {
            window = window.min(self.cwnd);
        }
        let fast_threshold = if self.config.fast_resend > 0 {
            self.config.fast_resend
        } else {
            u32::MAX
        };
        let first_rto_slack = if self.config.nodelay == 0 {
            self.rx_rto >> 3
        } else {
            0
        };
        let fast_limit = self.config.fast_limit;
        let (copies, copy_gap) = (self.config.redundant_copies, self.config.redundant_gap_ms);
        let mut fast_resent = 0u32;
        let mut timed_out = false;
        let mut earliest_resend: Option<u32> = None;
        header.cmd = Command::Push;
        let window_end = self.snd_una.wrapping_add(window);
        let flying = self.snd_buf.len() - self.queued as usize;
        // One pass over the ring: the segments in flight, then queued ones
        // given sequence numbers while the window has room (ikcp.c moves
        // them to its send buffer first, then walks it: the same order).
        for index in 0..self.snd_buf.len() {
            let segment = self.snd_buf.at_mut(index);
            if index >= flying {
                if diff(self.snd_nxt, window_end) >= 0 {
                    break;
                }
                segment.sn = self.snd_nxt;
                segment.ts = current;
                segment.resend_at = current;
                segment.rto = self.rx_rto;
                self.queued -= 1;
                self.snd_nxt = self.snd_nxt.wrapping_add(1);
                self.in_flight += 1;
            } else if segment.acked {
                continue;
            }
            let send = if segment.xmit == 0 {
                segment.rto = self.rx_rto;
                segment.resend_at = current.wrapping_add(segment.rto + first_rto_slack);
                self.stats.segments_sent += 1;
                true
            } else if diff(current, segment.resend_at) >= 0 {
                let growth = match self.config.nodelay {
                    0 => segment.rto.max(self.rx_rto),
                    1 => segment.rto / 2,
                    _ => self.rx_rto / 2,
                };
                // ikcp.c lets this wrap after ~16 timeouts and then resends at every
                // flush; capping keeps deadlines meaningful on a long-dead link.
                segment.rto = segment.rto.saturating_add(growth).min(SEGMENT_RTO_CAP);
                segment.resend_at = current.wrapping_add(segment.rto);
                timed_out = true;
                self.stats.retransmits += 1;
                self.stats.lost_segments += 1;
                true
            } else if segment.fastack >= fast_threshold
                && (segment.xmit <= fast_limit || fast_limit == 0)
            {
                segment.fastack = 0;
                segment.resend_at = current.wrapping_add(segment.rto);
                fast_resent += 1;
                self.stats.retransmits += 1;
                self.stats.fast_retransmits += 1;
                true
            } else if segment.copies < copies
                && diff(current, segment.ts.wrapping_add(copy_gap)) >= 0
            {
                // Ahead of any loss: neither the RTO nor the windows change.
                segment.copies += 1;
                self.stats.redundant_copies += 1;
                true
            } else {
                false
            };
            if send {
                segment.xmit += 1;
                segment.ts = current;
                header.frg = segment.frg;
                header.ts = current;
                header.sn = segment.sn;
                header.len = segment.len;
                let payload = self.send_bytes.get(segment.at, segment.len as usize);
                out.push_segment(header.to_bytes(), payload, mtu);
                if segment.xmit >= self.config.dead_link {
                    self.dead = true;
                }
            }
            // The next copy is due like a resend: `check` must wake for it.
            let next = if segment.copies < copies {
                let copy_at = segment.ts.wrapping_add(copy_gap);
                if diff(copy_at, segment.resend_at) < 0 {
                    copy_at
                } else {
                    segment.resend_at
                }
            } else {
                segment.resend_at
            };
            earliest_resend = Some(match earliest_resend {
                Some(at) if diff(at, next) <= 0 => at,
                _ => next,
            });
        }
        self.earliest_resend = earliest_resend;
        out.finish();
        let (datagrams_after, bytes_after) = out.waiting();
        self.stats.datagrams_out += datagrams_after - datagrams_before;
        self.stats.bytes_out += bytes_after - bytes_before;

        if fast_resent > 0 {
            let in_flight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = (in_flight / 2).max(THRESH_MIN);
            self.cwnd = self.ssthresh.wrapping_add(fast_threshold);
            self.incr = self.cwnd.wrapping_mul(self.mss);
        }
        if timed_out {
            // The classic ikcp.c halves the effective window, not the congestion window.
            self.ssthresh = (window / 2).max(THRESH_MIN);
            self.cwnd = 1;
            self.incr = self.mss;
        }
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = self.mss;
        }
    }

    fn schedule_window_probe(&mut self) {
        if self.rmt_wnd != 0 {
            // `ts_probe` lives on a cold cache line: touched only while probing
            // (`probe_wait` is never 0 then).
            if self.probe_wait != 0 {
                self.ts_probe = 0;
                self.probe_wait = 0;
            }
            return;
        }
        if self.probe_wait == 0 {
            self.probe_wait = PROBE_INIT;
            self.ts_probe = self.current.wrapping_add(self.probe_wait);
        } else if diff(self.current, self.ts_probe) >= 0 {
            self.probe_wait = self.probe_wait.max(PROBE_INIT);
            self.probe_wait = (self.probe_wait + self.probe_wait / 2).min(PROBE_LIMIT);
            self.ts_probe = self.current.wrapping_add(self.probe_wait);
            self.probe |= ASK_SEND;
        }
    }
}
