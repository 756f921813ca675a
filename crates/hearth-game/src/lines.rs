//! [`GameLines`]: every line of a game and what crosses them, sans-IO. The
//! [`Directory`] decides who goes where; this opens the lines it places
//! players in, hands players from line to line with their data, delivers
//! messages to a zone and to players by name, and tells the host what is
//! left for it: bytes for sessions, data to store, sessions to close. The
//! server's game host drives it with a clock and sockets; a test drives it
//! tick by tick.

use std::collections::BTreeMap;
use std::sync::Arc;

mod leased;
pub use leased::RestartError;

use crate::directory::{Directory, DirectoryConfig, LineKey, NextStop};
use crate::game::{Game, Refused};
use crate::ids::{MessageId, PlayerId};
use crate::line::{Entrance, GameLine, GameOutput, InputError, ObserverId, Shedding, Transfer};

/// Messages by name one player on the way between lines may have waiting.
pub const MAX_IN_TRANSIT: usize = 64;

/// Players a draining node hands to other nodes per step at most: a drain
/// of thousands spreads over seconds rather than one long step (and one
/// burst of hand-overs on the cluster's queues).
pub const DRAINED_PER_STEP: usize = 64;

/// What the host must carry out after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinesOutput {
    /// Bytes for one player's session on a game channel.
    Send {
        player: PlayerId,
        channel: u16,
        bytes: Vec<u8>,
    },
    /// Store the player's data. `last`: the player has left the game (this
    /// is the data their next login starts from).
    Save {
        player: PlayerId,
        data: Vec<u8>,
        last: bool,
    },
    /// Close the player's session, showing `reason`.
    Close { player: PlayerId, reason: String },
    /// Bytes for an observer of a whole line ([`GameLines::observe`]).
    Observed {
        line: LineKey,
        observer: ObserverId,
        channel: u16,
        bytes: Vec<u8>,
    },
    /// A zone's message, for the lines of the same zone on the other nodes
    /// of a cluster ([`GameLines::with_other_nodes`]).
    ToZoneElsewhere {
        zone: String,
        message: MessageId,
        body: Vec<u8>,
    },
    /// A message for the player named `name`, who is not on this node: for
    /// another node of the cluster to deliver, or to tell `sender` it could
    /// not ([`GameLines::undelivered`]).
    ToNamedElsewhere {
        sender: PlayerId,
        name: String,
        message: MessageId,
        body: Vec<u8>,
    },
    /// The player goes to a zone another node runs
    /// ([`GameLines::with_zones_elsewhere`]): this node's lines have let
    /// go of them and forgotten them; the host hands them over (their
    /// data, saved on the way as a move here is, is in the handoff), and
    /// that node's lines take them in ([`GameLines::arrive`]).
    Departed(Handoff),
}

/// Another node of a cluster as placement sees it
/// ([`GameLines::with_placement`], [`GameLines::set_other_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherNode {
    /// Its name: where the host hands a player placed there.
    pub name: String,
    /// Players in its lines (its load).
    pub players: u64,
    /// Per zone, by name: the places left in its open lines.
    pub room: Vec<(String, u64)>,
    /// It takes players (not draining, its ticks within their time):
    /// placement sends nobody to a node that does not.
    pub accepts: bool,
}

/// A node's order among others with as many players, from `seed` (each
/// node's own): FNV-1a over the name.
fn tie_break(seed: u64, name: &str) -> u64 {
    name.bytes()
        .fold(seed ^ 0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// What placement keeps of another node: its record, and what this node's
/// own placements since have added to it.
#[derive(Debug, Clone)]
struct Placing {
    name: String,
    players: u64,
    accepts: bool,
    /// Places left per zone (by index).
    room: BTreeMap<u16, u64>,
}

/// A player handed from one node's lines to another's: who, where to, and
/// what the next line needs to take them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub player: PlayerId,
    pub name: String,
    /// The zone they go to, by name.
    pub zone: String,
    /// Where they appear (`Ctx::arrival`), if the game said.
    pub at: Option<crate::Pos>,
    /// Their data as the line they left had it (for a player entering the
    /// game, the data stored for them, if any).
    pub data: Option<Vec<u8>>,
    /// Their client's NetSpeed, if it named one.
    pub bytes_per_second: Option<u32>,
    /// Entries into lines so far: the next line's is one more.
    pub entries: u8,
    /// The node placement chose for them (by name); `None`: the node the
    /// zone is pinned to.
    pub node: Option<String>,
    /// The line they go to there, by its name in the cluster, when they
    /// follow a line that moved to that node (`GameLines::hand_line_over`;
    /// the host names it).
    pub line: Option<String>,
    /// What their message rate limits still allow, as (milli-tokens, ticks
    /// since refill) per message of the schema ([`crate::RateLimits::since`]):
    /// a move to another node refills nothing. `None` for a player entering
    /// the game.
    pub limits: Option<Vec<(u64, u64)>>,
}

/// A message from another node that this node's lines cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayedError {
    #[error("no message {0} in this game's schema")]
    UnknownMessage(u16),
    #[error("message {0} is not one the server sends to clients")]
    NotToClient(String),
    #[error("message {0} does not decode: {1}")]
    Undecodable(String, String),
}

