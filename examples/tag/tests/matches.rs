//! Whole tag matches in one process, deterministic: rounds start, "it"
//! passes by touch, scores and the round's end reach everyone, each
//! player's best is kept between sessions and seen by them alone, walls and
//! the speed hold (a cheating client is corrected and gets nowhere faster),
//! a line snapshotted mid-round resumes byte for byte, rounds last what the
//! game says, and the bots tell what happened as `tag play` prints it.

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
        let round = Round::all(client.replica()).next().expect("the round");
        assert_eq!(round.phase(), RoundPhase::Playing);
        assert_eq!(round.number(), 1);
        let its: Vec<_> = Runner::all(client.replica()).filter(|r| r.it()).collect();
        assert!(its.len() <= 1, "one it at most in view");
    }
    let zone = hearth_game::Game::zones(&Tag::default()).remove(0);
    let mut tags = 0;
    for _ in 0..ROUND_SECS * TICK_HZ {
        arena.tick();
        // Nobody is ever inside a wall, as any client sees it.
        for client in arena.clients.values() {
            for runner in Runner::all(client.replica()) {
                let at = client.replica().server_position(runner.id()).unwrap();
                assert!(!zone.blocked(at), "{} in a wall at {at:?}", runner.name());
            }
        }
        tags = arena.clients[&1]
            .messages()
            .iter()
            .filter(|m| matches!(m, Message::Tagged { .. }))
            .count();
    }
    assert!(tags >= 1, "it caught someone in a minute");
    assert_eq!(arena.line.state().phase(), Phase::Over);
    for (player, client) in &arena.clients {
        let over: Vec<_> = client
            .messages()
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
        for runner in Runner::all(client.replica()) {
            if !runner.owned() {
                assert_eq!(runner.best(), 0, "another's best is never sent");
            }
        }
        let me = client.me().unwrap();
        assert!(me.best() > 0, "player {player}'s own best is shown to them");
        assert!(client
            .messages()
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
        let seen = Runner::all(arena.clients[&2].replica())
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
    arena
        .clients
        .get_mut(&2)
        .unwrap()
        .set_step(tag::bot::STEP * 3);
    arena.run(3);
    let start = {
        let client = &arena.clients[&2];
        client
            .replica()
            .server_position(client.replica().controlled().unwrap())
            .unwrap()
    };
    let ticks = 60;
    let mut moved = 0i64;
    let mut last = start;
    for _ in 0..ticks {
        arena.tick();
        let client = &arena.clients[&2];
        let now = client
            .replica()
            .server_position(client.replica().controlled().unwrap())
            .unwrap();
        moved += last.distance(now);
        last = now;
    }
    let legal = i64::from(tag::SPEED) * 100 * i64::from(ticks) / i64::from(TICK_HZ);
    // Allowing the few ticks of banked movement the server forgives.
    assert!(moved <= legal + 5 * 30, "moved {moved}, legal {legal}");
    assert!(arena.line.stats().moves_too_fast > 0);
    assert!(
        arena.clients[&2].corrections() > 0,
        "the cheat was corrected"
    );
    assert_eq!(arena.clients[&1].corrections(), 0);
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

#[test]
fn a_round_lasts_what_the_game_says_and_the_bots_tell_it_as_it_was() {
    // A small arena: everyone always in view of everyone.
    let game = Tag {
        round_secs: 8,
        map: common::SMALL.to_owned(),
        ..Tag::default()
    };
    assert!(game.check().is_ok());
    let mut arena = Arena::with_line(GameLine::new(Arc::new(game), 17));
    arena.join(1, "ann", None);
    arena.join(2, "ben", None);
    arena.run(INTERMISSION_SECS * TICK_HZ + 1);
    assert_eq!(arena.line.state().phase(), Phase::Playing);
    let round = Round::all(arena.clients[&1].replica()).next().unwrap();
    assert_eq!(round.seconds_left(), 8);
    arena.run(8 * TICK_HZ - 2);
    assert_eq!(arena.line.state().phase(), Phase::Playing, "not over early");
    arena.run(2);
    assert_eq!(
        arena.line.state().phase(),
        Phase::Over,
        "over after 8 seconds"
    );

    let it = |player| arena.clients[&player].me().unwrap().name().to_owned();
    for (player, said) in &arena.said {
        let said = said.join("\n");
        assert!(
            said.starts_with("in the arena: 14 by 10 cells, seeing 16 cells around\n"),
            "{said}"
        );
        let me = it(*player);
        assert!(said.contains(&format!("I am {me}, at ")), "{said}");
        let other = if me == "ann" { "ben" } else { "ann" };
        assert!(
            said.contains(&format!("{other} comes into view at ")),
            "{said}"
        );
        let client = &arena.clients[player];
        // Every message of the game, told in words, in order.
        let told: Vec<&str> = said
            .lines()
            .filter(|l| {
                l.contains(" tagged ")
                    || l.starts_with("round 1 is over")
                    || l.starts_with("my new best")
            })
            .collect();
        let messages: Vec<String> = client
            .messages()
            .iter()
            .map(|m| match m {
                Message::Tagged { .. } => "tagged".to_owned(),
                Message::RoundOver { winner, score } => {
                    format!("round 1 is over: {winner} won with {score} points")
                }
                Message::NewBest { score } => format!("my new best: {score}"),
            })
            .collect();
        assert_eq!(told.len(), messages.len(), "{said}");
        for (line, message) in told.iter().zip(&messages) {
            match message.as_str() {
                "tagged" => assert!(
                    ["ann tagged ben", "ben tagged ann"].contains(line),
                    "{line}"
                ),
                whole => assert_eq!(*line, whole),
            }
        }
        let started = said
            .lines()
            .find(|l| l.starts_with("round 1 starts: "))
            .expect("the round's start is told");
        assert!(
            started == "round 1 starts: ann is it" || started == "round 1 starts: ben is it",
            "{started}"
        );
    }
    // Both tell the same start, the same tags and the same end.
    let same = |said: &Vec<String>| -> Vec<String> {
        said.iter()
            .filter(|l| l.starts_with("round ") || l.contains(" tagged "))
            .cloned()
            .collect()
    };
    assert_eq!(same(&arena.said[&1]), same(&arena.said[&2]));
    // A runner seen moving is told where it is, a cell at a time.
    let client = arena.clients.get_mut(&1).unwrap();
    let ben = Runner::all(client.replica())
        .find(|r| !r.owned())
        .unwrap()
        .id();
    let at = client.replica().server_position(ben).unwrap();
    let first = client.sightings();
    assert_eq!(
        first,
        [format!(
            "ben is at {:.2},{:.2}",
            f64::from(at.x) / 100.0,
            f64::from(at.y) / 100.0
        )]
    );
    assert!(client.sightings().is_empty(), "nothing new: nothing told");
}

#[test]
fn an_arena_needs_a_spawn_point_and_known_cells() {
    assert!(Tag::default().check().is_ok());
    let no_spawn = Tag {
        map: "#####\n#...#\n#####\n".to_owned(),
        ..Tag::default()
    };
    assert!(no_spawn.check().unwrap_err().to_string().contains("spawn"));
    let unknown = Tag {
        map: "#####\n#.S?#\n#####\n".to_owned(),
        ..Tag::default()
    };
    assert!(unknown.check().is_err());
}
