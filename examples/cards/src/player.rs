//! A player of Higher that plays by itself, sans-IO: fed the bytes its
//! session receives, it keeps the replica (through the generated bindings),
//! tells what happened at the table in words, and answers with the move to
//! send when it is its turn. `cards play` drives it over a real connection
//! (the Rust SDK); the tests drive it against a line in process.
//!
//! The moves it tells are the ones every client can see: a `played`
//! message is a card played; a turn that moves on with no card played and
//! nobody leaving is a pass (the player's own, or the turn timer's). Every
//! client at the table tells the same sequence, since a two-player table
//! holds at most one move per tick (a player moves only once it has seen
//! its turn), and each tick's changes and messages arrive together.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::{GameEvent, GameReplica, GameReplicaError};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};

use crate::generated::{self, Message, Seat, Table, TablePhase};

/// A card's name, e.g. `7♥` for 31: ranks two to ace (`rank`), suits ♣ ♦ ♥ ♠
/// by thirteen.
pub fn card_name(card: i64) -> String {
    const RANKS: [&str; 13] = [
        "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A",
    ];
    const SUITS: [&str; 4] = ["♣", "♦", "♥", "♠"];
    match (
        usize::try_from(crate::rank(card)),
        usize::try_from(card / 13),
    ) {
        (Ok(rank), Ok(suit)) if suit < SUITS.len() => format!("{}{}", RANKS[rank], SUITS[suit]),
        _ => format!("card {card}"),
    }
}

/// The automatic player's choice: the lowest card that beats `top` (any card
/// when the top is clear, -1), or `None`: pass and draw.
pub fn choose(hand: &[i64], top: i64) -> Option<i64> {
    hand.iter()
        .copied()
        .filter(|&card| top < 0 || crate::rank(card) > crate::rank(top))
        .min_by_key(|&card| (crate::rank(card), card))
}

/// A move at the table, as every client there sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Played { seat: i8, card: u8 },
    Passed { seat: i8 },
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Move::Played { seat, card } => {
                write!(f, "seat {seat} played {card} ({})", card_name(card.into()))
            }
            Move::Passed { seat } => write!(f, "seat {seat} passed"),
        }
    }
}

/// Why the player stopped following the table.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("a game message did not apply: {0}")]
    Replica(#[from] GameReplicaError),
    #[error("the replica holds seat {0}'s hand, which only its owner may see")]
    SeenAnothersHand(i8),
}

/// See the module's documentation.
pub struct AutoPlayer {
    replica: GameReplica,
    /// Seat numbers by actor, to tell who left.
    seats: BTreeMap<ActorId, i8>,
    /// The table as last told: phase, turn, top.
    table: Option<(TablePhase, i8, i8)>,
    hand: Vec<u8>,
    moves: Vec<Move>,
    winner: Option<i8>,
    played_a_round: bool,
    ended: bool,
    /// The situation it last moved in (turn, top, cards in hand), and when:
    /// it moves again when the table changed, or after a second (a move
    /// over the game's rate limit is dropped by the server).
    moved_at: Option<((i8, i8, usize), Instant)>,
}

impl Default for AutoPlayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoPlayer {
    pub fn new() -> Self {
        Self {
            replica: generated::replica(),
            seats: BTreeMap::new(),
            table: None,
            hand: Vec::new(),
            moves: Vec::new(),
            winner: None,
            played_a_round: false,
            ended: false,
            moved_at: None,
        }
    }

    /// The replica of the table, as this player sees it.
    pub fn replica(&self) -> &GameReplica {
        &self.replica
    }

    /// Every move seen so far, in order.
    pub fn moves(&self) -> &[Move] {
        &self.moves
    }

    /// The seat that won the round, once one did.
    pub fn winner(&self) -> Option<i8> {
        self.winner
    }

    /// A round was played (this player saw it start) and has ended.
    pub fn round_over(&self) -> bool {
        self.played_a_round && self.ended
    }

