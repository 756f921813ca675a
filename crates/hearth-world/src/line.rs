//! A line: one running instance of a zone, with its players and NPCs,
//! stepped one tick at a time. Messages in ([`LineInput`]), messages out
//! ([`LineOutput`]); its whole state serializes, so a line can be saved,
//! restored, or handed to another machine.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{field, Actor, ActorId, ActorKind, ActorMap, Props, MAX_ACTOR_NAME, VALUES};
use crate::chat::{bounded, check_text, ChatBucket, ChatHook, ChatVerdict};
use crate::geometry::Pos;
use crate::grid::Grid;
use crate::npc::{Npc, Rng};
use crate::replication::ClientView;
use hearth_proto::codec::Writer;

use crate::wire::{self, ChatScope, ClientState, Command, Entered, Frame, Item, Refusal, Reliable};
use crate::zone::Zone;

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
    /// The player is out of the line (after `Release`).
    Left { saved: SavedPlayer, to: Destination },
    /// Save this player (periodic).
    Save(SavedPlayer),
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
    allowance: i64,
    corrected: bool,
    /// A move was processed since the last frame.
    moved: bool,
    queued: VecDeque<Item>,
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
}

/// Buffers reused from tick to tick, so a warm line does not allocate them.
#[derive(Default)]
struct Scratch {
    near: Vec<Near>,
    candidates: Vec<Candidate>,
    frame: Vec<u8>,
    /// (view entry, actor index, mask).
    updates: Vec<(u32, u32, u8)>,
    spawns: Vec<u32>,
    despawns: Vec<u32>,
}

/// An actor within a player's view radius this tick.
#[derive(Clone, Copy)]
struct Near {
    id: ActorId,
    index: u32,
    distance2: i64,
}

