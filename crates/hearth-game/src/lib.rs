//! Hearth's game API: what a studio writes its game against.
//!
//! A game declares its [`Schema`](hearth_replica::schema::Schema) (kinds of
//! actor with typed replicated properties, and typed messages both ways)
//! and implements [`Game`]: per-line logic called as the line is stepped
//! (`on_join`, `on_leave`, `on_message`, `on_tick`, `on_timer`), with the
//! line's actors, timers, a seeded random source and each player's saved
//! data reached through [`Ctx`]. Hearth runs it in a [`GameLine`]: decodes
//! and rate-limits what clients send before the game sees it, replicates
//! actors to each client (spawns with everything the client may see, deltas
//! against what it acknowledged, owner-only and server-only properties kept
//! from those who may not see them), saves players' data, and snapshots the
//! whole line so that a restored line produces byte-identical outputs.
//!
//! No clock and no I/O inside: a whole match runs in a unit test.

mod blocks;
mod bucket;
mod ctx;
pub mod directory;
mod game;
pub mod grid;
mod ids;
mod line;
mod lines;
mod movement;
mod replicate;
mod rng;
mod state;

pub use bucket::{RateLimits, TickBucket};
pub use ctx::{Ctx, GameError, MAX_OUTBOX_BYTES, MAX_OUTBOX_ITEMS, MAX_ZONE_MESSAGES};
pub use game::{Game, LoginInfo, PreLogin, Refused};
pub use ids::{ActorId, KindId, MessageId, PlayerId, PropId, TimerId};
pub use line::{
    Entrance, GameLine, GameOutput, InputError, ObserverId, Shedding, SnapshotError, Transfer,
    MAX_OBSERVERS,
};
pub use lines::{GameLines, Handoff, Joining, LinesOutput, OtherNode, RelayedError, RestartError};
pub use replicate::{
    MAX_FRAME_SHIFT, MAX_IN_FLIGHT, MAX_RELIABLE_BYTES, MIN_BUDGET, OBSERVER_BUDGET,
};
pub use rng::Rng;
pub use state::GameStats;

pub use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
pub use hearth_replica::zone::{Zone, ZoneSpec};
pub use hearth_replica::{game_wire, record, schema};
