//! Hearth's world, deterministic like the protocol core: zones and lines,
//! the authoritative tick, actors with replicated properties, interest
//! management, per-client budgets and deltas, chat. It owns no socket and
//! reads no clock: lines are stepped tick by tick with their inputs, and the
//! directory is told the time. docs/WORLD.md has the wire format.
//!
//! The pieces, from the bottom: from `hearth-replica`, the part a client
//! shares, [`zone`] (maps), [`actor`] and [`wire`] (what is replicated and
//! how it is encoded); then [`grid`] (who is near whom), [`replication`]
//! (what each client has acknowledged), [`line`] (one running instance of a
//! zone), [`directory`] (which lines exist and what crosses them), and
//! [`world::World`], which puts them together in one process.

pub use hearth_game::grid;
pub use hearth_replica::{actor, geometry, names, record, replica, wire, zone};

pub mod allowances;
pub mod chat;
pub mod directory;
pub mod game;

pub mod line;
pub mod npc;
pub mod replication;
pub mod world;

/// The built-in game's zones, used when the server names no zone file.
pub const DEFAULT_ZONES: &str = include_str!("../zones/default.toml");

pub use actor::{ActorId, ActorKind, Props};
pub use allowances::Allowances;
pub use chat::{ChatHook, ChatVerdict};
pub use directory::{Action, Directory, DirectoryConfig, Join, LineKey, LineSummary};
pub use game::{world_schema, WorldGame, WorldLine, WorldPlayer};
pub use geometry::{Pos, UNITS_PER_CELL};
pub use line::{
    Arrival, Destination, Line, LineConfig, LineInput, LineOutput, LineStats, PlayerId, SavedPlayer,
};
pub use replica::{Replica, WorldEvent};
pub use world::{decode_client, ClientMessage, World};
pub use zone::{parse_zone_file, Zone, ZoneSpec};

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_zones_parse_and_their_portals_connect() {
        let zones = super::parse_zone_file(super::DEFAULT_ZONES).unwrap();
        assert!(zones.len() >= 3);
        assert!(zones.iter().all(|z| !z.spawns.is_empty()));
    }
}
