//! Higher: a card game on Hearth's game API, built only on its public
//! items. Up to four players sit at a table; each is dealt five cards that
//! only they can see (an owner-only property: the other clients are never
//! sent it). In turn, a player plays a card of a higher rank than the one
//! on top, or passes and draws one (when everyone passed in a row, the
//! top is cleared and the next player may play anything); a turn not taken
//! within 30 seconds
//! passes by itself. The first to empty their hand wins the round, and
//! each player's wins are kept between sessions.
//!
//! The deck is shuffled with the line's seeded random source and lives in
//! the game's line state, never on the wire.

/// The game's typed client bindings, written by `hearth codegen --lang rust`
/// (regenerate: `HEARTH_BLESS=1 cargo test -p cards --test generated`): what
/// a Rust client of this game reads its replica with.
pub mod generated;
/// A player that plays by itself (`cards play`), over the bindings above.
pub mod player;

/// The game's browser page (`web/page.html`, `web/page.ts` bundled by
/// `web/build.mjs` into `web/dist/page.js`), served at `/` by `cards serve`.
pub const PAGE: hearth_server::GamePage = hearth_server::GamePage::new(
    include_str!("../web/page.html"),
    include_str!("../web/dist/page.js"),
)
.with_style(include_str!("../web/page.css"));

use std::collections::BTreeMap;

use hearth_game::schema::{KindSpec, MessageSpec, PropSpec, Scalar, Schema, Value, ValueType};
use hearth_game::{
    ActorId, Ctx, Game, KindId, LoginInfo, MessageId, PlayerId, PreLogin, PropId, TimerId,
};
use serde::{Deserialize, Serialize};

/// Seats at a table.
pub const SEATS: usize = 4;
/// Cards dealt to each player at the start of a round.
pub const HAND: usize = 5;
/// Most cards a hand may hold.
pub const MAX_HAND: u16 = 20;
/// Seconds a player has for a turn.
pub const TURN_SECS: u32 = 30;

/// The rank of a card (0..52): 0 (two) to 12 (ace).
pub fn rank(card: i64) -> i64 {
    card % 13
}

/// The game.
pub struct Cards;

/// What is kept for each player between sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardsPlayer {
    pub wins: u32,
}

/// Where a round is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Waiting = 0,
    Playing = 1,
    Finished = 2,
}

/// One table's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct Table {
    ids: Ids,
    /// The table's actor: what everyone sees of the round.
    table: ActorId,
    /// Who sits where, and their seat's actor.
    seats: BTreeMap<PlayerId, Seat>,
    /// The cards not dealt yet, top last. Server-side only.
    deck: Vec<i64>,
    phase: Phase,
    /// Seat numbers in playing order, and whose turn it is (an index into it).
    order: Vec<PlayerId>,
    turn: usize,
    /// The timer that passes a turn not taken in time.
    turn_timer: Option<TimerId>,
    /// Passes since the last card was played: a whole round of them clears
    /// the top, so a round always ends (an ace on top beats every hand).
    passes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seat {
    number: i64,
    actor: ActorId,
}

/// The schema's handles, looked up once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ids {
    seat: KindId,
    seat_number: PropId,
    hand: PropId,
    hand_size: PropId,
    wins: PropId,
    table: KindId,
    top: PropId,
    turn: PropId,
    deck_left: PropId,
    phase: PropId,
    play: MessageId,
    pass: MessageId,
    start: MessageId,
    played: MessageId,
    refused: MessageId,
    won: MessageId,
}

fn card() -> ValueType {
    ValueType::int(0, 51)
}

fn seat_number() -> ValueType {
    ValueType::int(-1, SEATS as i64 - 1)
}

/// The schema a client of this game is built for.
pub fn schema() -> Schema {
    let seat = KindSpec::new("seat")
        .prop(PropSpec::new("number", seat_number()).reliable())
        .prop(
            PropSpec::new(
                "hand",
                ValueType::list(Scalar::Int { min: 0, max: 51 }, MAX_HAND),
            )
            .owner_only()
            .reliable(),
        )
        .prop(PropSpec::new("hand_size", ValueType::int(0, MAX_HAND.into())).reliable())
        .prop(PropSpec::new("wins", ValueType::int(0, u32::MAX.into())).reliable());
    let table = KindSpec::new("table")
        .prop(PropSpec::new("top", ValueType::int(-1, 51)).reliable())
        .prop(PropSpec::new("turn", seat_number()).reliable())
        .prop(PropSpec::new("deck_left", ValueType::int(0, 52)).reliable())
        .prop(
            PropSpec::new(
                "phase",
                ValueType::enumeration(&["waiting", "playing", "finished"]),
            )
            .reliable(),
        );
    let messages = vec![
        MessageSpec::to_server("play")
            .field("card", card())
            .rate(4, 2),
        MessageSpec::to_server("pass").rate(4, 2),
        MessageSpec::to_server("start").rate(2, 1),
        MessageSpec::to_client("played")
            .field("seat", seat_number())
            .field("card", card()),
        MessageSpec::to_client("refused").field("reason", ValueType::string(64)),
        MessageSpec::to_client("won").field("seat", seat_number()),
    ];
    Schema::new("cards", vec![seat, table], messages).expect("a valid schema")
}

