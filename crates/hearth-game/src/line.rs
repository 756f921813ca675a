//! [`GameLine`]: one running instance of a game, stepped by its host one
//! tick at a time. Inputs in (joins, leaves, clients' bytes), outputs out
//! ([`GameOutput`]: bytes for sessions, saves, closes); no clock, no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use hearth_codec::DecodeError;
use hearth_replica::game_wire::{GameClientMessage, GameMove, RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::schema::{Direction, Schema};

use crate::bucket::TickBucket;
use crate::ctx::{kind_masks, Ctx, KindMasks};
use crate::game::Game;
use crate::ids::{MessageId, PlayerId, TimerId};
use crate::movement::{take_moves, take_walks, Space};
use crate::replicate::{replicate, ClientView, Scratch, MIN_BUDGET};
use crate::rng::Rng;
use crate::state::{Core, GameStats, Inbound, PlayerState};

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
    /// given back at their next join.
    Save { player: PlayerId, data: Vec<u8> },
    /// Close the player's session, showing `reason`.
    Close { player: PlayerId, reason: String },
    /// Deliver a message to the other lines of this zone (each with
    /// [`GameLine::deliver_to_line`]); this line's players have it.
    ToZone { message: MessageId, body: Vec<u8> },
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
}

/// The game's bytes per second per client, as a per-tick budget.
fn budget<G: Game>(game: &G, tick_hz: u32) -> u32 {
    (game.bytes_per_second() / tick_hz.max(1)).max(MIN_BUDGET)
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

/// Ticks between periodic saves by default (10 s at 20 Hz).
const DEFAULT_SAVE_EVERY_TICKS: u32 = 200;
/// The first byte of a snapshot's format.
const SNAPSHOT_FORMAT: u32 = 2;

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
    line: &'a L,
    core: &'a Core<P>,
}

#[derive(Deserialize)]
struct SnapshotOwned<L, P> {
    format: u32,
    schema: String,
    line: L,
    core: Core<P>,
}

impl<G: Game> GameLine<G> {
    /// A new line of `game`, its randomness seeded with `seed`.
    pub fn new(game: Arc<G>, seed: u64) -> Self {
        let schema = Arc::new(game.schema());
        let mut core = Core {
            tick: 0,
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
            walkers: 0,
            walks_ended: Vec::new(),
        };
        let space = Space::new(&schema, game.zone(), game.view_radius());
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

    /// A player arrives at the next tick, with the data saved at their
    /// last leave (or none).
    pub fn join(&mut self, player: PlayerId, saved: Option<Vec<u8>>) {
        self.join_as(player, "", saved);
    }

    /// [`GameLine::join`], with the player's name (`Ctx::name`).
    pub fn join_as(&mut self, player: PlayerId, name: &str, saved: Option<Vec<u8>>) {
        let buckets = self.full_buckets();
        self.core.joining.insert(player, buckets);
        self.core.inbox.push_back(Inbound::Join {
            player,
            name: name.to_owned(),
            saved,
        });
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
            GameClientMessage::Ack { tick } => {
                self.acknowledge(player, tick);
                Ok(())
            }
            GameClientMessage::Moves { ack, moves } => {
                if ack != 0 {
                    self.acknowledge(player, ack);
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

    fn acknowledge(&mut self, player: PlayerId, tick: u64) {
        let acknowledged = self
            .core
            .players
            .get_mut(&player)
            .is_some_and(|p| p.view.acknowledge(tick));
        if !acknowledged {
            self.core.stats.bad_acks += 1;
        }
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
        // Replication reads the actors through a slice in id order (found by
        // slot, not by a walk of the map); the map is out of the line while
        // it does, so the players' views can be written at the same time.
        let taken = std::mem::take(&mut self.core.actors);
        let actors: Vec<_> = taken.iter().map(|(id, actor)| (*id, actor)).collect();
        self.scratch.locate(&actors, &self.space, &self.masks);
        let players: Vec<PlayerId> = self.core.players.keys().copied().collect();
        for player in players {
            let (reliable, frame) = replicate(
                &mut self.core,
                &actors,
                &self.schema,
                &self.masks,
                &self.space,
                &mut self.scratch,
                player,
            );
            for bytes in reliable {
                self.outputs.push(GameOutput::Send {
                    player,
                    channel: RELIABLE_CHANNEL,
                    bytes,
                });
            }
            if let Some(bytes) = frame {
                self.outputs.push(GameOutput::Send {
                    player,
                    channel: STATE_CHANNEL,
                    bytes,
                });
            }
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
                        view: ClientView::default(),
                        buckets,
                        outbox: Vec::new(),
                        outbox_items: 0,
                        budget: self.budget,
                        steer: Default::default(),
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
                if let Some(state) = self.core.players.remove(&player) {
                    if let Some(actor) =
                        state.steer.actor.and_then(|a| self.core.actors.get_mut(&a))
                    {
                        actor.controller = None;
                    }
                    self.outputs.push(GameOutput::Save {
                        player,
                        data: serde_json::to_vec(&state.data).expect("player data serializes"),
                    });
                }
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
        let period = self.core.save_every_ticks;
        if period == 0 {
            return;
        }
        let tick = self.core.tick;
        for (player, state) in self.core.players.iter_mut() {
            // Any u64 is a player id: staggered without overflowing.
            if state.dirty
                && (tick % u64::from(period) + player % u64::from(period)) % u64::from(period) == 0
            {
                state.dirty = false;
                self.outputs.push(GameOutput::Save {
                    player: *player,
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
            line: &self.state,
            core: &self.core,
        })
        .expect("a line serializes")
    }

    /// A line from [`GameLine::snapshot`]'s bytes, for the same game.
    pub fn restore(game: Arc<G>, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let schema = Arc::new(game.schema());
        let owned: SnapshotOwned<G::Line, G::Player> = serde_json::from_slice(snapshot)?;
        if owned.format != SNAPSHOT_FORMAT || owned.schema != schema.version() {
            return Err(SnapshotError::SchemaMismatch {
                snapshot: owned.schema,
                game: schema.version().to_owned(),
            });
        }
        let space = Space::new(&schema, game.zone(), game.view_radius());
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
