//! Hearth's world, deterministic like the protocol core: zones and lines,
//! the authoritative tick, actors with replicated properties, interest
//! management, per-client budgets and deltas, chat. It owns no socket and
//! reads no clock: lines are stepped tick by tick with their inputs, and the
//! directory is told the time. docs/WORLD.md has the wire format.
//!
//! The pieces, from the bottom: [`zone`] (maps), [`actor`] and [`wire`]
//! (what is replicated and how it is encoded), [`grid`] (who is near whom),
//! [`replication`] (what each client has acknowledged), [`line`] (one
//! running instance of a zone), [`directory`] (which lines exist and what
//! crosses them), and [`world::World`], which puts them together in one
//! process.

pub mod actor;
pub mod allowances;
pub mod chat;
pub mod directory;
pub mod geometry;
pub mod grid;
pub mod line;
pub mod names;
pub mod npc;
pub mod record;
pub mod replica;
pub mod replication;
pub mod wire;
pub mod world;
pub mod zone;

pub use actor::{ActorId, ActorKind, Props};
pub use allowances::Allowances;
pub use chat::{ChatHook, ChatVerdict};
pub use directory::{Action, Directory, DirectoryConfig, Join, LineKey, LineSummary};
pub use geometry::{Pos, UNITS_PER_CELL};
pub use line::{
    Arrival, Destination, Line, LineConfig, LineInput, LineOutput, LineStats, PlayerId, SavedPlayer,
};
pub use replica::{Replica, WorldEvent};
pub use world::{decode_client, ClientMessage, World};
pub use zone::{parse_zone_file, Zone, ZoneSpec, DEFAULT_ZONES};
