//! A zone pinned to one node of a cluster (`[cluster] zones`): players of
//! every node play in it there, their sessions staying on their own node.
//! A player who travels there from another node arrives in the zone's line
//! on the zone's node (their node has no line of it), sees and is seen by
//! the players there, hears the line's chat; comes back to their own node's
//! zones when they travel on; and their data is saved by their own node
//! (the one that holds their account's claim), also when they leave while
//! in the pinned zone: their next login puts them straight back there.
//! Real nodes, a real NATS server, a real PostgreSQL, real sockets.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_client::world::generated::{Message, Player, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_cluster::test_servers::unique;
use hearth_game::Pos;
use hearth_server::{Config, Running};

mod common;
use common::cluster::{arrival, join_world as join, PASSWORD, WAIT};

/// Two small open zones, one spawn point each: players who arrive in one
/// stand together and see each other.
const ZONES: &str = include_str!("data/two_small_zones.toml");

/// A node of `cluster` on the two small zones, the caves pinned to "z2",
/// rewriting its record every 200 ms.
fn node_config(cluster: &str, node: &str) -> Config {
    let mut config = common::cluster::node_config(cluster, node);
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let zones = config.data_dir.join("zones.toml");
    std::fs::write(&zones, ZONES).unwrap();
    config.world.zones = Some(zones);
    config.cluster.heartbeat_ms = 200;
    config
        .cluster
        .zones
        .insert("caves".to_owned(), "z2".to_owned());
    config
}

fn sees(world: &WorldClient, name: &str) -> bool {
    Player::all(world.replica()).any(|p| p.name() == name)
}

/// Players in each of `server`'s lines: (zone, players).
async fn lines(server: &Running) -> Vec<(String, usize)> {
    let mut lines: Vec<(String, usize)> = server
        .game
        .status()
        .await
        .unwrap()
        .into_iter()
        .filter(|line| line.players > 0)
        .map(|line| (line.zone, line.players))
        .collect();
    lines.sort();
    lines
}