impl Ids {
    fn look_up(ctx: &Ctx<'_, CardsPlayer>) -> Self {
        let seat = ctx.kind("seat").expect("declared");
        let table = ctx.kind("table").expect("declared");
        let prop = |kind, name| ctx.prop(kind, name).expect("declared");
        let message = |name| ctx.message(name).expect("declared");
        Ids {
            seat,
            seat_number: prop(seat, "number"),
            hand: prop(seat, "hand"),
            hand_size: prop(seat, "hand_size"),
            wins: prop(seat, "wins"),
            table,
            top: prop(table, "top"),
            turn: prop(table, "turn"),
            deck_left: prop(table, "deck_left"),
            phase: prop(table, "phase"),
            play: message("play"),
            pass: message("pass"),
            start: message("start"),
            played: message("played"),
            refused: message("refused"),
            won: message("won"),
        }
    }
}

impl Game for Cards {
    type Line = Table;
    type Player = CardsPlayer;

    fn schema(&self) -> Schema {
        schema()
    }

    fn tick_hz(&self) -> u32 {
        10
    }

    fn line_capacity(&self, _: Option<&hearth_game::Zone>) -> usize {
        SEATS
    }

    /// A table keeps each player's wins: it seats accounts only.
    fn pre_login(&self, login: &LoginInfo<'_>) -> PreLogin {
        match login.account {
            Some(_) => PreLogin::Accept,
            None => {
                PreLogin::Refuse("sit down with an account: the table keeps your wins".to_owned())
            }
        }
    }

    fn new_line(&self, ctx: &mut Ctx<'_, CardsPlayer>) -> Table {
        let ids = Ids::look_up(ctx);
        let table = ctx.spawn(ids.table, None);
        ctx.set_int(table, ids.top, -1).expect("in range");
        ctx.set_int(table, ids.turn, -1).expect("in range");
        Table {
            ids,
            table,
            seats: BTreeMap::new(),
            deck: Vec::new(),
            phase: Phase::Waiting,
            order: Vec::new(),
            turn: 0,
            turn_timer: None,
            passes: 0,
        }
    }

    fn on_join(&self, table: &mut Table, ctx: &mut Ctx<'_, CardsPlayer>, player: PlayerId) {
        let taken: Vec<i64> = table.seats.values().map(|s| s.number).collect();
        let Some(number) = (0..SEATS as i64).find(|n| !taken.contains(n)) else {
            ctx.kick(player, "the table is full");
            return;
        };
        let ids = table.ids.clone();
        let actor = ctx.spawn(ids.seat, Some(player));
        ctx.set_int(actor, ids.seat_number, number)
            .expect("in range");
        let wins = ctx.player_data(player).map_or(0, |p| p.wins);
        ctx.set_int(actor, ids.wins, i64::from(wins))
            .expect("in range");
        table.seats.insert(player, Seat { number, actor });
    }

    fn on_leave(&self, table: &mut Table, ctx: &mut Ctx<'_, CardsPlayer>, player: PlayerId) {
        let Some(seat) = table.seats.remove(&player) else {
            return;
        };
        ctx.despawn(seat.actor);
        if table.phase == Phase::Playing {
            if let Some(at) = table.order.iter().position(|p| *p == player) {
                table.order.remove(at);
                if at < table.turn {
                    table.turn -= 1;
                }
            }
            if table.order.len() < 2 {
                table.finish(ctx, None);
            } else {
                table.turn %= table.order.len();
                table.start_turn(ctx);
            }
        }
    }

    fn on_message(
        &self,
        table: &mut Table,
        ctx: &mut Ctx<'_, CardsPlayer>,
        player: PlayerId,
        message: MessageId,
        values: &[Value],
    ) {
        let ids = table.ids.clone();
        let outcome = if message == ids.start {
            table.start(ctx)
        } else if message == ids.play {
            match values {
                [Value::Int(card)] => table.play(ctx, player, *card),
                _ => Err("malformed play"),
            }
        } else if message == ids.pass {
            table.pass(ctx, player)
        } else {
            Err("unknown message")
        };
        if let Err(reason) = outcome {
            let _ = ctx.send(player, ids.refused, &[Value::Str(reason.into())]);
        }
    }

    fn on_timer(&self, table: &mut Table, ctx: &mut Ctx<'_, CardsPlayer>, timer: TimerId, _: u64) {
        if table.turn_timer == Some(timer) && table.phase == Phase::Playing {
            table.turn_timer = None;
            let player = table.order[table.turn];
            let _ = table.pass(ctx, player);
        }
    }
}

