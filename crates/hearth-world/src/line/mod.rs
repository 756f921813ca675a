//! A line: one running instance of a zone, with its players and NPCs,
//! stepped one tick at a time. Messages in ([`LineInput`]), messages out
//! ([`LineOutput`]); its whole state serializes, so a line can be saved,
//! restored, or handed to another machine.

mod moves;
mod observe;
mod replicate;
mod talk;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{field, Actor, ActorId, ActorKind, ActorMap, Props, MAX_ACTOR_NAME, VALUES};
use crate::allowances::Allowances;
use crate::chat::{bounded, check_text, ChatBucket, ChatHook, ChatVerdict};
use crate::geometry::Pos;
use crate::grid::Grid;
use crate::npc::{Npc, Rng};
use crate::replication::ClientView;
use hearth_codec::Writer;

use crate::wire::{self, ChatScope, ClientState, Command, Entered, Frame, Item, Refusal, Reliable};
use crate::zone::Zone;
use replicate::Scratch;

/// A player, named by the server (the session id).
pub type PlayerId = u64;

/// Chat, refusals and other reliable items waiting for a player's budget.
const MAX_QUEUED_ITEMS: usize = 64;
/// The smallest per-tick budget, whatever the client's NetSpeed: enough for
/// a frame header, a chat line and a few updates.
pub const MIN_BUDGET: usize = 400;
/// The largest per-tick budget.
pub const MAX_BUDGET: usize = 64 * 1024;
/// Movement a player may bank, in ticks of legal speed: absorbs jitter in
/// when moves arrive without allowing a sprint.
const ALLOWANCE_TICKS: i64 = 5;
/// Movement a player new to the world starts with, in ticks of legal
/// speed: their first moves may arrive bunched.
const OPENING_ALLOWANCE_TICKS: i64 = 2;

/// How a line is set up.
#[derive(Clone, Serialize, Deserialize)]
pub struct LineConfig {
    pub zone: Arc<Zone>,
    /// 1-based.
    pub number: u32,
    pub seed: u64,
    /// Save each changed player every this many ticks (0: only on leave).
    pub save_every_ticks: u32,
}

/// What a player brings into a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub player: PlayerId,
    pub account: Option<i64>,
    pub name: String,
    /// Where to appear; `None` or an illegal spot: a spawn point.
    pub at: Option<Pos>,
    pub appearance: u32,
    pub values: [i32; VALUES],
    /// The client's NetSpeed, bytes per second.
    pub bytes_per_second: u32,
    /// Counts the player's entries into lines: frames and state messages
    /// carry it, so nothing from a line the player has left is mistaken for
    /// this one's.
    pub epoch: u32,
    /// What the rate limits still allow, brought from the line before
    /// (fresh for a player new to the world).
    pub allowances: Allowances,
}

/// Where a leaving player goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    /// Logged out (or kicked, or the link is gone for good).
    Away,
    Line(u32),
    Zone {
        zone: String,
        at: Option<Pos>,
    },
}

