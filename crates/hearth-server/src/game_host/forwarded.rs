//! The game host's side of players who play in a line another node runs:
//! in a zone pinned to that node (`[cluster] zones`), or placed there by
//! load (`[cluster] placement`: their own node's lines of the zone were
//! full). Both ends run here:
//!
//! - **home** (the node that holds the player's session and their account's
//!   claim): when the player's line lets go of them for a line elsewhere,
//!   the host hands them to that node (their data, saved on the
//!   way), forwards what their client sends, delivers what that node sends
//!   back for their client, stores the data it sends (fenced by the claim,
//!   as any save here), and takes the player back into its own lines when
//!   they travel home. Their session ending is passed on; their last save
//!   comes back from the zone's node (or, if it never does, what was saved
//!   last stands).
//! - **zone** (the node that runs the zone): it takes the handed-over
//!   player into a line under an id of its own, feeds it their client's
//!   messages, and sends everything the lines produce for them (bytes for
//!   their client, their data, a close) to their home instead of to a gate
//!   or the database; when they travel to a zone it does not run, it hands
//!   them back home.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::Host;
use hearth_cluster::forward::{ForwardIn, Forwarder};
use hearth_cluster::forward_wire::{Forwarded, Handover};
use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{Game, Handoff, OtherNode, Pos};

/// How long a home waits for the zone's node to take a handed-over player
/// in before it takes them back into its own lines.
const ARRIVAL_WAIT: Duration = Duration::from_secs(3);

/// Players of other nodes this node takes into its lines at most.
const MAX_VISITORS: usize = 16_384;

/// Whether `name` is one a node's logins give a player: an account's name
/// or a guest's (ASCII letters, digits, '_' and '-', at most 32).
fn is_player_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How long a home waits for the last save of a player whose session ended
/// while they played on another node; then it lets them go with what it
/// saved last (their node is gone or cut off).
const LAST_SAVE_WAIT: Duration = Duration::from_secs(10);

/// Home: the players whose session is here who play on another node, with
/// that node's id. Shared with the gate's handler, which forwards their
/// clients' messages at once ([`AwayPlayers::forward`]) rather than through
/// the host's tick.
pub struct AwayPlayers {
    nodes: RwLock<HashMap<u64, String>>,
    forwarder: Forwarder,
}

impl AwayPlayers {
    fn node(&self, player: u64) -> Option<String> {
        self.nodes
            .read()
            .expect("never poisoned")
            .get(&player)
            .cloned()
    }

    fn set(&self, player: u64, node: Option<String>) {
        let mut nodes = self.nodes.write().expect("never poisoned");
        match node {
            Some(node) => nodes.insert(player, node),
            None => nodes.remove(&player),
        };
    }

    fn players(&self) -> Vec<u64> {
        self.nodes
            .read()
            .expect("never poisoned")
            .keys()
            .copied()
            .collect()
    }

    /// A client's message for a player who plays on another node: sent
    /// there now. `None` if the player plays here; `Some(false)` if the
    /// forwarding queue is full (the caller holds or drops it, as when the
    /// host's queue is).
    pub fn forward(&self, player: u64, channel: u16, bytes: &[u8]) -> Option<bool> {
        let node = self.node(player)?;
        let bytes = bytes.to_vec();
        Some(
            self.forwarder
                .send(&node, player, Forwarded::Input { channel, bytes }),
        )
    }
}