/// A player entering the game ([`GameLines::enter`]).
#[derive(Debug, Clone, Default)]
pub struct Joining {
    pub player: PlayerId,
    pub name: String,
    /// The data stored for them, if any.
    pub saved: Option<Vec<u8>>,
    /// Their client's NetSpeed, if it named one.
    pub bytes_per_second: Option<u32>,
}

/// What `GameLines` keeps of a player in the game.
#[derive(Debug, Clone)]
struct InGame {
    name: String,
    /// The client's NetSpeed, if it named one.
    bytes_per_second: Option<u32>,
    /// Entries into lines so far (the next one's `Entrance::entry`).
    entries: u8,
}

/// Every line of one game.
pub struct GameLines<G: Game> {
    game: Arc<G>,
    lines: BTreeMap<LineKey, GameLine<G>>,
    directory: Directory,
    /// Each zone's name, by index.
    zone_names: Vec<String>,
    /// Each player in the game, for every line they enter.
    players: BTreeMap<PlayerId, InGame>,
    /// Seeds each new line's random source, mixed with the count of lines
    /// opened so far.
    seed: u64,
    opened: u64,
    /// Changes of line or zone made.
    transfers: u64,
    /// Messages by name for players on their way between lines, given to
    /// the line they enter (at most [`MAX_IN_TRANSIT`] each).
    in_transit: BTreeMap<PlayerId, Vec<(MessageId, Vec<u8>)>>,
    /// Such messages beyond the bound: dropped.
    pub in_transit_dropped: u64,
    /// The time of the step under way (the directory's cooldowns and
    /// graces count in it).
    now_ms: u64,
    /// Steps begun: every open line has ticked this often since the first
    /// step, or was opened at this tick.
    steps: u64,
    /// Each line saves each changed player at least this often, in ticks
    /// (0: only when they leave).
    save_every_ticks: Option<u32>,
    /// While the host is too busy to admit newcomers, changes of line and
    /// zone (which open lines and send a player everything again) are
    /// refused too, telling the player to try again in this many seconds.
    busy_for_s: Option<u64>,
    /// What every line leaves out while the host is too busy: set by the
    /// host from its load, given to each line as it opens.
    shedding: Shedding,
    /// Changes of line or zone refused because the host was busy.
    pub transfers_refused_busy: u64,
    /// Other nodes of a cluster run lines of the same zones and have
    /// players of their own: a zone's messages go to them too, and a
    /// message for a player not found here goes to them to find.
    other_nodes: bool,
    /// The game's schema, to check the messages other nodes hand over.
    schema: Arc<crate::schema::Schema>,
    /// The zones (by index) that other nodes of the cluster run: no line of
    /// them opens here; a player going there is handed over.
    elsewhere: std::collections::BTreeSet<u16>,
    /// Players whose move to a zone run elsewhere was approved, until
    /// their line lets go of them: where to (the zone, where in it, and
    /// the node placement chose, if it did).
    departing: BTreeMap<PlayerId, (u16, Option<crate::Pos>, Option<String>)>,
    /// In a cluster that places players by load: the other nodes as their
    /// records last showed them; `None`: every player plays on this node
    /// (but in pinned zones).
    placement: Option<Vec<Placing>>,
    /// The zones pinned to this node (by index): never placed elsewhere.
    pinned_here: std::collections::BTreeSet<u16>,
    /// Draining ([`GameLines::set_draining`]): every player in this node's
    /// lines is handed to another node, a few each step; nobody is placed
    /// here and no visitor is taken in.
    draining: bool,
    /// A drain moves whole lines, their players following
    /// ([`GameLines::set_whole_line_drains`]): the host does it, and the
    /// lines do not hand players on one by one.
    drains_whole_lines: bool,
    /// Players entering the game in a zone run elsewhere, handed out at
    /// the end of the step ([`LinesOutput::Departed`]) unless their session
    /// ends first ([`GameLines::leave`]: then they leave the game here).
    entering_elsewhere: BTreeMap<PlayerId, Handoff>,
    /// Players from another node (their home) who play in a zone this node
    /// runs for the cluster: when they leave the zone they go home
    /// ([`LinesOutput::Departed`]), whatever zone they go to.
    visitors: std::collections::BTreeSet<PlayerId>,
    /// Lines not ticked while their host is unsure it still holds their
    /// lease ([`GameLines::set_paused`]): another node may run them soon.
    paused: std::collections::BTreeSet<LineKey>,
    /// Each open line's serial: the count of lines opened when it opened
    /// ([`GameLines::line_serial`]).
    serials: BTreeMap<LineKey, u64>,
    outputs: Vec<LinesOutput>,
}