#[derive(Clone, Copy)]
struct Candidate {
    /// Filled in only when the budget forces a choice.
    priority: u64,
    staleness: u32,
    /// -1: the player's own actor.
    distance2: i64,
    /// Index in the line's actors.
    actor: u32,
    /// Index in the view's entries, or `SPAWN`.
    entry: u32,
    mask: u8,
    cost: u32,
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
                    self.outputs.push(LineOutput::Left { saved, to });
                }
            }
            LineInput::State { player, state } => self.client_state(player, state),
            LineInput::Command { player, command } => self.command(player, command),
            LineInput::Deliver {
                to: Some(player),
                item,
            } => self.queue_item(player, item),
            LineInput::Deliver { to: None, item } => {
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
        let mut name = arrival.name;
        truncate_to_boundary(&mut name, MAX_ACTOR_NAME);
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
                allowance: zone.step_per_tick() * 2,
                corrected: false,
                moved: true,
                queued: VecDeque::new(),
                chat: ChatBucket::default(),
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

    fn client_state(&mut self, player: PlayerId, state: ClientState) {
        let zone = self.config.zone.clone();
        let Some(p) = self.players.get_mut(&player) else {
            return;
        };
        if state.epoch != p.epoch {
            // From the player's previous line (datagrams overtake the news
            // of a move): its acks and moves mean nothing here.
            self.stats.stale_states += 1;
            return;
        }
        if state.ack_tick != 0
            && !p.view.acknowledge(state.ack_tick)
            && state.ack_tick > p.view.acked_tick()
        {
            self.stats.bad_acks += 1;
        }
        let actor = p.actor;
        let Some(index) = self.index.get(&actor).copied() else {
            return;
        };
        let mut pos = self.actors[index as usize].props.pos;
        let start = pos;
        let mut facing = self.actors[index as usize].props.facing;
        let first_new = p.last_seq;
        for m in state.moves.iter().filter(|m| m.seq > first_new) {
            if m.seq <= p.last_seq {
                continue;
            }
            let verdict = if !zone.in_bounds(m.pos) {
                Err(MoveRejection::OutOfBounds)
            } else if pos.distance_ceil(m.pos) > p.allowance {
                Err(MoveRejection::TooFast)
            } else if !zone.path_clear(pos, m.pos) {
                Err(MoveRejection::Blocked)
            } else {
                Ok(())
            };
            p.last_seq = m.seq;
            p.moved = true;
            match verdict {
                Ok(()) => {
                    p.allowance -= pos.distance_ceil(m.pos);
                    if m.pos != pos {
                        facing = pos.facing_towards(m.pos);
                    }
                    pos = m.pos;
                    self.stats.moves_accepted += 1;
                }
                Err(why) => {
                    match why {
                        MoveRejection::TooFast => self.stats.rejected_too_fast += 1,
                        MoveRejection::OutOfBounds => self.stats.rejected_out_of_bounds += 1,
                        MoveRejection::Blocked => self.stats.rejected_blocked += 1,
                    }
                    // The later moves were predicted from the refused one:
                    // take them as processed; the client replays nothing and
                    // snaps to the position the frame carries.
                    p.corrected = true;
                    p.last_seq = state.moves.last().map_or(m.seq, |last| last.seq.max(m.seq));
                    break;
                }
            }
        }
        if pos != start {
            p.dirty = true;
            let tick = self.tick;
            let a = &mut self.actors[index as usize];
            a.props.pos = pos;
            a.props.facing = facing;
            a.changed_tick = tick;
        }
    }

    fn command(&mut self, player: PlayerId, command: Command) {
        match command {
            Command::Chat { scope, to, text } => self.chat(player, scope, to, text),
            Command::SwitchLine { line } => {
                if line == self.config.number {
                    self.refuse(
                        player,
                        Refusal::Line,
                        format!("you are already on line {line}"),
                    );
                } else {
                    self.outputs.push(LineOutput::WantsLine { player, line });
                }
            }
            Command::Travel { zone } => {
                if zone == self.config.zone.spec.name {
                    self.refuse(
                        player,
                        Refusal::Travel,
                        format!("you are already in {zone}"),
                    );
                } else {
                    self.outputs.push(LineOutput::WantsZone {
                        player,
                        zone,
                        at: None,
                    });
                }
            }
        }
    }

    fn refuse(&mut self, player: PlayerId, about: Refusal, reason: String) {
        self.queue_item(
            player,
            Item::Refused {
                about,
                reason: bounded(reason, wire::MAX_REASON),
            },
        );
    }

    fn chat(&mut self, player: PlayerId, scope: ChatScope, to: String, text: String) {
        let Some(p) = self.players.get_mut(&player) else {
            return;
        };
        let name = self.actors[self.index[&p.actor] as usize]
            .props
            .name
            .to_string();
        let checked = check_text(&text).map(str::to_owned).map_err(str::to_owned);
        let checked = checked.and_then(|text| {
            if p.chat.take() {
                Ok(text)
            } else {
                Err("you are sending messages too fast: wait a moment".to_owned())
            }
        });
        let checked = checked.and_then(|text| {
            if scope == ChatScope::Whisper && to.is_empty() {
                return Err("name the player to whisper to".to_owned());
            }
            match self.hook.as_ref().map(|h| h.check(&name, scope, &text)) {
                None | Some(ChatVerdict::Allow) => Ok(text),
                Some(ChatVerdict::Replace(text)) => Ok(bounded(text, wire::MAX_CHAT)),
                Some(ChatVerdict::Refuse(why)) => Err(bounded(why, wire::MAX_REASON)),
            }
        });
        let text = match checked {
            Ok(text) => text,
            Err(reason) => {
                self.stats.chat_refused += 1;
                self.refuse(player, Refusal::Chat, reason);
                return;
            }
        };
        self.stats.chat_sent += 1;
        let item = Item::Chat {
            scope,
            from: name.clone(),
            to: to.clone(),
            text: text.clone(),
        };
        match scope {
            ChatScope::Line | ChatScope::Zone => {
                self.apply(LineInput::Deliver { to: None, item });
                if scope == ChatScope::Zone {
                    self.outputs.push(LineOutput::Chat {
                        from: player,
                        from_name: name,
                        scope,
                        to,
                        text,
                    });
                }
            }
            ChatScope::Whisper => self.outputs.push(LineOutput::Chat {
                from: player,
                from_name: name,
                scope,
                to,
                text,
            }),
            ChatScope::System => {}
        }
    }

    fn move_npcs(&mut self) {
        let zone = self.config.zone.clone();
        let tick = self.tick;
        for npc in &mut self.npcs {
            let Some(&index) = self.index.get(&npc.actor) else {
                continue;
            };
            let actor = &mut self.actors[index as usize];
            if let Some(next) = npc.step(actor.props.pos, tick, &zone, &mut self.rng) {
                let (from, target) = (actor.props.pos, npc.target);
                actor.props.facing = *npc
                    .heading
                    .get_or_insert_with(|| from.facing_towards(target));
                actor.props.pos = next;
                actor.changed_tick = tick;
            }
        }
    }

    fn check_portals(&mut self) {
        if self.config.zone.spec.portals.is_empty() {
            return;
        }
        for p in self.players.values_mut().filter(|p| p.moved) {
            let pos = self.actors[self.index[&p.actor] as usize].props.pos;
            if let Some(portal) = self.config.zone.portal_at(pos) {
                self.outputs.push(LineOutput::WantsZone {
                    player: p.id,
                    zone: portal.to.clone(),
                    at: Some(Pos::cell_centre(portal.arrive[0], portal.arrive[1])),
                });
            }
        }
    }

    fn rebuild_grid(&mut self) {
        let zone = &self.config.zone;
        if self.grid.is_empty_shape() {
            // Buckets half the view radius wide: a query's square then
            // overlaps little beyond the circle it stands for.
            self.grid = Grid::new(
                zone.width,
                zone.height,
                (zone.spec.view_radius as i32 / 2).max(4),
            );
        }
        self.grid.clear();
        for (i, actor) in self.actors.iter().enumerate() {
            self.grid.insert(i as u32, actor.props.pos);
        }
    }

    /// Decides and encodes what `player` receives this tick, within its budget.
    fn replicate(&mut self, id: PlayerId) {
        let tick = self.tick;
        let view_in = self.config.zone.view_radius_units();
        // Hysteresis: an actor leaves the view a quarter further out than it
        // enters, so one walking along the edge does not flap.
        let view_out = view_in + view_in / 4;
        let Some(player) = self.players.get_mut(&id) else {
            return;
        };
        let own = player.actor;
        let centre = self.actors[self.index[&own] as usize].props.pos;
        let mut scratch = std::mem::take(&mut self.scratch);
        let actors = &self.actors;
        let view = &mut player.view;

        scratch.candidates.clear();
        scratch.despawns.clear();
        // Who is near is asked of the grid every fourth tick (staggered by
        // player), or at once for a player with nothing in view; in between,
        // only the actors already in view are looked at. A newcomer is
        // spawned up to three ticks (150 ms at 20 Hz) later; updates and
        // despawns are not delayed.
        let relevancy_pass = view.entries.is_empty() || (tick ^ id as u32) % RELEVANCY_PERIOD == 0;
        if relevancy_pass {
            // The actors in range, in id order like the view's entries.
            scratch.near.clear();
            self.grid.for_each_near(centre, view_out, |index| {
                let actor = &actors[index as usize];
                let distance2 = actor.props.pos.distance_squared(centre);
                if distance2 <= view_out * view_out || actor.id == own {
                    scratch.near.push(Near {
                        id: actor.id,
                        index,
                        distance2,
                    });
                }
            });
            scratch.near.sort_unstable_by_key(|n| n.id);

            // One pass over both: known and near (update?), near only
            // (spawn?), known only (despawn).
            let mut near = scratch.near.iter().peekable();
            for (at, entry) in view.entries.iter_mut().enumerate() {
                while let Some(n) = near.next_if(|n| n.id < entry.id) {
                    if n.distance2 <= view_in * view_in || n.id == own {
                        scratch
                            .candidates
                            .push(spawn_candidate(&actors[n.index as usize], n, own));
                    }
                }
                match near.next_if(|n| n.id == entry.id) {
                    Some(n) => {
                        entry.slot = n.index;
                        consider_update(
                            &mut scratch.candidates,
                            entry,
                            at,
                            n,
                            &actors[n.index as usize],
                            own,
                            tick,
                            view_in,
                        )
                    }
                    None => scratch.despawns.push(at as u32),
                }
            }
            for n in near {
                if n.distance2 <= view_in * view_in || n.id == own {
                    scratch
                        .candidates
                        .push(spawn_candidate(&actors[n.index as usize], n, own));
                }
            }
        } else {
            for (at, entry) in view.entries.iter_mut().enumerate() {
                let index = match actors.get(entry.slot as usize) {
                    Some(actor) if actor.id == entry.id => entry.slot,
                    // The actor moved in the list (another left) or is gone.
                    _ => match self.index.get(&entry.id) {
                        Some(&index) => {
                            entry.slot = index;
                            index
                        }
                        None => {
                            scratch.despawns.push(at as u32);
                            continue;
                        }
                    },
                };
                let actor = &actors[index as usize];
                let distance2 = actor.props.pos.distance_squared(centre);
                if distance2 > view_out * view_out && actor.id != own {
                    scratch.despawns.push(at as u32);
                    continue;
                }
                let n = Near {
                    id: actor.id,
                    index,
                    distance2,
                };
                consider_update(
                    &mut scratch.candidates,
                    entry,
                    at,
                    &n,
                    actor,
                    own,
                    tick,
                    view_in,
                );
            }
        }

        // Spend the budget: despawns, queued items, then updates and spawns
        // by priority. The frame header and the reliable message's header
        // are reserved first.
        let mut left = player.budget as i64 - FRAME_HEADER_MAX as i64 - RELIABLE_HEADER_MAX as i64;
        let mut items: Vec<Item> = Vec::new();
        for &at in &scratch.despawns {
            let entry = &mut view.entries[at as usize];
            let cost = 1 + hearth_proto::codec::varint_len(u64::from(entry.id.0)) as i64;
            if cost > left {
                break;
            }
            left -= cost;
            entry.despawn = true;
            items.push(Item::Despawn { id: entry.id });
        }
        let most = player.budget as i64 - FRAME_HEADER_MAX as i64 - RELIABLE_HEADER_MAX as i64;
        while let Some(item) = player.queued.front() {
            let cost = item.encoded_len() as i64;
            if cost > most {
                // It would never fit this player's budget: dropped (and
                // counted) rather than blocking everything behind it.
                player.queued.pop_front();
                self.stats.items_dropped += 1;
                continue;
            }
            if cost > left {
                break;
            }
            left -= cost;
            items.push(player.queued.pop_front().expect("front exists"));
        }
        // Priority decides only when the budget cannot take everything.
        let wanted: i64 = scratch.candidates.iter().map(|c| i64::from(c.cost)).sum();
        if wanted > left {
            for c in &mut scratch.candidates {
                c.priority = priority(c.staleness, c.distance2);
            }
            scratch
                .candidates
                .sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.actor.cmp(&b.actor)));
        }
        scratch.updates.clear();
        scratch.spawns.clear();
        let mut misses = 0;
        for candidate in &scratch.candidates {
            if i64::from(candidate.cost) > left {
                misses += 1;
                if misses > 16 {
                    break;
                }
                continue;
            }
            left -= i64::from(candidate.cost);
            if candidate.entry == SPAWN {
                scratch.spawns.push(candidate.actor);
            } else {
                scratch
                    .updates
                    .push((candidate.entry, candidate.actor, candidate.mask));
            }
        }
        // Updates go out in id order (entries are), which compresses no
        // worse and keeps the output deterministic.
        scratch.updates.sort_unstable_by_key(|u| u.0);
        for &index in &scratch.spawns {
            let actor = &actors[index as usize];
            items.push(Item::Spawn {
                id: actor.id,
                kind: actor.kind,
                props: actor.props.clone(),
            });
        }

        let mut sent = 0u64;
        if !items.is_empty() {
            let mut bytes = Vec::new();
            Reliable { tick, items }.encode(&mut bytes);
            sent += bytes.len() as u64;
            self.outputs.push(LineOutput::Send {
                player: id,
                channel: wire::RELIABLE_CHANNEL,
                bytes,
            });
        }
        if !scratch.updates.is_empty() || player.moved || player.corrected {
            let frame = Frame {
                epoch: player.epoch,
                tick,
                input_ack: player.last_seq,
                own_pos: centre,
                corrected: player.corrected,
                updates: Vec::new(),
            };
            scratch.frame.clear();
            frame.encode_header(&mut scratch.frame, scratch.updates.len());
            for &(_, index, mask) in &scratch.updates {
                let actor = &actors[index as usize];
                scratch.frame.put_varint(u64::from(actor.id.0));
                scratch.frame.push(mask);
                wire::put_props(&mut scratch.frame, mask, &actor.props);
            }
            view.frame_sent(
                tick,
                scratch
                    .updates
                    .iter()
                    .map(|&(at, index, mask)| (at as usize, mask, &actors[index as usize].props)),
            );
            sent += scratch.frame.len() as u64;
            self.outputs.push(LineOutput::Send {
                player: id,
                channel: wire::STATE_CHANNEL,
                bytes: scratch.frame.clone(),
            });
            player.moved = false;
            player.corrected = false;
        }
        view.settle(
            tick,
            scratch.spawns.iter().map(|&index| {
                let actor = &actors[index as usize];
                (actor.id, &actor.props, index)
            }),
        );
        player.bytes_out += sent;
        self.stats.bytes_out += sent;
        self.scratch = scratch;
    }
}

