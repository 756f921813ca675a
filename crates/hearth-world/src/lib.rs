//! Hearth's built-in world, a game on the game API like any other
//! ([`WorldGame`]): zones of walkable cells with portals between them,
//! players and NPCs that walk them, chat on the line, the zone and in
//! whispers, travel and line changes. Its zones come from a zone file
//! ([`zone`], [`DEFAULT_ZONES`]); its chat follows Hearth's [`chat`] rules
//! and the studio's hook.

pub use hearth_replica::{geometry, names, zone};

pub mod chat;
pub mod game;

/// The built-in game's zones, used when the server names no zone file.
pub const DEFAULT_ZONES: &str = include_str!("../zones/default.toml");

pub use chat::{ChatHook, ChatScope, ChatVerdict};
pub use game::{world_schema, WorldGame, WorldLine, WorldPlayer};
pub use geometry::{Pos, UNITS_PER_CELL};
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
