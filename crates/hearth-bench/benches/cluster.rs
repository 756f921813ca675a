//! Players talking across the nodes of a cluster: how long a whisper takes.
//!
//! What it measures, on a real NATS server and a real PostgreSQL (started by
//! `scripts/nats-up` and `scripts/postgres-up`):
//!
//! 1. **The relay's hop**: two nodes' relays (`hearth_cluster::relay`, as
//!    every node runs one) and a player name present on the second; the
//!    first sends a whisper for it, one at a time, and the time from handing
//!    it to the relay to the second node's game host having it is taken
//!    ([`HOPS`] of them). A zone message's hop likewise. This is what the
//!    cluster adds to a message: the goal is p99 under 10 ms on loopback.
//! 2. **Whispers end to end**: two nodes (`hearth serve` as a library, in
//!    this process), a receiving player on each, and [`SENDERS`] players on
//!    the first node, each whispering to both receivers. The time from the
//!    sender's client sending to the receiver's client showing it, for the
//!    receiver on the same node and the one on the other node. Both include
//!    the game's ticks (the sender's line handles the message at its tick;
//!    the receiver's line sends it at its next): the difference between the
//!    two is what a whisper to another node costs a player.
//!
//! 3. **Forwarding**: a player on one node says something to their line
//!    and hears it back, in a zone of their own node and then in a zone
//!    pinned to the other node (`[cluster] zones`). Both include the line's
//!    tick; the difference is what the forwarding (client to home to zone
//!    node and back) adds.
//!
//! 4. **A line's move**: [`MOVERS`] players on the first node in one line
//!    of the default world (its NPCs keep their clients' frames coming);
//!    the node drains, so the line moves whole to the other node and its
//!    players follow it ([`ROUNDS`] drains, back and forth). A player's
//!    pause is the time from the last update their client had in the old
//!    line to being ready in the moved one: the goal is p99 under 500 ms.
//!
//! Run it: `cargo bench -p hearth-bench --bench cluster`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_client::world::generated::{self, Message, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_client::{connect, Event, Options};
use hearth_cluster::relay::{self, Incoming, Outgoing, RelaySettings};
use hearth_cluster::test_servers::{nats_url, postgres_url, unique};
use hearth_cluster::{connect_nats, ClusterName, NodeId};
use hearth_server::{Config, Running};
use tokio::sync::Mutex;

/// Relay hops measured, of each kind.
const HOPS: usize = 2000;
/// Players on the first node whispering to both receivers.
const SENDERS: usize = 40;
/// Whispers each sender sends to each receiver (within the chat burst of 5).
const WHISPERS_EACH: usize = 2;
const PASSWORD: &str = "correct horse";
/// Players in the line that moves.
const MOVERS: usize = 40;
/// Drains, back and forth between the two nodes.
const ROUNDS: usize = 4;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 50), percentile(&samples, 99));
    println!(
        "{name:<44} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
    (p50, p99)
}

async fn relay_hops() -> Duration {
    let cluster = ClusterName::new(&unique("bench-relay")).unwrap();
    let start = |name: &'static str| {
        let cluster = cluster.clone();
        async move {
            let id = NodeId::new(name).unwrap();
            let client = connect_nats(&nats_url(), &id).await.unwrap();
            let settings = RelaySettings {
                schema: "bench".into(),
                fold: |name| name.to_lowercase(),
            };
            relay::start(&client, &cluster, &id, settings)
                .await
                .unwrap()
        }
    };
    let (a, _a_in) = start("a").await;
    let (b, mut b_in) = start("b").await;
    b.present("target");
    while b
        .counters
        .listening
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut named = Vec::with_capacity(HOPS);
    let mut zone = Vec::with_capacity(HOPS);
    for n in 0..HOPS {
        let body = (n as u32).to_le_bytes().to_vec();
        let sent = Instant::now();
        a.send(Outgoing::Named {
            sender: 1,
            name: "target".into(),
            message: 1,
            body: body.clone(),
        });
        match b_in.recv().await.unwrap() {
            Incoming::Named {
                body: got, answer, ..
            } => {
                named.push(sent.elapsed());
                assert_eq!(got, body);
                answer.answer(true);
            }
            other => panic!("{other:?}"),
        }
        let sent = Instant::now();
        a.send(Outgoing::Zone {
            zone: "town".into(),
            message: 1,
            body: body.clone(),
        });
        match b_in.recv().await.unwrap() {
            Incoming::Zone { body: got, .. } => {
                zone.push(sent.elapsed());
                assert_eq!(got, body);
            }
            other => panic!("{other:?}"),
        }
    }
    println!("1. the relay's hop (one node's relay to another's game host, over NATS)");
    let (_, named_p99) = summary("  a whisper", named);
    summary("  a zone message", zone);
    named_p99
}

