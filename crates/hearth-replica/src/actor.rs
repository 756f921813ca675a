//! Actors and their replicated properties.
//!
//! Every actor (player or NPC) has the same typed properties; which of them
//! changed is a bit mask, so an update carries only those (see
//! [`crate::wire`] for the encoding).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::geometry::Pos;

/// Unique within a line for the line's lifetime (never reused, so a stale
/// message cannot be applied to a newcomer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActorKind {
    Player = 0,
    Npc = 1,
}

impl ActorKind {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Player),
            1 => Some(Self::Npc),
            _ => None,
        }
    }
}

/// Game values every actor carries; the default game uses them as health,
/// level, score and a mood the NPCs show.
pub const VALUES: usize = 4;

/// Longest actor name, in bytes.
pub const MAX_ACTOR_NAME: usize = 32;

/// The replicated properties of one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Props {
    pub pos: Pos,
    /// 256ths of a turn; 0 faces +x.
    pub facing: u8,
    pub name: Arc<str>,
    /// What the client draws (a sprite or colour index of the game's choosing).
    pub appearance: u32,
    pub values: [i32; VALUES],
}

/// Which properties an update carries.
pub mod field {
    pub const POS: u8 = 1 << 0;
    pub const FACING: u8 = 1 << 1;
    pub const NAME: u8 = 1 << 2;
    pub const APPEARANCE: u8 = 1 << 3;
    /// Value `i` is bit `VALUE0 << i`.
    pub const VALUE0: u8 = 1 << 4;
    pub const ALL: u8 = 0xff;
}

impl Props {
    /// Zero everywhere, empty name: what a decoder fills in.
    pub fn empty() -> Self {
        Self {
            pos: Pos::default(),
            facing: 0,
            name: Arc::from(""),
            appearance: 0,
            values: [0; VALUES],
        }
    }

    /// The properties that differ between `self` and `other`.
    pub fn diff(&self, other: &Props) -> u8 {
        let mut mask = 0;
        if self.pos != other.pos {
            mask |= field::POS;
        }
        if self.facing != other.facing {
            mask |= field::FACING;
        }
        if !Arc::ptr_eq(&self.name, &other.name) && self.name != other.name {
            mask |= field::NAME;
        }
        if self.appearance != other.appearance {
            mask |= field::APPEARANCE;
        }
        for i in 0..VALUES {
            if self.values[i] != other.values[i] {
                mask |= field::VALUE0 << i;
            }
        }
        mask
    }

    /// Copies the fields in `mask` from `from`.
    pub fn apply(&mut self, mask: u8, from: &Props) {
        if mask & field::POS != 0 {
            self.pos = from.pos;
        }
        if mask & field::FACING != 0 {
            self.facing = from.facing;
        }
        if mask & field::NAME != 0 {
            self.name = from.name.clone();
        }
        if mask & field::APPEARANCE != 0 {
            self.appearance = from.appearance;
        }
        for i in 0..VALUES {
            if mask & (field::VALUE0 << i) != 0 {
                self.values[i] = from.values[i];
            }
        }
    }
}

/// An actor in a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: ActorId,
    pub kind: ActorKind,
    pub props: Props,
    /// The last tick any property changed: actors that have not changed
    /// since a client's baseline are dormant for it and cost nothing.
    pub changed_tick: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Props {
        Props {
            pos: Pos::new(1, 2),
            facing: 0,
            name: "a".into(),
            appearance: 3,
            values: [1, 2, 3, 4],
        }
    }

    #[test]
    fn diff_then_apply_reproduces_the_newer_state() {
        let old = props();
        let mut new = props();
        new.pos.x = 9;
        new.values[2] = -5;
        new.name = "b".into();
        let mask = new.diff(&old);
        assert_eq!(mask, field::POS | field::NAME | (field::VALUE0 << 2));
        let mut copy = old.clone();
        copy.apply(mask, &new);
        assert_eq!(copy, new);
        assert_eq!(new.diff(&copy), 0);
    }
}

/// Hashes actor ids (small dense integers) with one multiply: the view and
/// index tables are looked up hundreds of thousands of times a tick, where
/// SipHash's resistance to chosen keys buys nothing (the server picks ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(value)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// `HashMap` keyed by actor id.
pub type ActorMap<V> =
    std::collections::HashMap<ActorId, V, std::hash::BuildHasherDefault<IdHasher>>;
