//! The state of a game line that Hearth keeps (everything but the game's
//! own [`crate::Game::Line`]): actors, players, timers, the random source,
//! the inbox, the counters. All of it is in the snapshot; ordered maps
//! only, so that it serializes and iterates the same way every time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use hearth_replica::game_wire::GameMove;
use hearth_replica::schema::Value;

use crate::bucket::TickBucket;
use crate::ids::{ActorId, PlayerId};
use crate::replicate::ClientView;
use crate::rng::Rng;

/// An actor of a game line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActorState {
    pub kind: u16,
    /// Who sees its owner-only properties.
    pub owner: Option<PlayerId>,
    /// The player whose moves steer it: told when the game places it.
    pub controller: Option<PlayerId>,
    /// Every property's value, by index.
    pub values: Vec<Value>,
    /// The tick each property last changed: what a client lacks is what
    /// changed after the tick it acknowledged.
    pub changed: Vec<u64>,
    /// The newest of `changed` among frame properties: an actor whose frame
    /// properties did not change since a client's acknowledgement is
    /// dormant for it and costs one comparison.
    pub frame_changed: u64,
    /// The same among reliable properties: an actor none of whose reliable
    /// properties changed since a client's last tick costs one comparison.
    pub reliable_changed: u64,
    /// Where the actor walks (`Ctx::walk_to`): Hearth steps it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_to: Option<hearth_replica::geometry::Pos>,
    /// The walk's step per tick in position units, if slower than the
    /// kind's legal one (`Ctx::walk_to_at`); 0: the legal one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub walk_step: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A player in a game line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PlayerState<P> {
    /// The player's name (as logged in), for the game to show.
    pub name: String,
    /// The game's data of this player, saved between sessions.
    pub data: P,
    /// `data` changed since it was last saved.
    pub dirty: bool,
    /// What this player's client has and what is on its way.
    pub view: ClientView,
    /// One per message of the schema (only `to_server` ones are used): the
    /// message's rate limit for this player.
    pub buckets: Vec<TickBucket>,
    /// Message items queued for this player this tick (encoded), and how
    /// many: sent with the tick's reliable message.
    pub outbox: Vec<u8>,
    pub outbox_items: u32,
    /// Bytes this player's client may be sent per tick (frames, spawns,
    /// sets, messages): what does not fit waits, by priority.
    pub budget: u32,
    /// How this player moves its actor.
    pub steer: Steering,
    /// Where the player was to appear when they entered (from a travel):
    /// `Ctx::arrival`.
    pub arrival: Option<hearth_replica::geometry::Pos>,
}

/// Whoever watches the whole line without being in it: a recording of the
/// line ([`crate::GameLine::observe`]). The game never hears of it; it is
/// sent what a player who controls nothing would see (every actor, their
/// properties for everyone, the line's and the zone's messages), each
/// frame counted as acknowledged once sent (a file loses nothing).
#[derive(Debug, Default)]
pub(crate) struct Observer {
    /// What the observer has been sent.
    pub view: ClientView,
    /// Never steers anything: replication's view of "no actor".
    pub steer: Steering,
    /// Line and zone messages queued this tick, as a player's.
    pub outbox: Vec<u8>,
    pub outbox_items: u32,
}

/// A player's control of a moving actor, and the state of its moves.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Steering {
    /// The actor the player's moves steer (of a moving kind).
    pub actor: Option<ActorId>,
    /// `actor` changed since the client was told.
    pub announce: bool,
    /// The newest move taken (accepted or refused): the frame's input ack.
    pub last_seq: u32,
    /// Movement the player may still make, in position units: refilled
    /// each tick at the kind's speed, banked up to a few ticks (absorbs
    /// jitter in when moves arrive without allowing a sprint).
    pub allowance: i64,
    /// The client's newest moves, taken at the next tick.
    pub moves: Vec<GameMove>,
    /// Moves were taken since the last frame: a frame goes out even with no
    /// update, to acknowledge them.
    pub moved: bool,
    /// A move was refused (or the game placed the actor) since the last
    /// frame.
    pub corrected: bool,
}

/// What arrived for the game, handled at the next tick in arrival order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Inbound {
    Join {
        player: PlayerId,
        name: String,
        /// The player's saved data as the host stored it, if any.
        saved: Option<Vec<u8>>,
        /// Where they should appear (`Ctx::arrival`).
        at: Option<hearth_replica::geometry::Pos>,
        /// The client's NetSpeed, if it named one.
        bytes_per_second: Option<u32>,
        /// The player's entry into lines (`Entrance::entry`).
        #[serde(default)]
        entry: u8,
    },
    /// The host could not do what the game asked for the player.
    Refused {
        player: PlayerId,
        refused: crate::game::Refused,
    },
    Announce {
        text: String,
    },
    /// A message from another line for a player whose join is ahead of it
    /// in the inbox.
    Deliver {
        player: PlayerId,
        message: u16,
        body: Vec<u8>,
    },
    Leave {
        player: PlayerId,
    },
    Message {
        player: PlayerId,
        index: u16,
        values: Vec<Value>,
    },
}

