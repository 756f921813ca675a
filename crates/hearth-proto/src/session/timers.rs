//! Time and endings: deadlines, heartbeats, login step expiry, the
//! graceful close and its linger, and failure.

use std::time::{Duration, Instant};

use super::*;

impl Session {
    /// Graceful close: waits up to `close_linger` for reliable messages to be
    /// acknowledged, then tells the peer `code` and `reason`.
    pub fn close(&mut self, now: Instant, code: u16, reason: &str, out: &mut Outbox) {
        match self.state {
            State::Closed | State::Draining { .. } => return,
            State::Detached { .. } => {
                self.finish_close(CloseReason::Local { code }, out);
                return;
            }
            State::Active => {}
        }
        self.state = State::Draining {
            deadline: now + self.config.close_linger,
            code,
            reason: reason.to_owned(),
        };
        self.on_timeout(now, out);
    }

    /// Ends the session at once because of `reason`, telling the peer.
    pub(crate) fn fail(&mut self, now: Instant, reason: CloseReason, out: &mut Outbox) {
        if self.state == State::Closed {
            return;
        }
        let text = reason.wire_text();
        self.send_control(&crate::control::ControlMessage::Failure {
            code: reason.code(),
            reason: text.clone(),
        });
        self.closing_frame = Some((reason.code(), text));
        self.flush(now, out);
        self.finish_close(reason, out);
    }

    /// Marks the session closed and reports it; what is queued is sent.
    pub(crate) fn finish_close(&mut self, reason: CloseReason, out: &mut Outbox) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        if let Some(stream) = self.stream.take() {
            out.transmits
                .push_back(Transmit::CloseStream { stream: stream.id });
        }
        self.datagram = None;
        out.events.push_back((self.id, Event::Closed(reason)));
    }

    // ---- time --------------------------------------------------------------

    /// The earliest moment `on_timeout` has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        };
        match &self.state {
            State::Closed => return None,
            State::Draining { deadline, .. } | State::Detached { deadline } => {
                consider(Some(*deadline))
            }
            State::Active => {}
        }
        consider(self.login.deadline());
        if self.datagram.is_some() || self.stream.is_some() {
            // An acknowledgement needs a link; without one it waits for the resume.
            consider(self.ack_due);
        }
        let interval = self.heartbeat_now();
        let idle = self.config.idle_timeout;
        let measured = self.stats.rtt.smoothed.is_some();
        if let Some(link) = &self.datagram {
            consider(Some(link.live.ping_at(interval, measured)));
            consider(Some(link.live.last_received + idle));
            consider(Some(link.kcp_due));
        }
        if let Some(link) = &self.stream {
            consider(Some(link.live.ping_at(interval, measured)));
            consider(Some(link.live.last_received + idle));
        }
        earliest
    }

    pub fn on_timeout(&mut self, now: Instant, out: &mut Outbox) {
        // What an input or a send left for the next poll goes first: a
        // heartbeat is due only if the link has been quiet, and a pending
        // reply (a Pong, an echo) is about to end that quiet.
        self.flush_if_deferred(out);
        match self.state.clone() {
            State::Closed => return,
            State::Detached { deadline } if now >= deadline => {
                self.finish_close(CloseReason::Timeout, out);
                return;
            }
            State::Draining {
                deadline,
                code,
                reason,
            } if self.reliable_tx.is_idle() || now >= deadline => {
                self.closing_frame = Some((code, reason));
                self.flush(now, out);
                self.finish_close(CloseReason::Local { code }, out);
                return;
            }
            _ => {}
        }
        if let Some(what) = self.login.expired(now) {
            self.fail(
                now,
                CloseReason::LoginTimeout(format!(
                    "no {what} within {:?}",
                    self.config.login_step_timeout
                )),
                out,
            );
            return;
        }
        let idle = self.config.idle_timeout;
        let interval = self.heartbeat_now();
        let measured = self.stats.rtt.smoothed.is_some();
        if let Some(link) = self.datagram.as_mut() {
            if now >= link.live.last_received + idle {
                self.lose_link(now, LinkKind::Datagram, out);
            } else if now >= link.live.ping_at(interval, measured) {
                link.live.ping_due = true;
            }
        }
        if let Some(link) = self.stream.as_mut() {
            if now >= link.live.last_received + idle {
                self.lose_link(now, LinkKind::Stream, out);
            } else if now >= link.live.ping_at(interval, measured) {
                link.live.ping_due = true;
            }
        }
        if self.state != State::Closed {
            self.flush(now, out);
        }
    }

    /// The heartbeat interval, shortened while a closing session waits for
    /// acknowledgements: each Ping makes the peer repeat its Ack, so a lost
    /// final Ack costs a probe interval instead of the whole linger.
    pub(super) fn heartbeat_now(&self) -> Duration {
        match self.state {
            State::Draining { .. } if !self.reliable_tx.is_idle() => {
                CLOSE_PROBE_INTERVAL.min(self.config.heartbeat_interval)
            }
            _ => self.config.heartbeat_interval,
        }
    }
}
