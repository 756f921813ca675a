//! Actors' identities. What an actor is and carries is the game's schema's
//! business ([`crate::schema`]); its id is Hearth's.

use serde::{Deserialize, Serialize};

/// Unique within a line for the line's lifetime (never reused, so a stale
/// message cannot be applied to a newcomer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId(pub u32);
