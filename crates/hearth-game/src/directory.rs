//! [`Directory`]: which lines of a game are open, who is in which, and
//! what crosses lines: placing a player who enters, changes of line and
//! zone (with a cooldown), finding a player by name, closing extra lines
//! left empty. Sans-IO like the lines: the host tells it the time and
//! carries out its answers (open a line, hand a player to a line).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hearth_replica::geometry::Pos;
use hearth_replica::names::name_key;

use crate::ids::PlayerId;
use crate::line::Transfer;

/// A player may change line or zone at most this often: each change sends
/// the map again and saves the player.
pub const TRANSFER_COOLDOWN_MS: u64 = 3_000;

/// A line restarted from another node's save waits this long for players
/// before its zone's grace for empty lines begins.
pub const RESTARTED_LINE_WAIT_MS: u64 = 600_000;

/// A line's name: its zone (index in `Game::zones`) and number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineKey {
    pub zone: u16,
    pub number: u32,
}

/// How the directory is set up, from the game.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Per zone: players a line holds.
    pub capacity: Vec<usize>,
    /// Per zone: how long an extra line (number 2 and up) may stay empty
    /// before it closes, in milliseconds.
    pub grace_ms: Vec<u64>,
}

/// Where a placed player is.
#[derive(Debug, Clone)]
struct Placed {
    name: String,
    line: LineKey,
    /// Released from `line` on the way to this one, appearing there at
    /// the position given (a travel's arrival).
    moving_to: Option<(LineKey, Option<Pos>)>,
    /// The session ended while moving: forgotten when the old line lets go.
    leaving: bool,
    /// When the player last changed line or zone.
    last_transfer_ms: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct LineInfo {
    /// Players in the line or on their way into it.
    players: usize,
    empty_since_ms: Option<u64>,
    /// Paused (its lease may be lapsing, or it is moving to another node):
    /// nobody new is placed in it, and it does not close.
    held_back: bool,
}

/// Where a player goes once their line has let go of them
/// ([`Directory::left`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStop {
    /// Into this line, appearing at `at`.
    Line { line: LineKey, at: Option<Pos> },
    /// Out of the game (logged out): forgotten.
    Gone,
}

/// An approved change of line or zone: the host tells `from` to let the
/// player go, opening `to` first if `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: LineKey,
    pub to: LineKey,
    pub open: bool,
}

/// The lines of one game and their players.
#[derive(Debug)]
pub struct Directory {
    config: DirectoryConfig,
    lines: BTreeMap<LineKey, LineInfo>,
    players: HashMap<PlayerId, Placed>,
    /// The players by name (`names::name_key`): a message by name finds its
    /// player without a look at everyone.
    names: HashMap<String, BTreeSet<PlayerId>>,
    /// Changes of line or zone refused so far (counted, as every refused
    /// input is).
    transfers_refused: u64,
}

impl Directory {
    pub fn new(config: DirectoryConfig) -> Self {
        Self {
            config,
            lines: BTreeMap::new(),
            players: HashMap::new(),
            names: HashMap::new(),
            transfers_refused: 0,
        }
    }

    /// Players a line of `zone` holds.
    pub fn capacity(&self, zone: u16) -> usize {
        self.config
            .capacity
            .get(usize::from(zone))
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    fn zones(&self) -> u16 {
        self.config.grace_ms.len().max(1) as u16
    }

    /// The open lines and how many players each has (or expects).
    pub fn lines(&self) -> impl Iterator<Item = (LineKey, usize)> + '_ {
        self.lines.iter().map(|(key, info)| (*key, info.players))
    }

    /// Places left in line `key` (0 if it is not open).
    pub fn room(&self, key: LineKey) -> usize {
        self.lines.get(&key).map_or(0, |info| {
            self.capacity(key.zone).saturating_sub(info.players)
        })
    }

    /// Whether an open line of `zone` has a place left.
    pub fn has_room(&self, zone: u16) -> bool {
        let capacity = self.capacity(zone);
        self.lines
            .range(
                LineKey { zone, number: 0 }..=LineKey {
                    zone,
                    number: u32::MAX,
                },
            )
            .any(|(_, info)| info.players < capacity)
    }

    /// Where `player` is (the line that has them now).
    pub fn line_of(&self, player: PlayerId) -> Option<LineKey> {
        self.players.get(&player).map(|p| p.line)
    }

