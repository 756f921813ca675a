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
    fn a_restart_forgets_the_last_line() {
        let mut acks = FrameAcks::default();
        acks.applied(5);
        acks.restart(100);
        acks.applied(101);
        assert_eq!(acks.take(), (101, 0));
    }
}
