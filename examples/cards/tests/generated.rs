//! The card game's typed client bindings, committed (src/generated.rs for
//! Rust clients, web/cards.generated.ts for its page), regenerated here
//! from `cards::schema()` and compared; and a match played by two clients
//! that read the table and their hands, and send their moves, only through
//! the generated Rust bindings.
//!
//! After a change of the schema or of the generator, regenerate them with
//! `HEARTH_BLESS=1 cargo test -p cards --test generated` (or with
//! `hearth codegen`, see `TS_IMPORT`).

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RUST: &str = "src/generated.rs";
const TYPESCRIPT: &str = "web/cards.generated.ts";
/// Where the page's bindings find the client library: the web client's
/// sources in this repository, so that web/'s type check and bundler
/// resolve it without a package install. The same file comes from
/// `hearth codegen --lang ts --schema cards.json --import ../../../web/client/src/index.js`.
const TS_IMPORT: &str = "../../../web/client/src/index.js";

fn check_committed(path: &str, generated: &str) {
    let file = format!("{ROOT}/{path}");
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "examples/cards/{path} is stale: run HEARTH_BLESS=1 cargo test -p cards --test generated"
    );
}

#[test]
fn the_committed_bindings_are_what_hearth_codegen_writes() {
    let schema = cards::schema();
    check_committed(RUST, &hearth_codegen::rust(&schema));
    check_committed(TYPESCRIPT, &hearth_codegen::typescript(&schema, TS_IMPORT));
}

use std::collections::BTreeMap;
use std::sync::Arc;

use cards::generated::{self, Message, Seat, Table, TablePhase};
use cards::{rank, Cards};
use hearth_game::{GameLine, GameOutput, InputError, PlayerId};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::schema::Value;

/// A player's client: a replica made by the bindings, and the typed
/// messages it got.
struct Client {
    replica: GameReplica,
    messages: Vec<Message>,
    /// The table as it was when this client last moved: it moves again
    /// only once the table changed.
    moved_at: Option<(i8, i8, u8, usize)>,
}

impl Client {
    fn new() -> Self {
        Self {
            replica: generated::replica(),
            messages: Vec::new(),
            moved_at: None,
        }
    }

    fn apply(&mut self, channel: u16, bytes: &[u8]) {
        match channel {
            RELIABLE_CHANNEL => self.replica.apply_reliable(bytes).unwrap(),
            STATE_CHANNEL => self.replica.apply_frame(bytes).unwrap(),
            other => panic!("unexpected channel {other}"),
        }
        while let Some(event) = self.replica.poll_event() {
            self.messages.extend(Message::decode(&event));
        }
    }

    fn table(&self) -> Table<'_> {
        let mut tables = Table::all(&self.replica);
        let table = tables.next().expect("the table is in every player's view");
        assert!(tables.next().is_none(), "one table");
        table
    }

    fn my_seat(&self) -> Seat<'_> {
        Seat::all(&self.replica)
            .find(|seat| seat.owned())
            .expect("the player's own seat")
    }

    /// Its move, when it is its turn: the lowest card that beats the top,
    /// else a pass.
    fn decide(&mut self) -> Option<Vec<u8>> {
        let table = self.table();
        let seat = self.my_seat();
        if table.phase() != TablePhase::Playing || table.turn() != seat.number() {
            return None;
        }
        let hand = seat.hand();
        let now = (table.turn(), table.top(), table.deck_left(), hand.len());
        let top = table.top();
        let beats = |card: &u8| top < 0 || rank((*card).into()) > rank(top.into());
        let best = hand
            .iter()
            .copied()
            .filter(beats)
            .min_by_key(|&card| rank(card.into()));
        if self.moved_at == Some(now) {
            return None;
        }
        self.moved_at = Some(now);
        Some(match best {
            Some(card) => generated::play(&self.replica, card).unwrap(),
            None => generated::pass(&self.replica).unwrap(),
        })
    }
}

