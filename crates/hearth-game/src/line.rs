//! [`GameLine`]: one running instance of a game, stepped by its host one
//! tick at a time. Inputs in (joins, leaves, clients' bytes), outputs out
//! ([`GameOutput`]: bytes for sessions, saves, closes); no clock, no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use hearth_codec::DecodeError;
use hearth_replica::game_wire::{GameClientMessage, GameMove, RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::geometry::Pos;
use hearth_replica::schema::{Direction, Schema};

use crate::bucket::{RateLimits, TickBucket};
use crate::ctx::{kind_masks, Ctx, KindMasks};
use crate::game::{Game, Refused};
use crate::ids::{MessageId, PlayerId, TimerId};
use crate::movement::{take_moves, take_walks, Space};
use crate::replicate::{replicate, ClientView, Scratch, Viewer, MIN_BUDGET};
use crate::rng::Rng;
use crate::state::{Core, GameStats, Inbound, Observer, PlayerState};

/// What a line asks of its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameOutput {
    /// Bytes for one player's session on a game channel.
    Send {
        player: PlayerId,
        channel: u16,
        bytes: Vec<u8>,
    },
    /// Store this player's data (the game's `Player`, serialized), to be
    /// given back at their next join: a periodic save of a player who
    /// stays.
    Save { player: PlayerId, data: Vec<u8> },
    /// The player is out of the line (after [`GameLine::leave`]), with
    /// their data to store and what their rate limits still allow: logged
    /// out, or on their way to another line (the host gives both to that
    /// line's [`GameLine::enter`]).
    Left {
        player: PlayerId,
        data: Vec<u8>,
        limits: RateLimits,
    },
    /// The game asked to move the player ([`Ctx::change_line`],
    /// [`Ctx::travel`]): the host decides, and answers with
    /// [`GameLine::leave`] or [`GameLine::refuse`].
    Transfer { player: PlayerId, to: Transfer },
    /// A message for the player with this name, who is not in this line
    /// ([`Ctx::send_to_named`]): the host delivers it with
    /// [`GameLine::deliver_to_player`], or tells `from`'s line with
    /// [`GameLine::refuse`].
    ToNamed {
        from: PlayerId,
        name: String,
        message: MessageId,
        body: Vec<u8>,
    },
    /// Close the player's session, showing `reason`.
    Close { player: PlayerId, reason: String },
    /// Deliver a message to the other lines of this zone (each with
    /// [`GameLine::deliver_to_line`]); this line's players have it.
    ToZone { message: MessageId, body: Vec<u8> },
    /// Bytes for an observer of the whole line ([`GameLine::observe`]), as
    /// a client would receive them on a game channel.
    Observed {
        observer: ObserverId,
        channel: u16,
        bytes: Vec<u8>,
    },
}

/// An observer of a whole line ([`GameLine::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObserverId(pub u32);

/// Where the game asked to move a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transfer {
    /// Another line (1-based) of the same zone.
    Line(u32),
    /// A line of zone `zone` (its index in `Game::zones`), appearing at
    /// `at` (`Ctx::arrival`).
    Zone { zone: u16, at: Option<Pos> },
}

/// A player entering a line ([`GameLine::enter`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entrance {
    pub player: PlayerId,
    /// The name the player logged in with (`Ctx::name`).
    pub name: String,
    /// The data the host stored for the player (at their last leave or
    /// save), if any.
    pub saved: Option<Vec<u8>>,
    /// Where the player should appear, if they come from a travel
    /// (`Ctx::arrival`).
    pub at: Option<Pos>,
    /// The client's own limit on what it is sent (its NetSpeed), bytes per
    /// second: the budget is the lower of this and the game's.
    pub bytes_per_second: Option<u32>,
    /// Counts the player's entries into lines (wrapping): `Joined` and the
    /// line's frames carry it, so the client tells this line's frames from
    /// the last one's (`GameLines` counts them).
    pub entry: u8,
    /// What the player's rate limits still allow, from the line they left
    /// (`GameOutput::Left`); `None`: full, for a player new to the game.
    pub limits: Option<RateLimits>,
}

