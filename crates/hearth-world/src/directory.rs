//! The directory: which lines exist, who is on which, and everything that
//! crosses lines — joining, switching lines, travelling between zones,
//! zone chat and whispers, announcements, opening a line when a zone is full
//! and closing empty extra lines after a grace period.
//!
//! Sans-IO like the lines: it answers each event with [`Action`]s for the
//! host to carry out (start or stop a line, give a line an input, save a
//! player), so the same directory drives lines in one process for tests and
//! lines on their own tasks (or, later, machines) in the server.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{MAX_ACTOR_NAME, VALUES};
use crate::allowances::Allowances;
use crate::chat::bounded;
use crate::geometry::Pos;
use crate::line::{Arrival, Destination, LineConfig, LineInput, LineOutput, PlayerId, SavedPlayer};
use crate::names::name_key;
use crate::wire::{ChatScope, Item, Refusal};
use crate::wire::{MAX_CHAT, MAX_REASON, MAX_ZONE_NAME};
use crate::zone::Zone;

/// A line's name: its zone (index in the directory's zones) and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineKey {
    pub zone: u16,
    pub number: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryConfig {
    /// Save each changed player at least this often (0: only when leaving).
    pub save_period_ms: u64,
    /// Seeds the lines' randomness (each line mixes in its key).
    pub seed: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            save_period_ms: 10_000,
            seed: 0x4845_4152_5448,
        }
    }
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a line.
    Open(LineKey, Box<LineConfigDebug>),
    /// Stop an (empty) line.
    Close(LineKey),
    ToLine(LineKey, LineInput),
    /// The player left the world: save this and forget them.
    Gone(SavedPlayer),
    Save(SavedPlayer),
}

/// `LineConfig` for an [`Action::Open`] (a wrapper so actions compare).
#[derive(Clone)]
pub struct LineConfigDebug(pub LineConfig);

impl std::fmt::Debug for LineConfigDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LineConfig({} #{})",
            self.0.zone.spec.name, self.0.number
        )
    }
}

impl PartialEq for LineConfigDebug {
    fn eq(&self, other: &Self) -> bool {
        self.0.zone.spec.name == other.0.zone.spec.name && self.0.number == other.0.number
    }
}

impl Eq for LineConfigDebug {}

/// Why a player cannot enter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("there is no zone {0:?}")]
    NoSuchZone(String),
    #[error("this player is already in the world")]
    AlreadyIn,
}

/// A join request: the arrival plus where the player would like to be.
#[derive(Debug, Clone)]
pub struct Join {
    pub arrival: Arrival,
    pub zone: Option<String>,
    pub line: Option<u32>,
    /// The same account's session this login replaced: while it is still in
    /// the world, the join waits for it to leave and starts from the place
    /// it left (fresher than the database).
    pub after: Option<PlayerId>,
}

/// One line, for administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineSummary {
    pub zone: String,
    pub number: u32,
    pub players: u32,
    pub capacity: u32,
}

#[derive(Debug, Clone)]
struct LineInfo {
    players: u32,
    empty_since_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct Placed {
    name: String,
    line: LineKey,
    bytes_per_second: u32,
    /// Released from `line` on the way to this one.
    moving_to: Option<LineKey>,
    /// Logged out while moving: forget on arrival of `Left`.
    leaving: bool,
    /// Entries into lines so far (the next arrival's epoch).
    epoch: u32,
    /// When the player last changed line or zone (or asked, and was
    /// granted): a change within the cooldown after it is refused.
    last_transfer_ms: Option<u64>,
}

pub struct Directory {
    zones: Vec<Arc<Zone>>,
    config: DirectoryConfig,
    lines: BTreeMap<LineKey, LineInfo>,
    players: HashMap<PlayerId, Placed>,
    /// Lower-cased player name to the newest player with it.
    names: HashMap<String, PlayerId>,
    /// Joins waiting for the session they replace to leave, by that session.
    waiting: HashMap<PlayerId, Join>,
    /// Changes of line or zone refused so far (cooldown, full or closed
    /// line, unknown zone): counted, as every refused input is.
    transfers_refused: u64,
}

impl Directory {
    /// A directory over `zones`, and the actions that open line 1 of each.
    pub fn new(zones: Vec<Zone>, config: DirectoryConfig) -> (Self, Vec<Action>) {
        let mut directory = Self {
            zones: zones.into_iter().map(Arc::new).collect(),
            config,
            lines: BTreeMap::new(),
            players: HashMap::new(),
            names: HashMap::new(),
            waiting: HashMap::new(),
            transfers_refused: 0,
        };
        let mut actions = Vec::new();
        for zone in 0..directory.zones.len() {
            directory.open(zone as u16, 1, &mut actions);
        }
        (directory, actions)
    }

