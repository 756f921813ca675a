//! A tag player that plays by itself, sans-IO: fed the bytes its session
//! receives, it keeps the replica (through the generated bindings), tells
//! what it sees in words, and makes one move a tick with a small policy:
//! when it is it, it chases the nearest runner it sees; otherwise it flees
//! it when it sees it, and else wanders, turning at walls. Every move is
//! checked against the map first (the server's own wall test), and made
//! just under the legal speed, so an honest bot is never corrected.
//!
//! `tag play` drives it over a real connection (the Rust SDK); the tests
//! drive it against a line in process.

use std::collections::BTreeMap;

use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::{GameEvent, GameReplica, GameReplicaError};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
use hearth_replica::zone::{Zone, ZoneSpec};

use crate::generated::{self, Message, Round, RoundPhase, Runner};

/// Position units the bot moves a tick: just under the legal speed.
pub const STEP: i32 = (crate::SPEED as i32 * UNITS_PER_CELL) / crate::TICK_HZ as i32 - 2;

/// Names of runners gone from view the bot remembers (to name them in a
/// later tag); past this, the oldest are forgotten.
const REMEMBERED_NAMES: usize = 1024;

const HEADINGS: [(i32, i32); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];

/// See the module's documentation.
#[derive(Clone)]
pub struct Bot {
    replica: GameReplica,
    /// The arena, read from the server's Joined.
    zone: Option<Zone>,
    /// Where it wanders when it sees no one (changes at a wall).
    heading: usize,
    /// Position units a tick.
    step: i32,
    messages: Vec<Message>,
    corrections: u32,
    /// Where the last correction put the runner.
    corrected_to: Option<Pos>,
    /// Runners' names by actor, those in view and some gone.
    names: BTreeMap<ActorId, String>,
    /// Where each runner in view was last told to be.
    told: BTreeMap<ActorId, Pos>,
    /// The round as last told: number and phase.
    round: Option<(u32, RoundPhase)>,
    /// Where the last `decide` moved the runner, if it moved.
    last_move: Option<Pos>,
}

impl Bot {
    /// A bot that first wanders towards `heading` (0 to 7: east, then
    /// clockwise by eighths).
    pub fn new(heading: usize) -> Self {
        Self {
            replica: generated::replica(),
            zone: None,
            heading: heading % HEADINGS.len(),
            step: STEP,
            messages: Vec::new(),
            corrections: 0,
            corrected_to: None,
            names: BTreeMap::new(),
            told: BTreeMap::new(),
            round: None,
            last_move: None,
        }
    }

    /// Where the last [`Bot::decide`] moved the runner, if it moved.
    pub fn last_move(&self) -> Option<Pos> {
        self.last_move
    }

    /// Moves `step` position units a tick instead of [`STEP`]: more than
    /// the legal speed makes a cheat, which the server corrects.
    pub fn set_step(&mut self, step: i32) {
        self.step = step;
    }

    /// The game as this player sees it.
    pub fn replica(&self) -> &GameReplica {
        &self.replica
    }

    /// Every message of the game received so far, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Moves the server refused (each snapped the runner back).
    pub fn corrections(&self) -> u32 {
        self.corrections
    }

