//! Players placed by load across the nodes of a cluster (`[cluster]
//! placement`, "least-loaded" by default): a player whose own node's lines
//! of a zone are full plays in another node's line of it with room, else
//! in a new line on the node with the fewest players; their session stays
//! on the node they logged in on. Real nodes, a real NATS server, a real
//! PostgreSQL, real sockets.

use std::time::Duration;

use hearth_client::world::generated::{Message, Player, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_cluster::test_servers::unique;
use hearth_server::config::Placement;
use hearth_server::{Config, Running};

mod common;
use common::cluster::{join_world as join, PASSWORD, WAIT};

/// One small open zone whose lines hold two players, one spawn point:
/// players of a line stand together and see each other.
const ZONES: &str = r#"
[[zone]]
name = "meadow"
npcs = 0
view_radius = 20
line_capacity = 2
map = """
##########
#........#
#...S....#
#........#
##########
"""
"#;

/// A node of `cluster` on that zone, rewriting its record every 200 ms.
fn node_config(cluster: &str, node: &str) -> Config {
    let mut config = common::cluster::node_config(cluster, node);
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let zones = config.data_dir.join("zones.toml");
    std::fs::write(&zones, ZONES).unwrap();
    config.world.zones = Some(zones);
    config.cluster.heartbeat_ms = 200;
    config
}

/// Players in each of `server`'s lines that have any: (line, players).
async fn lines(server: &Running) -> Vec<(u32, usize)> {
    let mut lines: Vec<(u32, usize)> = server
        .game
        .status()
        .await
        .unwrap()
        .into_iter()
        .filter(|line| line.players > 0)
        .map(|line| (line.number, line.players))
        .collect();
    lines.sort();
    lines
}

/// Waits until `server`'s lines are `want`.
async fn lines_become(server: &Running, want: &[(u32, usize)]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = lines(server).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lines {now:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `from` has read a record of `of` that shows `players` and
/// `room` places in the meadow, then a little more: its game host takes
/// the list at its next step.
async fn sees_load(from: &Running, of: &Running, players: u64, room: u64) {
    let id = of.cluster.as_ref().unwrap().id.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let members = from
            .cluster
            .as_ref()
            .unwrap()
            .presence
            .members()
            .await
            .unwrap();
        let shown = members.iter().find(|node| node.id == id).map(|node| {
            let meadow = node.room.iter().find(|z| z.zone == "meadow");
            (node.players, meadow.map_or(0, |z| z.room))
        });
        if shown == Some((players, room)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never showed {players} players and {room} places: {shown:?}",
            id.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The record is read into the list every heartbeat, and the list into
    // the placement at the next step.
    tokio::time::sleep(Duration::from_millis(600)).await;
}

fn sees(world: &WorldClient, name: &str) -> bool {
    Player::all(world.replica()).any(|p| p.name() == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_go_to_other_nodes_lines_with_room_and_new_lines_open_on_the_least_loaded_node() {
    let cluster = unique("placement");
    let p1 = hearth_server::start(node_config(&cluster, "p1"))
        .await
        .unwrap();
    let p2 = hearth_server::start(node_config(&cluster, "p2"))
        .await
        .unwrap();
    let names: Vec<String> = ["ann", "bo", "cy", "di", "ed", "fi", "gus"]
        .iter()
        .map(|n| unique(n).replace('-', "_"))
        .collect();
    for name in &names {
        p1.accounts.register(name, PASSWORD).await.unwrap();
    }
    sees_load(&p1, &p2, 0, 0).await;
    sees_load(&p2, &p1, 0, 0).await;

    // Ann and Bo fill p1's line (the first opens on p1: a tie with p2).
    let (ann, _) = join(&p1, &names[0]).await;
    let (bo, _) = join(&p1, &names[1]).await;
    lines_become(&p1, &[(1, 2)]).await;

    // Cy logs in on p1 too: its line is full, no node has room, and p2 has
    // a line's worth of players fewer, so the new line opens on p2. Her
    // session stays on p1; she plays on p2.
    let (mut cy, zone) = join(&p1, &names[2]).await;
    assert_eq!(zone, "meadow");
    lines_become(&p2, &[(1, 1)]).await;
    assert_eq!(lines(&p1).await, [(1, 2)]);

    // Di and Ed, on p1 once p2's record shows Cy: two against one is not a
    // line's worth more, so p1 opens a line of its own for them (no
    // forwarding).
    sees_load(&p1, &p2, 1, 1).await;
    let (di, _) = join(&p1, &names[3]).await;
    let (ed, _) = join(&p1, &names[4]).await;
    lines_become(&p1, &[(1, 2), (2, 2)]).await;
    assert_eq!(lines(&p2).await, [(1, 1)]);

    // Fi, on p1 with four against one: into Cy's line on p2, which has a
    // place, rather than a new line. They see each other and hear the
    // line's chat, through p1.
    sees_load(&p2, &p1, 4, 0).await;
    sees_load(&p1, &p2, 1, 1).await;
    let (mut fi, _) = join(&p1, &names[5]).await;
    lines_become(&p2, &[(1, 2)]).await;
    let (cy_name, fi_name) = (names[2].clone(), names[5].clone());
    let (seen_by_cy, seen_by_fi) = tokio::join!(
        cy.until(WAIT, |_, w| sees(w, &fi_name)),
        fi.until(WAIT, |_, w| sees(w, &cy_name)),
    );
    assert!(seen_by_cy.is_some() || sees(&cy, &fi_name));
    assert!(seen_by_fi.is_some() || sees(&fi, &cy_name));
    cy.say(SayScope::Line, "", "hello from p2's line").await;
    let heard = fi
        .until(WAIT, |update, _| {
            matches!(update, WorldUpdate::Message(Message::Chat { text, .. }) if text.as_str() == "hello from p2's line")
        })
        .await;
    assert!(heard.is_some(), "fi heard cy");

    // Gus logs in on p2: its line is full and p1 has more players, so p2
    // opens a second line.
    let (gus, _) = join(&p2, &names[6]).await;
    lines_become(&p2, &[(1, 2), (2, 1)]).await;
    assert_eq!(lines(&p1).await, [(1, 2), (2, 2)]);

    drop((ann, bo, cy, di, ed, fi, gus));
    p1.shutdown("test over").await;
    p2.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_local_placement_each_node_opens_lines_for_its_own_players() {
    let cluster = unique("placement-local");
    let local = |node: &str| {
        let mut config = node_config(&cluster, node);
        config.cluster.placement = Placement::Local;
        config
    };
    let p1 = hearth_server::start(local("p1")).await.unwrap();
    let p2 = hearth_server::start(local("p2")).await.unwrap();
    let names: Vec<String> = ["fay", "gus", "hal"]
        .iter()
        .map(|n| unique(n).replace('-', "_"))
        .collect();
    for name in &names {
        p1.accounts.register(name, PASSWORD).await.unwrap();
    }
    sees_load(&p1, &p2, 0, 0).await;
    let mut players = Vec::new();
    for name in &names {
        players.push(join(&p1, name).await.0);
    }
    lines_become(&p1, &[(1, 2), (2, 1)]).await;
    assert!(lines(&p2).await.is_empty());
    // Such a node will not drain: it says why.
    use hearth_cluster::{connect_nats, drain, test_servers::nats_url, ClusterName, NodeId};
    let client = connect_nats(&nats_url(), &NodeId::new("test").unwrap())
        .await
        .unwrap();
    let answer = drain::ask(
        &client,
        &ClusterName::new(&cluster).unwrap(),
        &p1.cluster.as_ref().unwrap().id,
        "the test",
        false,
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        answer
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("placement")),
        "{answer:?}"
    );
    assert!(!p1.cluster.as_ref().unwrap().is_draining());
    drop(players);
    p1.shutdown("test over").await;
    p2.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_nodes_line_moves_to_another_and_its_players_follow_without_a_reconnect() {
    use hearth_cluster::{connect_nats, drain, test_servers::nats_url, ClusterName, NodeId};
    let cluster = unique("drain");
    let p1 = hearth_server::start(node_config(&cluster, "p1"))
        .await
        .unwrap();
    let p2 = hearth_server::start(node_config(&cluster, "p2"))
        .await
        .unwrap();
    let names: Vec<String> = ["ann", "bo", "cy", "di"]
        .iter()
        .map(|n| unique(n).replace('-', "_"))
        .collect();
    for name in &names {
        p1.accounts.register(name, PASSWORD).await.unwrap();
    }
    sees_load(&p1, &p2, 0, 0).await;
    let (mut ann, _) = join(&p1, &names[0]).await;
    let (mut bo, _) = join(&p1, &names[1]).await;
    lines_become(&p1, &[(1, 2)]).await;
    sees_load(&p2, &p1, 2, 0).await;
    let (mut cy, _) = join(&p2, &names[2]).await;
    lines_become(&p2, &[(1, 1)]).await;
    sees_load(&p1, &p2, 1, 1).await;

    // Drain p1, as `hearth admin drain p1` does.
    let client = connect_nats(&nats_url(), &NodeId::new("test").unwrap())
        .await
        .unwrap();
    let p1_id = p1.cluster.as_ref().unwrap().id.clone();
    let answer = drain::ask(
        &client,
        &ClusterName::new(&cluster).unwrap(),
        &p1_id,
        "the drain test",
        false,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.players, 2);

    // Their line moves whole to p2 (its second line there), and Ann and Bo
    // follow it together; their clients see a new line, not a disconnect:
    // their sessions stay on p1.
    assert_eq!(common::cluster::arrival(&mut ann).await, "meadow");
    assert_eq!(common::cluster::arrival(&mut bo).await, "meadow");
    lines_become(&p2, &[(1, 1), (2, 2)]).await;
    lines_become(&p1, &[]).await;
    assert_eq!(p1.gate.session_count(), 2, "no session was closed");

    // They still share a line, there; a new login on p1 goes to p2 too (to
    // Cy's line, which has room), never into p1's lines.
    let bo_name = names[1].clone();
    let seen = ann
        .until(Duration::from_secs(5), |_, w| sees(w, &bo_name))
        .await;
    assert!(seen.is_some() || sees(&ann, &bo_name), "Ann sees Bo");
    let _ = &mut cy;
    let (di, _) = join(&p1, &names[3]).await;
    lines_become(&p2, &[(1, 2), (2, 2)]).await;
    assert!(lines(&p1).await.is_empty());
    assert!(p1.cluster.as_ref().unwrap().is_draining());
    // Its record says so: the other nodes send it nobody.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let members = p2
            .cluster
            .as_ref()
            .unwrap()
            .presence
            .members()
            .await
            .unwrap();
        if members
            .iter()
            .any(|node| node.id == p1_id && node.draining && node.players == 0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "p1's record never showed the drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Undrained, p1 takes players again: the next login there plays there.
    let answer = drain::ask(
        &client,
        &ClusterName::new(&cluster).unwrap(),
        &p1_id,
        "the drain test",
        true,
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(answer.refused, None);
    assert!(!p1.cluster.as_ref().unwrap().is_draining());
    let ed_name = unique("ed").replace('-', "_");
    p1.accounts.register(&ed_name, PASSWORD).await.unwrap();
    let (ed, _) = join(&p1, &ed_name).await;
    lines_become(&p1, &[(1, 1)]).await;

    drop((ann, bo, cy, di, ed));
    p1.shutdown("test over").await;
    p2.shutdown("test over").await;
}