/// `Candidate::entry` of a spawn.
const SPAWN: u32 = u32::MAX;
/// Ticks between a player's relevancy passes (grid queries).
const RELEVANCY_PERIOD: u32 = 4;

/// Adds an update of a known, near actor when one is due: far actors are
/// refreshed less often (Unreal's update frequency by relevance), every 2nd
/// tick beyond half the view radius and every 4th beyond three quarters.
#[allow(clippy::too_many_arguments)]
fn consider_update(
    candidates: &mut Vec<Candidate>,
    entry: &crate::replication::ViewEntry,
    at: usize,
    near: &Near,
    actor: &Actor,
    own: ActorId,
    tick: u32,
    view_in: i64,
) {
    let period = if near.id == own || near.distance2 * 4 <= view_in * view_in {
        1
    } else if near.distance2 * 16 <= view_in * view_in * 9 {
        2
    } else {
        4
    };
    if tick.wrapping_sub(entry.last_sent) < period {
        return;
    }
    let mut mask = entry.mask_for(actor);
    if actor.id == own {
        // The frame header carries the own position.
        mask &= !field::POS;
    }
    if mask == 0 {
        return;
    }
    candidates.push(Candidate {
        priority: 0,
        staleness: tick.saturating_sub(entry.last_sent) + 1,
        distance2: if actor.id == own { -1 } else { near.distance2 },
        actor: near.index,
        entry: at as u32,
        mask,
        cost: (hearth_proto::codec::varint_len(u64::from(actor.id.0))
            + 1
            + wire::props_len(mask, &actor.props)) as u32,
    });
}