/// Counters of one game line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameStats {
    pub ticks: u64,
    /// Messages handed to the game.
    pub messages_in: u64,
    /// Messages that did not decode (the host closes their sessions).
    pub messages_undecodable: u64,
    /// Messages beyond their rate limit: dropped, never seen by the game.
    pub messages_rate_limited: u64,
    /// Messages the game sent beyond a player's per-tick queue: dropped.
    pub messages_out_dropped: u64,
    /// Game payload bytes sent to players.
    pub bytes_out: u64,
    /// Acknowledgements of frames that were never sent or are stale.
    pub bad_acks: u64,
    /// Saved player data that no longer reads as the game's type (the
    /// player started afresh).
    pub player_data_unreadable: u64,
    /// Messages and inputs for players not in the line.
    pub unknown_players: u64,
    /// Moves taken, and refused because they went out of the zone, faster
    /// than the kind's speed, or through a wall.
    pub moves_accepted: u64,
    pub moves_out_of_bounds: u64,
    pub moves_too_fast: u64,
    pub moves_blocked: u64,
    /// Spawns and updates a client's byte budget could not take this tick
    /// (they go later, by priority).
    pub deferred: u64,
    /// Ticks a saturated client was not replicated in (it is sent the
    /// budget of those ticks in its next frame; see `MAX_FRAME_SHIFT`).
    #[serde(default)]
    pub frames_paused: u64,
    /// Actor updates sent in shared units to clients in a crowd (see
    /// `crate::blocks`), counted per client.
    #[serde(default)]
    pub shared_updates: u64,
    /// Bytes sent to observers of the whole line (recordings), not in
    /// `bytes_out`.
    #[serde(default)]
    pub bytes_to_observers: u64,
}

/// Everything Hearth keeps of a line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Core<P> {
    /// 64 bits: a line may run for ever (and move between machines) without
    /// its tick wrapping, which would make every later change look old.
    pub tick: u64,
    pub tick_hz: u32,
    pub rng: Rng,
    pub actors: BTreeMap<ActorId, ActorState>,
    /// Actor ids are never reused in a line: a stale message cannot be
    /// applied to a newcomer.
    pub next_actor: u32,
    pub players: BTreeMap<PlayerId, PlayerState<P>>,
    /// Timers by due tick, then id (the order they fire in).
    pub timers: BTreeSet<(u64, u64)>,
    /// Each timer's due tick and the game's tag, by id.
    pub timer_tags: BTreeMap<u64, (u64, u64)>,
    pub next_timer: u64,
    pub inbox: VecDeque<Inbound>,
    /// Players whose join is in the inbox: the rate limits of their
    /// messages, which may arrive before the join is handled (the client
    /// does not wait for the game's first message to speak).
    pub joining: BTreeMap<PlayerId, Vec<TickBucket>>,
    pub stats: GameStats,
    /// Save each changed player at least this often (0: only on leave).
    pub save_every_ticks: u32,
    /// Sessions the game asked to close, with the reason shown to the
    /// player; taken into the outputs at the end of the tick.
    pub kicks: Vec<(PlayerId, String)>,
    /// Messages for every line of the zone, for the host to deliver.
    pub to_zone: Vec<(u16, Vec<u8>)>,
    /// Messages for players by name in other lines (sender, name,
    /// message, body), for the host to deliver.
    pub to_named: Vec<(PlayerId, String, u16, Vec<u8>)>,
    /// Changes of line or zone the game asked for, for the host to decide.
    pub transfers: Vec<(PlayerId, crate::line::Transfer)>,
    /// At most this many actors walk (`Ctx::walk_to`): none, and the walk
    /// step skips its pass over the actors.
    pub walkers: usize,
    /// Walks that ended (the actor, and whether it arrived), for
    /// `Game::on_walk_end` at the next chance: one ended by `Ctx::walk_to`
    /// to where the actor stands waits here for the next tick.
    #[serde(default)]
    pub walks_ended: Vec<(ActorId, bool)>,
    /// Observers of the whole line (recordings), by number: not part of
    /// the snapshot (a recording belongs to the machine writing it).
    #[serde(skip)]
    pub observers: BTreeMap<u32, Observer>,
    /// Numbers observers (never reused while the line runs).
    #[serde(skip)]
    pub next_observer: u32,
}