    /// The arena, once joined.
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// This player's runner.
    pub fn me(&self) -> Option<Runner<'_>> {
        Runner::all(&self.replica).find(|r| r.owned())
    }

    /// Applies what arrived on a game channel (others are ignored); returns
    /// what happened, in words.
    pub fn receive(&mut self, channel: u16, bytes: &[u8]) -> Result<Vec<String>, GameReplicaError> {
        match channel {
            RELIABLE_CHANNEL => self.replica.apply_reliable(bytes)?,
            STATE_CHANNEL => self.replica.apply_frame(bytes)?,
            _ => return Ok(Vec::new()),
        }
        Ok(self.tell())
    }

    /// The acknowledgement (with the moves not yet acknowledged) to send on
    /// the state channel, when one is due: after each frame and each move.
    pub fn poll_ack(&mut self) -> Option<Vec<u8>> {
        self.replica.poll_ack()
    }

    /// One tick's move: call it once a tick.
    pub fn decide(&mut self) {
        self.last_move = None;
        let (Some(own), Some(zone)) = (self.replica.controlled(), self.zone.as_ref()) else {
            return;
        };
        let Some(at) = self.replica.position(own) else {
            return;
        };
        let i_am_it = self.me().is_some_and(|r| r.it());
        let others: Vec<(Pos, bool)> = Runner::all(&self.replica)
            .filter(|r| !r.owned())
            .filter_map(|r| Some((self.replica.server_position(r.id())?, r.it())))
            .collect();
        let target = if i_am_it {
            others
                .iter()
                .map(|(p, _)| *p)
                .min_by_key(|p| p.distance_squared(at))
        } else {
            others.iter().find(|(_, it)| *it).map(|(p, _)| {
                // Away from it.
                Pos::new(2 * at.x - p.x, 2 * at.y - p.y)
            })
        };
        let step = self.step;
        let mut wish = match target {
            Some(t) if t != at => {
                let d = at.distance(t).max(1);
                let f = i64::from(step).min(d);
                (
                    ((i64::from(t.x - at.x) * f) / d) as i32,
                    ((i64::from(t.y - at.y) * f) / d) as i32,
                )
            }
            _ => {
                let (dx, dy) = HEADINGS[self.heading];
                (dx * step * 7 / 10, dy * step * 7 / 10)
            }
        };
        // Around walls: try the wish, then turning headings.
        for turn in 0..8 {
            let to = Pos::new(at.x + wish.0, at.y + wish.1);
            if zone.in_bounds(to) && zone.path_clear(at, to) && !zone.blocked(to) {
                self.replica
                    .move_to(to)
                    .expect("the controlled runner is in view");
                self.last_move = Some(to);
                return;
            }
            self.heading = (self.heading + 1 + turn) % 8;
            let (dx, dy) = HEADINGS[self.heading];
            wish = (dx * step * 7 / 10, dy * step * 7 / 10);
        }
    }

    /// The runners in view that moved a cell or more since they were last
    /// told, in words ("ann is at 12.50,7.00"): call it now and then.
    pub fn sightings(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for runner in Runner::all(&self.replica).filter(|r| !r.owned()) {
            let Some(at) = self.replica.server_position(runner.id()) else {
                continue;
            };
            let moved = self
                .told
                .get(&runner.id())
                .is_none_or(|was| was.distance(at) >= i64::from(UNITS_PER_CELL));
            if moved {
                self.told.insert(runner.id(), at);
                lines.push(format!("{} is at {}", shown(runner.name()), cells(at)));
            }
        }
        lines
    }

    /// Reads the events of what was just applied and the round after it.
    fn tell(&mut self) -> Vec<String> {
        let events: Vec<GameEvent> = std::iter::from_fn(|| self.replica.poll_event()).collect();
        let mut lines = Vec::new();
        // A change of the round is told before the game's messages, which
        // it may have caused (a tag in a round's first tick).
        let mut round_news = self.round_news(&events);
        for event in events {
            if matches!(event, GameEvent::Message { .. }) {
                lines.extend(round_news.take());
            }
            match &event {
                GameEvent::Joined { .. } => {
                    self.zone = zone_of(self.replica.map());
                    lines.push(match &self.zone {
                        Some(zone) => format!(
                            "in the arena: {} by {} cells, seeing {} cells around",
                            zone.width,
                            zone.height,
                            self.replica.view_radius()
                        ),
                        None => "in a game without an arena I can read".to_owned(),
                    });
                }
                GameEvent::Spawned { id } => {
                    let Some(runner) = Runner::get(&self.replica, *id) else {
                        continue;
                    };
                    let (name, owned, it) = (shown(runner.name()), runner.owned(), runner.it());
                    let at = self.replica.server_position(*id).unwrap_or(Pos::new(0, 0));
                    self.remember(*id, name.clone());
                    if owned {
                        lines.push(format!("I am {name}, at {}", cells(at)));
                    } else {
                        self.told.insert(*id, at);
                        let it = if it { " (it)" } else { "" };
                        lines.push(format!("{name} comes into view at {}{it}", cells(at)));
                    }
                }
                GameEvent::Despawned { id } => {
                    if self.told.remove(id).is_some() {
                        lines.push(format!("{} is out of view", self.name_of(id.0)));
                    }
                }
                GameEvent::Corrected { at } => {
                    self.corrections += 1;
                    // Moves already in flight when the server moved the
                    // runner (a respawn, a new round) are refused one after
                    // another: told once.
                    if self.corrected_to.replace(*at) != Some(*at) {
                        lines.push(format!("the server put me back at {}", cells(*at)));
                    }
                }
                GameEvent::Message { .. } => {
                    let Some(message) = Message::decode(&event) else {
                        continue;
                    };
                    match &message {
                        Message::Tagged { it, by } => lines.push(format!(
                            "{} tagged {}",
                            self.name_of(*by),
                            self.name_of(*it)
                        )),
                        Message::RoundOver { winner, score } => {
                            let number = self.round.map_or(0, |(n, _)| n);
                            lines.push(format!(
                                "round {number} is over: {} won with {score} points",
                                shown(winner)
                            ));
                        }
                        Message::NewBest { score } => lines.push(format!("my new best: {score}")),
                    }
                    self.messages.push(message);
                }
                GameEvent::Changed { .. } | GameEvent::Controlling { .. } => {}
            }
        }
        lines.extend(round_news);
        // Once the runner moved on from where a correction put it, the next
        // correction there is news again.
        let own = self.replica.controlled();
        if own.and_then(|id| self.replica.server_position(id)) != self.corrected_to {
            self.corrected_to = None;
        }
        lines
    }

    /// The round's change, if it changed, in words. Who was it when it
    /// started: the first tagger of `events` if someone was tagged at once,
    /// else who is it now.
    fn round_news(&mut self, events: &[GameEvent]) -> Option<String> {
        let round = Round::all(&self.replica).next()?;
        let now = (round.number(), round.phase());
        let before = self.round.replace(now);
        if before == Some(now) {
            return None;
        }
        let first_tagger = events
            .iter()
            .find_map(|event| match Message::decode(event) {
                Some(Message::Tagged { by, .. }) => Some(self.name_of(by)),
                _ => None,
            });
        let it = first_tagger.unwrap_or_else(|| {
            Runner::all(&self.replica)
                .find(|r| r.it())
                .map_or("a runner out of view".to_owned(), |r| shown(r.name()))
        });
        match now.1 {
            RoundPhase::Playing if before.is_some() => {
                Some(format!("round {} starts: {it} is it", now.0))
            }
            RoundPhase::Playing => Some(format!("round {} is being played: {it} is it", now.0)),
            RoundPhase::Waiting if Runner::all(&self.replica).count() < 2 => {
                Some("waiting for a second runner".to_owned())
            }
            RoundPhase::Waiting => Some("a round starts soon".to_owned()),
            RoundPhase::Over => None,
        }
    }

    fn remember(&mut self, id: ActorId, name: String) {
        if self.names.len() >= REMEMBERED_NAMES {
            self.names.pop_first();
        }
        self.names.insert(id, name);
    }

    /// A runner's name, if it was ever seen.
    fn name_of(&self, id: u32) -> String {
        self.names
            .get(&ActorId(id))
            .cloned()
            .unwrap_or_else(|| "a runner out of view".to_owned())
    }
}

/// The arena a Joined's map describes (a map that is not one: none, and the
/// bot stands still).
fn zone_of(map: &str) -> Option<Zone> {
    Zone::new(ZoneSpec {
        name: "arena".to_owned(),
        tick_hz: crate::TICK_HZ,
        line_capacity: 1,
        empty_line_grace_secs: 60,
        npcs: 0,
        speed: crate::SPEED,
        view_radius: crate::VIEW_RADIUS,
        portals: Vec::new(),
        map: map.to_owned(),
    })
    .ok()
}

/// A position in cells, to two decimals: "12.50,7.00".
fn cells(at: Pos) -> String {
    let unit = f64::from(UNITS_PER_CELL);
    format!(
        "{:.2},{:.2}",
        f64::from(at.x) / unit,
        f64::from(at.y) / unit
    )
}

/// Text the server chose, with control and format characters escaped.
fn shown(text: &str) -> String {
    text.escape_debug().to_string()
}