/// A player's lasting state, for the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlayer {
    pub player: PlayerId,
    pub account: Option<i64>,
    pub name: String,
    pub zone: String,
    pub line: u32,
    pub pos: Pos,
    pub appearance: u32,
    pub values: [i32; VALUES],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineInput {
    Enter(Arrival),
    /// The player leaves for `to`; the line answers with `Left`.
    Release {
        player: PlayerId,
        to: Destination,
    },
    /// A state message from the client (already decoded).
    State {
        player: PlayerId,
        state: ClientState,
    },
    Command {
        player: PlayerId,
        command: Command,
    },
    /// An item for one player (`Some`) or everyone in the line, from
    /// elsewhere: zone chat, whispers, announcements, refusals.
    Deliver {
        to: Option<PlayerId>,
        item: Item,
    },
    /// Administration: put a player at `pos` (refused if blocked).
    Teleport {
        player: PlayerId,
        pos: Pos,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutput {
    /// Bytes for one player on a world channel.
    Send {
        player: PlayerId,
        channel: u16,
        bytes: Vec<u8>,
    },
    /// The player is out of the line (after `Release`), with what the rate
    /// limits still allow them, for wherever they go next.
    Left {
        saved: SavedPlayer,
        allowances: Allowances,
        to: Destination,
    },
    /// Save this player (periodic).
    Save(SavedPlayer),
    /// Bytes for an observer of the whole line (a line recording), never
    /// for a session.
    Observed {
        observer: PlayerId,
        channel: u16,
        bytes: Vec<u8>,
    },
    /// The player asked to go elsewhere: the directory decides.
    WantsLine { player: PlayerId, line: u32 },
    WantsZone {
        player: PlayerId,
        zone: String,
        at: Option<Pos>,
    },
    /// Chat for beyond this line: zone chat (already delivered here) and
    /// whispers.
    Chat {
        from: PlayerId,
        from_name: String,
        scope: ChatScope,
        to: String,
        text: String,
    },
}

/// Why a move was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveRejection {
    TooFast,
    OutOfBounds,
    Blocked,
}

/// Counters of one line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineStats {
    pub ticks: u64,
    pub moves_accepted: u64,
    pub rejected_too_fast: u64,
    pub rejected_out_of_bounds: u64,
    pub rejected_blocked: u64,
    pub chat_sent: u64,
    pub chat_refused: u64,
    /// Queued items dropped because a player's queue was full.
    pub items_dropped: u64,
    /// World payload bytes sent to players.
    pub bytes_out: u64,
    /// Acknowledgements of frames never sent (or stale).
    pub bad_acks: u64,
    /// State messages meant for the player's previous line.
    pub stale_states: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Player {
    id: PlayerId,
    epoch: u32,
    account: Option<i64>,
    actor: ActorId,
    budget: usize,
    view: ClientView,
    last_seq: u32,
    /// Movement banked, in position units: absorbs jitter in when moves
    /// arrive, up to `ALLOWANCE_TICKS` of legal steps. Carried from line
    /// to line in [`Allowances`].
    allowance: i64,
    corrected: bool,
    /// A move was processed since the last frame.
    moved: bool,
    queued: VecDeque<Item>,
    /// Chat messages the player may still send. Carried from line to line
    /// in [`Allowances`].
    chat: ChatBucket,
    /// Changed since the last save.
    dirty: bool,
    bytes_out: u64,
}

/// One running instance of a zone.
#[derive(Serialize, Deserialize)]
pub struct Line {
    config: LineConfig,
    tick: u32,
    actors: Vec<Actor>,
    next_actor: u32,
    players: BTreeMap<PlayerId, Player>,
    npcs: Vec<Npc>,
    rng: Rng,
    inputs: VecDeque<LineInput>,
    stats: LineStats,
    #[serde(skip)]
    index: ActorMap<u32>,
    #[serde(skip)]
    grid: Grid,
    #[serde(skip)]
    hook: Option<Arc<dyn ChatHook>>,
    #[serde(skip)]
    outputs: Vec<LineOutput>,
    #[serde(skip)]
    scratch: Scratch,
    /// Whoever watches the whole line (not part of its state: a restored
    /// line starts unobserved).
    #[serde(skip)]
    observers: Vec<observe::Observer>,
}

impl Line {
    pub fn new(config: LineConfig) -> Self {
        let mut line = Line {
            rng: Rng::new(config.seed),
            config,
            tick: 0,
            actors: Vec::new(),
            next_actor: 1,
            players: BTreeMap::new(),
            npcs: Vec::new(),
            inputs: VecDeque::new(),
            stats: LineStats::default(),
            index: ActorMap::default(),
            grid: Grid::default(),
            hook: None,
            outputs: Vec::new(),
            scratch: Scratch::default(),
            observers: Vec::new(),
        };
        line.spawn_npcs(line.config.zone.spec.npcs as usize);
        line
    }

    /// Adds `count` wandering NPCs near the zone's spawn points.
    pub fn spawn_npcs(&mut self, count: usize) {
        let zone = self.config.zone.clone();
        for i in 0..count {
            let spawn = zone.spawns[i % zone.spawns.len()];
            let reach = 6 * i64::from(crate::geometry::UNITS_PER_CELL);
            let mut home = spawn;
            for _ in 0..8 {
                let candidate = Pos::new(
                    spawn.x + self.rng.range(-reach, reach) as i32,
                    spawn.y + self.rng.range(-reach, reach) as i32,
                );
                if zone.path_clear(spawn, candidate) {
                    home = candidate;
                    break;
                }
            }
            let id = self.add_actor(
                ActorKind::Npc,
                Props {
                    pos: home,
                    facing: 0,
                    name: Arc::from(format!("npc-{}", self.next_actor)),
                    appearance: 100 + (i as u32 % 8),
                    values: [100, 1, 0, 0],
                },
            );
            self.npcs.push(Npc {
                actor: id,
                home,
                target: home,
                rest_until: 0,
                heading: None,
            });
        }
    }

    /// Installs the game's chat hook.
    pub fn set_chat_hook(&mut self, hook: Arc<dyn ChatHook>) {
        self.hook = Some(hook);
    }

    pub fn zone(&self) -> &Arc<Zone> {
        &self.config.zone
    }

    pub fn number(&self) -> u32 {
        self.config.number
    }

    pub fn tick_count(&self) -> u32 {
        self.tick
    }

    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    pub fn npc_count(&self) -> usize {
        self.npcs.len()
    }

    pub fn stats(&self) -> &LineStats {
        &self.stats
    }

    /// Players' ids in order.
    pub fn players(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.players.keys().copied()
    }

    /// A player's actor state now.
    pub fn player_props(&self, player: PlayerId) -> Option<&Props> {
        let actor = self.players.get(&player)?.actor;
        self.actor(actor).map(|a| &a.props)
    }

    /// World bytes sent to `player` so far.
    pub fn player_bytes_out(&self, player: PlayerId) -> Option<u64> {
        self.players.get(&player).map(|p| p.bytes_out)
    }

    /// The actors `player`'s client has been sent and not told to despawn.
    pub fn known_by(&self, player: PlayerId) -> Vec<ActorId> {
        let mut known: Vec<ActorId> = self
            .players
            .get(&player)
            .map(|p| p.view.actors().collect())
            .unwrap_or_default();
        known.sort();
        known
    }

    /// What a new observer of `player`'s stay needs to catch up, as one
    /// reliable world message: the stay's Entered item and a Spawn of every
    /// actor the player's client knows, with its current properties. The
    /// server's recordings start with it, so a recording begun mid-stay
    /// replays from its first second; frames after it apply as they would
    /// on the player's own client.
    pub fn snapshot_for(&self, player: PlayerId) -> Option<Vec<u8>> {
        let p = self.players.get(&player)?;
        let spec = &self.config.zone.spec;
        let mut items = vec![Item::Entered(Entered {
            zone: spec.name.clone(),
            line: self.config.number,
            actor: p.actor,
            epoch: p.epoch,
            tick_hz: spec.tick_hz,
            speed: spec.speed,
            view_radius: spec.view_radius,
            map: spec.map.clone(),
        })];
        for id in p.view.actors() {
            if let Some(actor) = self.actor(id) {
                items.push(Item::Spawn {
                    id,
                    kind: actor.kind,
                    props: actor.props.clone(),
                });
            }
        }
        let mut bytes = Vec::new();
        Reliable {
            tick: self.tick,
            items,
        }
        .encode(&mut bytes);
        Some(bytes)
    }

    /// Every actor in the line.
    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }

    pub fn actor(&self, id: ActorId) -> Option<&Actor> {
        if self.index.len() != self.actors.len() {
            return self.actors.iter().find(|a| a.id == id);
        }
        self.index.get(&id).map(|&i| &self.actors[i as usize])
    }

    /// Queues an input for the next tick.
    pub fn input(&mut self, input: LineInput) {
        self.inputs.push_back(input);
    }

    /// Inputs waiting for the next tick.
    pub fn queued_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Takes what the last tick produced.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, LineOutput> {
        self.outputs.drain(..)
    }

    /// Saves every player with an account (graceful shutdown).
    pub fn save_all(&mut self) -> Vec<SavedPlayer> {
        let ids: Vec<PlayerId> = self.players.keys().copied().collect();
        ids.into_iter().filter_map(|id| self.saved(id)).collect()
    }

    /// One tick: apply the inputs, move the NPCs, replicate.
    pub fn tick(&mut self) {
        self.tick += 1;
        self.stats.ticks += 1;
        self.rebuild_index();
        let hz = self.config.zone.spec.tick_hz;
        let step = self.config.zone.step_per_tick();
        for player in self.players.values_mut() {
            player.allowance = (player.allowance + step).min(step * ALLOWANCE_TICKS);
            player.chat.refill(hz);
        }
        while let Some(input) = self.inputs.pop_front() {
            self.apply(input);
        }
        self.move_npcs();
        self.check_portals();
        self.rebuild_grid();
        let ids: Vec<PlayerId> = self.players.keys().copied().collect();
        for id in &ids {
            self.replicate(*id);
        }
        self.replicate_observers();
        let every = self.config.save_every_ticks;
        if every > 0 && self.tick % every == 0 {
            for id in ids {
                if self
                    .players
                    .get(&id)
                    .is_some_and(|p| p.dirty && p.account.is_some())
                {
                    if let Some(saved) = self.saved(id) {
                        self.players.get_mut(&id).expect("present").dirty = false;
                        self.outputs.push(LineOutput::Save(saved));
                    }
                }
            }
        }
    }

    fn rebuild_index(&mut self) {
        if self.index.len() != self.actors.len() {
            self.index = self
                .actors
                .iter()
                .enumerate()
                .map(|(i, a)| (a.id, i as u32))
                .collect();
        }
    }

    fn add_actor(&mut self, kind: ActorKind, props: Props) -> ActorId {
        let id = ActorId(self.next_actor);
        self.next_actor += 1;
        self.index.insert(id, self.actors.len() as u32);
        self.actors.push(Actor {
            id,
            kind,
            props,
            changed_tick: self.tick,
        });
        id
    }

    fn remove_actor(&mut self, id: ActorId) -> Option<Actor> {
        let index = self.index.remove(&id)? as usize;
        let actor = self.actors.swap_remove(index);
        if let Some(moved) = self.actors.get(index) {
            self.index.insert(moved.id, index as u32);
        }
        Some(actor)
    }

    fn actor_mut(&mut self, id: ActorId) -> Option<&mut Actor> {
        let index = *self.index.get(&id)? as usize;
        self.actors.get_mut(index)
    }

    fn saved(&self, player: PlayerId) -> Option<SavedPlayer> {
        let p = self.players.get(&player)?;
        let actor = self.actor(p.actor)?;
        Some(SavedPlayer {
            player,
            account: p.account,
            name: actor.props.name.to_string(),
            zone: self.config.zone.spec.name.clone(),
            line: self.config.number,
            pos: actor.props.pos,
            appearance: actor.props.appearance,
            values: actor.props.values,
        })
    }

    fn apply(&mut self, input: LineInput) {
        match input {
            LineInput::Enter(arrival) => self.enter(arrival),
            LineInput::Release { player, to } => {
                if let Some(saved) = self.saved(player) {
                    let p = self.players.remove(&player).expect("saved implies present");
                    self.remove_actor(p.actor);
                    self.outputs.push(LineOutput::Left {
                        saved,
                        allowances: Allowances {
                            chat: p.chat,
                            movement: Some(p.allowance),
                        },
                        to,
                    });
                }
            }
            LineInput::State { player, state } => self.client_state(player, state),
            LineInput::Command { player, command } => self.command(player, command),
            LineInput::Deliver {
                to: Some(player),
                item,
            } => self.queue_item(player, item),
            LineInput::Deliver { to: None, item } => {
                self.observers_hear(&item);
                let ids: Vec<PlayerId> = self.players.keys().copied().collect();
                for id in ids {
                    self.queue_item(id, item.clone());
                }
            }
            LineInput::Teleport { player, pos } => {
                let zone = self.config.zone.clone();
                let Some(actor) = self.players.get(&player).map(|p| p.actor) else {
                    return;
                };
                if zone.blocked(pos) {
                    return;
                }
                let tick = self.tick;
                if let Some(a) = self.actor_mut(actor) {
                    a.props.pos = pos;
                    a.changed_tick = tick;
                }
                let p = self.players.get_mut(&player).expect("present");
                p.corrected = true;
                p.dirty = true;
            }
        }
    }

    fn enter(&mut self, arrival: Arrival) {
        if self.players.contains_key(&arrival.player) {
            return;
        }
        let zone = self.config.zone.clone();
        let at = arrival
            .at
            .filter(|&pos| zone.in_bounds(pos) && !zone.blocked(pos))
            .unwrap_or_else(|| zone.spawns[self.rng.range(0, zone.spawns.len() as i64) as usize]);
        let name = bounded(arrival.name, MAX_ACTOR_NAME);
        let actor = self.add_actor(
            ActorKind::Player,
            Props {
                pos: at,
                facing: 0,
                name: name.into(),
                appearance: arrival.appearance,
                values: arrival.values,
            },
        );
        let hz = zone.spec.tick_hz.max(1) as usize;
        let budget = (arrival.bytes_per_second as usize / hz).clamp(MIN_BUDGET, MAX_BUDGET);
        let step = zone.step_per_tick();
        // Banked in another zone (another legal step): never more than
        // this zone's cap.
        let allowance = arrival
            .allowances
            .movement
            .map_or(step * OPENING_ALLOWANCE_TICKS, |banked| {
                banked.clamp(0, step * ALLOWANCE_TICKS)
            });
        self.players.insert(
            arrival.player,
            Player {
                id: arrival.player,
                epoch: arrival.epoch,
                account: arrival.account,
                actor,
                budget,
                view: ClientView::default(),
                last_seq: 0,
                allowance,
                corrected: false,
                moved: true,
                queued: VecDeque::new(),
                chat: arrival.allowances.chat,
                dirty: true,
                bytes_out: 0,
            },
        );
        // The zone's description and map go once, outside the per-tick
        // budget (which governs replication and chat).
        let entered = Reliable {
            tick: self.tick,
            items: vec![Item::Entered(Entered {
                zone: zone.spec.name.clone(),
                line: self.config.number,
                actor,
                epoch: arrival.epoch,
                tick_hz: zone.spec.tick_hz,
                speed: zone.spec.speed,
                view_radius: zone.spec.view_radius,
                map: zone.spec.map.clone(),
            })],
        };
        let mut bytes = Vec::new();
        entered.encode(&mut bytes);
        self.outputs.push(LineOutput::Send {
            player: arrival.player,
            channel: wire::RELIABLE_CHANNEL,
            bytes,
        });
    }

    fn queue_item(&mut self, player: PlayerId, item: Item) {
        let Some(p) = self.players.get_mut(&player) else {
            return;
        };
        if p.queued.len() == MAX_QUEUED_ITEMS {
            p.queued.pop_front();
            self.stats.items_dropped += 1;
        }
        p.queued.push_back(item);
    }
}