    /// The online player with this name (compared as accounts' names are),
    /// and their line.
    pub fn find(&self, name: &str) -> Option<(PlayerId, LineKey)> {
        self.names
            .get(&name_key(name))?
            .iter()
            .filter_map(|id| Some((*id, self.players.get(id)?)))
            .find(|(_, p)| !p.leaving)
            .map(|(id, p)| (id, p.line))
    }

    fn forget(&mut self, player: PlayerId) {
        let Some(placed) = self.players.remove(&player) else {
            return;
        };
        let key = name_key(&placed.name);
        if let Some(ids) = self.names.get_mut(&key) {
            ids.remove(&player);
            if ids.is_empty() {
                self.names.remove(&key);
            }
        }
    }

    /// Whether the player is on their way from one line to another (their
    /// old line is letting go of them).
    pub fn is_moving(&self, player: PlayerId) -> bool {
        self.players
            .get(&player)
            .is_some_and(|p| p.moving_to.is_some())
    }

    pub fn player_count(&self) -> usize {
        self.players.len()
    }

    pub fn transfers_refused(&self) -> u64 {
        self.transfers_refused
    }

    /// A line of `zone` with room (`wanted` if it has room), else a new
    /// one; its place is taken. `true`: the host must open it.
    fn reserve(&mut self, zone: u16, wanted: Option<u32>) -> (LineKey, bool) {
        let capacity = self.capacity(zone);
        let has_room = |info: &LineInfo| info.players < capacity && !info.held_back;
        let in_zone = LineKey { zone, number: 0 }..=LineKey {
            zone,
            number: u32::MAX,
        };
        let found = wanted
            .map(|number| LineKey { zone, number })
            .filter(|key| self.lines.get(key).is_some_and(has_room))
            .or_else(|| {
                self.lines
                    .range(in_zone.clone())
                    .find(|(_, info)| has_room(info))
                    .map(|(key, _)| *key)
            });
        let (key, open) = match found {
            Some(key) => (key, false),
            None => {
                let number = (1..)
                    .find(|n| !self.lines.contains_key(&LineKey { zone, number: *n }))
                    .expect("a free number");
                let key = LineKey { zone, number };
                self.lines.insert(key, LineInfo::default());
                (key, true)
            }
        };
        let info = self.lines.get_mut(&key).expect("reserved");
        info.players += 1;
        info.empty_since_ms = None;
        (key, open)
    }

    fn release(&mut self, key: LineKey, now_ms: u64) {
        if let Some(info) = self.lines.get_mut(&key) {
            info.players = info.players.saturating_sub(1);
            if info.players == 0 {
                info.empty_since_ms = Some(now_ms);
            }
        }
    }

    /// A player enters the game in `zone` (out of range: the first): the
    /// line they go to, and whether the host must open it first. `None`
    /// if the player is already in.
    pub fn enter(&mut self, player: PlayerId, name: &str, zone: u16) -> Option<(LineKey, bool)> {
        self.enter_wanting(player, name, zone, None)
    }

    /// [`Directory::enter`], into line `wanted` of the zone if it is open
    /// and has room (a player following a line that moved).
    pub fn enter_wanting(
        &mut self,
        player: PlayerId,
        name: &str,
        zone: u16,
        wanted: Option<u32>,
    ) -> Option<(LineKey, bool)> {
        if self.players.contains_key(&player) {
            return None;
        }
        let zone = if zone < self.zones() { zone } else { 0 };
        let (line, open) = self.reserve(zone, wanted);
        self.names.entry(name_key(name)).or_default().insert(player);
        self.players.insert(
            player,
            Placed {
                name: name.to_owned(),
                line,
                moving_to: None,
                leaving: false,
                last_transfer_ms: None,
            },
        );
        Some((line, open))
    }

    /// The player has just moved (they arrived from another node): the
    /// cooldown between moves counts from now, as if they had moved here.
    pub fn moved(&mut self, player: PlayerId, now_ms: u64) {
        if let Some(placed) = self.players.get_mut(&player) {
            placed.last_transfer_ms = Some(now_ms);
        }
    }

    /// The player's session ended: the line to tell to let them go, or
    /// `None` (not in, or on the way between lines: forgotten when the old
    /// line lets go).
    pub fn leave(&mut self, player: PlayerId) -> Option<LineKey> {
        let placed = self.players.get_mut(&player)?;
        if placed.leaving {
            return None;
        }
        placed.leaving = true;
        match placed.moving_to {
            Some(_) => None,
            None => Some(placed.line),
        }
    }