/// What the forwarding part of a host keeps.
pub(super) struct Forwarding {
    pub(super) forwarder: Forwarder,
    /// Zone name to the name of the node that runs it (`[cluster] zones`).
    pins: BTreeMap<String, String>,
    /// The list of nodes' generation last given to the lines' placement.
    pub(super) nodes_seen: u64,
    /// This node's lines' zone for players handed home from a zone whose
    /// node cannot be found (the first zone this node runs).
    fallback_zone: String,
    /// Home: the players whose session is here who play on another node.
    pub(super) away: Arc<AwayPlayers>,
    /// Home: away players whose session ended, until their last save comes
    /// back or [`LAST_SAVE_WAIT`] passes.
    away_leaving: HashMap<u64, Instant>,
    /// Home: each away player as they were handed over, with the newest
    /// data their node sent: to take them back into this node's lines if
    /// that node drops them (stops, dies, leaves the cluster).
    away_handoffs: HashMap<u64, Handoff>,
    /// Home: away players the zone's node has not yet said it took in, and
    /// until when it may (then they come home).
    arriving: HashMap<u64, Instant>,
    /// Zone: players in this node's lines whose session is on another node:
    /// their home's id and the home's id for them.
    remote: HashMap<u64, (String, u64)>,
    remote_ids: HashMap<(String, u64), u64>,
}

impl Forwarding {
    pub(super) fn new(
        forwarder: Forwarder,
        pins: BTreeMap<String, String>,
        fallback_zone: String,
    ) -> Self {
        Self {
            away: Arc::new(AwayPlayers {
                nodes: RwLock::new(HashMap::new()),
                forwarder: forwarder.clone(),
            }),
            forwarder,
            pins,
            nodes_seen: 0,
            fallback_zone,
            away_leaving: HashMap::new(),
            away_handoffs: HashMap::new(),
            arriving: HashMap::new(),
            remote: HashMap::new(),
            remote_ids: HashMap::new(),
        }
    }

    /// The zones other nodes run, given this node's name.
    pub(super) fn zones_elsewhere(pins: &BTreeMap<String, String>, me: &str) -> Vec<String> {
        pins.iter()
            .filter(|(_, node)| node.as_str() != me)
            .map(|(zone, _)| zone.clone())
            .collect()
    }
}

/// What a step hands on to the gate and the database.
#[derive(Default)]
pub(super) struct Carried {
    pub(super) sends: Vec<(u64, u16, Vec<u8>)>,
    pub(super) saves: Vec<(u64, Vec<u8>, bool)>,
    pub(super) closes: Vec<(u64, String)>,
}

fn handover(handoff: &Handoff) -> Handover {
    Handover {
        name: handoff.name.clone(),
        zone: handoff.zone.clone(),
        at: handoff.at.map(|at| (at.x, at.y)),
        data: handoff.data.clone(),
        bytes_per_second: handoff.bytes_per_second,
        entries: handoff.entries,
        limits: handoff.limits.clone().unwrap_or_default(),
        node: handoff.node.clone(),
        line: handoff.line.clone(),
    }
}

fn handoff(player: u64, handover: Handover) -> Handoff {
    Handoff {
        player,
        name: handover.name,
        zone: handover.zone,
        at: handover.at.map(|(x, y)| Pos { x, y }),
        data: handover.data,
        bytes_per_second: handover.bytes_per_second,
        entries: handover.entries,
        // Another node names where a player goes next only to send them
        // after a line that moved there.
        node: handover.node.filter(|_| handover.line.is_some()),
        line: handover.line,
        limits: (!handover.limits.is_empty()).then_some(handover.limits),
    }
}

impl<G: Game> Host<G> {
    /// A session ended whose player plays on another node: that node lets
    /// them go and sends their last save. False if the player plays here.
    pub(super) fn forward_leave(&mut self, player: u64) -> bool {
        let Some(forwarding) = &mut self.forwarding else {
            return false;
        };
        let Some(node) = forwarding.away.node(player) else {
            return false;
        };
        forwarding.forwarder.send(&node, player, Forwarded::Leave);
        forwarding
            .away_leaving
            .insert(player, Instant::now() + LAST_SAVE_WAIT);
        true
    }

    /// Whether `player`'s session is here and they play on another node.
    pub(super) fn is_away(&self, player: u64) -> bool {
        self.forwarding
            .as_ref()
            .is_some_and(|f| f.away.node(player).is_some())
    }

    /// Players whose session is here and who play on another node.
    pub(super) fn away_players(&self) -> Vec<u64> {
        self.forwarding
            .as_ref()
            .map(|f| f.away.players())
            .unwrap_or_default()
    }

