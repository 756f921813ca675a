//! What a line held under a lease needs of [`GameLines`] (in a cluster, a
//! line's node holds a lease on it; see hearth-cluster's `line_saves`):
//! pausing a line whose lease may be lapsing, its state to save, restarting
//! a line from the state another node saved, and dropping a line whose
//! lease another node now holds.

use crate::directory::LineKey;
use crate::game::Game;
use crate::ids::PlayerId;
use crate::line::{GameLine, GameOutput, SnapshotError};

use super::{GameLines, LinesOutput};

/// Why a saved line could not be restarted here.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the line's zone {0} runs on another node (pinned there)")]
    ZoneElsewhere(String),
}

impl<G: Game> GameLines<G> {
    /// A paused line is not ticked (its players wait, their messages kept
    /// as the line's inbox keeps them) until it is resumed: its host is
    /// not sure it still holds the line's lease, and must not run it while
    /// another node may.
    pub fn set_paused(&mut self, key: LineKey, paused: bool) {
        match paused && self.lines.contains_key(&key) {
            true => self.paused.insert(key),
            false => self.paused.remove(&key),
        };
    }

    pub fn is_paused(&self, key: LineKey) -> bool {
        self.paused.contains(&key)
    }

    /// Line `key`'s whole state ([`GameLine::snapshot`]), to save.
    pub fn snapshot_line(&self, key: LineKey) -> Option<Vec<u8>> {
        self.lines.get(&key).map(GameLine::snapshot)
    }

    /// Opens a line from the state another node saved of it (a
    /// [`GameLine::snapshot`]): the game's line state, its actors, timers
    /// and random source go on from where they were; the players in it,
    /// whose sessions were on that node, leave it first (the game's
    /// `on_leave` runs for each, at one tick of the line; their data is
    /// not kept: their own saves are theirs). The line is empty, and takes
    /// players as any line of its zone does.
    pub fn restart_line(&mut self, state: &[u8]) -> Result<LineKey, RestartError> {
        let mut line = GameLine::restore(self.game.clone(), state)?;
        let zone = line.zone_index();
        if self.elsewhere.contains(&zone) {
            return Err(RestartError::ZoneElsewhere(
                self.zone_names[usize::from(zone)].clone(),
            ));
        }
        let players = line.players_and_joining();
        if !players.is_empty() {
            for player in players {
                line.leave(player);
            }
            line.tick();
            line.drain_outputs().for_each(drop);
        }
        if let Some(ticks) = self.save_every_ticks {
            line = line.with_save_period(ticks);
        }
        line.set_shedding(self.shedding);
        let key = self.directory.open_empty(zone, self.now_ms);
        self.opened += 1;
        self.serials.insert(key, self.opened);
        self.lines.insert(key, line);
        Ok(key)
    }

    /// Line `key` runs on another node now (this node lost its lease): it
    /// is dropped without another tick. Its players leave the game (their
    /// data as the line has it is saved, `last`, as at a logout) and their
    /// sessions are closed with `reason`; so are the sessions of players
    /// on their way into it. The players it dropped.
    pub fn drop_line(&mut self, key: LineKey, reason: &str) -> Vec<PlayerId> {
        let Some(mut line) = self.lines.remove(&key) else {
            return Vec::new();
        };
        self.paused.remove(&key);
        self.serials.remove(&key);
        let (inside, coming) = self.directory.drop_line(key, self.now_ms);
        // The game lets them go (its on_leave), for their data; nothing else
        // the line does now leaves it.
        for player in &inside {
            line.leave(*player);
        }
        line.tick();
        let mut data: std::collections::BTreeMap<PlayerId, Vec<u8>> = line
            .drain_outputs()
            .filter_map(|output| match output {
                GameOutput::Left { player, data, .. } => Some((player, data)),
                _ => None,
            })
            .collect();
        for player in &inside {
            self.players.remove(player);
            self.visitors.remove(player);
            self.departing.remove(player);
            self.in_transit.remove(player);
            if let Some(data) = data.remove(player) {
                self.outputs.push(LinesOutput::Save {
                    player: *player,
                    data,
                    last: true,
                });
            }
        }
        for player in inside.iter().chain(&coming) {
            self.outputs.push(LinesOutput::Close {
                player: *player,
                reason: reason.to_owned(),
            });
        }
        inside
    }
}
