//! Receive flow control: an application that cannot take more reliable
//! messages (its queue is full) pauses a session's receiving. The session
//! keeps taking the peer's reliable bunches in order but holds the messages
//! they make and stops acknowledging them, so the peer keeps them
//! unacknowledged and its own limit (`max_unacked_bytes`) stops it sending
//! more: a slow application pushes back on its senders instead of dropping
//! their messages or growing without bound. Resuming delivers what was
//! held, in order, and acknowledges it.
//!
//! Bounds: what is held is charged its payload plus
//! [`EARLY_ENTRY_COST`] per message, at most `max_unacked_bytes`; a peer
//! that sends past it ignored its own limit and is closed, saying so.

use std::time::Instant;

use super::{Outbox, PausedReceive, Session};
use crate::event::CloseReason;
use crate::reassembly::Message;
use crate::reliable::EARLY_ENTRY_COST;

impl Session {
    /// Stops delivering (and acknowledging) reliable messages until
    /// [`Session::resume_receive`]. Unreliable messages and the session's
    /// own control traffic go on.
    pub(crate) fn pause_receive(&mut self) {
        if self.paused.is_none() {
            self.stats.receive_pauses += 1;
            self.paused = Some(PausedReceive {
                acknowledged: self.reliable_rx.received(),
                ..PausedReceive::default()
            });
        }
    }

    /// Delivers what was held while paused, in order, and acknowledges it.
    pub(crate) fn resume_receive(&mut self, now: Instant, out: &mut Outbox) {
        let Some(paused) = self.paused.take() else {
            return;
        };
        for message in paused.held {
            self.deliver(message, out);
        }
        self.ack_due = Some(now);
        self.defer_flush(now);
    }

    /// Whether receiving is paused.
    pub fn is_receive_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Reliable bunches acknowledged to the peer: all received in order,
    /// or while paused, those received before the pause.
    pub(crate) fn reliable_acknowledged(&self) -> u64 {
        self.paused
            .as_ref()
            .map_or(self.reliable_rx.received(), |p| p.acknowledged)
    }

    /// Delivers a reliable message, or holds it while paused.
    pub(super) fn deliver_or_hold(&mut self, now: Instant, message: Message, out: &mut Outbox) {
        let Some(paused) = self.paused.as_mut() else {
            self.deliver(message, out);
            return;
        };
        paused.held_bytes += message.payload.len() + EARLY_ENTRY_COST;
        paused.held.push_back(message);
        if paused.held_bytes > self.config.max_unacked_bytes {
            self.fail(
                now,
                CloseReason::ProtocolError(
                    "sent more unacknowledged reliable data than the session allows \
                     while the server could not take it"
                        .into(),
                ),
                out,
            );
        }
    }
}
