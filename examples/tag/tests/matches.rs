//! Whole tag matches in one process, deterministic: rounds start, "it"
//! passes by touch, scores and the round's end reach everyone, each
//! player's best is kept between sessions and seen by them alone, walls and
//! the speed hold (a cheating client is corrected and gets nowhere faster),
//! and a line snapshotted mid-round resumes byte for byte.

mod common;

use std::sync::Arc;

use common::Arena;
use hearth_game::{GameLine, GameOutput};
use tag::generated::{Message, Round, RoundPhase, Runner};
use tag::{Phase, Tag, TagRecord, INTERMISSION_SECS, ROUND_SECS, TICK_HZ};

const ROUND_TICKS: u32 = (ROUND_SECS + INTERMISSION_SECS) * TICK_HZ;

#[test]
fn a_whole_round_plays_out_and_everyone_sees_it_end() {
    let mut arena = Arena::new(11);
    for (player, name) in [(1, "ann"), (2, "ben"), (3, "cat"), (4, "dan")] {
        arena.join(player, name, None);
    }
    arena.run(2);
    assert_eq!(
        arena.line.state().phase(),
        Phase::Waiting,
        "intermission first"
    );
    arena.run(INTERMISSION_SECS * TICK_HZ);
    assert_eq!(arena.line.state().phase(), Phase::Playing);
    assert!(arena.line.state().it().is_some(), "someone is it");
    for client in arena.clients.values() {
        let round = Round::all(&client.replica).next().expect("the round");
        assert_eq!(round.phase(), RoundPhase::Playing);
        assert_eq!(round.number(), 1);
        let its: Vec<_> = Runner::all(&client.replica).filter(|r| r.it()).collect();
        assert!(its.len() <= 1, "one it at most in view");
    }
    let zone = hearth_game::Game::zone(&Tag::default()).unwrap();
    let mut tags = 0;
    for _ in 0..ROUND_SECS * TICK_HZ {
        arena.tick();
        // Nobody is ever inside a wall, as any client sees it.
        for client in arena.clients.values() {
            for runner in Runner::all(&client.replica) {
                let at = client.replica.server_position(runner.id()).unwrap();
                assert!(!zone.blocked(at), "{} in a wall at {at:?}", runner.name());
            }
        }
        tags = arena.clients[&1]
            .messages
            .iter()
            .filter(|m| matches!(m, Message::Tagged { .. }))
            .count();
    }
    assert!(tags >= 1, "it caught someone in a minute");
    assert_eq!(arena.line.state().phase(), Phase::Over);
    for (player, client) in &arena.clients {
        let over: Vec<_> = client
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::RoundOver { winner, score } => Some((winner.clone(), *score)),
                _ => None,
            })
            .collect();
        assert_eq!(over.len(), 1, "player {player} heard the round end once");
        assert!(["ann", "ben", "cat", "dan"].contains(&over[0].0.as_str()));
        assert!(over[0].1 >= 30, "the winner scored {}", over[0].1);
        // Everyone's score is replicated to everyone who sees them; each
        // sees only its own best.
        for runner in Runner::all(&client.replica) {
            if !runner.owned() {
                assert_eq!(runner.best(), 0, "another's best is never sent");
            }
        }
        let me = client.me().unwrap();
        assert!(me.best() > 0, "player {player}'s own best is shown to them");
        assert!(client
            .messages
            .iter()
            .any(|m| matches!(m, Message::NewBest { .. })));
    }
    assert_eq!(
        arena.line.stats().moves_too_fast,
        0,
        "the honest clients keep to the speed"
    );
}

#[test]
fn the_same_seed_and_players_give_the_same_bytes() {
    let run = || {
        let mut arena = Arena::new(5);
        arena.keep_log = true;
        for player in 1..=5 {
            arena.join(player, &format!("p{player}"), None);
        }
        arena.run(ROUND_TICKS / 2);
        arena.log
    };
    let first = run();
    assert!(first.len() > 1000);
    assert_eq!(first, run());
}

#[test]
fn a_best_score_is_kept_between_sessions_and_shown_to_its_owner_only() {
    let mut arena = Arena::new(3);
    arena.join(1, "ann", None);
    arena.join(2, "ben", None);
    arena.run(ROUND_TICKS + 2);
    let best = arena.clients[&1].me().unwrap().best();
    assert!(best > 0);
    arena.leave(1);
    arena.run(2);
    let (_, saved) = arena
        .saves
        .iter()
        .find(|(p, _)| *p == 1)
        .expect("ann's record was saved")
        .clone();
    let record: TagRecord = serde_json::from_slice(&saved).unwrap();
    assert_eq!(record.best, i64::from(best));
    assert_eq!(record.rounds, 1);

    // Back, in a new session: her best is there, for her alone.
    arena.join(7, "ann", Some(saved));
    arena.run(3);
    assert_eq!(arena.clients[&7].me().unwrap().best(), best);
    // Ben sees ann once they are near (the next round's it chases), and
    // never her best.
    let mut ticks = 0;
    loop {
        let seen = Runner::all(&arena.clients[&2].replica)
            .find(|r| r.name() == "ann")
            .map(|r| r.best());
        if let Some(best_seen) = seen {
            assert_eq!(best_seen, 0);
            break;
        }
        arena.tick();
        ticks += 1;
        assert!(ticks < 3000, "ben never saw ann");
    }
}

#[test]
fn a_cheating_client_is_corrected_and_gets_nowhere_faster() {
    let mut arena = Arena::new(9);
    arena.join(1, "ann", None);
    arena.join(2, "cheat", None);
    arena.clients.get_mut(&2).unwrap().cheat = true;
    arena.run(3);
    let start = {
        let client = &arena.clients[&2];
        client
            .replica
            .server_position(client.replica.controlled().unwrap())
            .unwrap()
    };
    let ticks = 60;
    let mut moved = 0i64;
    let mut last = start;
    for _ in 0..ticks {
        arena.tick();
        let client = &arena.clients[&2];
        let now = client
            .replica
            .server_position(client.replica.controlled().unwrap())
            .unwrap();
        moved += last.distance(now);
        last = now;
    }
    let legal = i64::from(tag::SPEED) * 100 * i64::from(ticks) / i64::from(TICK_HZ);
    // Allowing the few ticks of banked movement the server forgives.
    assert!(moved <= legal + 5 * 30, "moved {moved}, legal {legal}");
    assert!(arena.line.stats().moves_too_fast > 0);
    assert!(arena.clients[&2].corrections > 0, "the cheat was corrected");
    assert_eq!(arena.clients[&1].corrections, 0);
}

#[test]
fn a_line_snapshotted_mid_round_resumes_byte_for_byte() {
    let game = Arc::new(Tag::default());
    let mut arena = Arena::with_line(GameLine::new(game.clone(), 21));
    for player in 1..=4 {
        arena.join(player, &format!("p{player}"), None);
    }
    arena.run(INTERMISSION_SECS * TICK_HZ + 200);
    assert_eq!(arena.line.state().phase(), Phase::Playing);
    let snapshot = arena.line.snapshot();
    let mut copy = Arena::with_line(GameLine::restore(game, &snapshot).unwrap());
    // The clients as they were at the snapshot, for the copy.
    copy.clients = arena.clients.clone();
    for ticks in 0..400 {
        let a: Vec<GameOutput> = arena.tick();
        let b: Vec<GameOutput> = copy.tick();
        assert_eq!(a, b, "tick {ticks} after the snapshot");
    }
}