    /// The game asked to move `player`: approved (the host tells the old
    /// line to let go), or refused with the reason to show.
    pub fn transfer(
        &mut self,
        player: PlayerId,
        to: Transfer,
        now_ms: u64,
    ) -> Result<Move, String> {
        let result = self.try_transfer(player, to, now_ms);
        if result.is_err() {
            self.transfers_refused += 1;
        }
        result
    }

    /// The game asked to move `player` to a zone another node runs: their
    /// line lets go of them (the line to tell), and this node forgets them
    /// when it has (`NextStop::Gone`); or refused with the reason to show,
    /// as a move here would be.
    pub fn depart(&mut self, player: PlayerId, now_ms: u64) -> Result<LineKey, String> {
        let result = self.may_move(player, now_ms);
        match result {
            Ok(line) => {
                let placed = self.players.get_mut(&player).expect("checked");
                placed.leaving = true;
                placed.last_transfer_ms = Some(now_ms);
                Ok(line)
            }
            Err(reason) => {
                self.transfers_refused += 1;
                Err(reason)
            }
        }
    }

    /// A draining node hands `player` to another node whatever their last
    /// move: their line lets go of them (the line to tell), as for
    /// [`Directory::depart`]. `None` if they are leaving or on their way.
    pub fn depart_now(&mut self, player: PlayerId, now_ms: u64) -> Option<LineKey> {
        let placed = self.players.get_mut(&player)?;
        if placed.leaving || placed.moving_to.is_some() {
            return None;
        }
        placed.leaving = true;
        placed.last_transfer_ms = Some(now_ms);
        Some(placed.line)
    }

