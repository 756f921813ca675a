//! A tag line and its players' clients in one process: each client is a
//! replica made by the generated bindings, steered by a small policy (it
//! chases the nearest runner it sees; the others flee it, or wander), and
//! everything the line sends goes through the clients' decoders.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_game::{GameLine, GameOutput, PlayerId, Pos, Zone, ZoneSpec};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use tag::generated::{self, Message, Runner};
use tag::Tag;

/// Position units a client moves per tick: just under the legal speed.
pub const STEP: i32 = (tag::SPEED as i32 * 100) / tag::TICK_HZ as i32 - 2;

#[derive(Clone)]
pub struct Client {
    pub replica: GameReplica,
    pub messages: Vec<Message>,
    pub corrections: u32,
    /// The map, read from the server's Joined.
    zone: Option<Zone>,
    /// Where it wanders when it sees no one (changes on a wall).
    heading: usize,
    /// Moves faster than the speed allows (a cheat).
    pub cheat: bool,
    /// Where the last `decide` moved to, if it moved.
    pub last_move: Option<Pos>,
}

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

impl Client {
    pub fn new(heading: usize) -> Self {
        Self {
            replica: generated::replica(),
            messages: Vec::new(),
            corrections: 0,
            zone: None,
            heading,
            cheat: false,
            last_move: None,
        }
    }

    pub fn apply(&mut self, channel: u16, bytes: &[u8]) {
        match channel {
            RELIABLE_CHANNEL => self.replica.apply_reliable(bytes).unwrap(),
            STATE_CHANNEL => self.replica.apply_frame(bytes).unwrap(),
            other => panic!("unexpected channel {other}"),
        }
        while let Some(event) = self.replica.poll_event() {
            match event {
                hearth_replica::game_replica::GameEvent::Corrected { .. } => self.corrections += 1,
                hearth_replica::game_replica::GameEvent::Joined { .. } => {
                    self.zone = Some(
                        Zone::new(ZoneSpec {
                            name: "arena".into(),
                            map: self.replica.map().to_owned(),
                            ..Zone::open_field("x", 3, 3).spec
                        })
                        .unwrap(),
                    );
                }
                other => self.messages.extend(Message::decode(&other)),
            }
        }
    }

    pub fn me(&self) -> Option<Runner<'_>> {
        Runner::all(&self.replica).find(|r| r.owned())
    }

    /// One tick's move.
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
        let step = if self.cheat { STEP * 3 } else { STEP };
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
                self.replica.move_to(to).unwrap();
                self.last_move = Some(to);
                return;
            }
            self.heading = (self.heading + 1 + turn) % 8;
            let (dx, dy) = HEADINGS[self.heading];
            wish = (dx * step * 7 / 10, dy * step * 7 / 10);
        }
    }
}

/// A line and its players' clients.
pub struct Arena {
    pub line: GameLine<Tag>,
    pub clients: BTreeMap<PlayerId, Client>,
    /// Every output, for comparing runs.
    pub log: Vec<GameOutput>,
    /// Saves the line asked for.
    pub saves: Vec<(PlayerId, Vec<u8>)>,
    pub keep_log: bool,
}

impl Arena {
    pub fn new(seed: u64) -> Self {
        Self::with_line(GameLine::new(Arc::new(Tag::default()), seed))
    }

    pub fn with_line(line: GameLine<Tag>) -> Self {
        Self {
            line,
            clients: BTreeMap::new(),
            log: Vec::new(),
            saves: Vec::new(),
            keep_log: false,
        }
    }

    pub fn join(&mut self, player: PlayerId, name: &str, saved: Option<Vec<u8>>) {
        self.line.join_as(player, name, saved);
        self.clients
            .insert(player, Client::new(player as usize % 8));
    }

    pub fn leave(&mut self, player: PlayerId) {
        self.line.leave(player);
    }

    /// One tick: the line steps, every client applies what it got, moves,
    /// and sends its state.
    pub fn tick(&mut self) -> Vec<GameOutput> {
        self.line.tick();
        let outputs: Vec<GameOutput> = self.line.drain_outputs().collect();
        for output in &outputs {
            match output {
                GameOutput::Send {
                    player,
                    channel,
                    bytes,
                } => {
                    if let Some(client) = self.clients.get_mut(player) {
                        client.apply(*channel, bytes);
                    }
                }
                GameOutput::Save { player, data } => {
                    self.saves.push((*player, data.clone()));
                    // A leave's save (the periodic ones keep the player).
                    if !self.line.players().any(|p| p == *player) {
                        self.clients.remove(player);
                    }
                }
                _ => {}
            }
        }
        for (player, client) in self.clients.iter_mut() {
            client.decide();
            if let Some(bytes) = client.replica.poll_ack() {
                self.line.input(*player, STATE_CHANNEL, &bytes).unwrap();
            }
        }
        if self.keep_log {
            self.log.extend(outputs.iter().cloned());
        }
        outputs
    }

    pub fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.tick();
        }
    }
}