    pub fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    pub fn zone_index(&self, name: &str) -> Option<u16> {
        self.zones
            .iter()
            .position(|z| z.spec.name == name)
            .map(|i| i as u16)
    }

    pub fn zone_name(&self, zone: u16) -> &str {
        &self.zones[zone as usize].spec.name
    }

    /// Where `player` is (or is headed).
    pub fn line_of(&self, player: PlayerId) -> Option<LineKey> {
        self.players.get(&player).map(|p| p.line)
    }

    /// The player with this name, if online.
    pub fn find(&self, name: &str) -> Option<PlayerId> {
        self.names.get(&name_key(name)).copied()
    }

    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    /// Changes of line or zone refused so far.
    pub fn transfers_refused(&self) -> u64 {
        self.transfers_refused
    }

    pub fn lines(&self) -> Vec<LineSummary> {
        self.lines
            .iter()
            .map(|(key, info)| LineSummary {
                zone: self.zone_name(key.zone).to_owned(),
                number: key.number,
                players: info.players,
                capacity: self.zones[key.zone as usize].spec.line_capacity,
            })
            .collect()
    }

    pub fn line_keys(&self) -> impl Iterator<Item = LineKey> + '_ {
        self.lines.keys().copied()
    }

    fn open(&mut self, zone: u16, number: u32, actions: &mut Vec<Action>) -> LineKey {
        let key = LineKey { zone, number };
        self.lines.insert(
            key,
            LineInfo {
                players: 0,
                empty_since_ms: None,
            },
        );
        let seed = self.config.seed ^ (u64::from(zone) << 32) ^ u64::from(number);
        let hz = u64::from(self.zones[zone as usize].spec.tick_hz);
        let save_every_ticks = (self.config.save_period_ms * hz / 1000).clamp(
            u64::from(self.config.save_period_ms > 0),
            u64::from(u32::MAX),
        ) as u32;
        actions.push(Action::Open(
            key,
            Box::new(LineConfigDebug(LineConfig {
                zone: self.zones[zone as usize].clone(),
                number,
                seed,
                save_every_ticks,
            })),
        ));
        key
    }

    /// A line of `zone` with room: `wanted` if it has room, else the first
    /// with room, else a new one. Reserves the place.
    fn place(&mut self, zone: u16, wanted: Option<u32>, actions: &mut Vec<Action>) -> LineKey {
        let capacity = self.zones[zone as usize].spec.line_capacity;
        let has_room = |info: &LineInfo| info.players < capacity;
        let wanted = wanted
            .map(|number| LineKey { zone, number })
            .filter(|key| self.lines.get(key).is_some_and(has_room));
        let key = wanted
            .or_else(|| {
                self.lines
                    .range(
                        LineKey { zone, number: 0 }..=LineKey {
                            zone,
                            number: u32::MAX,
                        },
                    )
                    .find(|(_, info)| has_room(info))
                    .map(|(key, _)| *key)
            })
            .unwrap_or_else(|| {
                let number = (1..)
                    .find(|n| !self.lines.contains_key(&LineKey { zone, number: *n }))
                    .expect("a free number");
                self.open(zone, number, actions)
            });
        let info = self.lines.get_mut(&key).expect("placed on an open line");
        info.players += 1;
        info.empty_since_ms = None;
        key
    }

    fn unreserve(&mut self, key: LineKey, now_ms: u64) {
        if let Some(info) = self.lines.get_mut(&key) {
            info.players = info.players.saturating_sub(1);
            if info.players == 0 {
                info.empty_since_ms = Some(now_ms);
            }
        }
    }