    /// Away players whose node never sent their last save: let go with
    /// what was saved last.
    pub(super) fn expire_away(&mut self) {
        let Some(forwarding) = &mut self.forwarding else {
            return;
        };
        let now = Instant::now();
        let overdue: Vec<u64> = forwarding
            .away_leaving
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(player, _)| *player)
            .collect();
        for player in &overdue {
            forwarding.away_leaving.remove(player);
            forwarding.away_handoffs.remove(player);
            forwarding.away.set(*player, None);
        }
        for player in overdue {
            tracing::warn!(
                player,
                "the node a player played on never sent their last save; what was saved last stands"
            );
            self.let_go_unsaved(player);
        }
    }

    /// What another node sent about a player, as it arrives: arrivals,
    /// input and leaves go to the lines (applied at their next tick);
    /// bytes for a session here are carried to the gate at once, data and
    /// closes with the next step's.
    pub(super) fn forwarded_in(&mut self, message: ForwardIn) {
        let ForwardIn {
            from,
            player,
            forwarded,
        } = message;
        let mut carried = std::mem::take(&mut self.forward_carried);
        self.forwarded(from, player, forwarded, &mut carried);
        self.forward_carried = carried;
    }

    fn forwarded(
        &mut self,
        from: String,
        player: u64,
        forwarded: Forwarded,
        carried: &mut Carried,
    ) {
        let forwarding = self.forwarding.as_mut().expect("called with forwarding");
        match forwarded {
            // Zone side.
            Forwarded::Arrive(handover) => {
                if forwarding.remote_ids.contains_key(&(from.clone(), player)) {
                    return;
                }
                let local = loop {
                    let id = u64::from_le_bytes(
                        hearth_proto::os_seed()[..8].try_into().expect("8 bytes"),
                    );
                    if id != 0 && !forwarding.remote.contains_key(&id) && !self.lines.contains(id) {
                        break id;
                    }
                };
                let name = handover.name.clone();
                // Into a zone this node runs (pinned here, or pinned
                // nowhere: placed here by the player's home), under a name
                // as this node's logins give (other players read it), and
                // if there is room: visitors are bounded like sessions.
                let acceptable = !self.lines.is_elsewhere(&handover.zone)
                    && is_player_name(&handover.name)
                    && forwarding.remote.len() < MAX_VISITORS;
                // A player following a line that moved here goes into it.
                let line = handover
                    .line
                    .as_deref()
                    .and_then(|name| self.line_leases.as_ref()?.key_of(name));
                if acceptable && self.lines.arrive_in(handoff(local, handover), true, line) {
                    forwarding.forwarder.send(&from, player, Forwarded::Arrived);
                    forwarding.remote.insert(local, (from.clone(), player));
                    forwarding.remote_ids.insert((from, player), local);
                    self.relay_present(local, name);
                } else {
                    let reason = "the zone could not take you in".to_owned();
                    forwarding
                        .forwarder
                        .send(&from, player, Forwarded::Refused { reason });
                }
            }
            Forwarded::Input { channel, bytes } => {
                if let Some(&local) = forwarding.remote_ids.get(&(from, player)) {
                    if let Err(error) = self.lines.input(local, channel, &bytes) {
                        self.remote_input_refused(local, error);
                    }
                }
            }
            Forwarded::Leave => {
                if let Some(&local) = forwarding.remote_ids.get(&(from, player)) {
                    self.lines.leave(local);
                }
            }
            // Home side: only from the node the player plays on.
            // Only on the game's channels: nothing else of the session is
            // another node's to send on.
            Forwarded::Send { channel, bytes } => {
                let game_channel = channel == RELIABLE_CHANNEL || channel == STATE_CHANNEL;
                if game_channel && forwarding.away.node(player) == Some(from) {
                    carried.sends.push((player, channel, bytes));
                }
            }
            Forwarded::Save { data, last } => {
                if forwarding.away.node(player) != Some(from) {
                    return;
                }
                let leaving = forwarding.away_leaving.contains_key(&player);
                if !last {
                    if let Some(handoff) = forwarding.away_handoffs.get_mut(&player) {
                        handoff.data = Some(data.clone());
                    }
                    carried.saves.push((player, data, false));
                } else if leaving {
                    forwarding.away.set(player, None);
                    forwarding.away_leaving.remove(&player);
                    forwarding.away_handoffs.remove(&player);
                    carried.saves.push((player, data, true));
                } else {
                    // Their node let go of them while their session goes on
                    // (it is stopping, or threw them out of its line): back
                    // into this node's lines, with that data.
                    if let Some(handoff) = forwarding.away_handoffs.get_mut(&player) {
                        handoff.data = Some(data.clone());
                    }
                    carried.saves.push((player, data, false));
                    self.bring_home(player, carried);
                }
            }
            // The player reads the reason: held to the chat's text rules,
            // else a plain one.
            Forwarded::Close { reason } => {
                if forwarding.away.node(player) == Some(from) {
                    let reason = match hearth_world::chat::check_text(&reason) {
                        Ok(text) if text.len() <= 200 => text.to_owned(),
                        _ => "the zone you were in closed your session".to_owned(),
                    };
                    carried.closes.push((player, reason));
                }
            }
            Forwarded::Arrived => {
                if forwarding.away.node(player) == Some(from) {
                    forwarding.arriving.remove(&player);
                }
            }
            Forwarded::Refused { reason } => {
                if forwarding.away.node(player).as_ref() == Some(&from) {
                    tracing::info!(player, %reason, "the zone's node did not take a player in: they stay here");
                    forwarding.arriving.remove(&player);
                    if let Some(node) = hearth_cluster::NodeId::parse(&from) {
                        self.lines.placement_refused(node.name());
                    }
                    self.bring_home(player, carried);
                }
            }
            Forwarded::Departed(handover) => {
                if forwarding.away.node(player) == Some(from) {
                    forwarding.away.set(player, None);
                    forwarding.away_handoffs.remove(&player);
                    let leaving = forwarding.away_leaving.remove(&player).is_some();
                    if let Some(data) = &handover.data {
                        carried.saves.push((player, data.clone(), leaving));
                    }
                    if !leaving {
                        self.hand_on(handoff(player, handover), carried);
                    }
                }
            }
        }
    }

    /// A client's message the zone's line refused for a remote player: the
    /// same as for a player here, told to their home.
    fn remote_input_refused(&mut self, local: u64, error: hearth_game::InputError) {
        if let hearth_game::InputError::Undecodable(error) = error {
            self.counters
                .undecodable
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let reason = format!("a game message did not decode: {error}");
            self.send_home(local, Forwarded::Close { reason });
        }
    }

    /// Sends `forwarded` to the home of remote player `local`: `None` if
    /// the player is not a remote one, else whether it was queued.
    fn send_home(&self, local: u64, forwarded: Forwarded) -> Option<bool> {
        let forwarding = self.forwarding.as_ref()?;
        let (home, player) = forwarding.remote.get(&local)?;
        Some(forwarding.forwarder.send(home, *player, forwarded))
    }

    /// Home side: an away player back into this node's lines (its first
    /// zone), with the newest data their node sent: their node dropped
    /// them, or is gone.
    fn bring_home(&mut self, player: u64, carried: &mut Carried) {
        let Some(forwarding) = &mut self.forwarding else {
            return;
        };
        forwarding.away.set(player, None);
        forwarding.arriving.remove(&player);
        let Some(handoff) = forwarding.away_handoffs.remove(&player) else {
            return;
        };
        // Into the same zone if this node runs it (it was placed on another
        // node), else into this node's first.
        let zone = match self.lines.is_elsewhere(&handoff.zone) {
            true => forwarding.fallback_zone.clone(),
            false => handoff.zone.clone(),
        };
        let back = Handoff {
            zone,
            at: None,
            node: None,
            // Their entry on the other node was one more than handed over.
            entries: handoff.entries.wrapping_add(1),
            ..handoff
        };
        if !self.lines.arrive(back, false) {
            carried
                .closes
                .push((player, "the zone could not take you in".to_owned()));
        }
    }

    /// Gives the lines' placement the other nodes' load and room when the
    /// list of nodes changed (once a heartbeat).
    pub(super) fn refresh_placement(&mut self) {
        let Some(forwarding) = &mut self.forwarding else {
            return;
        };
        let Some(others) = forwarding
            .forwarder
            .others_since(&mut forwarding.nodes_seen)
        else {
            return;
        };
        // A node whose slowest recent tick took most of a tick's time has
        // no time for more players.
        let full_tick_us = self.tick.as_micros() as u64 * 4 / 5;
        self.lines.set_other_nodes(
            others
                .into_iter()
                .map(|node| OtherNode {
                    name: node.id.name().to_owned(),
                    players: node.players,
                    accepts: node.placement && !node.draining && node.tick_p99_us <= full_tick_us,
                    room: node.room.into_iter().map(|z| (z.zone, z.room)).collect(),
                })
                .collect(),
        );
    }

    /// Players whose other node is no longer in the cluster's list: an away
    /// player comes home; a visitor whose home is gone is let go.
    pub(super) fn drop_lost_nodes(&mut self, carried: &mut Carried) {
        let Some(forwarding) = &self.forwarding else {
            return;
        };
        // The list once per step, not once per player.
        let live = forwarding.forwarder.live_ids();
        let gone = |node: &str| live.as_ref().is_some_and(|live| !live.contains(node));
        let stranded: Vec<u64> = forwarding
            .away_handoffs
            .keys()
            .filter(|player| !forwarding.away_leaving.contains_key(player))
            .filter(|player| {
                forwarding
                    .away
                    .node(**player)
                    .is_some_and(|node| gone(&node))
            })
            .copied()
            .collect();
        // Handed over, never taken in (the Arrive was lost, or the node
        // froze): told to let go, in case it comes late, and back home.
        let now = Instant::now();
        let unanswered: Vec<(u64, String)> = forwarding
            .arriving
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .filter_map(|(player, _)| Some((*player, forwarding.away.node(*player)?)))
            .collect();
        let orphans: Vec<u64> = forwarding
            .remote
            .iter()
            .filter(|(_, (home, _))| gone(home))
            .map(|(local, _)| *local)
            .collect();
        for player in stranded {
            tracing::warn!(
                player,
                "the node a player played on left the cluster: they are back in this node's lines"
            );
            self.bring_home(player, carried);
        }
        for (player, node) in unanswered {
            tracing::warn!(player, %node, "a zone's node did not take a handed-over player in: they are back in this node's lines");
            if let Some(forwarding) = &self.forwarding {
                forwarding.forwarder.send(&node, player, Forwarded::Leave);
            }
            if let Some(id) = hearth_cluster::NodeId::parse(&node) {
                self.lines.placement_refused(id.name());
            }
            self.bring_home(player, carried);
        }
        for local in orphans {
            self.lines.leave(local);
            self.forget_remote(local);
        }
    }

    /// The step's output for a remote player goes to their home: true if
    /// `player` is one (and it was sent).
    pub(super) fn remote_send(&mut self, player: u64, channel: u16, bytes: &[u8]) -> bool {
        let bytes = bytes.to_vec();
        self.send_home(player, Forwarded::Send { channel, bytes })
            .is_some()
    }

    pub(super) fn remote_save(&mut self, player: u64, data: &[u8], last: bool) -> bool {
        let data = data.to_vec();
        let Some(queued) = self.send_home(player, Forwarded::Save { data, last }) else {
            return false;
        };
        if !queued {
            tracing::warn!(
                player,
                "a visitor's data could not be sent to their home: not saved"
            );
        }
        if last {
            self.forget_remote(player);
        }
        true
    }

    pub(super) fn remote_close(&mut self, player: u64, reason: &str) -> bool {
        let reason = reason.to_owned();
        self.send_home(player, Forwarded::Close { reason })
            .is_some()
    }

    fn forget_remote(&mut self, local: u64) {
        if let Some(forwarding) = &mut self.forwarding {
            if let Some(key) = forwarding.remote.remove(&local) {
                forwarding.remote_ids.remove(&key);
            }
        }
        self.relay_absent(local);
    }

    /// The lines let go of a player for a zone another node runs.
    pub(super) fn departed(&mut self, handoff: Handoff, carried: &mut Carried) {
        let player = handoff.player;
        // Zone side: the player goes back to their home, which places them.
        if let Some(queued) = self.send_home(player, Forwarded::Departed(handover(&handoff))) {
            if !queued {
                tracing::warn!(player, "a visitor could not be handed back to their home");
            }
            self.forget_remote(player);
            return;
        }
        // Home side: saved on the way, as any move, then handed on.
        if let Some(data) = &handoff.data {
            carried.saves.push((player, data.clone(), false));
        }
        self.hand_on(handoff, carried);
    }

    /// Home side: the player goes to `handoff.zone`: to the node placement
    /// chose for them, else into this node's lines if it runs the zone (or
    /// placement chooses another node now: a visitor back from one), else
    /// to the node the zone is pinned to; if that node cannot be found,
    /// into this node's lines (its first zone, for a zone pinned
    /// elsewhere).
    fn hand_on(&mut self, mut handoff: Handoff, carried: &mut Carried) {
        let player = handoff.player;
        let runs_here = !self.lines.is_elsewhere(&handoff.zone);
        // Sent here by name (a visitor whose line moved to their home): into
        // that line.
        let me = self
            .forwarding
            .as_ref()
            .and_then(|f| hearth_cluster::NodeId::parse(f.forwarder.me()))
            .map(|id| id.name().to_owned());
        let to_me = handoff.node.is_some() && handoff.node == me;
        if to_me {
            handoff.node = None;
        }
        if runs_here && handoff.node.is_none() && !to_me {
            handoff.node = self.lines.place(&handoff.zone);
        }
        if runs_here && handoff.node.is_none() {
            let line = handoff
                .line
                .as_deref()
                .and_then(|name| self.line_leases.as_ref()?.key_of(name));
            if !self.lines.arrive_in(handoff, false, line) {
                carried
                    .closes
                    .push((player, "the zone could not take you in".to_owned()));
            }
            return;
        }
        let forwarding = self.forwarding.as_mut().expect("called with forwarding");
        let node = handoff
            .node
            .as_ref()
            .or_else(|| forwarding.pins.get(&handoff.zone))
            .and_then(|name| forwarding.forwarder.node_named(name));
        match node {
            Some(node)
                if forwarding.forwarder.send(
                    &node,
                    player,
                    Forwarded::Arrive(handover(&handoff)),
                ) =>
            {
                forwarding.away.set(player, Some(node));
                forwarding.away_handoffs.insert(player, handoff);
                forwarding
                    .arriving
                    .insert(player, Instant::now() + ARRIVAL_WAIT);
            }
            _ => {
                tracing::warn!(zone = %handoff.zone, "the node chosen for this zone is not in the cluster now: the player stays here");
                let zone = match runs_here {
                    true => handoff.zone.clone(),
                    false => forwarding.fallback_zone.clone(),
                };
                let fallback = Handoff {
                    zone,
                    at: None,
                    node: None,
                    ..handoff
                };
                if !self.lines.arrive(fallback, false) {
                    carried
                        .closes
                        .push((player, "the zone could not take you in".to_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_names_logins_give_are_taken_from_another_node() {
        for good in ["ann", "Bo_2", "guest-cy-0a1b2c3d", &"x".repeat(32)] {
            assert!(super::is_player_name(good), "{good:?}");
        }
        for bad in [
            "",
            "a\u{202e}b",
            "ann\n",
            "\u{1b}[2J",
            "ünï",
            &"x".repeat(33),
            "a b",
        ] {
            assert!(!super::is_player_name(bad), "{bad:?}");
        }
    }
}
