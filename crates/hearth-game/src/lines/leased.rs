//! What a line held under a lease needs of [`GameLines`] (in a cluster, a
//! line's node holds a lease on it; see hearth-cluster's `line_saves`):
//! pausing a line whose lease may be lapsing, its state to save, restarting
//! a line from the state another node saved, and dropping a line whose
//! lease another node now holds.

use crate::directory::LineKey;
use crate::game::Game;
use crate::ids::PlayerId;
use crate::line::{GameLine, GameOutput, SnapshotError};

use super::{GameLines, Handoff, LinesOutput};

/// Why a saved line could not be restarted here.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the line's zone {0} runs on another node (pinned there)")]
    ZoneElsewhere(String),
    #[error("the line was saved as one of zone {saved}, and is one of {here} in this node's zones: the nodes' zone files differ")]
    WrongZone { saved: String, here: String },
}

impl<G: Game> GameLines<G> {
    /// A paused line is not ticked (its players wait, their messages kept
    /// as the line's inbox keeps them) until it is resumed: its host is
    /// not sure it still holds the line's lease, and must not run it while
    /// another node may.
    pub fn set_paused(&mut self, key: LineKey, paused: bool) {
        let paused = paused && self.lines.contains_key(&key);
        match paused {
            true => self.paused.insert(key),
            false => self.paused.remove(&key),
        };
        // Nobody new is placed in it meanwhile, and it does not close.
        self.directory.hold_back(key, paused);
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
    /// players as any line of its zone does; it stays open until players
    /// have come and gone (its state is worth keeping until then). `zone`:
    /// the zone's name it was saved under (zones are numbered by each
    /// node's zone file).
    pub fn restart_line(&mut self, state: &[u8], zone: &str) -> Result<LineKey, RestartError> {
        let mut line = GameLine::restore(self.game.clone(), state)?;
        let saved = zone;
        let zone = line.zone_index();
        let here = &self.zone_names[usize::from(zone)];
        if here != saved {
            return Err(RestartError::WrongZone {
                saved: saved.chars().take(64).collect(),
                here: here.clone(),
            });
        }
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
    /// is dropped. One last tick runs the game's `on_leave` for its
    /// players, for their data; nothing else it produces leaves it. The
    /// players leave the game (their data is saved, `last`, as at a
    /// logout) and their sessions are closed with `reason`; so are the
    /// sessions of players on their way into it. The players it dropped.
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

    /// Line `key` moved to node `node` (its lease handed there with
    /// `state`, the snapshot taken as it paused, where it is named `line`
    /// in the cluster): it is dropped here, and its players follow it, each
    /// handed over ([`LinesOutput::Departed`], to `node` and `line`) with
    /// their data as `state` has them: the game's `on_leave` runs for them
    /// at one tick of a line restored from `state`, as the node it moved to
    /// does, so nothing they did in the paused line after the snapshot
    /// (which the other node never sees) counts. `node` `None`: the other
    /// node did not take the line up; the players go where placement sends
    /// them. A player whose session ended meanwhile leaves the game (their
    /// last save); one on their way out to another node goes there; players
    /// on their way into the line are closed with `reason` (a rare race:
    /// they log in again). The players handed over.
    pub fn hand_line_over(
        &mut self,
        key: LineKey,
        state: &[u8],
        node: Option<&str>,
        line: &str,
        reason: &str,
    ) -> Vec<PlayerId> {
        if self.lines.remove(&key).is_none() {
            return Vec::new();
        }
        self.paused.remove(&key);
        self.serials.remove(&key);
        let zone = self.zone_names[usize::from(key.zone)].clone();
        // Who was leaving, before the directory forgets them.
        let leaving: std::collections::BTreeSet<PlayerId> = self
            .directory
            .players_in(key)
            .into_iter()
            .filter(|player| self.directory.is_leaving(*player))
            .collect();
        let (inside, coming) = self.directory.drop_line(key, self.now_ms);
        let mut left: std::collections::BTreeMap<PlayerId, (Vec<u8>, crate::RateLimits)> =
            std::collections::BTreeMap::new();
        let mut tick = 0;
        if let Ok(mut moved) = GameLine::restore(self.game.clone(), state) {
            for player in &inside {
                moved.leave(*player);
            }
            moved.tick();
            tick = moved.tick_count();
            left = moved
                .drain_outputs()
                .filter_map(|output| match output {
                    GameOutput::Left {
                        player,
                        data,
                        limits,
                    } => Some((player, (data, limits))),
                    _ => None,
                })
                .collect();
        }
        let mut followers = Vec::new();
        for player in &inside {
            self.visitors.remove(player);
            let departing = self.departing.remove(player);
            self.in_transit.remove(player);
            let in_game = self.players.remove(player);
            let Some((data, limits)) = left.remove(player) else {
                // Not in the snapshot (joined after it): their session is
                // closed, with the data they came with kept where it was.
                self.outputs.push(LinesOutput::Close {
                    player: *player,
                    reason: reason.to_owned(),
                });
                continue;
            };
            let Some(in_game) = in_game else { continue };
            let (node, line, zone, at) = match (leaving.contains(player), departing) {
                // On their way to another node: there, as planned.
                (true, Some((to_zone, at, to_node))) => (
                    to_node,
                    None,
                    self.zone_names[usize::from(to_zone)].clone(),
                    at,
                ),
                // Their session ended: out of the game, their last save.
                (true, None) => {
                    self.outputs.push(LinesOutput::Save {
                        player: *player,
                        data,
                        last: true,
                    });
                    continue;
                }
                (false, _) => (
                    node.map(str::to_owned),
                    node.map(|_| line.to_owned()),
                    zone.clone(),
                    None,
                ),
            };
            self.transfers += 1;
            followers.push(*player);
            self.outputs.push(LinesOutput::Departed(Handoff {
                player: *player,
                name: in_game.name,
                zone,
                // The game places them from their data (where they stood,
                // for a game that keeps it there, as the world does).
                at,
                data: Some(data),
                bytes_per_second: in_game.bytes_per_second,
                entries: in_game.entries,
                node,
                line,
                limits: Some(limits.since(tick)),
            }));
        }
        for player in &coming {
            self.outputs.push(LinesOutput::Close {
                player: *player,
                reason: reason.to_owned(),
            });
        }
        followers
    }

    /// The node a whole line of `zone` with `players` in it would move to
    /// now (a draining node's line): the least loaded node that takes
    /// players, by placement; `None` without placement or when no node
    /// takes players. Its players count there until its next record.
    pub fn place_line(&mut self, zone: u16, players: usize) -> Option<String> {
        let node = self.choose(zone, None)?;
        for other in self.placement.iter_mut().flatten() {
            if other.name == node {
                other.players = other
                    .players
                    .saturating_add(players.saturating_sub(1) as u64);
            }
        }
        Some(node)
    }
}