    /// The players settled in a line (not leaving, not on their way), and
    /// their lines.
    pub fn settled(&self) -> impl Iterator<Item = (PlayerId, LineKey)> + '_ {
        self.players
            .iter()
            .filter(|(_, placed)| !placed.leaving && placed.moving_to.is_none())
            .map(|(player, placed)| (*player, placed.line))
    }

    /// The player's line, if they may move now: in a line, not leaving,
    /// not on their way, not within the cooldown of their last move.
    fn may_move(&self, player: PlayerId, now_ms: u64) -> Result<LineKey, String> {
        let Some(placed) = self.players.get(&player) else {
            return Err("you are not in the game".to_owned());
        };
        if placed.leaving {
            return Err("you are leaving".to_owned());
        }
        if placed.moving_to.is_some() {
            return Err("you are already on your way".to_owned());
        }
        if let Some(last) = placed.last_transfer_ms {
            let since = now_ms.saturating_sub(last);
            if since < TRANSFER_COOLDOWN_MS {
                // Rounded up: a player who waits what they are told is let
                // through.
                let tenths = (TRANSFER_COOLDOWN_MS - since).div_ceil(100);
                return Err(format!(
                    "you changed place a moment ago: wait {}.{} s",
                    tenths / 10,
                    tenths % 10
                ));
            }
        }
        Ok(placed.line)
    }

    fn try_transfer(
        &mut self,
        player: PlayerId,
        to: Transfer,
        now_ms: u64,
    ) -> Result<Move, String> {
        let from = self.may_move(player, now_ms)?;
        let (to, at, open) = match to {
            Transfer::Line(number) => {
                let key = LineKey {
                    zone: from.zone,
                    number,
                };
                if key == from {
                    return Err(format!("you are already on line {number}"));
                }
                match self.lines.get(&key) {
                    None => {
                        let open: Vec<String> = self
                            .lines
                            .keys()
                            .filter(|k| k.zone == from.zone)
                            .map(|k| k.number.to_string())
                            .collect();
                        return Err(format!(
                            "line {number} is not open (open lines: {})",
                            open.join(", ")
                        ));
                    }
                    Some(info) if info.players >= self.capacity(from.zone) => {
                        return Err(format!("line {number} is full"))
                    }
                    Some(_) => {}
                }
                let (key, open) = self.reserve(from.zone, Some(number));
                (key, None, open)
            }
            Transfer::Zone { zone, at } => {
                if zone >= self.zones() {
                    return Err("there is no such zone".to_owned());
                }
                let (key, open) = self.reserve(zone, None);
                (key, at, open)
            }
        };
        let placed = self.players.get_mut(&player).expect("checked");
        placed.moving_to = Some((to, at));
        placed.last_transfer_ms = Some(now_ms);
        Ok(Move { from, to, open })
    }

    /// The player's line let go of them (its `GameOutput::Left`): where
    /// they go next.
    pub fn left(&mut self, player: PlayerId, now_ms: u64) -> NextStop {
        let Some(placed) = self.players.get_mut(&player) else {
            return NextStop::Gone;
        };
        let from = placed.line;
        let next = placed.moving_to.take();
        let leaving = placed.leaving;
        self.release(from, now_ms);
        match next {
            Some((line, at)) if !leaving => {
                self.players.get_mut(&player).expect("placed").line = line;
                NextStop::Line { line, at }
            }
            Some((line, _)) => {
                self.release(line, now_ms);
                self.forget(player);
                NextStop::Gone
            }
            None => {
                self.forget(player);
                NextStop::Gone
            }
        }
    }

    /// Opens a line of `zone` with nobody in it (a line restarted from a
    /// save made on another node): the lowest free number. Its state is
    /// worth keeping for a while: empty, it closes as any extra line does
    /// but only after [`RESTARTED_LINE_WAIT_MS`] more (the players it had
    /// come back by then, or not at all).
    pub fn open_empty(&mut self, zone: u16, now_ms: u64) -> LineKey {
        let number = (1..)
            .find(|n| !self.lines.contains_key(&LineKey { zone, number: *n }))
            .expect("a free number");
        let key = LineKey { zone, number };
        self.lines.insert(
            key,
            LineInfo {
                players: 0,
                // In the future: the grace counts from then.
                empty_since_ms: Some(now_ms.saturating_add(RESTARTED_LINE_WAIT_MS)),
                held_back: false,
            },
        );
        key
    }

    /// Line `key` is gone without letting its players go (this node lost
    /// its lease): it is forgotten, and so are the players in it (the
    /// first list). Players on their way into it (the second list) leave
    /// the game when their old line lets go of them: both lists' sessions
    /// are for the host to end.
    pub fn drop_line(&mut self, key: LineKey, now_ms: u64) -> (Vec<PlayerId>, Vec<PlayerId>) {
        if self.lines.remove(&key).is_none() {
            return (Vec::new(), Vec::new());
        }
        let mut inside = Vec::new();
        let mut coming = Vec::new();
        for (player, placed) in self.players.iter_mut() {
            if placed.line == key && placed.moving_to.is_none() {
                inside.push(*player);
            } else if placed.moving_to.is_some_and(|(to, _)| to == key) {
                placed.leaving = true;
                coming.push(*player);
            }
        }
        // A player leaving the dropped line (on their way out of it, or out
        // of the game) is gone with it too.
        let leaving_it: Vec<(PlayerId, LineKey)> = self
            .players
            .iter()
            .filter(|(_, placed)| placed.line == key)
            .filter_map(|(player, placed)| Some((*player, placed.moving_to?.0)))
            .collect();
        for (_, to) in &leaving_it {
            self.release(*to, now_ms);
        }
        let leaving_it: Vec<PlayerId> = leaving_it.into_iter().map(|(player, _)| player).collect();
        for player in inside.iter().chain(&leaving_it) {
            self.forget(*player);
        }
        inside.extend(leaving_it);
        inside.sort_unstable();
        coming.sort_unstable();
        (inside, coming)
    }

    /// Line `key` takes nobody new and does not close while `held_back`
    /// (it is paused).
    pub fn hold_back(&mut self, key: LineKey, held_back: bool) {
        if let Some(info) = self.lines.get_mut(&key) {
            info.held_back = held_back;
        }
    }

    /// The players placed in line `key` (settled, leaving, or on their way
    /// out of it).
    pub fn players_in(&self, key: LineKey) -> Vec<PlayerId> {
        let mut players: Vec<PlayerId> = self
            .players
            .iter()
            .filter(|(_, placed)| placed.line == key)
            .map(|(player, _)| *player)
            .collect();
        players.sort_unstable();
        players
    }

    /// Whether the player's session ended (or they are on their way out to
    /// another node) and their line has not let go of them yet.
    pub fn is_leaving(&self, player: PlayerId) -> bool {
        self.players
            .get(&player)
            .is_some_and(|placed| placed.leaving)
    }

    /// Extra lines (number 2 and up) empty for longer than their zone's
    /// grace: closed (forgotten here; the host drops them).
    pub fn close_idle(&mut self, now_ms: u64) -> Vec<LineKey> {
        let grace = &self.config.grace_ms;
        let closing: Vec<LineKey> = self
            .lines
            .iter()
            .filter(|(key, info)| {
                let grace = grace.get(usize::from(key.zone)).copied().unwrap_or(60_000);
                key.number > 1
                    && info.players == 0
                    && !info.held_back
                    && info
                        .empty_since_ms
                        .is_some_and(|since| now_ms.saturating_sub(since) >= grace)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in &closing {
            self.lines.remove(key);
        }
        closing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(capacity: usize) -> Directory {
        Directory::new(DirectoryConfig {
            capacity: vec![capacity; 2],
            grace_ms: vec![1_000, 1_000],
        })
    }

    const MEADOW: u16 = 0;
    const TOWN: u16 = 1;

    #[test]
    fn players_fill_lines_in_order_and_a_full_zone_opens_another() {
        let mut d = directory(2);
        let one = LineKey {
            zone: MEADOW,
            number: 1,
        };
        let two = LineKey {
            zone: MEADOW,
            number: 2,
        };
        assert_eq!(d.enter(1, "ann", MEADOW), Some((one, true)));
        assert_eq!(d.enter(2, "bo", MEADOW), Some((one, false)));
        assert_eq!(d.enter(3, "cy", MEADOW), Some((two, true)));
        assert_eq!(d.enter(3, "cy", MEADOW), None, "already in");
        assert_eq!(d.find("ANN"), Some((1, one)));
    }

    #[test]
    fn a_travel_reserves_the_target_and_moves_the_player_when_let_go() {
        let mut d = directory(10);
        d.enter(1, "ann", MEADOW);
        let at = Some(Pos::new(150, 150));
        let step = d
            .transfer(1, Transfer::Zone { zone: TOWN, at }, 10_000)
            .unwrap();
        let town = LineKey {
            zone: TOWN,
            number: 1,
        };
        assert!(step.open && step.to == town);
        assert_eq!(
            d.transfer(1, Transfer::Zone { zone: MEADOW, at }, 10_001),
            Err("you are already on your way".to_owned())
        );
        assert_eq!(d.left(1, 10_050), NextStop::Line { line: town, at });
        assert_eq!(d.line_of(1), Some(town));
        // Too soon for another change.
        let refused = d.transfer(
            1,
            Transfer::Zone {
                zone: MEADOW,
                at: None,
            },
            11_000,
        );
        assert_eq!(
            refused,
            Err("you changed place a moment ago: wait 2.0 s".to_owned())
        );
        assert!(d
            .transfer(
                1,
                Transfer::Zone {
                    zone: MEADOW,
                    at: None
                },
                13_000
            )
            .is_ok());
        assert_eq!(d.transfers_refused(), 2);
    }

    #[test]
    fn a_line_change_needs_an_open_line_with_room() {
        let mut d = directory(1);
        d.enter(1, "ann", MEADOW);
        d.enter(2, "bo", MEADOW);
        assert_eq!(
            d.transfer(1, Transfer::Line(1), 0),
            Err("you are already on line 1".to_owned())
        );
        assert_eq!(
            d.transfer(1, Transfer::Line(2), 0),
            Err("line 2 is full".to_owned())
        );
        assert_eq!(
            d.transfer(1, Transfer::Line(7), 0),
            Err("line 7 is not open (open lines: 1, 2)".to_owned())
        );
    }

    #[test]
    fn a_session_that_ends_on_the_way_is_forgotten_and_frees_both_lines() {
        let mut d = directory(1);
        d.enter(1, "ann", MEADOW);
        d.transfer(
            1,
            Transfer::Zone {
                zone: TOWN,
                at: None,
            },
            0,
        )
        .unwrap();
        assert_eq!(d.leave(1), None, "the old line already lets go");
        assert_eq!(d.left(1, 5), NextStop::Gone);
        assert_eq!(d.player_count(), 0);
        assert!(d.lines().all(|(_, players)| players == 0));
        assert_eq!(d.find("ann"), None);
        assert!(d.names.is_empty(), "nothing kept of a player gone");
    }

    #[test]
    fn extra_lines_close_after_their_grace_and_line_one_stays() {
        let mut d = directory(1);
        d.enter(1, "ann", MEADOW);
        d.enter(2, "bo", MEADOW);
        assert_eq!(d.leave(1), Some(LineKey { zone: 0, number: 1 }));
        assert_eq!(d.leave(2), Some(LineKey { zone: 0, number: 2 }));
        d.left(1, 0);
        d.left(2, 0);
        assert!(d.close_idle(999).is_empty());
        assert_eq!(d.close_idle(1_000), vec![LineKey { zone: 0, number: 2 }]);
        assert_eq!(d.lines().count(), 1);
    }
}
