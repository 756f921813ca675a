//! A tag line and its players' clients in one process: each client is a
//! `tag::bot::Bot` (a replica made by the generated bindings, steered by a
//! small policy: it chases the nearest runner it sees; the others flee it,
//! or wander), and everything the line sends goes through the clients'
//! decoders.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_game::{GameLine, GameOutput, PlayerId};
use hearth_replica::game_wire::STATE_CHANNEL;
use tag::bot::Bot;
use tag::Tag;

/// A player's client: the bot `tag play` runs.
pub type Client = Bot;

/// A small arena, twelve cells by eight inside the walls (the web test's):
/// everyone is always in view of everyone.
pub const SMALL: &str = "\
##############
#S..........S#
#............#
#...##.......#
#...##...S...#
#............#
#.......##...#
#S......##..S#
#............#
##############
";

/// A line and its players' clients.
pub struct Arena {
    pub line: GameLine<Tag>,
    pub clients: BTreeMap<PlayerId, Client>,
    /// Every output, for comparing runs.
    pub log: Vec<GameOutput>,
    /// Saves the line asked for.
    pub saves: Vec<(PlayerId, Vec<u8>)>,
    pub keep_log: bool,
    /// What each client told (as `tag play` prints it), in order.
    pub said: BTreeMap<PlayerId, Vec<String>>,
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
            said: BTreeMap::new(),
        }
    }

    pub fn join(&mut self, player: PlayerId, name: &str, saved: Option<Vec<u8>>) {
        self.line.join_as(player, name, saved);
        self.clients.insert(player, Bot::new(player as usize % 8));
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
                        let lines = client.receive(*channel, bytes).unwrap();
                        self.said.entry(*player).or_default().extend(lines);
                    }
                }
                GameOutput::Save { player, data } => {
                    self.saves.push((*player, data.clone()));
                }
                GameOutput::Left { player, data, .. } => {
                    self.saves.push((*player, data.clone()));
                    self.clients.remove(player);
                }
                _ => {}
            }
        }
        for (player, client) in self.clients.iter_mut() {
            client.decide();
            if let Some(bytes) = client.poll_ack() {
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
