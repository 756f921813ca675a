//! A player's allowances: how much the per-player rate limits still let
//! them do. They belong to the player, not to the line they are on: they
//! travel into a line in [`Arrival`](crate::Arrival) and come back out in
//! [`LineOutput::Left`](crate::LineOutput::Left), through the directory, so
//! changing line or zone carries them over as they were. (A line that gave
//! each arrival fresh allowances let a client switching lines on every
//! arrival chat without limit.)
//!
//! Nothing refills them between lines: a player in transit loses at most
//! one tick's refill, and can never come out of a move with more than
//! they went in with, nor above a limit's burst.

use serde::{Deserialize, Serialize};

use crate::chat::ChatBucket;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowances {
    /// Chat messages the player may still send (line and zone chat and
    /// whispers draw from the one bucket).
    pub chat: ChatBucket,
    /// Movement banked, in position units, to absorb jitter in when moves
    /// arrive. `None` for a player new to the world: the first line grants
    /// its opening allowance, as only a line knows its zone's legal step.
    pub movement: Option<i64>,
}