fn spawn_candidate(actor: &Actor, near: &Near, own: ActorId) -> Candidate {
    Candidate {
        priority: 0,
        // A spawn waits as if eight ticks stale: ahead of fresh updates of
        // actors at the same distance, behind long-starved ones.
        staleness: 8,
        distance2: if near.id == own { -1 } else { near.distance2 },
        actor: near.index,
        entry: SPAWN,
        mask: field::ALL,
        cost: (2
            + hearth_proto::codec::varint_len(u64::from(actor.id.0))
            + wire::props_len(field::ALL, &actor.props)) as u32,
    }
}

/// Largest frame header: type, tick, input ack, position, flag, count.
const FRAME_HEADER_MAX: usize = 1 + 5 + 5 + 10 + 1 + 5;
/// Largest reliable message header: tick and item count.
const RELIABLE_HEADER_MAX: usize = 5 + 5;

/// Stale and near first; the player's own actor (`distance2` -1) before
/// everything.
fn priority(staleness: u32, distance2: i64) -> u64 {
    if distance2 < 0 {
        return u64::MAX;
    }
    let cells = crate::geometry::isqrt(distance2) / i64::from(crate::geometry::UNITS_PER_CELL);
    u64::from(staleness.min(1 << 20)) * 1_000_000 / (cells as u64 + 1)
}

fn truncate_to_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
