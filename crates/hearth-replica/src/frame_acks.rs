//! Which frames a client applied, and when it tells the server: one
//! acknowledgement names the newest frame and, in a bitmask, the frames of
//! the [`EARLIER_FRAMES`] ticks before it that were applied too, so a client
//! need not speak every tick. The server counts an actor as known to the
//! client as of the newest acknowledged frame that carried it; a frame
//! left out of every acknowledgement counts as lost, and what it carried is
//! sent again.
//!
//! A client acknowledges every [`ACK_EVERY`]th frame it applies (and with
//! each of its moves): a crowd's clients then send a few messages a second,
//! not one per tick, and each costs the server a datagram to open.
//!
//! Moves are not held back to go two at a time: a client that polls only
//! when something arrives (as many do) would keep a held move for ever if
//! the server, not having it, had nothing to send. (Measured with the crowd
//! benchmark's light bots, pairing moves saved the server nothing visible.)

use std::collections::VecDeque;

use crate::game_wire::{GameClientMessage, GameMove, MAX_MOVES};
use crate::geometry::Pos;
use crate::schema::Schema;

/// Frames applied between two acknowledgements (without moves between).
pub const ACK_EVERY: u32 = 3;

/// Ticks before the newest acknowledged frame that an acknowledgement
/// covers: the bits of its `earlier` mask.
pub const EARLIER_FRAMES: u64 = 32;

/// A client's record of the frames it applied since it last acknowledged.
#[derive(Debug, Clone, Default)]
pub struct FrameAcks {
    /// The newest frame applied (or the tick before a line's first frame):
    /// no older frame is applied after it.
    newest: u64,
    /// `newest` is a frame that was applied (not a line's start).
    newest_applied: bool,
    /// Bit `i`: the frame of tick `newest - 1 - i` was applied.
    earlier: u32,
    /// Frames applied since the last acknowledgement.
    unacknowledged: u32,
}

impl FrameAcks {
    /// A line's frames begin after `tick` (its `Joined`): nothing of the
    /// last line's is acknowledged any more.
    pub fn restart(&mut self, tick: u64) {
        *self = Self {
            newest: tick,
            ..Self::default()
        };
    }

    /// The newest frame applied: a frame of this tick or older is stale.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// The frame of `tick` (newer than [`Self::newest`]) was applied.
    pub fn applied(&mut self, tick: u64) {
        debug_assert!(tick > self.newest);
        let shift = tick - self.newest;
        self.earlier = if shift > EARLIER_FRAMES {
            0
        } else {
            // The former newest becomes bit `shift - 1`.
            let moved = (u64::from(self.earlier) << shift) & u64::from(u32::MAX);
            let former = u64::from(self.newest_applied) << (shift - 1);
            ((moved | former) & u64::from(u32::MAX)) as u32
        };
        self.newest = tick;
        self.newest_applied = true;
        self.unacknowledged += 1;
    }

    /// Enough frames went unacknowledged to send an acknowledgement.
    pub fn due(&self) -> bool {
        self.unacknowledged >= ACK_EVERY
    }

    /// Some frame went unacknowledged (what a message with moves carries
    /// anyway).
    pub fn any(&self) -> bool {
        self.unacknowledged > 0
    }

    /// The acknowledgement to send now, (newest tick, earlier mask); 0
    /// when no frame was applied.
    pub fn take(&mut self) -> (u64, u32) {
        self.unacknowledged = 0;
        (self.newest, self.earlier)
    }
}

/// What a client sends on the state channel, for both replicas (the full
/// one and the light one): its acknowledgements, and its controlled actor's
/// moves the server has not taken yet, resent with every state message
/// until a frame's input ack covers them.
#[derive(Debug, Clone, Default)]
pub struct StateSender {
    /// The frames applied.
    pub acks: FrameAcks,
    /// Moves made and not taken by the server, oldest first (at most
    /// [`MAX_MOVES`]).
    pending: VecDeque<GameMove>,
    /// The number of the last move made (from 1, wrapping).
    last_seq: u32,
    /// A move was made since the last state message.
    moves_due: bool,
}

