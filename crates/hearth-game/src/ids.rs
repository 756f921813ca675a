//! Handles a game holds: looked up by name once, then cheap to use.

use serde::{Deserialize, Serialize};

pub use hearth_replica::actor::ActorId;

/// A player in a line: the host's name for the player's session.
pub type PlayerId = u64;

/// A kind of actor of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KindId(pub(crate) u16);

/// A property of a kind of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PropId {
    pub(crate) kind: u16,
    pub(crate) index: u8,
}

/// A message of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub(crate) u16);

impl MessageId {
    /// Its index in the schema's messages.
    pub fn index(self) -> u16 {
        self.0
    }
}

/// A timer set with [`crate::Ctx::after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerId(pub(crate) u64);
