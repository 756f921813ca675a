//! Whole matches of the card game, in process and deterministic: clients
//! are generic replicas of the game (as a real client is) fed with exactly
//! the bytes the line sends, answering with the bytes a client would send.

use std::collections::BTreeMap;

mod capture;
use std::sync::Arc;

use cards::{rank, Cards, CardsPlayer, Phase};
use hearth_game::{GameLine, GameOutput, InputError, PlayerId};
use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::schema::{Schema, Value};

/// A player's client: its replica, and every byte it received.
#[derive(Clone)]
struct Client {
    replica: GameReplica,
    received: Vec<(u16, Vec<u8>)>,
    /// Plays the turn a second time only after the table changed.
    acted_at_turn: Option<(i64, i64, usize)>,
    won: Vec<i64>,
}

struct Match {
    line: GameLine<Cards>,
    clients: BTreeMap<PlayerId, Client>,
    /// Everything the line produced, in order: the match's transcript.
    transcript: Vec<GameOutput>,
    /// The players who may send `start` (the first to join).
    starter: PlayerId,
    started_rounds: u32,
}

fn schema() -> Arc<Schema> {
    Arc::new(cards::schema())
}

impl Match {
    fn new(seed: u64, players: &[PlayerId]) -> Self {
        let mut line = GameLine::new(Arc::new(Cards), seed);
        let mut clients = BTreeMap::new();
        for &player in players {
            line.join(player, None);
            clients.insert(
                player,
                Client {
                    replica: GameReplica::new(schema()),
                    received: Vec::new(),
                    acted_at_turn: None,
                    won: Vec::new(),
                },
            );
        }
        Self {
            line,
            clients,
            transcript: Vec::new(),
            starter: players[0],
            started_rounds: 0,
        }
    }

    /// A player sits down mid-match: its client is sent the others' seats,
    /// hands dealt.
    fn join(&mut self, player: PlayerId) {
        self.line.join(player, None);
        self.clients.insert(
            player,
            Client {
                replica: GameReplica::new(schema()),
                received: Vec::new(),
                acted_at_turn: None,
                won: Vec::new(),
            },
        );
    }

    /// One tick of the line, its outputs applied by the clients, then each
    /// client's answers.
    fn step(&mut self) {
        self.line.tick();
        let outputs: Vec<GameOutput> = self.line.drain_outputs().collect();
        for output in &outputs {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                let client = self.clients.get_mut(player).expect("a client per player");
                client.received.push((*channel, bytes.clone()));
                match *channel {
                    RELIABLE_CHANNEL => client.replica.apply_reliable(bytes).unwrap(),
                    STATE_CHANNEL => client.replica.apply_frame(bytes).unwrap(),
                    other => panic!("unexpected channel {other}"),
                }
            }
        }
        self.transcript.extend(outputs);
        let players: Vec<PlayerId> = self.clients.keys().copied().collect();
        for player in players {
            let answers = self.answer(player);
            for (channel, bytes) in answers {
                match self.line.input(player, channel, &bytes) {
                    Ok(()) => {}
                    // Too fast for the game's limit: a client tries again.
                    Err(InputError::RateLimited) => {
                        self.clients.get_mut(&player).unwrap().acted_at_turn = None;
                    }
                    Err(other) => panic!("player {player}: {other}"),
                }
            }
        }
    }

    /// What `player`'s client sends now: its acknowledgement, and a move
    /// when it is its turn (the lowest card that beats the top, else pass).
    fn answer(&mut self, player: PlayerId) -> Vec<(u16, Vec<u8>)> {
        let starter = self.starter;
        let client = self.clients.get_mut(&player).unwrap();
        let mut out = Vec::new();
        while let Some(event) = client.replica.poll_event() {
            if let GameEvent::Message { index, values } = event {
                let name = &client.replica.schema().messages()[usize::from(index)].name;
                if name == "won" {
                    client.won.push(int(&values[0]));
                }
            }
        }
        if let Some(ack) = client.replica.poll_ack() {
            out.push((STATE_CHANNEL, ack));
        }
        let replica = &client.replica;
        let Some((table, _)) = replica
            .actors()
            .find(|(_, a)| replica.schema().kinds()[usize::from(a.kind)].name == "table")
        else {
            return out;
        };
        let Some((seat, _)) = replica.actors().find(|(_, a)| a.owned) else {
            return out;
        };
        let phase = int(replica.value(table, "phase").unwrap());
        let seats = replica
            .actors()
            .filter(|(_, a)| replica.schema().kinds()[usize::from(a.kind)].name == "seat")
            .count();
        if phase != Phase::Playing as i64 {
            if player == starter && seats >= 2 && self.started_rounds == 0 {
                self.started_rounds += 1;
                out.push((RELIABLE_CHANNEL, replica.message("start", vec![]).unwrap()));
            }
            return out;
        }
        let turn = int(replica.value(table, "turn").unwrap());
        let mine = int(replica.value(seat, "number").unwrap());
        let top = int(replica.value(table, "top").unwrap());
        let hand = list(replica.value(seat, "hand").unwrap());
        let situation = (turn, top, hand.len());
        if turn != mine || client.acted_at_turn == Some(situation) {
            return out;
        }
        client.acted_at_turn = Some(situation);
        let playable = hand
            .iter()
            .copied()
            .filter(|&c| top < 0 || rank(c) > rank(top))
            .min_by_key(|&c| (rank(c), c));
        let message = match playable {
            Some(card) => replica.message("play", vec![Value::Int(card)]).unwrap(),
            None => replica.message("pass", vec![]).unwrap(),
        };
        out.push((RELIABLE_CHANNEL, message));
        out
    }

    fn play_until_won(&mut self, most_ticks: u32) -> u32 {
        for tick in 0..most_ticks {
            self.step();
            if self.line.state().phase() == Phase::Finished {
                return tick;
            }
        }
        panic!("no winner after {most_ticks} ticks");
    }

    fn transcript_bytes(&self) -> Vec<String> {
        self.transcript.iter().map(|o| format!("{o:?}")).collect()
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(v) => *v,
        other => panic!("not an int: {other:?}"),
    }
}

