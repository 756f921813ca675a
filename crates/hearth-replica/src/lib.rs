//! What a client needs to follow a Hearth world, and nothing of the
//! simulation: the world's messages on the wire ([`wire`]), the actors'
//! replicated properties ([`actor`]), positions ([`geometry`]), maps
//! ([`zone`]), the client-side [`replica`] that applies the server's frames,
//! and [`record`]ings of what a player received. The SDKs (the Rust client,
//! and through its test vectors the TypeScript one) depend on this crate, not
//! on `hearth-world`, and it depends on no crypto: it decodes with
//! `hearth-codec` alone.
//!
//! `hearth-world`, the simulation, is built on these same modules and
//! re-exports them, so a game depends on one crate.

pub mod actor;
pub mod game_replica;
pub mod game_wire;
pub mod geometry;
pub mod names;
pub mod record;
pub mod replica;
pub mod schema;
pub mod wire;
pub mod zone;

pub use actor::{ActorId, ActorKind, Props};
pub use geometry::{Pos, UNITS_PER_CELL};
pub use replica::{Replica, WorldEvent};
pub use zone::{parse_zone_file, Zone, ZoneSpec};
