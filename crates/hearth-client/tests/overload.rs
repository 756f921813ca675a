//! A server that cannot keep its tick refuses newcomers, telling them when
//! to come back, while the players already in keep playing; once the load
//! is gone it admits again. The game here makes its own overload: a player
//! asks each tick to cost more than the tick period.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_client::game::GameSession;
use hearth_client::{Error, Event, Options};
use hearth_game::schema::{MessageSpec, Schema, Value, ValueType};
use hearth_game::{Ctx, Game, MessageId, PlayerId};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

/// Each tick costs what a player last asked (`load`, milliseconds); `ping`
/// is answered at once with `pong`.
struct Treadmill;

#[derive(Default, Serialize, Deserialize)]
struct Belt {
    load_ms: u64,
}

impl Game for Treadmill {
    type Line = Belt;
    type Player = ();

    fn schema(&self) -> Schema {
        let load = MessageSpec::to_server("load")
            .field("ms", ValueType::int(0, 500))
            .rate(5, 5);
        let ping = MessageSpec::to_server("ping")
            .field("n", ValueType::int(0, 1_000_000))
            .rate(20, 20);
        let pong = MessageSpec::to_client("pong").field("n", ValueType::int(0, 1_000_000));
        Schema::new("treadmill", vec![], vec![load, ping, pong]).unwrap()
    }

    fn new_line(&self, _: &mut Ctx<'_, ()>) -> Belt {
        Belt::default()
    }

    fn on_message(
        &self,
        belt: &mut Belt,
        ctx: &mut Ctx<'_, ()>,
        player: PlayerId,
        message: MessageId,
        values: &[Value],
    ) {
        let Value::Int(n) = values[0] else { return };
        if Some(message) == ctx.message("load") {
            belt.load_ms = n as u64;
        } else if Some(message) == ctx.message("ping") {
            let pong = ctx.message("pong").unwrap();
            ctx.send(player, pong, &[Value::Int(n)]).unwrap();
        }
    }