fn list(value: &Value) -> Vec<i64> {
    match value {
        Value::List(items) => items.to_vec(),
        other => panic!("not a list: {other:?}"),
    }
}

#[test]
fn a_whole_match_is_played_to_a_winner_and_the_win_is_saved() {
    let mut game = Match::new(11, &[1, 2, 3]);
    game.play_until_won(3000);
    // Every client saw the same winner, once.
    let winners: Vec<Vec<i64>> = game.clients.values().map(|c| c.won.clone()).collect();
    assert_eq!(winners[0].len(), 1, "{winners:?}");
    assert!(winners.iter().all(|w| *w == winners[0]));
    // The winner's seat shows one win to everyone.
    let winner_seat = winners[0][0];
    for client in game.clients.values() {
        let replica = &client.replica;
        let (seat, _) = replica
            .actors()
            .find(|(id, a)| {
                replica.schema().kinds()[usize::from(a.kind)].name == "seat"
                    && int(replica.value(*id, "number").unwrap()) == winner_seat
            })
            .unwrap();
        assert_eq!(int(replica.value(seat, "wins").unwrap()), 1);
    }
    // Leaving saves each player's data; the winner's holds the win.
    for player in [1, 2, 3] {
        game.line.leave(player);
    }
    game.line.tick();
    let saves: BTreeMap<PlayerId, CardsPlayer> = game
        .line
        .drain_outputs()
        .filter_map(|o| match o {
            GameOutput::Left { player, data, .. } => {
                Some((player, serde_json::from_slice(&data).unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(saves.len(), 3);
    assert_eq!(saves.values().map(|p| p.wins).sum::<u32>(), 1);
}

#[test]
fn the_same_seed_plays_the_same_match_byte_for_byte_and_another_seed_does_not() {
    let run = |seed| {
        let mut game = Match::new(seed, &[1, 2, 3, 4]);
        game.play_until_won(3000);
        game.transcript_bytes()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn another_players_hand_never_reaches_a_client() {
    let mut game = Match::new(3, &[1, 2, 3]);
    for _ in 0..20 {
        game.step();
    }
    assert_eq!(game.line.state().phase(), Phase::Playing);
    // A latecomer is spawned the seats of players holding cards.
    game.join(4);
    game.play_until_won(3000);
    let (seat_kind, _) = schema().kind("seat").unwrap();
    for (player, client) in &game.clients {
        let seen = capture::seats_in_capture(&format!("player {player}"), &client.received);
        let (own_hands, other_seats) = (seen.own_hands, seen.other_seats);
        if *player != 4 {
            assert!(own_hands > 0, "player {player} got its own hand");
        }
        assert!(other_seats >= 2, "player {player} saw the other seats");
        // And the replica holds no card of another's hand.
        for (_, actor) in client.replica.actors() {
            if actor.kind == seat_kind && !actor.owned {
                assert_eq!(
                    client.replica.schema().kinds()[usize::from(seat_kind)]
                        .props
                        .len(),
                    4
                );
                assert!(matches!(&actor.values[1], Value::List(cards) if cards.is_empty()));
            }
        }
    }
}

#[test]
fn a_line_restored_from_a_mid_match_snapshot_produces_byte_identical_outputs() {
    let mut original = Match::new(21, &[1, 2, 3]);
    for _ in 0..40 {
        original.step();
    }
    assert_eq!(original.line.state().phase(), Phase::Playing, "mid-match");
    let snapshot = original.line.snapshot();
    let mut restored = Match {
        line: GameLine::restore(Arc::new(Cards), &snapshot).unwrap(),
        clients: original.clients.clone(),
        transcript: Vec::new(),
        starter: original.starter,
        started_rounds: original.started_rounds,
    };
    original.transcript.clear();
    for _ in 0..400 {
        original.step();
        restored.step();
    }
    assert!(!original.transcript.is_empty());
    assert_eq!(original.transcript, restored.transcript);
    assert_eq!(restored.line.snapshot(), original.line.snapshot());
}

#[test]
fn malformed_and_excess_messages_never_reach_the_game() {
    let mut game = Match::new(1, &[1, 2]);
    game.line.tick();
    game.line.drain_outputs().for_each(drop);
    let replica = GameReplica::new(schema());
    let in_before = game.line.stats().messages_in;
    // Garbage, a card out of range, a message the server sends, an
    // acknowledgement on the wrong channel: each refused and counted.
    let (play, _) = schema().message("play").unwrap();
    let (played, _) = schema().message("played").unwrap();
    let bad: Vec<(u16, Vec<u8>)> = vec![
        (RELIABLE_CHANNEL, vec![0xff, 0x00]),
        (RELIABLE_CHANNEL, vec![0x37, play as u8, 52]),
        (RELIABLE_CHANNEL, vec![0x37, play as u8, 3, 0]),
        (RELIABLE_CHANNEL, vec![0x37, played as u8, 0, 0]),
        (RELIABLE_CHANNEL, vec![0x38, 1]),
    ];
    for (channel, bytes) in &bad {
        assert!(
            matches!(
                game.line.input(1, *channel, bytes),
                Err(InputError::Undecodable(_))
            ),
            "{bytes:?}"
        );
    }
    assert_eq!(game.line.stats().messages_undecodable, bad.len() as u64);
    // `start` allows two at once.
    let start = replica.message("start", vec![]).unwrap();
    let outcomes: Vec<_> = (0..10)
        .map(|_| game.line.input(1, RELIABLE_CHANNEL, &start))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
    assert!(outcomes[2..]
        .iter()
        .all(|o| *o == Err(InputError::RateLimited)));
    assert_eq!(game.line.stats().messages_rate_limited, 8);
    // A player not in the line.
    assert_eq!(
        game.line.input(99, RELIABLE_CHANNEL, &start),
        Err(InputError::UnknownPlayer)
    );
    game.line.tick();
    assert_eq!(
        game.line.stats().messages_in - in_before,
        2,
        "only the two allowed reached the game"
    );
    assert_eq!(game.line.state().phase(), Phase::Playing);
}

#[test]
fn saved_wins_come_back_and_a_turn_not_taken_passes_by_itself() {
    let mut line = GameLine::new(Arc::new(Cards), 2);
    line.join(
        1,
        Some(serde_json::to_vec(&CardsPlayer { wins: 3 }).unwrap()),
    );
    line.join(2, Some(b"not json".to_vec()));
    line.tick();
    assert_eq!(line.stats().player_data_unreadable, 1);
    let mut watcher = GameReplica::new(schema());
    for output in line.drain_outputs() {
        if let GameOutput::Send {
            player: 2,
            channel: RELIABLE_CHANNEL,
            bytes,
        } = output
        {
            watcher.apply_reliable(&bytes).unwrap();
        }
    }
    let wins: Vec<i64> = watcher
        .actors()
        .filter(|(_, a)| a.kind == 0)
        .map(|(id, _)| int(watcher.value(id, "wins").unwrap()))
        .collect();
    assert_eq!(wins, vec![3, 0], "player 2 sees player 1's saved wins");
    let start = watcher.message("start", vec![]).unwrap();
    line.input(2, RELIABLE_CHANNEL, &start).unwrap();
    line.tick();
    let deck_after_deal = line.state().deck_left();
    // Nobody plays: after 30 s of ticks the first player has passed (and
    // drawn a card).
    for _ in 0..(cards::TURN_SECS * 10) {
        line.tick();
    }
    assert_eq!(line.state().deck_left(), deck_after_deal - 1);
}

#[test]
fn a_client_built_for_another_schema_is_told_so() {
    let mut line = GameLine::new(Arc::new(Cards), 4);
    line.join(1, None);
    line.tick();
    let first = line
        .drain_outputs()
        .find_map(|o| match o {
            GameOutput::Send {
                channel: RELIABLE_CHANNEL,
                bytes,
                ..
            } => Some(bytes),
            _ => None,
        })
        .unwrap();
    let other = Arc::new(Schema::new("cards", vec![], vec![]).unwrap());
    let error = GameReplica::new(other).apply_reliable(&first).unwrap_err();
    assert!(
        matches!(
            error,
            hearth_replica::game_replica::GameReplicaError::SchemaMismatch { .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("regenerate its bindings"));
    assert!(GameReplica::new(schema()).apply_reliable(&first).is_ok());
}

/// A hostile server despawns an actor and spawns another kind under its id
/// in one message, then sets it with the old kind's layout: the set is read
/// with the new kind's types (or refused), never stored as the wrong type.
#[test]
fn a_respawn_in_one_message_is_read_with_the_new_kind() {
    use hearth_replica::game_wire::{put_reliable_header, put_set, put_spawn};
    let schema = schema();
    let (table_kind, table) = schema.kind("table").unwrap();
    let (seat_kind, _) = schema.kind("seat").unwrap();
    let mut replica = GameReplica::new(schema.clone());
    let table_values: Vec<Value> = table.props.iter().map(|p| p.ty.default_value()).collect();
    let mut first = Vec::new();
    put_reliable_header(&mut first, 1, 1);
    put_spawn(
        &mut first,
        &schema,
        table_kind,
        ActorId(1),
        false,
        0,
        &table_values,
    );
    replica.apply_reliable(&first).unwrap();

    let mut turn = table_values.clone();
    turn[1] = Value::Int(2);
    let mut hostile = Vec::new();
    put_reliable_header(&mut hostile, 2, 3);
    hearth_replica::game_wire::GameItem::Despawn { id: ActorId(1) }.encode(
        &schema,
        &|_| None,
        &mut hostile,
    );
    let seat_values: Vec<Value> = schema.kinds()[usize::from(seat_kind)]
        .props
        .iter()
        .map(|p| p.ty.default_value())
        .collect();
    put_spawn(
        &mut hostile,
        &schema,
        seat_kind,
        ActorId(1),
        true,
        0,
        &seat_values,
    );
    put_set(&mut hostile, table, ActorId(1), 1 << 1, &turn);
    let _ = replica.apply_reliable(&hostile);
    for (_, actor) in replica.actors() {
        let kind = &schema.kinds()[usize::from(actor.kind)];
        for (prop, value) in kind.props.iter().zip(&actor.values) {
            assert!(
                prop.ty.admits(value),
                "{}.{} holds {value:?}",
                kind.name,
                prop.name
            );
        }
    }
    // A spawn of an actor that is live is refused outright.
    let mut twice = Vec::new();
    put_reliable_header(&mut twice, 3, 1);
    put_spawn(
        &mut twice,
        &schema,
        table_kind,
        ActorId(1),
        false,
        0,
        &table_values,
    );
    assert!(replica.apply_reliable(&twice).is_err());
}
