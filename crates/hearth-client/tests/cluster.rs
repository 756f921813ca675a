//! Three Hearth servers as the nodes of one cluster, on a real PostgreSQL
//! and a real NATS server: each lists all three on `/api/admin/cluster`
//! with their addresses, a player on one node shows in its load as the
//! others see it, a token issued by one node is honoured by the others, and
//! a node that stops leaves every list at once. A cluster setting without
//! PostgreSQL is refused with a clear error, and a server alone says so.

use std::time::Duration;

use hearth_client::{connect, Event, Options};
use hearth_cluster::test_servers::{nats_url, postgres_url, unique};
use hearth_server::{Config, Running};
use serde_json::Value;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse";

fn node_config(cluster: &str, node: &str) -> Config {
    let dir = std::env::temp_dir().join(unique(&format!("hearth-cluster-{node}")));
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        database_url: postgres_url(),
        ..Config::default()
    };
    config.accounts.allow_anonymous = true;
    config.cluster.nats = nats_url();
    config.cluster.name = cluster.to_owned();
    config.cluster.node = node.to_owned();
    config.cluster.heartbeat_ms = 200;
    config
}

async fn get(server: &Running, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", server.web))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asks `server` for the cluster until `done` holds for its nodes.
async fn until(server: &Running, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(server, token, "/api/admin/cluster").await;
        assert_eq!(status, 200, "{body}");
        let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
        if done(&nodes) {
            return nodes;
        }
        assert!(Instant::now() < deadline, "not in time: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn web_addrs(nodes: &[Value]) -> Vec<String> {
    let mut addrs: Vec<String> = nodes
        .iter()
        .map(|n| n["web_addr"].as_str().unwrap_or_default().to_owned())
        .collect();
    addrs.sort();
    addrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_see_each_other_and_their_load_and_a_stopped_node_leaves_at_once() {
    let cluster = unique("three");
    let mut servers = Vec::new();
    for node in ["n1", "n2", "n3"] {
        servers.push(
            hearth_server::start(node_config(&cluster, node))
                .await
                .expect("a node starts"),
        );
    }
    let admin = unique("cadmin").replace('-', "_");
    servers[0]
        .accounts
        .create_admin(&admin, Some(PASSWORD), false)
        .await
        .unwrap();
    // Logged in on the first node; the token works on every node.
    let token = hearth_client::Accounts::new(&format!("http://{}", servers[0].web))
        .login(&admin, PASSWORD)
        .await
        .unwrap()
        .access_token;
    let mut all: Vec<String> = servers.iter().map(|s| s.web.to_string()).collect();
    all.sort();
    for server in &servers {
        until(server, &token, |nodes| web_addrs(nodes) == all).await;
        let (_, body) = get(server, &token, "/api/admin/cluster").await;
        assert_eq!(body["cluster"], cluster.as_str());
        assert_eq!(body["records_dropped"], 0);
    }

    // A player on the second node: the first sees the second's load.
    let url = format!("hearth://{}", servers[1].game_tcp);
    let mut player = connect(&url, Options::anonymous()).await.unwrap();
    timeout(WAIT, player.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    let second = servers[1].web.to_string();
    until(&servers[0], &token, |nodes| {
        nodes
            .iter()
            .any(|n| n["web_addr"] == second.as_str() && n["sessions"] == 1 && n["lines"] == 1)
    })
    .await;

    // The third node stops: gone from the others' lists at once (well
    // before its record would lapse by itself).
    let third = servers.pop().unwrap();
    let gone = third.web.to_string();
    third.shutdown("test over").await;
    let started = Instant::now();
    until(&servers[0], &token, |nodes| {
        nodes.len() == 2 && !web_addrs(nodes).contains(&gone)
    })
    .await;
    assert!(started.elapsed() < Duration::from_millis(600));
    for server in servers {
        server.shutdown("test over").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_needs_postgres_and_a_server_alone_says_it_is_alone() {
    let mut config = node_config(&unique("sqlite"), "lonely");
    config.database_url = String::new();
    let refused = hearth_server::start(config).await.err().expect("refused");
    let message = refused.to_string();
    assert!(message.contains("postgres://"), "{message}");
    assert!(!message.contains(PASSWORD));

    let mut bad_name = node_config(&unique("names"), "Not A Name");
    bad_name.cluster.heartbeat_ms = 200;
    let refused = hearth_server::start(bad_name).await.err().expect("refused");
    assert!(refused.to_string().contains("--node"), "{refused}");

    let mut alone = node_config("unused", "alone");
    alone.cluster.nats = String::new();
    let server = hearth_server::start(alone).await.unwrap();
    let admin = unique("aadmin").replace('-', "_");
    server
        .accounts
        .create_admin(&admin, Some(PASSWORD), false)
        .await
        .unwrap();
    let token = hearth_client::Accounts::new(&format!("http://{}", server.web))
        .login(&admin, PASSWORD)
        .await
        .unwrap()
        .access_token;
    let (status, body) = get(&server, &token, "/api/admin/cluster").await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({ "cluster": null }))
    );
    // Without a token: refused like every admin endpoint.
    let (status, _) = get(&server, "nope", "/api/admin/cluster").await;
    assert_eq!(status, 401);
    server.shutdown("test over").await;
}