/// What a line leaves out while its host is too busy, in the documented
/// order: first the refresh of far actors, then the players' byte budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shedding {
    /// Actors beyond half the view radius are refreshed `1 << this` times
    /// less often (1: every 4th and 8th tick instead of every 2nd and 4th).
    pub far_refresh_shift: u32,
    /// Each player's byte budget per tick, in thousandths of its usual
    /// (never under [`crate::MIN_BUDGET`]): what does not fit waits, by
    /// priority, and grows staler, as on a slow link.
    pub budget_permille: u32,
}

impl Shedding {
    /// Nothing shed.
    pub const NONE: Shedding = Shedding {
        far_refresh_shift: 0,
        budget_permille: 1000,
    };
}

impl Default for Shedding {
    fn default() -> Self {
        Self::NONE
    }
}

/// Why a client's bytes did not reach the game.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Malformed, or not a message the client may send: the host closes
    /// the session.
    #[error("malformed game message: {0}")]
    Undecodable(#[from] DecodeError),
    /// Beyond the message's rate limit: dropped.
    #[error("the message's rate limit was exceeded")]
    RateLimited,
    #[error("the player is not in this line")]
    UnknownPlayer,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the snapshot is not readable: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("the snapshot was taken with schema {snapshot}, the game now has {game}: restore it with the same build of the game")]
    SchemaMismatch { snapshot: String, game: String },
    #[error("the snapshot is of a line of zone {zone}, and the game now has {zones} zones: restore it with the same zones")]
    NoSuchZone { zone: u16, zones: usize },
    #[error("the snapshot is in format {snapshot}, this build reads {reads}: restore it with the build that took it")]
    Format { snapshot: u32, reads: u32 },
    #[error("the snapshot does not hold together: {0}")]
    Inconsistent(String),
}

/// The game's bytes per second per client, as a per-tick budget.
fn budget<G: Game>(game: &G, tick_hz: u32) -> u32 {
    (game.bytes_per_second() / tick_hz.max(1)).max(MIN_BUDGET)
}

/// A tick's replication for one viewer (reliable messages, frame) as
/// (channel, bytes), reliable first.
fn on_channels(
    (reliable, frame): (Vec<Vec<u8>>, Option<Vec<u8>>),
) -> impl Iterator<Item = (u16, Vec<u8>)> {
    let reliable = reliable.into_iter().map(|bytes| (RELIABLE_CHANNEL, bytes));
    reliable.chain(frame.map(|bytes| (STATE_CHANNEL, bytes)))
}

/// Keeps the newer of two batches of moves: a client resends its
/// unacknowledged moves with every message, so the batch whose newest move
/// is newer holds everything the older one did (datagrams may arrive out
/// of order or several between two ticks).
fn take_newer(kept: &mut Vec<GameMove>, arrived: Vec<GameMove>) {
    let newest = |moves: &[GameMove]| moves.last().map(|m| m.seq);
    match (newest(kept), newest(&arrived)) {
        (_, None) => {}
        (None, Some(_)) => *kept = arrived,
        (Some(old), Some(new)) => {
            if crate::movement::after(new, old) {
                *kept = arrived;
            }
        }
    }
}

/// Observers of one line at once, at most (each costs a replication of
/// the whole line per tick).
pub const MAX_OBSERVERS: usize = 8;

/// Ticks between periodic saves by default (10 s at 20 Hz).
const DEFAULT_SAVE_EVERY_TICKS: u32 = 200;
/// The first byte of a snapshot's format (3: a view's unacknowledged
/// frames as bits of its entries; 4: 32 of them, and the tick an entry was
/// last sent in 32 bits).
const SNAPSHOT_FORMAT: u32 = 4;

/// One running instance of a game.
pub struct GameLine<G: Game> {
    game: Arc<G>,
    /// The game's schema, asked once.
    schema: Arc<Schema>,
    /// Per kind: which properties go to whom and how, from the schema.
    masks: Vec<KindMasks>,
    /// The zone, the view radius and each kind's movement, from the game.
    space: Space,
    /// Rebuilt each tick for replication (where the moving actors are).
    scratch: Scratch,
    /// Bytes a player's client may be sent per tick.
    budget: u32,
    /// The game's own state.
    state: G::Line,
    /// Hearth's state of the line.
    core: Core<G::Player>,
    /// Produced by the last calls, for the host to drain.
    outputs: Vec<GameOutput>,
}

