//! Receive flow control: an application that cannot take more reliable
//! messages (its queue is full) pauses a session's receiving. The session
//! keeps taking the peer's reliable bunches in order but holds the messages
//! they make and stops acknowledging them, so the peer keeps them
//! unacknowledged and its own limit (`max_unacked_bytes`) stops it sending
//! more: a slow application pushes back on its senders instead of dropping
//! their messages or growing without bound. Resuming delivers what was
//! held, in order, and acknowledges it.
//!
//! Resuming may be gradual (`max` messages at a time, as the application
//! has room): the acknowledgement then advances over exactly the messages
//! delivered, and the rest stay held.
//!
//! Bounds: what is held is charged its payload plus the smallest bunch
//! header ([`MIN_BUNCH_HEADER`], what the peer counts of it at the least),
//! at most `max_unacked_bytes`, and at most [`MAX_HELD_MESSAGES`] messages;
//! a peer that sends past the first ignored its own limit, and one past the
//! second sent tens of thousands of messages the server had said it could
//! not take: either is closed, saying so.

use std::time::Instant;

use super::{Outbox, PausedReceive, Session};
use crate::event::CloseReason;
use crate::reassembly::Message;

/// The smallest reliable bunch header (flags, channel, sequence): what the
/// peer counts against its unacknowledged limit besides the payload, at
/// the least.
pub const MIN_BUNCH_HEADER: usize = 3;

/// Reliable messages one paused session may hold.
pub const MAX_HELD_MESSAGES: usize = 65_536;

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

    /// Delivers up to `max` of the messages held while paused, in order,
    /// and acknowledges them; receiving resumes once none is left. True
    /// when it did (false: still paused, with messages held).
    pub(crate) fn resume_receive(&mut self, now: Instant, max: usize, out: &mut Outbox) -> bool {
        let Some(paused) = self.paused.as_mut() else {
            return true;
        };
        let count = max.min(paused.held.len());
        let delivered: Vec<_> = paused.held.drain(..count).collect();
        if let Some((_, through)) = delivered.last() {
            paused.acknowledged = *through;
        }
        for (message, _) in &delivered {
            paused.held_bytes -= message.payload.len() + MIN_BUNCH_HEADER;
        }
        let resumed = paused.held.is_empty();
        if resumed {
            self.paused = None;
        }
        for (message, _) in delivered {
            self.deliver(message, out);
        }
        self.ack_due = Some(now);
        self.defer_flush(now);
        resumed
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
        paused.held_bytes += message.payload.len() + MIN_BUNCH_HEADER;
        // The bunches received so far, this message's last among them.
        paused
            .held
            .push_back((message, self.reliable_rx.received()));
        let why = if paused.held_bytes > self.config.max_unacked_bytes {
            "sent more unacknowledged reliable data than the session allows \
             while the server could not take it"
        } else if paused.held.len() > MAX_HELD_MESSAGES {
            "sent more than 65,536 reliable messages while the server could not take them"
        } else {
            return;
        };
        self.fail(now, CloseReason::ProtocolError(why.into()), out);
    }
}