    /// This player's seat, once it sits.
    pub fn seat(&self) -> Option<Seat<'_>> {
        Seat::all(&self.replica).find(|seat| seat.owned())
    }

    /// Seats taken at the table.
    pub fn seated(&self) -> usize {
        Seat::all(&self.replica).count()
    }

    /// Applies what arrived on a game channel; returns what happened, in words.
    pub fn receive(&mut self, channel: u16, bytes: &[u8]) -> Result<Vec<String>, PlayerError> {
        match channel {
            RELIABLE_CHANNEL => self.replica.apply_reliable(bytes)?,
            STATE_CHANNEL => self.replica.apply_frame(bytes)?,
            _ => return Ok(Vec::new()),
        }
        self.tell()
    }

    /// The acknowledgement to send on the state channel, when one is due.
    pub fn poll_ack(&mut self) -> Option<Vec<u8>> {
        self.replica.poll_ack()
    }

    /// `start`, for the reliable channel, when a round may start: two seats
    /// taken or more, and none being played.
    pub fn start_message(&self) -> Option<Vec<u8>> {
        let table = Table::all(&self.replica).next()?;
        if table.phase() == TablePhase::Playing || self.seated() < 2 {
            return None;
        }
        generated::start(&self.replica).ok()
    }

    /// The move to make now, and its message for the reliable channel, if
    /// it is this player's turn (and it has not just sent one for the same
    /// situation).
    pub fn next_move(&mut self, now: Instant) -> Option<(Move, Vec<u8>)> {
        let table = Table::all(&self.replica).next()?;
        let mine = self.seat()?;
        if table.phase() != TablePhase::Playing || table.turn() != mine.number() {
            return None;
        }
        let hand: Vec<i64> = mine.hand().into_iter().map(i64::from).collect();
        let situation = (table.turn(), table.top(), hand.len());
        if self.moved_at.is_some_and(|(then, at)| {
            then == situation && now.saturating_duration_since(at) < Duration::from_secs(1)
        }) {
            return None;
        }
        let seat = mine.number();
        let (choice, message) = match choose(&hand, table.top().into()) {
            Some(card) => {
                let card = u8::try_from(card).ok()?;
                (
                    Move::Played { seat, card },
                    generated::play(&self.replica, card),
                )
            }
            None => (Move::Passed { seat }, generated::pass(&self.replica)),
        };
        self.moved_at = Some((situation, now));
        Some((choice, message.ok()?))
    }

    /// Reads the events of what was just applied and the table after it.
    fn tell(&mut self) -> Result<Vec<String>, PlayerError> {
        let mut lines = Vec::new();
        let mut played_by = Vec::new();
        let mut left = Vec::new();
        while let Some(event) = self.replica.poll_event() {
            match &event {
                GameEvent::Spawned { id } => {
                    if let Some(seat) = Seat::get(&self.replica, *id) {
                        self.seats.insert(*id, seat.number());
                        let who = if seat.owned() {
                            "I sit at seat".to_owned()
                        } else {
                            "a player sits at seat".to_owned()
                        };
                        let wins = match seat.wins() {
                            1 => "1 win".to_owned(),
                            n => format!("{n} wins"),
                        };
                        lines.push(format!("{who} {} ({wins})", seat.number()));
                    }
                }
                GameEvent::Despawned { id } => {
                    if let Some(number) = self.seats.remove(id) {
                        left.push(number);
                        lines.push(format!("seat {number} left"));
                    }
                }
                GameEvent::Message { .. } => match Message::decode(&event) {
                    Some(Message::Played { seat, card }) => {
                        played_by.push(seat);
                        let played = Move::Played { seat, card };
                        self.moves.push(played);
                        lines.push(played.to_string());
                    }
                    // Debug formatting escapes control and format characters:
                    // the server chose this text.
                    Some(Message::Refused { reason }) => lines.push(format!("refused: {reason:?}")),
                    Some(Message::Won { seat }) => {
                        self.winner = Some(seat);
                        lines.push(format!("seat {seat} won the round"));
                    }
                    None => {}
                },
                _ => {}
            }
        }
        if let Some(table) = Table::all(&self.replica).next() {
            let now = (table.phase(), table.turn(), table.top());
            let (phase, turn, top) = now;
            let before = self.table.replace(now);
            let was_playing = before.is_some_and(|(phase, _, _)| phase == TablePhase::Playing);
            if phase == TablePhase::Playing && !was_playing {
                self.played_a_round = true;
                self.ended = false;
                let what = if before.is_some() {
                    "a round starts"
                } else {
                    "a round is being played"
                };
                lines.push(format!(
                    "{what}: {} on top, {} cards in the deck",
                    card_name(top.into()),
                    table.deck_left()
                ));
            }
            if let (Some((TablePhase::Playing, turn_before, top_before)), TablePhase::Playing) =
                (before, phase)
            {
                if turn != turn_before
                    && turn_before >= 0
                    && !played_by.contains(&turn_before)
                    && !left.contains(&turn_before)
                {
                    let passed = Move::Passed { seat: turn_before };
                    self.moves.push(passed);
                    lines.push(passed.to_string());
                }
                if top < 0 && top_before >= 0 {
                    lines.push("everyone passed: the top is clear, any card may be played".into());
                }
            }
            if was_playing && phase != TablePhase::Playing {
                self.ended = true;
                if self.winner.is_none() {
                    lines.push("the round ended without a winner".to_owned());
                }
            }
            if phase == TablePhase::Playing && before.is_none_or(|(_, t, _)| t != turn) {
                let mine = self.seat().map(|seat| seat.number());
                lines.push(if mine == Some(turn) {
                    "my turn".to_owned()
                } else {
                    format!("seat {turn}'s turn")
                });
            }
        }
        for seat in Seat::all(&self.replica) {
            if seat.owned() {
                let hand = seat.hand();
                if hand != self.hand {
                    let names: Vec<String> = hand.iter().map(|&c| card_name(c.into())).collect();
                    lines.push(if names.is_empty() {
                        "my hand: empty".to_owned()
                    } else {
                        format!("my hand: {}", names.join(" "))
                    });
                    self.hand = hand;
                }
            } else if !seat.hand().is_empty() {
                return Err(PlayerError::SeenAnothersHand(seat.number()));
            }
        }
        Ok(lines)
    }
}