#[derive(Serialize)]
struct SnapshotRef<'a, L, P> {
    format: u32,
    schema: &'a str,
    /// The line's zone (its index in `Game::zones`).
    zone: u16,
    line: &'a L,
    core: &'a Core<P>,
}

#[derive(Deserialize)]
struct SnapshotOwned<L, P> {
    format: u32,
    schema: String,
    zone: u16,
    line: L,
    core: Core<P>,
}

impl<G: Game> GameLine<G> {
    /// A new line of `game`'s first zone, its randomness seeded with
    /// `seed`.
    pub fn new(game: Arc<G>, seed: u64) -> Self {
        Self::in_zone(game, 0, seed, 0)
    }

    /// A new line of zone `zone` (its index in `Game::zones`), its tick
    /// count starting at `tick`. The lines of one game tick in step, and a
    /// line opened later starts at the tick the others are at: a client
    /// that moves from line to line then tells their frames apart by tick
    /// (those of the line it left are older than its entry into the next).
    ///
    /// # Panics
    /// If the game has no such zone.
    pub fn in_zone(game: Arc<G>, zone: u16, seed: u64, tick: u64) -> Self {
        let schema = Arc::new(game.schema());
        let mut core = Core {
            tick,
            tick_hz: game.tick_hz().max(1),
            rng: Rng::new(seed),
            actors: BTreeMap::new(),
            next_actor: 1,
            players: BTreeMap::new(),
            timers: Default::default(),
            timer_tags: Default::default(),
            next_timer: 1,
            inbox: Default::default(),
            joining: Default::default(),
            stats: GameStats::default(),
            save_every_ticks: DEFAULT_SAVE_EVERY_TICKS,
            kicks: Vec::new(),
            to_zone: Vec::new(),
            to_named: Vec::new(),
            transfers: Vec::new(),
            walkers: 0,
            walks_ended: Vec::new(),
            observers: Default::default(),
            next_observer: 0,
        };
        let zones = game.zones().len().max(1);
        assert!(
            usize::from(zone) < zones,
            "the game has {zones} zones: there is no zone {zone}"
        );
        let space = Space::new(&*game, &schema, zone);
        let state = game.new_line(&mut Ctx {
            core: &mut core,
            schema: &schema,
            space: &space,
        });
        Self {
            masks: kind_masks(&schema),
            budget: budget(&*game, core.tick_hz),
            space,
            scratch: Scratch::default(),
            game,
            schema,
            state,
            core,
            outputs: Vec::new(),
        }
    }

