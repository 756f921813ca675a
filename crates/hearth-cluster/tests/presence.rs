//! The list of nodes on a real NATS server with JetStream: every node sees
//! every other; a node that stops writing its record (killed, cut off)
//! leaves the list by itself within three periods, one that stops
//! gracefully at once; a malformed or forged record is dropped and
//! counted; and a client without the cluster's credentials is refused.

use std::time::{Duration, Instant};

use hearth_cluster::{connect_nats, ClusterName, NodeId, NodeInfo, Presence};
use tokio::sync::watch;

use hearth_cluster::test_servers::{nats_url, unique};

const PERIOD: Duration = Duration::from_millis(500);

fn record(id: &NodeId) -> NodeInfo {
    NodeInfo {
        id: id.clone(),
        game_addr: "127.0.0.1:7777".into(),
        web_addr: "127.0.0.1:8080".into(),
        started_ms: 1,
        sessions: 0,
        lines: 0,
        tick_p99_us: 0,
        line_list: Vec::new(),
        players: 0,
        room: Vec::new(),
        draining: false,
        placement: false,
    }
}

async fn join(cluster: &ClusterName, name: &str) -> (NodeId, Presence) {
    let id = NodeId::new(name).unwrap();
    let client = connect_nats(&nats_url(), &id).await.unwrap();
    let presence = Presence::open(&client, cluster, PERIOD).await.unwrap();
    (id, presence)
}

/// Polls `presence` until `done` holds for its member ids, for at most
/// `within`; returns how long it took.
async fn until(
    presence: &Presence,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let ids: Vec<String> = presence
            .members()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id.to_string())
            .collect();
        if done(&ids) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}: {ids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nodes_see_each_other_and_a_dead_one_leaves_the_list_by_itself() {
    let cluster = ClusterName::new(&unique("presence")).unwrap();
    let mut nodes = Vec::new();
    let mut beats = Vec::new();
    for name in ["a", "b", "c"] {
        let (id, presence) = join(&cluster, name).await;
        let (_, info) = watch::channel(record(&id));
        beats.push(presence.heartbeat(info));
        nodes.push((id, presence));
    }
    let ids: Vec<String> = nodes.iter().map(|(id, _)| id.to_string()).collect();
    for (_, presence) in &nodes {
        until(presence, Duration::from_secs(5), |seen| {
            seen == ids.as_slice()
        })
        .await;
    }

    // c dies: its heartbeat stops, and its record lapses.
    drop(beats.pop());
    let gone = until(&nodes[0].1, Duration::from_secs(5), |seen| {
        seen == &ids[..2]
    })
    .await;
    assert!(
        gone <= PERIOD * 3 + Duration::from_millis(800),
        "a dead node left the list after {gone:?}"
    );

    // b stops gracefully: gone at once.
    drop(beats.pop());
    nodes[1].1.leave(&nodes[1].0).await.unwrap();
    let gone = until(&nodes[0].1, Duration::from_secs(5), |seen| {
        seen == &ids[..1]
    })
    .await;
    assert!(
        gone < PERIOD * 2,
        "a node that left was listed for {gone:?} (a record lapses after {:?})",
        PERIOD * 3
    );
}

#[tokio::test]
async fn a_malformed_or_forged_record_is_dropped_and_counted() {
    let cluster = ClusterName::new(&unique("forged")).unwrap();
    let (id, presence) = join(&cluster, "honest").await;
    presence.publish(&record(&id)).await.unwrap();

    // Another client of the same NATS account writes junk and a record
    // filed under another node's key.
    let client = connect_nats(&nats_url(), &id).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let kv = js
        .get_key_value(hearth_cluster::nodes_bucket(cluster.as_str()))
        .await
        .unwrap();
    kv.put("junk_000000000000", "\u{1b}[2J not json".into())
        .await
        .unwrap();
    let other = NodeId::new("other").unwrap();
    kv.put(other.as_str(), record(&id).to_bytes().into())
        .await
        .unwrap();

    let members = presence.members().await.unwrap();
    assert_eq!(members, vec![record(&id)]);
    assert_eq!(presence.dropped(), 2);
}

#[tokio::test]
async fn a_client_without_the_cluster_s_credentials_is_refused() {
    let url = nats_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let id = NodeId::new("intruder").unwrap();
    let refused = connect_nats(&format!("{scheme}://{host}"), &id).await;
    assert!(refused.is_err(), "no credentials");
    let wrong = connect_nats(&format!("{scheme}://hearth:guess@{host}"), &id).await;
    let error = wrong.expect_err("a wrong password is refused").to_string();
    assert!(
        !error.contains("guess"),
        "the password is not repeated: {error}"
    );
}