    /// A player enters the world.
    /// Where the player was placed (`None`: waiting for the session it
    /// replaced to leave first).
    pub fn join(
        &mut self,
        now_ms: u64,
        join: Join,
    ) -> Result<(Option<LineKey>, Vec<Action>), JoinError> {
        let player = join.arrival.player;
        if self.players.contains_key(&player)
            || self.waiting.values().any(|j| j.arrival.player == player)
        {
            return Err(JoinError::AlreadyIn);
        }
        if let Some(old) = join.after.filter(|old| self.players.contains_key(old)) {
            self.waiting.insert(old, join);
            return Ok((None, Vec::new()));
        }
        let zone = match &join.zone {
            Some(name) => self
                .zone_index(name)
                .ok_or_else(|| JoinError::NoSuchZone(name.clone()))?,
            None => 0,
        };
        let mut actions = Vec::new();
        let key = self.place(zone, join.line, &mut actions);
        let _ = now_ms;
        self.names.insert(name_key(&join.arrival.name), player);
        self.players.insert(
            player,
            Placed {
                name: join.arrival.name.clone(),
                line: key,
                bytes_per_second: join.arrival.bytes_per_second,
                moving_to: None,
                leaving: false,
                epoch: 1,
                last_transfer_ms: None,
            },
        );
        let mut arrival = join.arrival;
        arrival.epoch = 1;
        actions.push(Action::ToLine(key, LineInput::Enter(arrival)));
        Ok((Some(key), actions))
    }

    /// The player's session ended.
    pub fn leave(&mut self, player: PlayerId) -> Vec<Action> {
        self.waiting.retain(|_, join| join.arrival.player != player);
        let Some(placed) = self.players.get_mut(&player) else {
            return Vec::new();
        };
        if placed.moving_to.is_some() {
            placed.leaving = true;
            return Vec::new();
        }
        vec![Action::ToLine(
            placed.line,
            LineInput::Release {
                player,
                to: Destination::Away,
            },
        )]
    }

    /// An input for the player's line (a decoded client message).
    pub fn route(&self, player: PlayerId, input: LineInput) -> Option<Action> {
        let placed = self.players.get(&player)?;
        if placed.moving_to.is_some() {
            // Between lines: moves and acks for the old line are moot.
            return None;
        }
        Some(Action::ToLine(placed.line, input))
    }

    /// A system message to every line.
    pub fn announce(&self, text: &str) -> Vec<Action> {
        let item = Item::Chat {
            scope: ChatScope::System,
            from: String::new(),
            to: String::new(),
            text: bounded(text.to_owned(), MAX_CHAT),
        };
        self.lines
            .keys()
            .map(|key| {
                Action::ToLine(
                    *key,
                    LineInput::Deliver {
                        to: None,
                        item: item.clone(),
                    },
                )
            })
            .collect()
    }

    /// Administration: send `player` to `zone` (at its spawn or `at`).
    pub fn send_to_zone(
        &mut self,
        player: PlayerId,
        zone: &str,
        at: Option<Pos>,
    ) -> Result<Vec<Action>, String> {
        let mut actions = Vec::new();
        self.want_zone(player, zone, at, &mut actions)?;
        Ok(actions)
    }

    /// Something a line produced that is the directory's business.
    pub fn on_output(&mut self, now_ms: u64, from: LineKey, output: LineOutput) -> Vec<Action> {
        let mut actions = Vec::new();
        match output {
            LineOutput::Send { .. } | LineOutput::Observed { .. } => {}
            LineOutput::Save(saved) => actions.push(Action::Save(saved)),
            LineOutput::Left {
                saved,
                allowances,
                to,
            } => self.left(now_ms, from, saved, allowances, to, &mut actions),
            LineOutput::WantsLine { player, line } => {
                let result = self
                    .cooled_down(player, now_ms)
                    .and_then(|()| self.want_line(player, line, &mut actions));
                self.answer_transfer(now_ms, from, player, Refusal::Line, result, &mut actions);
            }
            LineOutput::WantsZone { player, zone, at } => {
                let result = self
                    .cooled_down(player, now_ms)
                    .and_then(|()| self.want_zone(player, &zone, at, &mut actions));
                self.answer_transfer(now_ms, from, player, Refusal::Travel, result, &mut actions);
            }
            LineOutput::Chat {
                from: sender,
                from_name,
                scope,
                to,
                text,
            } => {
                let item = Item::Chat {
                    scope,
                    from: bounded(from_name, MAX_ACTOR_NAME),
                    to: bounded(to.clone(), MAX_ACTOR_NAME),
                    text: bounded(text, MAX_CHAT),
                };
                match scope {
                    ChatScope::Zone => {
                        for key in self
                            .lines
                            .keys()
                            .filter(|k| k.zone == from.zone && **k != from)
                        {
                            actions.push(Action::ToLine(
                                *key,
                                LineInput::Deliver {
                                    to: None,
                                    item: item.clone(),
                                },
                            ));
                        }
                    }
                    ChatScope::Whisper => match self
                        .find(&to)
                        .and_then(|p| Some((p, self.players.get(&p)?.line)))
                    {
                        Some((target, line)) => {
                            actions.push(Action::ToLine(
                                line,
                                LineInput::Deliver {
                                    to: Some(target),
                                    item: item.clone(),
                                },
                            ));
                            if target != sender {
                                actions.push(Action::ToLine(
                                    from,
                                    LineInput::Deliver {
                                        to: Some(sender),
                                        item,
                                    },
                                ));
                            }
                        }
                        None => actions.push(refuse(
                            from,
                            sender,
                            Refusal::Chat,
                            format!("{to} is not online: whispers reach online players only"),
                        )),
                    },
                    ChatScope::Line | ChatScope::System => {}
                }
            }
        }
        actions
    }