impl StateSender {
    /// A move of the controlled actor to `to`, numbered. Beyond
    /// [`MAX_MOVES`] unacknowledged the oldest is forgotten: the server
    /// sees a jump from the last move it took and, if too far, corrects.
    pub fn push_move(&mut self, to: Pos) {
        self.last_seq = self.last_seq.wrapping_add(1).max(1);
        if self.pending.len() >= MAX_MOVES {
            self.pending.pop_front();
        }
        self.pending.push_back(GameMove {
            seq: self.last_seq,
            pos: to,
        });
        self.moves_due = true;
    }

    /// Where the newest move not yet taken puts the controlled actor.
    pub fn newest_move(&self) -> Option<Pos> {
        self.pending.back().map(|m| m.pos)
    }

    /// Moves made and not taken by the server yet.
    pub fn pending_moves(&self) -> usize {
        self.pending.len()
    }

    /// The server took every move up to `input_ack` (a frame's): they are
    /// not sent again. The last of them, if any.
    pub fn taken(&mut self, input_ack: u32) -> Option<GameMove> {
        let mut last = None;
        // `seq` was made no later than `input_ack` (sequence numbers wrap).
        while let Some(m) = self
            .pending
            .front()
            .filter(|m| input_ack.wrapping_sub(m.seq) < u32::MAX / 2)
        {
            last = Some(*m);
            self.pending.pop_front();
        }
        last
    }

    /// Drops the moves not yet taken (refused, or of the last line).
    pub fn forget_moves(&mut self) {
        self.pending.clear();
    }

    /// What to send on the state channel, when a move was made or enough
    /// frames were applied since the last call: the acknowledgement, with
    /// the moves the server has not taken yet.
    pub fn poll(&mut self, schema: &Schema) -> Option<Vec<u8>> {
        let moves_due = std::mem::take(&mut self.moves_due);
        if !self.acks.due() && !moves_due {
            return None;
        }
        let (tick, earlier) = self.acks.take();
        let message = match self.pending.is_empty() {
            true => GameClientMessage::Ack { tick, earlier },
            false => GameClientMessage::Moves {
                ack: tick,
                earlier,
                moves: self.pending.iter().copied().collect(),
            },
        };
        let mut out = Vec::new();
        message.encode(schema, &mut out);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_frames_are_named_by_their_distance_from_the_newest() {
        let mut acks = FrameAcks::default();
        acks.restart(9);
        acks.applied(10);
        assert!(!acks.due());
        acks.applied(11);
        acks.applied(13);
        assert!(acks.due());
        // 12 was not applied: bit 0 clear; 11 is bit 1, 10 bit 2.
        assert_eq!(acks.take(), (13, 0b110));
        assert!(!acks.any());
        acks.applied(13 + EARLIER_FRAMES + 1);
        assert_eq!(acks.take(), (13 + EARLIER_FRAMES + 1, 0));
    }

    #[test]
    fn moves_are_resent_until_taken_and_at_most_the_newest_sixteen_wait() {
        let schema = Schema::new("moves", vec![], vec![]).unwrap();
        let mut state = StateSender::default();
        assert_eq!(state.poll(&schema), None, "nothing to say");
        for x in 1..=20 {
            state.push_move(Pos::new(x * 10, 0));
        }
        assert_eq!(state.pending_moves(), MAX_MOVES);
        let sent = state.poll(&schema).expect("moves are due");
        let Ok(GameClientMessage::Moves { moves, .. }) =
            GameClientMessage::decode(crate::game_wire::STATE_CHANNEL, &sent, &schema)
        else {
            panic!("not a moves message")
        };
        assert_eq!(
            moves.first().map(|m| m.seq),
            Some(5),
            "the oldest four forgotten"
        );
        // The server took up to move 18: the last taken is 18, two wait.
        assert_eq!(state.taken(18).map(|m| m.pos), Some(Pos::new(180, 0)));
        assert_eq!(state.pending_moves(), 2);
        assert_eq!(state.taken(18), None, "taken once");
        assert_eq!(state.newest_move(), Some(Pos::new(200, 0)));
        state.forget_moves();
        assert_eq!(state.newest_move(), None);
    }

    #[test]
    fn a_restart_forgets_the_last_line() {
        let mut acks = FrameAcks::default();
        acks.applied(5);
        acks.restart(100);
        acks.applied(101);
        assert_eq!(acks.take(), (101, 0));
    }
}
