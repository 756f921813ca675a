//! The automatic player of `cards play` (`cards::player`), against a line
//! in process: two of them play whole rounds to a winner, each tells the
//! same moves in the same order, and what each tells of its own moves is
//! exactly what it sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cards::player::{card_name, choose, AutoPlayer, Move};
use cards::Cards;
use hearth_game::{GameLine, GameOutput, InputError, PlayerId};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};

#[test]
fn cards_are_named_and_the_lowest_card_that_beats_the_top_is_chosen() {
    assert_eq!(card_name(0), "2♣");
    assert_eq!(card_name(31), "7♥");
    assert_eq!(card_name(22), "J♦");
    assert_eq!(card_name(51), "A♠");
    assert_eq!(card_name(52), "card 52");
    assert_eq!(card_name(-1), "card -1");
    // 4 is a six: of 5 and 18 (sevens) and 3 (a five), a seven, the lower card first.
    assert_eq!(choose(&[18, 5, 3], 4), Some(5));
    // Nothing beats an ace; nothing is in an empty hand.
    assert_eq!(choose(&[0, 25, 38], 12), None);
    assert_eq!(choose(&[], -1), None);
    // A clear top takes the lowest rank.
    assert_eq!(choose(&[40, 12, 14], -1), Some(14));
}

/// What one player's client did in a round.
struct Seat {
    player: AutoPlayer,
    told: Vec<String>,
    /// The moves it sent that the line took.
    sent: Vec<Move>,
}

fn round(seed: u64) -> BTreeMap<PlayerId, Seat> {
    let mut line = GameLine::new(Arc::new(Cards), seed);
    let mut seats: BTreeMap<PlayerId, Seat> = BTreeMap::new();
    for id in [1, 2] {
        line.join(id, None);
        seats.insert(
            id,
            Seat {
                player: AutoPlayer::new(),
                told: Vec::new(),
                sent: Vec::new(),
            },
        );
    }
    let t0 = Instant::now();
    let mut started = false;
    for tick in 0..50_000u64 {
        line.tick();
        for output in line.drain_outputs() {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                let seat = seats.get_mut(&player).expect("a client per player");
                let lines = seat.player.receive(channel, &bytes).unwrap();
                seat.told.extend(lines);
            }
        }
        if seats.values().all(|s| s.player.round_over()) {
            return seats;
        }
        // The line runs at 10 Hz: a tick is 100 ms of the players' clock.
        let now = t0 + Duration::from_millis(100 * tick);
        for (&id, seat) in seats.iter_mut() {
            if let Some(ack) = seat.player.poll_ack() {
                line.input(id, STATE_CHANNEL, &ack).unwrap();
            }
            if !started && id == 1 {
                if let Some(start) = seat.player.start_message() {
                    line.input(id, RELIABLE_CHANNEL, &start).unwrap();
                    started = true;
                }
            }
            if let Some((choice, message)) = seat.player.next_move(now) {
                match line.input(id, RELIABLE_CHANNEL, &message) {
                    Ok(()) => seat.sent.push(choice),
                    // Over the game's rate limit: dropped; the player tries again.
                    Err(InputError::RateLimited) => {}
                    Err(other) => panic!("player {id}: {other}"),
                }
            }
        }
    }
    panic!("seed {seed}: no round ended");
}

#[test]
fn two_automatic_players_play_rounds_to_a_winner_and_tell_the_same_moves() {
    for seed in 1..=25 {
        let seats = round(seed);
        let [a, b] = [&seats[&1], &seats[&2]];
        assert!(a.player.winner().is_some(), "seed {seed}: a winner");
        assert_eq!(a.player.winner(), b.player.winner(), "seed {seed}");
        assert_eq!(a.player.moves(), b.player.moves(), "seed {seed}");
        let moves = a.player.moves();
        let seat_of = |m: &Move| match *m {
            Move::Played { seat, .. } | Move::Passed { seat } => seat,
        };
        // Two players: every move hands the turn to the other.
        for pair in moves.windows(2) {
            assert_ne!(
                seat_of(&pair[0]),
                seat_of(&pair[1]),
                "seed {seed}: {moves:?}"
            );
        }
        // The winner's last move emptied its hand.
        assert!(
            matches!(moves.last(), Some(Move::Played { seat, .. }) if Some(*seat) == a.player.winner()),
            "seed {seed}: {moves:?}"
        );
        for seat in [a, b] {
            let number = seat.player.seat().expect("seated").number();
            let own: Vec<Move> = moves
                .iter()
                .copied()
                .filter(|m| seat_of(m) == number)
                .collect();
            assert_eq!(
                own, seat.sent,
                "seed {seed}: what seat {number} told of its own moves"
            );
            assert!(
                !seat.told.iter().any(|line| line.starts_with("refused")),
                "seed {seed}: {:?}",
                seat.told
            );
            let told_moves: Vec<String> = moves.iter().map(Move::to_string).collect();
            let in_words: Vec<&String> = seat
                .told
                .iter()
                .filter(|line| told_moves.contains(line))
                .collect();
            assert_eq!(
                in_words.len(),
                moves.len(),
                "seed {seed}: every move in words"
            );
            assert!(seat
                .told
                .iter()
                .any(|line| line.starts_with("a round starts")));
            assert!(seat.told.iter().any(|line| line.starts_with("my hand: ")));
        }
    }
}