    fn on_tick(&self, belt: &mut Belt, _: &mut Ctx<'_, ()>) {
        // A game's tick that takes longer than its period: the one place a
        // test game reads a clock.
        let until = Instant::now() + Duration::from_millis(belt.load_ms);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// A player of the treadmill: its session and replica.
struct Walker {
    session: GameSession,
    replica: GameReplica,
}

impl Walker {
    async fn join(url: &str) -> Result<Walker, Error> {
        let schema = Arc::new(Treadmill.schema());
        let session = GameSession::join(url, Options::anonymous(), schema.version()).await?;
        Ok(Walker {
            session,
            replica: GameReplica::new(schema),
        })
    }

    async fn send(&self, message: &str, n: i64) {
        let bytes = self.replica.message(message, vec![Value::Int(n)]).unwrap();
        self.session.send(RELIABLE_CHANNEL, &bytes).await.unwrap();
    }

    /// Waits for the `pong` of `n`; how long it took.
    async fn ping(&mut self, n: i64) -> Duration {
        let sent = Instant::now();
        self.send("ping", n).await;
        loop {
            assert!(sent.elapsed() < WAIT, "no pong {n}");
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(100), self.session.next_event()).await
            else {
                continue;
            };
            let Event::Message { channel, payload } = event else {
                continue;
            };
            match channel {
                RELIABLE_CHANNEL => self.replica.apply_reliable(&payload).unwrap(),
                STATE_CHANNEL => self.replica.apply_frame(&payload).unwrap(),
                _ => continue,
            }
            if let Some(ack) = self.replica.poll_ack() {
                let _ = self.session.send(STATE_CHANNEL, &ack).await;
            }
            while let Some(event) = self.replica.poll_event() {
                if let GameEvent::Message { values, .. } = event {
                    if values == [Value::Int(n)] {
                        return sent.elapsed();
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_refuses_newcomers_with_when_to_return_and_keeps_its_players() {
    let mut config = common::config(&common::data_dir("overload"));
    config.accounts.allow_anonymous = true;
    let server = hearth_server::start_game(config, Treadmill).await.unwrap();
    let url = format!("tcp://{}", server.game_tcp);
    let mut first = Walker::join(&url).await.expect("an idle server admits");
    first.ping(1).await;
    assert_eq!(server.game.refusal(), None);

    // Each tick now costs 70 ms of a 50 ms period.
    first.send("load", 70).await;
    let busy_by = Instant::now() + WAIT;
    while server.game.refusal().is_none() {
        assert!(Instant::now() < busy_by, "the host never turned busy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A newcomer is told at once, and told when to come back.
    let asked = Instant::now();
    let refused = match Walker::join(&url).await {
        Ok(_) => panic!("admitted while the server is overloaded"),
        Err(error) => error.to_string(),
    };
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        refused.contains("the server is busy: try again in 2 s"),
        "{refused}"
    );
    // The player already in still plays (slowly: each tick is late).
    let rtt = first.ping(2).await;
    assert!(rtt < Duration::from_secs(2), "{rtt:?}");

    // The load goes: newcomers are admitted again.
    first.send("load", 0).await;
    let clear_by = Instant::now() + WAIT;
    while server.game.refusal().is_some() {
        assert!(Instant::now() < clear_by, "the host never cleared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut second = Walker::join(&url).await.expect("admitted again");
    second.ping(3).await;
    let counters = &server.game.counters;
    assert!(
        counters
            .busy_spells
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let metrics = reqwest::get(format!("{}/metrics", server.web_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hearth_logins_total{outcome=\"server_busy\"} 1"),
        "{metrics}"
    );
    server.shutdown("the test is over").await;
}

/// Sends pings `first..=last` at once, then collects the pongs until the
/// last: every one, in order, on a session that stays open.
async fn burst_of_pings(player: &mut Walker, first: i64, last: i64) -> Vec<i64> {
    for n in first..=last {
        player.send("ping", n).await;
    }
    let mut pongs = Vec::new();
    let until = Instant::now() + WAIT;
    while pongs.last() != Some(&last) {
        assert!(Instant::now() < until, "pongs so far: {pongs:?}");
        let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), player.session.next_event()).await
        else {
            continue;
        };
        match event {
            Event::Message { channel, payload } if channel == RELIABLE_CHANNEL => {
                player.replica.apply_reliable(&payload).unwrap();
            }
            Event::Message { channel, payload } if channel == STATE_CHANNEL => {
                player.replica.apply_frame(&payload).unwrap();
            }
            Event::Closed(reason) => panic!("closed: {reason}; pongs so far: {pongs:?}"),
            _ => continue,
        }
        while let Some(event) = player.replica.poll_event() {
            if let GameEvent::Message { values, .. } = event {
                if let [Value::Int(n)] = values[..] {
                    pongs.push(n);
                }
            }
        }
    }
    pongs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_messages_the_host_has_no_room_for_wait_in_their_session_and_none_is_lost() {
    let mut config = common::config(&common::data_dir("host-queue"));
    config.accounts.allow_anonymous = true;
    // Room for one message between two ticks.
    config.world.input_queue = 1;
    let server = hearth_server::start_game(config, Treadmill).await.unwrap();
    // Over a stream and over datagrams (KCP), at the same time.
    let mut players = Vec::new();
    for url in [
        format!("tcp://{}", server.game_tcp),
        format!("udp://{}", server.game_udp.expect("UDP is served")),
    ] {
        let mut player = Walker::join(&url).await.expect("admitted");
        player.ping(1).await;
        players.push(player);
    }
    // Slow ticks (40 ms of each 50), then a burst of reliable messages from
    // each: far more than the host's queue holds.
    players[0].send("load", 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stream, datagrams) = players.split_at_mut(1);
    let (over_stream, over_datagrams) = tokio::join!(
        burst_of_pings(&mut stream[0], 2, 16),
        burst_of_pings(&mut datagrams[0], 2, 16)
    );
    for pongs in [over_stream, over_datagrams] {
        assert_eq!(pongs, (2..=16).collect::<Vec<_>>(), "every one, in order");
    }
    let counters = &server.game.counters;
    let held = counters
        .messages_held
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(held >= 1, "the host's queue was never full: {held} held");
    assert_eq!(
        counters
            .held_overflows
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Both keep playing.
    for player in &mut players {
        player.ping(100).await;
    }
    server.shutdown("the test is over").await;
}