    /// Saves each changed player at least every `ticks` ticks (0: only
    /// when they leave).
    pub fn with_save_period(mut self, ticks: u32) -> Self {
        self.core.save_every_ticks = ticks;
        self
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn tick_count(&self) -> u64 {
        self.core.tick
    }

    pub fn stats(&self) -> &GameStats {
        &self.core.stats
    }

    /// The game's state (for tests and tools).
    pub fn state(&self) -> &G::Line {
        &self.state
    }

    pub fn players(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.core.players.keys().copied()
    }

    /// Every player in the line, or joining it at its next tick.
    pub fn players_and_joining(&self) -> Vec<PlayerId> {
        let mut players: Vec<PlayerId> = self.core.players.keys().copied().collect();
        players.extend(self.core.joining.keys().copied());
        players.sort_unstable();
        players.dedup();
        players
    }

    /// Actors in the line.
    pub fn actor_count(&self) -> usize {
        self.core.actors.len()
    }

    /// Where an actor of a moving kind is (for tests and tools).
    pub fn position(&self, actor: crate::ActorId) -> Option<hearth_replica::geometry::Pos> {
        let state = self.core.actors.get(&actor)?;
        self.space
            .moves(state.kind)
            .then(|| crate::movement::position(state))
    }

    /// How many actors `player`'s client has in view.
    pub fn in_view(&self, player: PlayerId) -> Option<usize> {
        Some(self.core.players.get(&player)?.view.in_view())
    }

    /// Sheds optional traffic while the host is too busy (see
    /// [`Shedding`]). A player's own actor, reliable properties, spawns
    /// and despawns and the game's messages are never shed.
    pub fn set_shedding(&mut self, shedding: Shedding) {
        self.space.far_refresh_shift = shedding.far_refresh_shift;
        self.space.budget_permille = shedding.budget_permille.clamp(1, 1000);
    }

    /// Bytes Hearth keeps of what `player`'s client has and has not yet
    /// acknowledged: a fixed size per actor in its view, however far behind
    /// it falls (the dashboard's and the tests' view of a client's memory).
    pub fn view_bytes(&self, player: PlayerId) -> Option<usize> {
        self.core.players.get(&player).map(|p| p.view.heap_bytes())
    }

    /// The zone this line is of (its index in `Game::zones`).
    pub fn zone_index(&self) -> u16 {
        self.space.zone_index
    }

    /// A player arrives at the next tick, with the data saved at their
    /// last leave (or none).
    pub fn join(&mut self, player: PlayerId, saved: Option<Vec<u8>>) {
        self.join_as(player, "", saved);
    }

    /// [`GameLine::join`], with the player's name (`Ctx::name`).
    pub fn join_as(&mut self, player: PlayerId, name: &str, saved: Option<Vec<u8>>) {
        self.enter(Entrance {
            player,
            name: name.to_owned(),
            saved,
            ..Entrance::default()
        });
    }

    /// A player arrives at the next tick ([`Game::on_join`]).
    pub fn enter(&mut self, entrance: Entrance) {
        let messages = self.schema.messages().len();
        let buckets = match entrance.limits {
            Some(RateLimits(buckets)) if buckets.len() == messages => buckets,
            _ => self.full_buckets(),
        };
        self.core.joining.insert(entrance.player, buckets);
        self.core.inbox.push_back(Inbound::Join {
            player: entrance.player,
            name: entrance.name,
            saved: entrance.saved,
            at: entrance.at,
            bytes_per_second: entrance.bytes_per_second,
            entry: entrance.entry,
        });
    }

    /// The host could not do what the game asked for `player` (at the next
    /// tick: [`Game::on_refused`]).
    pub fn refuse(&mut self, player: PlayerId, refused: Refused) {
        self.core
            .inbox
            .push_back(Inbound::Refused { player, refused });
    }

    /// An administrator's announcement (at the next tick:
    /// [`Game::on_announce`]).
    pub fn announce(&mut self, text: &str) {
        self.core.inbox.push_back(Inbound::Announce {
            text: text.to_owned(),
        });
    }

    /// Starts sending everything of the line, as a client that controls
    /// nothing would see it, to an observer the game never hears of (a
    /// recording of the line): from the next tick, [`GameOutput::Observed`]
    /// carries a `Joined`, the spawn of every actor, then every change and
    /// the line's and the zone's messages. Observers are not part of the
    /// snapshot. At most [`MAX_OBSERVERS`] at once; `None` beyond.
    ///
    /// ```
    /// # use hearth_game::{Ctx, Game, GameLine, GameOutput};
    /// # use hearth_game::schema::{KindSpec, PropSpec, Schema, ValueType};
    /// # use hearth_replica::game_replica::GameReplica;
    /// # struct Board;
    /// # impl Game for Board {
    /// #     type Line = ();
    /// #     type Player = ();
    /// #     fn schema(&self) -> Schema {
    /// #         let token = KindSpec::new("token").prop(PropSpec::new("n", ValueType::int(0, 9)));
    /// #         Schema::new("board", vec![token], vec![]).unwrap()
    /// #     }
    /// #     fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
    /// #         let token = ctx.kind("token").unwrap();
    /// #         ctx.spawn(token, None);
    /// #     }
    /// # }
    /// let mut line = GameLine::new(std::sync::Arc::new(Board), 1);
    /// let observer = line.observe().unwrap();
    /// line.tick();
    /// let mut replica = GameReplica::new(line.schema().clone());
    /// for output in line.drain_outputs() {
    ///     if let GameOutput::Observed { observer: o, channel: 10, bytes } = output {
    ///         assert_eq!(o, observer);
    ///         replica.apply_reliable(&bytes).unwrap();
    ///     }
    /// }
    /// assert_eq!(replica.actors().count(), 1);
    /// assert!(line.stop_observing(observer));
    /// ```
    pub fn observe(&mut self) -> Option<ObserverId> {
        if self.core.observers.len() >= MAX_OBSERVERS {
            return None;
        }
        let number = self.core.next_observer;
        self.core.next_observer = number.wrapping_add(1);
        self.core.observers.insert(number, Observer::default());
        Some(ObserverId(number))
    }

    /// Whether `observer` is still observing this line.
    pub fn is_observing(&self, observer: ObserverId) -> bool {
        self.core.observers.contains_key(&observer.0)
    }

    /// Stops sending to an observer; false if there was none.
    pub fn stop_observing(&mut self, observer: ObserverId) -> bool {
        self.core.observers.remove(&observer.0).is_some()
    }

    /// Sends `player`'s client everything again at the next tick, as when
    /// they entered the line (a `Joined`, then every actor in view): a
    /// recording of what the player sees starts complete from there. The
    /// client's replica starts afresh on the second `Joined`. False if the
    /// player is not in the line.
    pub fn resync(&mut self, player: PlayerId) -> bool {
        let Some(state) = self.core.players.get_mut(&player) else {
            return false;
        };
        state.view = ClientView::entered(state.view.entry());
        state.steer.announce = state.steer.actor.is_some();
        true
    }

    /// A full rate-limit bucket per message of the schema.
    fn full_buckets(&self) -> Vec<TickBucket> {
        let tick = self.core.tick;
        self.schema
            .messages()
            .iter()
            .map(|m| TickBucket::full(m.rate.map_or(0, |r| r.burst), tick))
            .collect()
    }

    /// A player leaves at the next tick (logged out, or moving elsewhere).
    pub fn leave(&mut self, player: PlayerId) {
        self.core.inbox.push_back(Inbound::Leave { player });
    }

    /// Bytes a player's client sent on a game channel. A declared message
    /// within its rate limit is handed to the game at the next tick; an
    /// acknowledgement is taken at once.
    pub fn input(
        &mut self,
        player: PlayerId,
        channel: u16,
        bytes: &[u8],
    ) -> Result<(), InputError> {
        if !self.core.players.contains_key(&player) && !self.core.joining.contains_key(&player) {
            self.core.stats.unknown_players += 1;
            return Err(InputError::UnknownPlayer);
        }
        let message = match GameClientMessage::decode(channel, bytes, &self.schema) {
            Ok(message) => message,
            Err(error) => {
                self.core.stats.messages_undecodable += 1;
                return Err(error.into());
            }
        };
        match message {
            GameClientMessage::Ack { tick, earlier } => {
                self.acknowledge(player, tick, earlier);
                Ok(())
            }
            GameClientMessage::Moves {
                ack,
                earlier,
                moves,
            } => {
                if ack != 0 {
                    self.acknowledge(player, ack, earlier);
                }
                if let Some(state) = self.core.players.get_mut(&player) {
                    take_newer(&mut state.steer.moves, moves);
                }
                Ok(())
            }
            GameClientMessage::Message { index, values } => {
                let spec = &self.schema.messages()[usize::from(index)];
                debug_assert_eq!(spec.direction, Direction::ToServer);
                let rate = spec.rate.expect("checked by the schema");
                let (tick, tick_hz) = (self.core.tick, self.core.tick_hz);
                let buckets = match self.core.players.get_mut(&player) {
                    Some(state) => &mut state.buckets,
                    // Joining: the message waits in the inbox behind the join.
                    None => self.core.joining.get_mut(&player).expect("checked above"),
                };
                // The bucket is counted in ticks: between two ticks at most
                // `burst` messages per player wait in the inbox.
                let allowed =
                    buckets[usize::from(index)].take(tick, rate.burst, rate.per_second, tick_hz);
                if !allowed {
                    self.core.stats.messages_rate_limited += 1;
                    return Err(InputError::RateLimited);
                }
                self.core.inbox.push_back(Inbound::Message {
                    player,
                    index,
                    values,
                });
                Ok(())
            }
        }
    }

    fn acknowledge(&mut self, player: PlayerId, tick: u64, earlier: u32) {
        let acknowledged = self
            .core
            .players
            .get_mut(&player)
            .is_some_and(|p| p.view.acknowledge(tick, earlier));
        if !acknowledged {
            self.core.stats.bad_acks += 1;
        }
    }

    /// A message another line sent to `player` by name
    /// ([`GameOutput::ToNamed`]), under the same per-player limits as the
    /// game's own sends; false if the player is neither in this line nor
    /// entering it (then it waits behind their join).
    pub fn deliver_to_player(&mut self, player: PlayerId, message: MessageId, body: &[u8]) -> bool {
        if !self.core.players.contains_key(&player) {
            if !self.core.joining.contains_key(&player) {
                return false;
            }
            self.core.inbox.push_back(Inbound::Deliver {
                player,
                message: message.0,
                body: body.to_vec(),
            });
            return true;
        }
        let mut ctx = Ctx {
            core: &mut self.core,
            schema: &self.schema,
            space: &self.space,
        };
        ctx.queue(player, message, body);
        true
    }

    /// A message another line of the zone sent to the whole zone.
    pub fn deliver_to_line(&mut self, message: MessageId, body: &[u8]) {
        let players: Vec<PlayerId> = self.core.players.keys().copied().collect();
        let mut ctx = Ctx {
            core: &mut self.core,
            schema: &self.schema,
            space: &self.space,
        };
        // The same per-player limits as the game's own sends.
        for player in players {
            ctx.queue(player, message, body);
        }
        ctx.queue_observers(message, body);
    }

    /// One step: the inbox in arrival order, due timers, the game's tick,
    /// saves, then what each player receives.
    pub fn tick(&mut self) {
        self.core.tick += 1;
        self.core.stats.ticks += 1;
        while let Some(inbound) = self.core.inbox.pop_front() {
            self.handle(inbound);
        }
        take_moves(&mut self.core, &self.space);
        take_walks(&mut self.core, &self.space);
        for (actor, arrived) in std::mem::take(&mut self.core.walks_ended) {
            let mut ctx = Ctx {
                core: &mut self.core,
                schema: &self.schema,
                space: &self.space,
            };
            self.game
                .on_walk_end(&mut self.state, &mut ctx, actor, arrived);
        }
        loop {
            let due = self
                .core
                .timers
                .first()
                .filter(|(at, _)| *at <= self.core.tick)
                .copied();
            let Some(key) = due else { break };
            self.core.timers.remove(&key);
            let (_, tag) = self
                .core
                .timer_tags
                .remove(&key.1)
                .expect("a tag per timer");
            let mut ctx = Ctx {
                core: &mut self.core,
                schema: &self.schema,
                space: &self.space,
            };
            self.game
                .on_timer(&mut self.state, &mut ctx, TimerId(key.1), tag);
        }
        let mut ctx = Ctx {
            core: &mut self.core,
            schema: &self.schema,
            space: &self.space,
        };
        self.game.on_tick(&mut self.state, &mut ctx);
        self.save_due();
        for (player, reason) in std::mem::take(&mut self.core.kicks) {
            self.outputs.push(GameOutput::Close { player, reason });
        }
        for (message, body) in std::mem::take(&mut self.core.to_zone) {
            self.outputs.push(GameOutput::ToZone {
                message: MessageId(message),
                body,
            });
        }
        for (from, name, message, body) in std::mem::take(&mut self.core.to_named) {
            self.outputs.push(GameOutput::ToNamed {
                from,
                name,
                message: MessageId(message),
                body,
            });
        }
        for (player, to) in std::mem::take(&mut self.core.transfers) {
            self.outputs.push(GameOutput::Transfer { player, to });
        }
        // Replication reads the actors through a slice in id order (found by
        // slot, not by a walk of the map); the map is out of the line while
        // it does, so the players' views can be written at the same time.
        let taken = std::mem::take(&mut self.core.actors);
        let actors: Vec<_> = taken.iter().map(|(id, actor)| (*id, actor)).collect();
        self.scratch
            .locate(self.core.tick, &actors, &self.masks, &self.space);
        let core = &mut self.core;
        // Players in the order of where they stand (see
        // `Scratch::spatial_order`): neighbours see mostly the same actors,
        // so one player's replication finds in the cache what the last one
        // read. The order depends only on the line's state: deterministic.
        let mut in_order: Vec<_> = core
            .players
            .iter_mut()
            .map(|(&player, state)| {
                let key = self.scratch.spatial_key(&actors, state.steer.actor);
                (key, player, state)
            })
            .collect();
        in_order.sort_unstable_by_key(|(key, player, _)| (*key, *player));
        for (_, player, state) in in_order {
            let sent = replicate(
                &mut core.stats,
                core.tick,
                core.tick_hz,
                Viewer::player(player, state, self.space.budget_permille),
                &actors,
                &self.schema,
                &self.masks,
                &self.space,
                &mut self.scratch,
            );
            self.outputs
                .extend(on_channels(sent).map(|(channel, bytes)| GameOutput::Send {
                    player,
                    channel,
                    bytes,
                }));
        }
        // Observers after the players: what they are sent changes nothing
        // the players are.
        for (&observer, state) in core.observers.iter_mut() {
            let sent = replicate(
                &mut core.stats,
                core.tick,
                core.tick_hz,
                Viewer::observer(observer, state),
                &actors,
                &self.schema,
                &self.masks,
                &self.space,
                &mut self.scratch,
            );
            if sent.1.is_some() {
                // Written to a file as it is sent: delivered.
                state.view.acknowledge(core.tick, 0);
            }
            let observer = ObserverId(observer);
            self.outputs.extend(
                on_channels(sent).map(|(channel, bytes)| GameOutput::Observed {
                    observer,
                    channel,
                    bytes,
                }),
            );
        }
        drop(actors);
        self.core.actors = taken;
    }

    fn handle(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Join {
                player,
                name,
                saved,
                at,
                bytes_per_second,
                entry,
            } => {
                let joining = self.core.joining.remove(&player);
                if self.core.players.contains_key(&player) {
                    return;
                }
                let data = match saved.as_deref().map(serde_json::from_slice) {
                    None => Default::default(),
                    Some(Ok(data)) => data,
                    Some(Err(_)) => {
                        self.core.stats.player_data_unreadable += 1;
                        Default::default()
                    }
                };
                let buckets = match joining {
                    Some(buckets) => buckets,
                    None => self.full_buckets(),
                };
                self.core.players.insert(
                    player,
                    PlayerState {
                        name,
                        data,
                        dirty: false,
                        view: ClientView::entered(entry),
                        buckets,
                        outbox: Vec::new(),
                        outbox_items: 0,
                        budget: match bytes_per_second {
                            Some(limit) => self
                                .budget
                                .min(limit / self.core.tick_hz.max(1))
                                .max(MIN_BUDGET),
                            None => self.budget,
                        },
                        steer: Default::default(),
                        arrival: at,
                    },
                );
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                self.game.on_join(&mut self.state, &mut ctx, player);
            }
            Inbound::Leave { player } => {
                if !self.core.players.contains_key(&player) {
                    return;
                }
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                self.game.on_leave(&mut self.state, &mut ctx, player);
                self.game.before_save(&mut self.state, &mut ctx, player);
                if let Some(state) = self.core.players.remove(&player) {
                    if let Some(actor) =
                        state.steer.actor.and_then(|a| self.core.actors.get_mut(&a))
                    {
                        actor.controller = None;
                    }
                    self.outputs.push(GameOutput::Left {
                        player,
                        data: serde_json::to_vec(&state.data).expect("player data serializes"),
                        limits: RateLimits(state.buckets),
                    });
                }
            }
            Inbound::Refused { player, refused } => {
                if !self.core.players.contains_key(&player) {
                    return;
                }
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                self.game
                    .on_refused(&mut self.state, &mut ctx, player, &refused);
            }
            Inbound::Deliver {
                player,
                message,
                body,
            } => {
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                if ctx.is_present(player) {
                    ctx.queue(player, MessageId(message), &body);
                }
            }
            Inbound::Announce { text } => {
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                self.game.on_announce(&mut self.state, &mut ctx, &text);
            }
            Inbound::Message {
                player,
                index,
                values,
            } => {
                if !self.core.players.contains_key(&player) {
                    self.core.stats.unknown_players += 1;
                    return;
                }
                self.core.stats.messages_in += 1;
                let mut ctx = Ctx {
                    core: &mut self.core,
                    schema: &self.schema,
                    space: &self.space,
                };
                self.game
                    .on_message(&mut self.state, &mut ctx, player, MessageId(index), &values);
            }
        }
    }