/// Waits until each node has the other in its list of live nodes (read
/// every heartbeat): where players of the pinned zone go.
async fn meet(a: &Running, b: &Running) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for (from, to) in [(a, b), (b, a)] {
        let name = to.cluster.as_ref().unwrap().id.name().to_owned();
        while from.cluster.as_ref().unwrap().node_id(&name).is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the nodes never met"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_of_every_node_play_in_a_zone_pinned_to_one() {
    let cluster = unique("zones");
    let home = hearth_server::start(node_config(&cluster, "z1"))
        .await
        .unwrap();
    let caves = hearth_server::start(node_config(&cluster, "z2"))
        .await
        .unwrap();
    // Each node learns the other's id from the list of nodes (every
    // heartbeat).
    let deadline = tokio::time::Instant::now() + WAIT;
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes never met"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = ["ann", "bo"]
        .iter()
        .map(|n| unique(n).replace('-', "_"))
        .collect();
    for name in &names {
        home.accounts.register(name, PASSWORD).await.unwrap();
    }
    let (mut ann, zone) = join(&home, &names[0]).await;
    assert_eq!(zone, "meadow");
    let (mut bo, _) = join(&caves, &names[1]).await;

    // Ann travels to the caves: her session stays on z1, her line is z2's.
    ann.travel("caves").await;
    assert_eq!(arrival(&mut ann).await, "caves");
    bo.travel("caves").await;
    assert_eq!(arrival(&mut bo).await, "caves");
    assert_eq!(lines(&caves).await, [("caves".to_owned(), 2)]);
    assert!(
        lines(&home).await.is_empty(),
        "z1 runs no line of the caves"
    );
    // They see each other, and hear the line's chat.
    let (ann_name, bo_name) = (names[0].clone(), names[1].clone());
    assert!(sees(&ann, &bo_name) || ann.until(WAIT, |_, w| sees(w, &bo_name)).await.is_some());
    assert!(sees(&bo, &ann_name) || bo.until(WAIT, |_, w| sees(w, &ann_name)).await.is_some());
    // Ann walks (her moves go through z1 to z2's line): Bo sees her arrive.
    let target = Pos::cell_centre(7, 2);
    ann.move_to(target);
    let at = |w: &WorldClient, name: &str| {
        Player::all(w.replica())
            .find(|p| p.name() == name)
            .and_then(|p| w.replica().server_position(p.id()))
    };
    // Both clients run at once: Ann's walks, Bo's watches.
    let (walked, seen) = tokio::join!(
        ann.until(WAIT, |_, w| at(w, &ann_name) == Some(target)),
        bo.until(WAIT, |_, w| at(w, &ann_name) == Some(target)),
    );
    assert!(walked.is_some(), "z2 moved Ann: {:?}", at(&ann, &ann_name));
    assert!(
        seen.is_some() || at(&bo, &ann_name) == Some(target),
        "Bo saw Ann walk: {:?}",
        at(&bo, &ann_name)
    );
    bo.say(SayScope::Line, "", "welcome to the caves").await;
    let heard = ann
        .until(WAIT, |update, _| {
            matches!(update, WorldUpdate::Message(Message::Chat { text, .. }) if text.as_str() == "welcome to the caves")
        })
        .await;
    assert!(heard.is_some(), "ann heard the caves' line chat through z1");
    // z2 said it took her in: z1 does not take her back when the wait for
    // that answer (3 s) has passed.
    let moved = ann
        .until(Duration::from_millis(3_500), |update, _| {
            matches!(update, WorldUpdate::Message(Message::Entered { .. }))
        })
        .await;
    assert!(moved.is_none(), "still in the caves: {moved:?}");

    // Ann leaves while in the caves: z2 lets her go and sends her last
    // save to z1, which writes it (z2 writes nothing of hers).
    let (home_saves, caves_saves) = (
        home.game.counters.saves.load(Ordering::Relaxed),
        caves.game.counters.saves.load(Ordering::Relaxed),
    );
    let left = tokio::time::Instant::now();
    drop(ann);
    let deadline = tokio::time::Instant::now() + WAIT;
    while lines(&caves).await != [("caves".to_owned(), 1)] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ann never left the caves"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while home.game.counters.saves.load(Ordering::Relaxed) == home_saves {
        assert!(tokio::time::Instant::now() < deadline, "z1 never saved ann");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        left.elapsed() < Duration::from_secs(5),
        "the last save came from z2 (not after z1 gave up waiting for it): {:?}",
        left.elapsed()
    );
    assert_eq!(
        caves.game.counters.saves.load(Ordering::Relaxed),
        caves_saves,
        "the caves' node wrote nothing of a player of z1"
    );

    // Her next login on z1 puts her straight back in the caves (her saved
    // place), on z2; then she travels home to the meadow, on z1.
    let (mut ann, zone) = join(&home, &names[0]).await;
    assert_eq!(zone, "caves");
    assert_eq!(lines(&caves).await, [("caves".to_owned(), 2)]);
    ann.travel("meadow").await;
    assert_eq!(arrival(&mut ann).await, "meadow");
    assert_eq!(lines(&home).await, [("meadow".to_owned(), 1)]);
    assert_eq!(lines(&caves).await, [("caves".to_owned(), 1)]);
    let forwarded = &home.cluster.as_ref().unwrap().forward;
    assert_eq!(forwarded.malformed.load(Ordering::Relaxed), 0);
    assert!(forwarded.sent.load(Ordering::Relaxed) > 0);
    let metrics = common::metrics(home.web).await;
    assert!(
        metrics.contains("hearth_cluster_forward_messages_total{outcome=\"sent\"}"),
        "{metrics}"
    );

    drop((ann, bo));
    home.shutdown("test over").await;
    caves.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_in_a_pinned_zone_whose_node_stops_is_back_home_without_reconnecting() {
    let cluster = unique("zones-stop");
    let home = hearth_server::start(node_config(&cluster, "z1"))
        .await
        .unwrap();
    let caves = hearth_server::start(node_config(&cluster, "z2"))
        .await
        .unwrap();
    meet(&home, &caves).await;
    let name = unique("cy").replace('-', "_");
    home.accounts.register(&name, PASSWORD).await.unwrap();
    let (mut cy, _) = join(&home, &name).await;
    cy.travel("caves").await;
    assert_eq!(arrival(&mut cy).await, "caves");
    // The caves' node stops: it lets Cy go and sends her data home, and her
    // own node takes her back into its lines; her session never closed.
    caves.shutdown("test over").await;
    assert_eq!(arrival(&mut cy).await, "meadow");
    assert_eq!(lines(&home).await, [("meadow".to_owned(), 1)]);
    drop(cy);
    home.shutdown("test over").await;
}