fn node_config(cluster: &str, node: &str) -> Config {
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: std::env::temp_dir().join(unique(&format!("hearth-bench-{node}"))),
        database_url: postgres_url(),
        ..Config::default()
    };
    config.accounts.allow_anonymous = true;
    config.cluster.nats = nats_url();
    config.cluster.name = cluster.to_owned();
    config.cluster.node = node.to_owned();
    config
}

async fn join(server: &Running, options: Options) -> WorldClient {
    let mut options = options;
    options
        .options
        .push_str(&format!("?schema={}", generated::VERSION));
    let url = format!("tcp://{}", server.game_tcp);
    let mut world = WorldClient::new(connect(&url, options).await.unwrap());
    let mut entered = false;
    let ready = world
        .until(Duration::from_secs(30), |update, client| {
            match update {
                WorldUpdate::Message(Message::Entered { .. }) => entered = true,
                WorldUpdate::Session(Event::Closed(reason)) => panic!("closed: {reason}"),
                _ => {}
            }
            entered && client.is_ready()
        })
        .await;
    assert!(ready.is_some(), "entered");
    world
}

/// Receives whispers "w{n}" until `count` arrived: each one's time from
/// `sent[n]`.
async fn receive(
    mut world: WorldClient,
    sent: Arc<Mutex<Vec<Option<Instant>>>>,
    count: usize,
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(60);
    while took.len() < count && Instant::now() < deadline {
        let mut arrived = None;
        world
            .until(Duration::from_secs(5), |update, _| {
                if let WorldUpdate::Message(Message::Chat { text, .. }) = update {
                    arrived = text.strip_prefix('w').and_then(|n| n.parse::<usize>().ok());
                }
                arrived.is_some()
            })
            .await;
        let now = Instant::now();
        if let Some(n) = arrived {
            if let Some(at) = sent.lock().await[n] {
                took.push(now - at);
            }
        }
    }
    took
}