impl<G: Game> GameLines<G> {
    /// No line is open yet: the first player's entry opens one.
    pub fn new(game: Arc<G>, seed: u64) -> Self {
        let zones = game.zones();
        let zone_names = match zones.is_empty() {
            true => vec![game.schema().game().to_owned()],
            false => zones.iter().map(|z| z.name().to_owned()).collect(),
        };
        let grace_ms = match zones.is_empty() {
            true => vec![60_000],
            false => zones
                .iter()
                .map(|z| u64::from(z.spec.empty_line_grace_secs) * 1000)
                .collect(),
        };
        let directory = Directory::new(DirectoryConfig {
            capacity: match zones.is_empty() {
                true => vec![game.line_capacity(None)],
                false => zones.iter().map(|z| game.line_capacity(Some(z))).collect(),
            },
            grace_ms,
        });
        Self {
            lines: BTreeMap::new(),
            directory,
            zone_names,
            players: BTreeMap::new(),
            seed,
            opened: 0,
            transfers: 0,
            in_transit: BTreeMap::new(),
            in_transit_dropped: 0,
            now_ms: 0,
            steps: 0,
            save_every_ticks: None,
            busy_for_s: None,
            shedding: Shedding::NONE,
            transfers_refused_busy: 0,
            other_nodes: false,
            schema: Arc::new(game.schema()),
            elsewhere: Default::default(),
            departing: BTreeMap::new(),
            visitors: Default::default(),
            entering_elsewhere: BTreeMap::new(),
            placement: None,
            pinned_here: Default::default(),
            draining: false,
            drains_whole_lines: false,
            paused: Default::default(),
            serials: BTreeMap::new(),
            game,
            outputs: Vec::new(),
        }
    }

    /// In a cluster: other nodes run lines of the same zones. A zone's
    /// messages are also handed out as [`LinesOutput::ToZoneElsewhere`],
    /// and a message for a player not found here as
    /// [`LinesOutput::ToNamedElsewhere`] (instead of refusing it).
    pub fn with_other_nodes(mut self) -> Self {
        self.other_nodes = true;
        self
    }