    /// Saves the changed players whose turn it is: each player's turn comes
    /// once per save period, staggered by id so that saves spread out.
    fn save_due(&mut self) {
        let period = u64::from(self.core.save_every_ticks);
        if period == 0 {
            return;
        }
        let tick = self.core.tick;
        // Any u64 is a player id: staggered without overflowing.
        let due: Vec<PlayerId> = self
            .core
            .players
            .keys()
            .filter(|player| (tick % period + *player % period) % period == 0)
            .copied()
            .collect();
        for player in due {
            let mut ctx = Ctx {
                core: &mut self.core,
                schema: &self.schema,
                space: &self.space,
            };
            self.game.before_save(&mut self.state, &mut ctx, player);
            let state = self.core.players.get_mut(&player).expect("listed");
            if state.dirty {
                state.dirty = false;
                self.outputs.push(GameOutput::Save {
                    player,
                    data: serde_json::to_vec(&state.data).expect("player data serializes"),
                });
            }
        }
    }

    /// What the last calls produced.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, GameOutput> {
        self.outputs.drain(..)
    }

    /// The whole line (the game's state and Hearth's: actors, players and
    /// what each client has, timers, the random source, the inbox) as
    /// bytes. [`GameLine::restore`] makes a line that, given the same
    /// inputs, produces byte-identical outputs: this is how a line moves
    /// to another machine. Outputs not yet drained are not included.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&SnapshotRef {
            format: SNAPSHOT_FORMAT,
            schema: self.schema.version(),
            zone: self.space.zone_index,
            line: &self.state,
            core: &self.core,
        })
        .expect("a line serializes")
    }

    /// A line from [`GameLine::snapshot`]'s bytes, for the same game.
    pub fn restore(game: Arc<G>, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let schema = Arc::new(game.schema());
        let owned: SnapshotOwned<G::Line, G::Player> = serde_json::from_slice(snapshot)?;
        if owned.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                snapshot: owned.format,
                reads: SNAPSHOT_FORMAT,
            });
        }
        if let Some((player, _)) = owned.core.players.iter().find(|(_, p)| !p.view.is_sound()) {
            return Err(SnapshotError::Inconsistent(format!(
                "player {player}'s frames in flight"
            )));
        }
        if owned.schema != schema.version() {
            return Err(SnapshotError::SchemaMismatch {
                snapshot: owned.schema,
                game: schema.version().to_owned(),
            });
        }
        let zones = game.zones().len().max(1);
        if usize::from(owned.zone) >= zones {
            return Err(SnapshotError::NoSuchZone {
                zone: owned.zone,
                zones,
            });
        }
        let space = Space::new(&*game, &schema, owned.zone);
        Ok(Self {
            masks: kind_masks(&schema),
            budget: budget(&*game, owned.core.tick_hz),
            space,
            scratch: Scratch::default(),
            game,
            schema,
            state: owned.line,
            core: owned.core,
            outputs: Vec::new(),
        })
    }
}