async fn whispers_end_to_end() -> (Duration, Duration, Duration, Duration) {
    let cluster = unique("bench-chat");
    let first = hearth_server::start(node_config(&cluster, "b1"))
        .await
        .unwrap();
    let second = hearth_server::start(node_config(&cluster, "b2"))
        .await
        .unwrap();
    let accounts = hearth_client::Accounts::new(&format!("http://{}", first.web));
    let near_name = unique("near").replace('-', "_");
    let far_name = unique("far").replace('-', "_");
    for name in [&near_name, &far_name] {
        accounts.register(name, PASSWORD).await.unwrap();
    }
    let near = join(&first, Options::password(&near_name, PASSWORD)).await;
    let far = join(&second, Options::password(&far_name, PASSWORD)).await;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(join(&first, Options::anonymous()).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = SENDERS * WHISPERS_EACH;
    let near_sent = Arc::new(Mutex::new(vec![None; count]));
    let far_sent = Arc::new(Mutex::new(vec![None; count]));
    let near_task = tokio::spawn(receive(near, near_sent.clone(), count));
    let far_task = tokio::spawn(receive(far, far_sent.clone(), count));
    // One whisper every 10 ms, alternating receivers, spread over the
    // senders (each within its burst).
    let mut n = 0;
    for round in 0..WHISPERS_EACH {
        for sender in senders.iter_mut() {
            for (to, sent) in [(&near_name, &near_sent), (&far_name, &far_sent)] {
                let index = round * SENDERS + n % SENDERS;
                sent.lock().await[index] = Some(Instant::now());
                sender
                    .say(SayScope::Whisper, to, &format!("w{index}"))
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            n += 1;
        }
    }
    let near_took = near_task.await.unwrap();
    let far_took = far_task.await.unwrap();
    println!(
        "2. whispers end to end, client to client, over {} senders (the game ticks at {} Hz)",
        SENDERS,
        hearth_world::parse_zone_file(hearth_world::DEFAULT_ZONES).unwrap()[0]
            .spec
            .tick_hz
    );
    let (near_p50, near_p99) = summary("  to a player on the same node", near_took);
    let (far_p50, far_p99) = summary("  to a player on the other node", far_took);
    drop(senders);
    first.shutdown("bench over").await;
    second.shutdown("bench over").await;
    (near_p50, near_p99, far_p50, far_p99)
}

/// Two small open zones; the second is pinned to node "b2".
const ZONES: &str = include_str!("../../hearth-client/tests/data/two_small_zones.toml");

/// One player says something to their line `SAYS` times (a second apart,
/// within the chat's rate): from saying it until hearing it back from the
/// line, which runs where the zone does.
async fn says(world: &mut WorldClient) -> Vec<Duration> {
    const SAYS: usize = 15;
    let mut took = Vec::with_capacity(SAYS);
    for n in 0..SAYS {
        tokio::time::sleep(Duration::from_millis(1_050)).await;
        let text = format!("echo {n}");
        let sent = Instant::now();
        world.say(SayScope::Line, "", &text).await;
        let heard = world
            .until(Duration::from_secs(10), |u, _| {
                matches!(u, WorldUpdate::Message(Message::Chat { text: said, .. }) if *said == text)
            })
            .await;
        assert!(heard.is_some(), "heard back");
        took.push(sent.elapsed());
    }
    took
}

/// A player's line chat heard back, in a zone of their own node against a
/// zone pinned to another node (forwarded both ways).
async fn forwarded_moves() -> (Duration, Duration, Duration, Duration) {
    let cluster = unique("bench-zones");
    let zones = std::env::temp_dir().join(unique("bench-zones.toml"));
    std::fs::write(&zones, ZONES).unwrap();
    let config = |node: &str| {
        let mut config = node_config(&cluster, node);
        config.world.zones = Some(zones.clone());
        config.cluster.heartbeat_ms = 200;
        config.cluster.zones.insert("caves".into(), "b2".into());
        config
    };
    let home = hearth_server::start(config("b1")).await.unwrap();
    let other = hearth_server::start(config("b2")).await.unwrap();
    while home
        .cluster
        .as_ref()
        .unwrap()
        .presence
        .members()
        .await
        .unwrap()
        .len()
        < 2
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut player = join(&home, Options::anonymous()).await;
    let here = says(&mut player).await;
    player.travel("caves").await;
    player
        .until(Duration::from_secs(10), |u, w| {
            matches!(u, WorldUpdate::Message(Message::Entered { zone }) if zone == "caves")
                && w.is_ready()
        })
        .await
        .expect("in the caves");
    let there = says(&mut player).await;
    println!("3. a player's line chat, from saying it until hearing it back from the line");
    let (here_p50, here_p99) = summary("  in a zone of the player's node", here);
    let (there_p50, there_p99) = summary("  in a zone pinned to the other node", there);
    drop(player);
    home.shutdown("bench over").await;
    other.shutdown("bench over").await;
    (here_p50, here_p99, there_p50, there_p99)
}

/// Follows one player's client through `moves` line moves: each move's
/// pause, from the last actor the client saw move in the old line to the
/// first actor it sees in the new one. (Only what the server's frames
/// bring counts: the replica's own reset at a new line despawns everything
/// at once, which is not the world going on.)
async fn pauses(mut world: WorldClient, moves: usize) -> Vec<Duration> {
    let mut pauses = Vec::with_capacity(moves);
    let mut last_seen = Instant::now();
    let mut entered_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    while pauses.len() < moves && Instant::now() < deadline {
        world
            .until(Duration::from_millis(500), |update, _| {
                let now = Instant::now();
                match update {
                    WorldUpdate::Entered => entered_since = entered_since.or(Some(last_seen)),
                    WorldUpdate::Session(Event::Closed(reason)) => panic!("closed: {reason}"),
                    WorldUpdate::Moved(_) | WorldUpdate::Spawned(_) => {
                        if let Some(since) = entered_since.take() {
                            pauses.push(now - since);
                        }
                        last_seen = now;
                    }
                    _ => {}
                }
                false
            })
            .await;
    }
    pauses
}

/// A line that moves between nodes (drains, back and forth): its players'
/// pauses.
async fn line_moves() -> (Duration, Duration) {
    let cluster = unique("bench-moves");
    let config = |node: &str| {
        let mut config = node_config(&cluster, node);
        config.cluster.heartbeat_ms = 200;
        config
    };
    let first = hearth_server::start(config("b1")).await.unwrap();
    let second = hearth_server::start(config("b2")).await.unwrap();
    for node in [&first, &second] {
        let presence = &node.cluster.as_ref().unwrap().presence;
        while presence.members().await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut watching = Vec::new();
    for _ in 0..MOVERS {
        let world = join(&first, Options::anonymous()).await;
        watching.push(tokio::spawn(pauses(world, ROUNDS)));
    }
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let (from, to) = match round % 2 {
            0 => (&first, &second),
            _ => (&second, &first),
        };
        to.game.drain(false).await;
        from.game.drain(true).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = from.game.status().await.expect("the node runs");
            if lines.iter().all(|line| line.players == 0) {
                break;
            }
            assert!(Instant::now() < deadline, "the drain never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut all = Vec::new();
    let mut by_round: Vec<Vec<Duration>> = vec![Vec::new(); ROUNDS];
    for watcher in watching {
        let pauses = watcher.await.unwrap();
        for (round, pause) in pauses.iter().enumerate() {
            by_round[round.min(ROUNDS - 1)].push(*pause);
        }
        all.extend(pauses);
    }
    for (round, pauses) in by_round.into_iter().enumerate() {
        let direction = match round % 2 {
            0 => "away from the players' node",
            _ => "back to the players' node",
        };
        summary(&format!("  move {} ({direction})", round + 1), pauses);
    }
    println!("4. a line moved whole to another node (a drain), its players following");
    let expected = MOVERS * ROUNDS;
    assert_eq!(all.len(), expected, "every player followed every move");
    let (p50, p99) = summary("  a player's pause", all);
    first.shutdown("bench over").await;
    second.shutdown("bench over").await;
    (p50, p99)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let hop_p99 = relay_hops().await;
        let (near_p50, near_p99, far_p50, far_p99) = whispers_end_to_end().await;
        let (here_p50, here_p99, there_p50, there_p99) = forwarded_moves().await;
        let (move_p50, move_p99) = line_moves().await;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("summary");
        println!(
            "  the relay's hop for a whisper: p99 {:.2} ms (goal: under 10 ms): {}",
            ms(hop_p99),
            if hop_p99 < Duration::from_millis(10) {
                "met"
            } else {
                "NOT met"
            }
        );
        println!(
            "  a whisper to another node against one to the same node, end to end: p50 {:.1} / {:.1} ms ({:.2}x), p99 {:.1} / {:.1} ms ({:.2}x)",
            ms(far_p50),
            ms(near_p50),
            ms(far_p50) / ms(near_p50).max(0.001),
            ms(far_p99),
            ms(near_p99),
            ms(far_p99) / ms(near_p99).max(0.001),
        );
        println!(
            "  line chat heard back in a zone pinned to another node against one at home: p50 {:.1} / {:.1} ms (+{:.1} ms), p99 {:.1} / {:.1} ms (+{:.1} ms)",
            ms(there_p50),
            ms(here_p50),
            ms(there_p50) - ms(here_p50),
            ms(there_p99),
            ms(here_p99),
            ms(there_p99) - ms(here_p99),
        );
        println!(
            "  a line's move between nodes, its players' pause: p50 {:.1} ms, p99 {:.1} ms (goal: p99 under 500 ms): {}",
            ms(move_p50),
            ms(move_p99),
            if move_p99 < Duration::from_millis(500) {
                "met"
            } else {
                "NOT met"
            }
        );
    });
}