    fn numbers(&self, zone: u16) -> String {
        self.lines
            .keys()
            .filter(|k| k.zone == zone)
            .map(|k| k.number.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `player`'s cooldown since their last change of line or zone
    /// is over; if not, how long to wait.
    fn cooled_down(&self, player: PlayerId, now_ms: u64) -> Result<(), String> {
        let Some(last) = self.players.get(&player).and_then(|p| p.last_transfer_ms) else {
            return Ok(());
        };
        let since = now_ms.saturating_sub(last);
        if since >= TRANSFER_COOLDOWN_MS {
            return Ok(());
        }
        // Rounded up: a player who waits what they are told is let through.
        let tenths = (TRANSFER_COOLDOWN_MS - since).div_ceil(100);
        Err(format!(
            "you changed place a moment ago: wait {}.{} s",
            tenths / 10,
            tenths % 10
        ))
    }

    /// A granted change of line or zone starts the player's cooldown; a
    /// refused one is counted and explained to the player.
    fn answer_transfer(
        &mut self,
        now_ms: u64,
        from: LineKey,
        player: PlayerId,
        about: Refusal,
        result: Result<(), String>,
        actions: &mut Vec<Action>,
    ) {
        match result {
            Ok(()) => {
                if let Some(placed) = self.players.get_mut(&player) {
                    placed.last_transfer_ms = Some(now_ms);
                }
            }
            Err(reason) => {
                self.transfers_refused += 1;
                actions.push(refuse(from, player, about, reason));
            }
        }
    }

    fn want_line(
        &mut self,
        player: PlayerId,
        line: u32,
        actions: &mut Vec<Action>,
    ) -> Result<(), String> {
        let Some(placed) = self.players.get(&player) else {
            return Err("you are not in the world".to_owned());
        };
        let key = LineKey {
            zone: placed.line.zone,
            number: line,
        };
        let capacity = self.zones[key.zone as usize].spec.line_capacity;
        match self.lines.get(&key) {
            None => {
                return Err(format!(
                    "line {line} is not open (open lines: {})",
                    self.numbers(key.zone)
                ))
            }
            Some(info) if info.players >= capacity => return Err(format!("line {line} is full")),
            Some(_) if placed.moving_to.is_some() => {
                return Err("you are already on your way".to_owned())
            }
            Some(_) => {}
        }
        let info = self.lines.get_mut(&key).expect("checked");
        info.players += 1;
        info.empty_since_ms = None;
        self.release(player, key, Destination::Line(line), actions);
        Ok(())
    }

    fn want_zone(
        &mut self,
        player: PlayerId,
        zone: &str,
        at: Option<Pos>,
        actions: &mut Vec<Action>,
    ) -> Result<(), String> {
        let Some(index) = self.zone_index(zone) else {
            let names: Vec<&str> = self.zones.iter().map(|z| z.name()).collect();
            return Err(format!(
                "there is no zone {:?} (zones: {})",
                bounded(zone.to_owned(), MAX_ZONE_NAME),
                names.join(", ")
            ));
        };
        let Some(placed) = self.players.get(&player) else {
            return Err("you are not in the world".to_owned());
        };
        if placed.moving_to.is_some() {
            return Err("you are already on your way".to_owned());
        }
        let key = self.place(index, None, actions);
        self.release(
            player,
            key,
            Destination::Zone {
                zone: zone.to_owned(),
                at,
            },
            actions,
        );
        Ok(())
    }

    fn release(
        &mut self,
        player: PlayerId,
        to: LineKey,
        destination: Destination,
        actions: &mut Vec<Action>,
    ) {
        let placed = self.players.get_mut(&player).expect("caller checked");
        placed.moving_to = Some(to);
        actions.push(Action::ToLine(
            placed.line,
            LineInput::Release {
                player,
                to: destination,
            },
        ));
    }

    fn left(
        &mut self,
        now_ms: u64,
        from: LineKey,
        saved: SavedPlayer,
        allowances: Allowances,
        to: Destination,
        actions: &mut Vec<Action>,
    ) {
        self.unreserve(from, now_ms);
        let player = saved.player;
        let Some(placed) = self.players.get_mut(&player) else {
            actions.push(Action::Gone(saved));
            return;
        };
        let target = placed.moving_to.take();
        let last_transfer_ms = placed.last_transfer_ms;
        match (to, target) {
            (Destination::Away, _) | (_, None) => {
                self.forget(player);
                self.start_waiting(now_ms, &saved, allowances, last_transfer_ms, actions);
                actions.push(Action::Gone(saved));
            }
            (_, Some(target)) if placed.leaving => {
                self.unreserve(target, now_ms);
                self.forget(player);
                self.start_waiting(now_ms, &saved, allowances, last_transfer_ms, actions);
                actions.push(Action::Gone(saved));
            }
            (destination, Some(target)) => {
                placed.line = target;
                placed.epoch = placed.epoch.wrapping_add(1);
                let at = match destination {
                    Destination::Line(_) => Some(saved.pos),
                    Destination::Zone { at, .. } => at,
                    Destination::Away => None,
                };
                let arrival = Arrival {
                    player,
                    account: saved.account,
                    name: placed.name.clone(),
                    at,
                    appearance: saved.appearance,
                    values: saved.values,
                    bytes_per_second: placed.bytes_per_second,
                    epoch: placed.epoch,
                    allowances,
                };
                let mut moved = saved;
                moved.zone = self.zone_name(target.zone).to_owned();
                moved.line = target.number;
                if let Some(at) = at {
                    moved.pos = at;
                }
                actions.push(Action::Save(moved));
                actions.push(Action::ToLine(target, LineInput::Enter(arrival)));
            }
        }
    }

    /// The join that waited for `saved`'s player to leave enters now, where
    /// that player left off and with their allowances and cooldown: logging
    /// in again refills nothing.
    fn start_waiting(
        &mut self,
        now_ms: u64,
        saved: &SavedPlayer,
        allowances: Allowances,
        last_transfer_ms: Option<u64>,
        actions: &mut Vec<Action>,
    ) {
        let Some(mut join) = self.waiting.remove(&saved.player) else {
            return;
        };
        let player = join.arrival.player;
        join.after = None;
        join.arrival.at = Some(saved.pos);
        join.arrival.values = saved.values;
        join.arrival.appearance = saved.appearance;
        join.arrival.allowances = allowances;
        join.zone = Some(saved.zone.clone());
        join.line = Some(saved.line);
        if let Ok((_, more)) = self.join(now_ms, join) {
            if let Some(placed) = self.players.get_mut(&player) {
                placed.last_transfer_ms = last_transfer_ms;
            }
            actions.extend(more);
        }
    }

    fn forget(&mut self, player: PlayerId) {
        if let Some(placed) = self.players.remove(&player) {
            let lower = name_key(&placed.name);
            if self.names.get(&lower) == Some(&player) {
                self.names.remove(&lower);
            }
        }
    }

    /// Closes extra lines empty for longer than their zone's grace period.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        let zones = &self.zones;
        let closing: Vec<LineKey> = self
            .lines
            .iter()
            .filter(|(key, info)| {
                let grace = u64::from(zones[key.zone as usize].spec.empty_line_grace_secs) * 1000;
                key.number > 1
                    && info.players == 0
                    && info
                        .empty_since_ms
                        .is_some_and(|since| now_ms.saturating_sub(since) >= grace)
            })
            .map(|(key, _)| *key)
            .collect();
        closing
            .into_iter()
            .map(|key| {
                self.lines.remove(&key);
                Action::Close(key)
            })
            .collect()
    }
}

fn refuse(line: LineKey, player: PlayerId, about: Refusal, reason: String) -> Action {
    Action::ToLine(
        line,
        LineInput::Deliver {
            to: Some(player),
            item: Item::Refused {
                about,
                reason: bounded(reason, MAX_REASON),
            },
        },
    )
}

/// A player may change line or zone at most this often: each change sends
/// the map and saves the player.
pub const TRANSFER_COOLDOWN_MS: u64 = 3_000;

/// Values a new player starts with in the default game: health, level,
/// score, and a fourth the game may use.
pub const NEW_PLAYER_VALUES: [i32; VALUES] = [100, 1, 0, 0];
