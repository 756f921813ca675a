//! What a client needs to follow a game on Hearth, and nothing of the
//! simulation: the game's [`schema`], its messages on the wire
//! ([`game_wire`]), the client-side [`game_replica`] that applies the
//! server's frames and predicts the player's moves, positions
//! ([`geometry`]), maps ([`zone`]), and [`record`]ings of what a player
//! received. The SDKs (the Rust client, and through its test vectors the
//! TypeScript one) depend on this crate, not on the simulation
//! (`hearth-game`), and it depends on no crypto: it decodes with
//! `hearth-codec` alone.

pub mod actor;
pub mod frame_acks;
pub mod game_replica;
pub mod game_wire;
pub mod geometry;
pub mod light;
pub mod names;
pub mod record;
pub mod schema;
pub mod zone;

pub use actor::ActorId;
pub use geometry::{Pos, UNITS_PER_CELL};
pub use zone::{parse_zone_file, Zone, ZoneSpec};