    /// In a cluster: the zones named here run on other nodes. A player who
    /// enters the game in one, or travels to one, is handed out as
    /// [`LinesOutput::Departed`] instead of placed in a line here. Names
    /// that are not zones of the game are ignored.
    pub fn with_zones_elsewhere<'a>(mut self, zones: impl IntoIterator<Item = &'a str>) -> Self {
        for zone in zones {
            if let Some(index) = self.zone_names.iter().position(|z| z == zone) {
                self.elsewhere.insert(index as u16);
            }
        }
        self
    }

    /// In a cluster: the zones named here are pinned to this node: only it
    /// runs them, so placement and drains never send their players
    /// elsewhere.
    pub fn with_zones_pinned_here<'a>(mut self, zones: impl IntoIterator<Item = &'a str>) -> Self {
        for zone in zones {
            if let Some(index) = self.zone_names.iter().position(|z| z == zone) {
                self.pinned_here.insert(index as u16);
            }
        }
        self
    }

    /// In a cluster: a player whose zone has no line with room on this
    /// node goes to a node with at least a line's worth of players fewer,
    /// if there is one: to its line of the zone with room (the least loaded
    /// such node), else to a new line on the node with the fewest players
    /// ([`LinesOutput::Departed`] with the node's name). Otherwise this
    /// node opens a line of its own.
    /// What the other nodes have comes from [`GameLines::set_other_nodes`].
    pub fn with_placement(mut self) -> Self {
        self.placement = Some(Vec::new());
        self
    }

    /// The other nodes' load and room as their records show them now (the
    /// host calls it whenever the list of nodes changes). Zones not of
    /// this game are ignored.
    pub fn set_other_nodes(&mut self, nodes: Vec<OtherNode>) {
        let Some(placing) = self.placement.as_mut() else {
            return;
        };
        *placing = nodes
            .into_iter()
            .map(|node| Placing {
                name: node.name,
                players: node.players,
                accepts: node.accepts,
                room: node
                    .room
                    .iter()
                    .filter_map(|(zone, room)| {
                        let index = self.zone_names.iter().position(|z| z == zone)?;
                        Some((index as u16, *room))
                    })
                    .collect(),
            })
            .collect();
    }

    /// Where a player entering `zone` (by name) plays: `None` here, else
    /// the name of the node placement chose (see
    /// [`GameLines::with_placement`]). Also `None` for a zone pinned
    /// elsewhere, or not this game's.
    pub fn place(&mut self, zone: &str) -> Option<String> {
        let zone = self.zone_names.iter().position(|z| z == zone)? as u16;
        self.place_in(zone)
    }

    fn place_in(&mut self, zone: u16) -> Option<String> {
        if self.elsewhere.contains(&zone) || self.pinned_here.contains(&zone) {
            return None;
        }
        if self.draining {
            return self.choose(zone, None);
        }
        if self.directory.has_room(zone) {
            return None;
        }
        let here = self.players.len() as u64;
        self.choose(zone, Some(here))
    }

    /// Another node for a player of `zone`, if one has at least a line's
    /// worth of players fewer than `here` (`None`: whatever this node has,
    /// as when it drains): of those, one with room in its lines of the zone
    /// (the least loaded), else the least loaded. Only nodes that accept
    /// players. A node not that much more loaded than the others keeps its
    /// players: a line of its own costs no forwarding, and records a
    /// heartbeat old do not send players back and forth between nodes that
    /// fill at about the same rate.
    fn choose(&mut self, zone: u16, here: Option<u64>) -> Option<String> {
        let seed = self.seed;
        let margin = self.directory.capacity(zone) as u64;
        let fewer = |players: u64| here.is_none_or(|here| players.saturating_add(margin) <= here);
        let others = self.placement.as_mut()?;
        // Ties go by a hash of the name seeded per node: nodes that see the
        // same records do not all pick the same one.
        let load = |node: &Placing| (node.players, tie_break(seed, &node.name));
        let least = others
            .iter()
            .filter(|node| node.accepts)
            .map(|node| node.players)
            .min()?;
        if !fewer(least) {
            return None;
        }
        let chosen = match others
            .iter_mut()
            .filter(|node| {
                node.accepts
                    && fewer(node.players)
                    && node.room.get(&zone).is_some_and(|room| *room > 0)
            })
            .min_by_key(|node| load(node))
        {
            Some(node) => {
                *node.room.get_mut(&zone).expect("filtered") -= 1;
                node
            }
            None => others
                .iter_mut()
                .filter(|node| node.accepts)
                .min_by_key(|node| load(node))?,
        };
        // Until its record says otherwise, the player counts there: the
        // next ones of this step do not all pile onto it.
        chosen.players = chosen.players.saturating_add(1);
        Some(chosen.name.clone())
    }

    /// A node refused a player placement sent it (or never answered): it
    /// gets nobody more until its next record.
    pub fn placement_refused(&mut self, node: &str) {
        for other in self.placement.iter_mut().flatten() {
            if other.name == node {
                other.accepts = false;
            }
        }
    }

    /// Drains this node (`hearth admin drain`) or stops draining it: every
    /// player in its lines is handed to another node chosen by placement
    /// (a visitor to their home, which places them), at most
    /// [`DRAINED_PER_STEP`] a step; nobody is placed here and no visitor is
    /// taken in. Its lines then empty and close as idle lines do (line 1
    /// stays open, empty). A player with nowhere to go (no other node
    /// takes players) stays, and so do the players of zones pinned here; a
    /// visitor always goes home.
    pub fn set_draining(&mut self, on: bool) {
        self.draining = on;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// A drain moves whole lines to other nodes (the host's part, with
    /// [`GameLines::place_line`] and [`GameLines::hand_line_over`]) instead
    /// of handing their players on one by one.
    pub fn set_whole_line_drains(&mut self, on: bool) {
        self.drains_whole_lines = on;
    }

    /// Whether zone `zone` (by index) is pinned to this node: its lines
    /// never move.
    pub fn is_pinned_here(&self, zone: u16) -> bool {
        self.pinned_here.contains(&zone)
    }

    /// One step's share of a drain.
    fn drain_some(&mut self) {
        if !self.draining || self.drains_whole_lines {
            return;
        }
        let pinned = &self.pinned_here;
        let visitors = &self.visitors;
        // When no other node takes players, only visitors leave: their home
        // always takes them back. (Whether one does is asked again next
        // step.) Deciding this before the batch is picked keeps a visitor
        // from waiting behind players who cannot go anywhere.
        let anywhere = self
            .placement
            .as_ref()
            .is_some_and(|others| others.iter().any(|node| node.accepts));
        let batch: Vec<(PlayerId, LineKey)> = self
            .directory
            .settled()
            .filter(|(player, key)| {
                !pinned.contains(&key.zone) && (anywhere || visitors.contains(player))
            })
            .take(DRAINED_PER_STEP)
            .collect();
        for (player, key) in batch {
            let node = match self.visitors.contains(&player) {
                // Home, which places them.
                true => None,
                false => match self.choose(key.zone, None) {
                    Some(node) => Some(node),
                    // Not while another node accepts (`here` is None).
                    None => continue,
                },
            };
            if self.directory.depart_now(player, self.now_ms).is_some() {
                self.transfers += 1;
                self.departing.insert(player, (key.zone, None, node));
                if let Some(line) = self.lines.get_mut(&key) {
                    line.leave(player);
                }
            }
        }
    }

    /// Whether zone `zone` (by name) runs on another node.
    pub fn is_elsewhere(&self, zone: &str) -> bool {
        self.zone_names
            .iter()
            .position(|z| z == zone)
            .is_some_and(|index| self.elsewhere.contains(&(index as u16)))
    }

    /// A player handed over by another node ([`LinesOutput::Departed`]
    /// there) enters a line of `handoff.zone` here, where the game said
    /// they appear, with their data. `visitor`: their home is another node,
    /// where they go back when they leave the zone. False (nothing done) if
    /// the zone is not this game's or runs elsewhere, or the player is
    /// already in.
    pub fn arrive(&mut self, handoff: Handoff, visitor: bool) -> bool {
        self.arrive_in(handoff, visitor, None)
    }

    /// [`GameLines::arrive`], into line `line` if it is a line of the zone
    /// with room (a player following a line that moved here), else as
    /// `arrive` places them.
    pub fn arrive_in(&mut self, handoff: Handoff, visitor: bool, line: Option<LineKey>) -> bool {
        let Some(zone) = self.zone_names.iter().position(|z| *z == handoff.zone) else {
            return false;
        };
        let zone = zone as u16;
        if self.elsewhere.contains(&zone) || self.players.contains_key(&handoff.player) {
            return false;
        }
        // A node that drains, or is too busy for newcomers of its own, takes
        // nobody else's.
        if (self.draining || self.busy_for_s.is_some()) && visitor {
            return false;
        }
        let wanted = line.filter(|key| key.zone == zone).map(|key| key.number);
        let Some((key, open)) =
            self.directory
                .enter_wanting(handoff.player, &handoff.name, zone, wanted)
        else {
            return false;
        };
        // Arriving from a line was a move: the next waits out the cooldown
        // here too (entering the game is not).
        if handoff.entries > 0 {
            self.directory.moved(handoff.player, self.now_ms);
        }
        if open {
            self.open(key);
        }
        let entry = handoff.entries.wrapping_add(1);
        if visitor {
            self.visitors.insert(handoff.player);
        }
        self.players.insert(
            handoff.player,
            InGame {
                name: handoff.name.clone(),
                bytes_per_second: handoff.bytes_per_second,
                entries: entry,
            },
        );
        let line = self.lines.get_mut(&key).expect("opened");
        // At the line's own tick: a line restarted from another node's save
        // counts ticks from its own start.
        let tick = line.tick_count();
        line.enter(Entrance {
            player: handoff.player,
            name: handoff.name,
            saved: handoff.data,
            at: handoff.at,
            bytes_per_second: handoff.bytes_per_second,
            entry,
            limits: handoff
                .limits
                .as_deref()
                .map(|buckets| crate::RateLimits::carried(buckets, tick)),
        });
        true
    }

    /// Every line saves each changed player at least every `ticks` ticks
    /// (0: only when they leave); by default `GameLine`'s.
    pub fn with_save_period(mut self, ticks: u32) -> Self {
        self.save_every_ticks = Some(ticks);
        self
    }

    pub fn zone_names(&self) -> &[String] {
        &self.zone_names
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The open lines.
    pub fn lines(&self) -> impl Iterator<Item = (LineKey, &GameLine<G>)> {
        self.lines.iter().map(|(key, line)| (*key, line))
    }

    pub fn line(&self, key: LineKey) -> Option<&GameLine<G>> {
        self.lines.get(&key)
    }

    /// Lines opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Changes of line or zone made so far.
    pub fn transfers(&self) -> u64 {
        self.transfers
    }

    /// Line `key`'s serial, unique over this `GameLines`' life (a number
    /// is used again when a line of it reopens; a serial never is).
    pub fn line_serial(&self, key: LineKey) -> Option<u64> {
        self.serials.get(&key).copied()
    }

    fn open(&mut self, key: LineKey) {
        self.opened += 1;
        self.serials.insert(key, self.opened);
        let seed = self.seed ^ self.opened.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // At the tick the open lines are at (they all tick once a step).
        let tick = self.steps;
        let mut line = GameLine::in_zone(self.game.clone(), key.zone, seed, tick);
        if let Some(ticks) = self.save_every_ticks {
            line = line.with_save_period(ticks);
        }
        line.set_shedding(self.shedding);
        self.lines.insert(key, line);
    }

    /// A player enters the game, in the zone the game chooses from their
    /// saved data (`Game::entry_zone`). False if they are already in.
    pub fn enter(&mut self, arrival: Joining) -> bool {
        let zone = arrival
            .saved
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<G::Player>(bytes).ok())
            .and_then(|data| self.game.entry_zone(&data))
            .and_then(|name| self.zone_names.iter().position(|z| *z == name))
            .unwrap_or(0) as u16;
        if self.contains(arrival.player) {
            return false;
        }
        let placed = match self.elsewhere.contains(&zone) {
            true => Some(None),
            false => self.place_in(zone).map(Some),
        };
        if let Some(node) = placed {
            self.entering_elsewhere.insert(
                arrival.player,
                Handoff {
                    player: arrival.player,
                    name: arrival.name,
                    zone: self.zone_names[usize::from(zone)].clone(),
                    at: None,
                    data: arrival.saved,
                    bytes_per_second: arrival.bytes_per_second,
                    entries: 0,
                    node,
                    line: None,
                    limits: None,
                },
            );
            return true;
        }
        let Some((key, open)) = self.directory.enter(arrival.player, &arrival.name, zone) else {
            return false;
        };
        if open {
            self.open(key);
        }
        self.players.insert(
            arrival.player,
            InGame {
                name: arrival.name.clone(),
                bytes_per_second: arrival.bytes_per_second,
                entries: 1,
            },
        );
        self.lines.get_mut(&key).expect("opened").enter(Entrance {
            player: arrival.player,
            name: arrival.name,
            saved: arrival.saved,
            at: None,
            bytes_per_second: arrival.bytes_per_second,
            entry: 1,
            limits: None,
        });
        true
    }

    /// The player's session ended: their line lets go of them at its next
    /// tick (their last save follows).
    pub fn leave(&mut self, player: PlayerId) {
        // Leaving as they enter the game elsewhere: they leave it here, with
        // the data they came with (or a new player's).
        if let Some(handoff) = self.entering_elsewhere.remove(&player) {
            let data = handoff.data.unwrap_or_else(|| {
                serde_json::to_vec(&G::Player::default()).expect("player data serializes")
            });
            self.outputs.push(LinesOutput::Save {
                player,
                data,
                last: true,
            });
            return;
        }
        // Leaving on the way out to another node: their last save is made
        // here instead.
        self.departing.remove(&player);
        if let Some(line) = self
            .directory
            .leave(player)
            .and_then(|key| self.lines.get_mut(&key))
        {
            line.leave(player);
        }
    }

    /// Whether the player is in the game (or on their way between lines,
    /// or entering it elsewhere at this step).
    pub fn contains(&self, player: PlayerId) -> bool {
        self.players.contains_key(&player) || self.entering_elsewhere.contains_key(&player)
    }

    /// The player's name, while in the game.
    pub fn name(&self, player: PlayerId) -> Option<&str> {
        self.players.get(&player).map(|p| p.name.as_str())
    }

    /// Every player in the game.
    pub fn players(&self) -> impl Iterator<Item = PlayerId> + '_ {
        self.players.keys().copied()
    }

    /// Bytes a player's client sent, for the line that has them.
    pub fn input(
        &mut self,
        player: PlayerId,
        channel: u16,
        bytes: &[u8],
    ) -> Result<(), InputError> {
        match self
            .directory
            .line_of(player)
            .and_then(|key| self.lines.get_mut(&key))
        {
            Some(line) => line.input(player, channel, bytes),
            None => Err(InputError::UnknownPlayer),
        }
    }

    /// The open line `number` (1-based) of the zone named `zone`.
    pub fn line_named(&self, zone: &str, number: u32) -> Option<LineKey> {
        let zone = self.zone_names.iter().position(|z| z == zone)? as u16;
        let key = LineKey { zone, number };
        self.lines.contains_key(&key).then_some(key)
    }

    /// Starts an observer of line `key` ([`GameLine::observe`]): what it
    /// is sent comes as [`LinesOutput::Observed`]. `None` if the line is
    /// not open or has as many observers as it may.
    pub fn observe(&mut self, key: LineKey) -> Option<ObserverId> {
        self.lines.get_mut(&key)?.observe()
    }

    /// Stops an observer; false if the line or the observer is gone (a
    /// line closed when left empty takes its observers with it).
    pub fn stop_observing(&mut self, key: LineKey, observer: ObserverId) -> bool {
        self.lines
            .get_mut(&key)
            .is_some_and(|line| line.stop_observing(observer))
    }

    /// Sends the player's client everything again at its line's next tick
    /// ([`GameLine::resync`]); false if they are not in a line.
    pub fn resync(&mut self, player: PlayerId) -> bool {
        self.directory
            .line_of(player)
            .and_then(|key| self.lines.get_mut(&key))
            .is_some_and(|line| line.resync(player))
    }

    /// An administrator's announcement, to every line.
    pub fn announce(&mut self, text: &str) {
        for line in self.lines.values_mut() {
            line.announce(text);
        }
    }

    /// A zone's message from a line on another node of the cluster
    /// ([`LinesOutput::ToZoneElsewhere`] there), for every line of the zone
    /// here; how many lines took it (none when no line of the zone is open
    /// here, or the zone is not this game's). Checked against the schema
    /// first: another node's word is not taken for what clients are sent.
    pub fn deliver_to_zone(
        &mut self,
        zone: &str,
        message: u16,
        body: &[u8],
    ) -> Result<usize, RelayedError> {
        let message = self.check_relayed(message, body)?;
        let Some(zone) = self.zone_names.iter().position(|z| z == zone) else {
            return Ok(0);
        };
        let mut delivered = 0;
        for (key, line) in self.lines.iter_mut() {
            if usize::from(key.zone) == zone {
                line.deliver_to_line(message, body);
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// A message by name from another node of the cluster
    /// ([`LinesOutput::ToNamedElsewhere`] there): whether the player is
    /// here and it was given to them (held for them if they are on their
    /// way between lines). Checked against the schema first.
    pub fn deliver_to_named(
        &mut self,
        name: &str,
        message: u16,
        body: &[u8],
    ) -> Result<bool, RelayedError> {
        let message = self.check_relayed(message, body)?;
        let Some((to, key)) = self.directory.find(name) else {
            return Ok(false);
        };
        if self.directory.is_moving(to) {
            let held = self.in_transit.entry(to).or_default();
            if held.len() >= MAX_IN_TRANSIT {
                self.in_transit_dropped += 1;
                return Ok(false);
            }
            held.push((message, body.to_vec()));
            return Ok(true);
        }
        Ok(self
            .lines
            .get_mut(&key)
            .is_some_and(|line| line.deliver_to_player(to, message, body)))
    }

    /// No node of the cluster could give `sender`'s message to the player
    /// named `name`: `sender`'s line tells the game
    /// ([`Refused::NotOnline`]), as it does when they are not on this node.
    pub fn undelivered(&mut self, sender: PlayerId, name: String) {
        if let Some(line) = self
            .directory
            .line_of(sender)
            .and_then(|key| self.lines.get_mut(&key))
        {
            line.refuse(sender, Refused::NotOnline(name));
        }
    }

    /// A message another node handed over: one this game sends clients,
    /// with a body that decodes as its fields.
    fn check_relayed(&self, message: u16, body: &[u8]) -> Result<MessageId, RelayedError> {
        let spec = self
            .schema
            .messages()
            .get(usize::from(message))
            .ok_or(RelayedError::UnknownMessage(message))?;
        if spec.direction != crate::schema::Direction::ToClient {
            return Err(RelayedError::NotToClient(spec.name.clone()));
        }
        spec.decode(body)
            .map_err(|e| RelayedError::Undecodable(spec.name.clone(), e.to_string()))?;
        Ok(MessageId(message))
    }

    /// A step begins at `now_ms`: the open lines, to tick one by one
    /// ([`GameLines::tick_line`]) before [`GameLines::finish_step`]. A
    /// host that times each line's tick does it this way;
    /// [`GameLines::step`] does all three.
    pub fn begin_step(&mut self, now_ms: u64) -> Vec<LineKey> {
        self.now_ms = now_ms;
        self.steps += 1;
        self.drain_some();
        let paused = &self.paused;
        self.lines
            .keys()
            .filter(|key| !paused.contains(key))
            .copied()
            .collect()
    }

    /// One tick of one line; what it produced waits for
    /// [`GameLines::finish_step`].
    pub fn tick_line(&mut self, key: LineKey) -> Option<&GameLine<G>> {
        let line = self.lines.get_mut(&key)?;
        line.tick();
        let outputs: Vec<GameOutput> = line.drain_outputs().collect();
        for output in outputs {
            self.carry_out(key, output);
        }
        self.lines.get(&key)
    }

    /// After the step's ticks: closes the extra lines left empty long
    /// enough; what the host must do.
    pub fn finish_step(&mut self) -> std::vec::Drain<'_, LinesOutput> {
        for key in self.directory.close_idle(self.now_ms) {
            self.lines.remove(&key);
            self.paused.remove(&key);
            self.serials.remove(&key);
        }
        for (_, handoff) in std::mem::take(&mut self.entering_elsewhere) {
            self.outputs.push(LinesOutput::Departed(handoff));
        }
        self.outputs.drain(..)
    }

    /// One tick of every line at `now_ms`, and what the host must do.
    pub fn step(&mut self, now_ms: u64) -> std::vec::Drain<'_, LinesOutput> {
        for key in self.begin_step(now_ms) {
            self.tick_line(key);
        }
        self.finish_step()
    }

    fn carry_out(&mut self, from: LineKey, output: GameOutput) {
        match output {
            GameOutput::Send {
                player,
                channel,
                bytes,
            } => self.outputs.push(LinesOutput::Send {
                player,
                channel,
                bytes,
            }),
            GameOutput::Save { player, data } => self.outputs.push(LinesOutput::Save {
                player,
                data,
                last: false,
            }),
            GameOutput::Close { player, reason } => {
                self.outputs.push(LinesOutput::Close { player, reason })
            }
            GameOutput::Left {
                player,
                data,
                limits,
            } => self.left(from, player, data, limits),
            GameOutput::Transfer { player, to } => self.transfer(from, player, to),
            GameOutput::Observed {
                observer,
                channel,
                bytes,
            } => self.outputs.push(LinesOutput::Observed {
                line: from,
                observer,
                channel,
                bytes,
            }),
            GameOutput::ToZone { message, body } => {
                for (key, line) in self.lines.iter_mut() {
                    if key.zone == from.zone && *key != from {
                        line.deliver_to_line(message, &body);
                    }
                }
                if self.other_nodes {
                    self.outputs.push(LinesOutput::ToZoneElsewhere {
                        zone: self.zone_names[usize::from(from.zone)].clone(),
                        message,
                        body,
                    });
                }
            }
            GameOutput::ToNamed {
                from: sender,
                name,
                message,
                body,
            } => {
                let found = self.directory.find(&name);
                if let Some((to, _)) = found.filter(|(to, _)| self.directory.is_moving(*to)) {
                    // On the way: the line they enter gives it to them.
                    let held = self.in_transit.entry(to).or_default();
                    if held.len() < MAX_IN_TRANSIT {
                        held.push((message, body));
                    } else {
                        self.in_transit_dropped += 1;
                    }
                    return;
                }
                let delivered = found
                    .and_then(|(to, key)| Some((to, self.lines.get_mut(&key)?)))
                    .is_some_and(|(to, line)| line.deliver_to_player(to, message, &body));
                if delivered {
                } else if self.other_nodes && found.is_none() {
                    self.outputs.push(LinesOutput::ToNamedElsewhere {
                        sender,
                        name,
                        message,
                        body,
                    });
                } else if let Some(line) = self.lines.get_mut(&from) {
                    line.refuse(sender, Refused::NotOnline(name));
                }
            }
        }
    }

    /// A line let go of `player`: into the line the directory reserved for
    /// them (with their data as the old line left it), or out of the game.
    fn left(
        &mut self,
        from: LineKey,
        player: PlayerId,
        data: Vec<u8>,
        limits: crate::bucket::RateLimits,
    ) {
        // The buckets count in the ticks of the line that let go; lines
        // restarted from another node's save count from their own start.
        let from_tick = self.lines.get(&from).map_or(self.steps, |l| l.tick_count());
        match self.directory.left(player, self.now_ms) {
            NextStop::Line { line, at } => {
                let Some(in_game) = self.players.get_mut(&player) else {
                    return;
                };
                in_game.entries = in_game.entries.wrapping_add(1);
                let (name, bytes_per_second, entry) = (
                    in_game.name.clone(),
                    in_game.bytes_per_second,
                    in_game.entries,
                );
                // Saved on the way, as a logout is.
                self.outputs.push(LinesOutput::Save {
                    player,
                    data: data.clone(),
                    last: false,
                });
                let held = self.in_transit.remove(&player).unwrap_or_default();
                if let Some(next) = self.lines.get_mut(&line) {
                    let limits = match next.tick_count() {
                        tick if tick == from_tick => limits,
                        tick => crate::RateLimits::carried(&limits.since(from_tick), tick),
                    };
                    next.enter(Entrance {
                        player,
                        name,
                        saved: Some(data),
                        at,
                        bytes_per_second,
                        entry,
                        limits: Some(limits),
                    });
                    for (message, body) in held {
                        next.deliver_to_player(player, message, &body);
                    }
                }
            }
            NextStop::Gone => {
                self.visitors.remove(&player);
                let in_game = self.players.remove(&player);
                self.in_transit.remove(&player);
                match (self.departing.remove(&player), in_game) {
                    (Some((zone, at, node)), Some(in_game)) => {
                        self.outputs.push(LinesOutput::Departed(Handoff {
                            player,
                            name: in_game.name,
                            zone: self.zone_names[usize::from(zone)].clone(),
                            at,
                            data: Some(data),
                            bytes_per_second: in_game.bytes_per_second,
                            entries: in_game.entries,
                            node,
                            line: None,
                            limits: Some(limits.since(from_tick)),
                        }))
                    }
                    _ => self.outputs.push(LinesOutput::Save {
                        player,
                        data,
                        last: true,
                    }),
                }
            }
        }
    }

    /// The host's verdict on its load: `Some(seconds)` while it refuses
    /// newcomers, and so changes of line and zone as well; `None` to allow
    /// them again.
    pub fn set_busy(&mut self, retry_s: Option<u64>) {
        self.busy_for_s = retry_s;
    }

    /// What every line sheds ([`GameLine::set_shedding`]), now and in the
    /// lines that open.
    pub fn set_shedding(&mut self, shedding: Shedding) {
        if shedding != self.shedding {
            for line in self.lines.values_mut() {
                line.set_shedding(shedding);
            }
        }
        self.shedding = shedding;
    }

    /// The game asked to move `player` out of line `from`.
    fn transfer(&mut self, from: LineKey, player: PlayerId, to: Transfer) {
        if let Some(wait) = self.busy_for_s {
            self.transfers_refused_busy += 1;
            if let Some(line) = self.lines.get_mut(&from) {
                let reason = format!("the server is busy: try again in {wait} s");
                line.refuse(player, Refused::Transfer(reason));
            }
            return;
        }
        if let Transfer::Zone { zone, at } = to {
            let visitor_leaves = self.visitors.contains(&player) && zone != from.zone;
            let placed = match self.elsewhere.contains(&zone) || visitor_leaves {
                true => Some(None),
                false if zone != from.zone => self.place_in(zone).map(Some),
                false => None,
            };
            if let Some(node) = placed {
                match self.directory.depart(player, self.now_ms) {
                    Ok(line) => {
                        self.transfers += 1;
                        self.departing.insert(player, (zone, at, node));
                        if let Some(line) = self.lines.get_mut(&line) {
                            line.leave(player);
                        }
                    }
                    Err(reason) => {
                        if let Some(line) = self.lines.get_mut(&from) {
                            line.refuse(player, Refused::Transfer(reason));
                        }
                    }
                }
                return;
            }
        }
        match self.directory.transfer(player, to, self.now_ms) {
            Ok(step) => {
                self.transfers += 1;
                if step.open {
                    self.open(step.to);
                }
                if let Some(line) = self.lines.get_mut(&step.from) {
                    line.leave(player);
                }
            }
            Err(reason) => {
                if let Some(line) = self.lines.get_mut(&from) {
                    line.refuse(player, Refused::Transfer(reason));
                }
            }
        }
    }
}