impl Table {
    fn start(&mut self, ctx: &mut Ctx<'_, CardsPlayer>) -> Result<(), &'static str> {
        if self.phase == Phase::Playing {
            return Err("a round is being played");
        }
        if self.seats.len() < 2 {
            return Err("a round needs two players");
        }
        let ids = self.ids.clone();
        self.deck = (0..52).collect();
        ctx.rng().shuffle(&mut self.deck);
        self.order = self.seats.keys().copied().collect();
        for player in self.order.clone() {
            let hand: Vec<i64> = (0..HAND).filter_map(|_| self.deck.pop()).collect();
            self.set_hand(ctx, player, hand);
        }
        let top = self.deck.pop().expect("52 cards deal at most 20 and one");
        ctx.set_int(self.table, ids.top, top).expect("a card");
        self.phase = Phase::Playing;
        self.passes = 0;
        ctx.set_int(self.table, ids.phase, Phase::Playing as i64)
            .expect("a phase");
        self.turn = 0;
        self.start_turn(ctx);
        Ok(())
    }

    fn play(
        &mut self,
        ctx: &mut Ctx<'_, CardsPlayer>,
        player: PlayerId,
        card: i64,
    ) -> Result<(), &'static str> {
        self.check_turn(player)?;
        let ids = self.ids.clone();
        let mut hand = self.hand(ctx, player);
        let at = hand
            .iter()
            .position(|c| *c == card)
            .ok_or("that card is not in your hand")?;
        let top = ctx.get_int(self.table, ids.top).unwrap_or(-1);
        if top >= 0 && rank(card) <= rank(top) {
            return Err("play a higher rank, or pass");
        }
        hand.remove(at);
        self.passes = 0;
        let empty = hand.is_empty();
        self.set_hand(ctx, player, hand);
        ctx.set_int(self.table, ids.top, card).expect("a card");
        let number = self.seats[&player].number;
        let _ = ctx.send_to_line(ids.played, &[Value::Int(number), Value::Int(card)]);
        if empty {
            self.finish(ctx, Some(player));
        } else {
            self.next_turn(ctx);
        }
        Ok(())
    }

    fn pass(
        &mut self,
        ctx: &mut Ctx<'_, CardsPlayer>,
        player: PlayerId,
    ) -> Result<(), &'static str> {
        self.check_turn(player)?;
        let mut hand = self.hand(ctx, player);
        if hand.len() < usize::from(MAX_HAND) {
            if let Some(card) = self.deck.pop() {
                hand.push(card);
                self.set_hand(ctx, player, hand);
            }
        }
        self.passes += 1;
        if self.passes >= self.order.len() {
            self.passes = 0;
            ctx.set_int(self.table, self.ids.top, -1).expect("in range");
        }
        self.next_turn(ctx);
        Ok(())
    }

    fn check_turn(&self, player: PlayerId) -> Result<(), &'static str> {
        if self.phase != Phase::Playing {
            return Err("no round is being played");
        }
        if self.order.get(self.turn) != Some(&player) {
            return Err("it is not your turn");
        }
        Ok(())
    }

    fn next_turn(&mut self, ctx: &mut Ctx<'_, CardsPlayer>) {
        self.turn = (self.turn + 1) % self.order.len();
        self.start_turn(ctx);
    }

    fn start_turn(&mut self, ctx: &mut Ctx<'_, CardsPlayer>) {
        if let Some(timer) = self.turn_timer.take() {
            ctx.cancel(timer);
        }
        let number = self.seats[&self.order[self.turn]].number;
        ctx.set_int(self.table, self.ids.turn, number)
            .expect("a seat");
        ctx.set_int(self.table, self.ids.deck_left, self.deck.len() as i64)
            .expect("at most 52");
        let ticks = TURN_SECS * ctx.tick_hz();
        self.turn_timer = Some(ctx.after(ticks, 0));
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, CardsPlayer>, winner: Option<PlayerId>) {
        let ids = self.ids.clone();
        if let Some(timer) = self.turn_timer.take() {
            ctx.cancel(timer);
        }
        self.phase = Phase::Finished;
        ctx.set_int(self.table, ids.phase, Phase::Finished as i64)
            .expect("a phase");
        ctx.set_int(self.table, ids.turn, -1).expect("in range");
        if let Some(winner) = winner {
            let wins = ctx.player_data_mut(winner).map(|data| {
                data.wins = data.wins.saturating_add(1);
                data.wins
            });
            let seat = self.seats[&winner].clone();
            if let Some(wins) = wins {
                ctx.set_int(seat.actor, ids.wins, i64::from(wins))
                    .expect("in range");
            }
            let _ = ctx.send_to_line(ids.won, &[Value::Int(seat.number)]);
        }
    }

    fn hand(&self, ctx: &Ctx<'_, CardsPlayer>, player: PlayerId) -> Vec<i64> {
        match ctx.get(self.seats[&player].actor, self.ids.hand) {
            Some(Value::List(cards)) => cards.to_vec(),
            _ => Vec::new(),
        }
    }

    fn set_hand(&mut self, ctx: &mut Ctx<'_, CardsPlayer>, player: PlayerId, hand: Vec<i64>) {
        let actor = self.seats[&player].actor;
        let size = hand.len() as i64;
        ctx.set(actor, self.ids.hand, Value::List(hand.into()))
            .expect("at most MAX_HAND cards");
        ctx.set_int(actor, self.ids.hand_size, size)
            .expect("in range");
    }

    /// Where the round is (for tests and tools).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Cards left in the deck.
    pub fn deck_left(&self) -> usize {
        self.deck.len()
    }
}