/// The generic replica's reading of a seat's hand, to hold the typed one
/// to.
fn generic_hand(replica: &GameReplica, seat: &Seat<'_>) -> Vec<u8> {
    match replica.value(seat.id(), "hand") {
        Some(Value::List(cards)) => cards.iter().map(|&card| card as u8).collect(),
        other => panic!("a hand is a list: {other:?}"),
    }
}

#[test]
fn a_match_is_read_and_played_through_the_generated_bindings() {
    let mut line = GameLine::new(Arc::new(Cards), 17);
    // Three players: with two, a round can stall (an ace on top that
    // nobody beats, both hands too full to draw, so the deck never empties
    // and the top is never cleared).
    let players: [PlayerId; 3] = [1, 2, 3];
    let mut clients: BTreeMap<PlayerId, Client> = BTreeMap::new();
    for player in players {
        line.join(player, None);
        clients.insert(player, Client::new());
    }
    let mut dealt = false;
    for tick in 0..2000 {
        line.tick();
        let outputs: Vec<GameOutput> = line.drain_outputs().collect();
        for output in outputs {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                clients.get_mut(&player).unwrap().apply(channel, &bytes);
            }
        }
        if clients
            .values()
            .all(|c| c.table().phase() == TablePhase::Finished)
        {
            break;
        }
        if tick == 2 {
            let client = &clients[&1];
            assert_eq!(client.table().phase(), TablePhase::Waiting);
            let start = generated::start(&client.replica).unwrap();
            line.input(1, RELIABLE_CHANNEL, &start).unwrap();
        }
        if !dealt && clients[&1].table().phase() == TablePhase::Playing {
            dealt = true;
            for client in clients.values() {
                let mine = client.my_seat();
                assert_eq!(mine.hand(), generic_hand(&client.replica, &mine));
                assert_eq!((mine.hand().len(), mine.hand_size()), (5, 5));
                // The others' hands are never sent: empty, their sizes known.
                let theirs: Vec<Seat<'_>> =
                    Seat::all(&client.replica).filter(|s| !s.owned()).collect();
                assert_eq!(theirs.len(), players.len() - 1);
                for seat in theirs {
                    assert_eq!((seat.hand().len(), seat.hand_size()), (0, 5));
                    assert_ne!(seat.number(), mine.number());
                }
                assert_eq!(
                    usize::from(client.table().deck_left()),
                    52 - players.len() * 5 - 1
                );
            }
        }
        for player in players {
            let client = clients.get_mut(&player).unwrap();
            if let Some(ack) = client.replica.poll_ack() {
                line.input(player, STATE_CHANNEL, &ack).unwrap();
            }
            if let Some(bytes) = client.decide() {
                match line.input(player, RELIABLE_CHANNEL, &bytes) {
                    Ok(()) => {}
                    // Beyond the game's rate limit: move again later.
                    Err(InputError::RateLimited) => client.moved_at = None,
                    Err(other) => panic!("player {player}: {other}"),
                }
            }
        }
    }
    assert!(dealt, "the round started");
    for client in clients.values() {
        assert_eq!(client.table().phase(), TablePhase::Finished);
        assert_eq!(client.table().turn(), -1);
        assert!(
            !client
                .messages
                .iter()
                .any(|m| matches!(m, Message::Refused { .. })),
            "no move refused: {:?}",
            client.messages
        );
    }
    // Everyone saw the same plays and the same winner, whose hand is empty
    // and whose wins went up.
    let messages = &clients[&1].messages;
    assert!(clients.values().all(|c| c.messages == *messages));
    let plays = messages
        .iter()
        .filter(|m| matches!(m, Message::Played { .. }));
    assert!(plays.count() >= 5, "{messages:?}");
    let Some(Message::Won { seat: winner }) = messages.last() else {
        panic!("the round ends with a winner: {messages:?}");
    };
    for client in clients.values() {
        let seat = Seat::all(&client.replica)
            .find(|s| s.number() == *winner)
            .unwrap();
        assert_eq!((seat.hand_size(), seat.wins()), (0, 1));
        if seat.owned() {
            assert!(seat.hand().is_empty());
        }
    }
}
