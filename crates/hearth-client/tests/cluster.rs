//! Three Hearth servers as the nodes of one cluster, on a real PostgreSQL
//! and a real NATS server: each lists all three on `/api/admin/cluster`
//! with their addresses, a player on one node shows in its load as the
//! others see it, a token issued by one node is honoured by the others, and
//! a node that stops leaves every list at once. An account plays on one
//! node at a time: a login on another node ends the first session after its
//! last save, and the node it left can no longer save it. A cluster setting
//! without PostgreSQL is refused with a clear error, and a server alone
//! says so.

use std::time::Duration;

use hearth_client::{connect, CloseReason, Connection, Event, Options};
use hearth_cluster::test_servers::{nats_url, unique};
use hearth_server::{Config, Running};
use serde_json::Value;
use tokio::time::{timeout, Instant};

mod common;
use common::cluster::{PASSWORD, WAIT};

/// A node of `cluster` that takes guests, rewriting its record every second.
fn node_config(cluster: &str, node: &str) -> Config {
    let mut config = common::cluster::node_config(cluster, node);
    config.accounts.allow_anonymous = true;
    config.cluster.heartbeat_ms = 1_000;
    config
}

/// A new administrator's access token, from a login on `server`.
async fn admin_token(server: &Running) -> String {
    let admin = unique("admin").replace('-', "_");
    server
        .accounts
        .create_admin(&admin, Some(PASSWORD), false)
        .await
        .unwrap();
    hearth_client::Accounts::new(&format!("http://{}", server.web))
        .login(&admin, PASSWORD)
        .await
        .unwrap()
        .access_token
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
    // The second node is reached at another address than it binds: its
    // record shows that one.
    let advertised: std::net::IpAddr = "10.1.2.3".parse().unwrap();
    for node in ["n1", "n2", "n3"] {
        let mut config = node_config(&cluster, node);
        if node == "n2" {
            config.cluster.advertise = Some(advertised);
        }
        servers.push(hearth_server::start(config).await.expect("a node starts"));
    }
    let shown = |index: usize| match index {
        1 => std::net::SocketAddr::new(advertised, servers[1].web.port()).to_string(),
        _ => servers[index].web.to_string(),
    };
    // Logged in on the first node; the token works on every node.
    let token = admin_token(&servers[0]).await;
    let mut all: Vec<String> = (0..servers.len()).map(shown).collect();
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
    let second = shown(1);
    until(&servers[0], &token, |nodes| {
        nodes
            .iter()
            .any(|n| n["web_addr"] == second.as_str() && n["sessions"] == 1 && n["lines"] == 1)
    })
    .await;

    // The third node stops: gone from the others' lists at once (well
    // before its record would lapse by itself, three seconds after its
    // last write).
    let third = servers.pop().unwrap();
    let gone = third.web.to_string();
    third.shutdown("test over").await;
    let started = Instant::now();
    until(&servers[0], &token, |nodes| {
        nodes.len() == 2 && !web_addrs(nodes).contains(&gone)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "listed for {:?} after it stopped",
        started.elapsed()
    );
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

    let nats_password = nats_url()
        .rsplit_once('@')
        .and_then(|(credentials, _)| credentials.rsplit_once(':'))
        .map(|(_, password)| password.to_owned())
        .expect("the test NATS URL has a password");
    assert!(!message.contains(&nats_password), "{message}");
    let bad_name = node_config(&unique("names"), "Not A Name");
    let refused = hearth_server::start(bad_name).await.err().expect("refused");
    assert!(refused.to_string().contains("--node"), "{refused}");
    assert!(!refused.to_string().contains(&nats_password), "{refused}");

    let mut alone = node_config("unused", "alone");
    alone.cluster.nats = String::new();
    let server = hearth_server::start(alone).await.unwrap();
    let token = admin_token(&server).await;
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

async fn joined(server: &Running, options: Options) -> Connection {
    let url = format!("hearth://{}", server.game_tcp);
    let mut player = connect(&url, options).await.unwrap();
    timeout(WAIT, player.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    player
}

/// The account's claim: (node id, epoch).
async fn claim_of(server: &Running, account: i64) -> Option<(String, i64)> {
    let node = server.cluster.as_ref().expect("a node");
    hearth_cluster::Claims::new(node.leases.pool().clone(), node.id.clone())
        .holder(account)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_plays_on_one_node_and_the_node_it_left_cannot_save_it() {
    let cluster = unique("claims");
    let first = hearth_server::start(node_config(&cluster, "c1"))
        .await
        .unwrap();
    let second = hearth_server::start(node_config(&cluster, "c2"))
        .await
        .unwrap();
    let name = unique("roamer").replace('-', "_");
    let account = hearth_client::Accounts::new(&format!("http://{}", first.web))
        .register(&name, PASSWORD)
        .await
        .unwrap();

    let mut on_first = joined(&first, Options::password(&name, PASSWORD)).await;
    let first_node = first.cluster.as_ref().unwrap().id.to_string();
    assert_eq!(
        claim_of(&first, account).await,
        Some((first_node.clone(), 1))
    );
    let saves_before = first
        .game
        .counters
        .saves
        .load(std::sync::atomic::Ordering::Relaxed);

    // The same account logs in on the second node: the first node ends its
    // session (as a replacement) and writes its last save before the
    // second reads the player's data; the claim moves, one epoch up.
    let on_second = joined(&second, Options::password(&name, PASSWORD)).await;
    let closed = timeout(WAIT, async {
        loop {
            match on_first.next_event().await {
                Some(Event::Closed(why)) => return Some(why),
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .expect("the first session ends");
    assert_eq!(
        closed,
        Some(CloseReason::ClosedByPeer {
            code: hearth_proto::close_code::REPLACED,
            reason: "logged in from another place".into()
        })
    );
    let second_node = second.cluster.as_ref().unwrap().id.to_string();
    assert_eq!(claim_of(&second, account).await, Some((second_node, 2)));
    let counters = &first.game.counters;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        load(&counters.saves) > saves_before,
        "the first node saved the player as it let go: saves {} (before {saves_before}), taken over {}, failed {}",
        load(&counters.saves),
        load(&counters.saves_taken_over),
        load(&counters.save_failures)
    );
    assert_eq!(
        counters
            .saves_taken_over
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "and that save was made under its claim, before the second node took it"
    );

    // Logged in again on the same node: the node keeps its claim (no new
    // epoch), and the replaced session's last save is made under it.
    let saves_before = second
        .game
        .counters
        .saves
        .load(std::sync::atomic::Ordering::Relaxed);
    let again = joined(&second, Options::password(&name, PASSWORD)).await;
    timeout(WAIT, async {
        while second
            .game
            .counters
            .saves
            .load(std::sync::atomic::Ordering::Relaxed)
            == saves_before
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the replaced session was saved");
    assert_eq!(
        claim_of(&second, account).await.map(|(_, epoch)| epoch),
        Some(2)
    );
    assert_eq!(
        second
            .game
            .counters
            .saves_taken_over
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    drop((again, on_second));

    // The first node, as if it had been frozen through all this and woke
    // with the player's data at its old epoch: the database refuses it.
    let node = first.cluster.as_ref().unwrap();
    let claims = hearth_cluster::Claims::new(node.leases.pool().clone(), node.id.clone());
    let stale = hearth_server::game_host::saves::store_claimed(
        &claims,
        account,
        1,
        first.game.game(),
        b"{}".to_vec(),
    )
    .await;
    assert!(
        matches!(
            stale,
            Err(hearth_server::game_host::saves::SaveError::TakenOver)
        ),
        "{stale:?}"
    );
    // Operators see the outcomes on /metrics.
    let metrics = common::metrics(first.web).await;
    assert!(
        metrics.contains("hearth_game_saves_total{outcome=\"taken_over\"} 0"),
        "{metrics}"
    );
    second.shutdown("test over").await;
    first.shutdown("test over").await;
}

/// Waits until `server`'s game host has written more saves than `before`.
async fn saved_past(server: &Running, before: u64) {
    let saves = || {
        server
            .game
            .counters
            .saves
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    timeout(WAIT, async {
        while saves() <= before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("saved in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_back_from_another_node_starts_from_what_that_node_saved() {
    let cluster = unique("roam");
    let home = hearth_server::start(node_config(&cluster, "home"))
        .await
        .unwrap();
    let name = unique("roamer").replace('-', "_");
    let account = hearth_client::Accounts::new(&format!("http://{}", home.web))
        .register(&name, PASSWORD)
        .await
        .unwrap();
    let saves = || {
        home.game
            .counters
            .saves
            .load(std::sync::atomic::Ordering::Relaxed)
    };

    // Plays at home and leaves: home remembers the data it saved.
    let before = saves();
    drop(joined(&home, Options::password(&name, PASSWORD)).await);
    saved_past(&home, before).await;
    let game = home.game.game().to_owned();

    // Then plays on another node, which claims the account and saves its
    // own data (here, as that node would: under its claim).
    let node = home.cluster.as_ref().unwrap();
    let away = hearth_cluster::Claims::new(
        node.leases.pool().clone(),
        hearth_cluster::NodeId::new("away").unwrap(),
    );
    let epoch = away
        .claim(account, Some(1))
        .await
        .unwrap()
        .expect("claimed");
    let played_away = br#"{"zone":null,"at":null,"appearance":7,"values":[11,22,33,44]}"#;
    hearth_server::game_host::saves::store_claimed(
        &away,
        account,
        epoch,
        &game,
        played_away.to_vec(),
    )
    .await
    .unwrap();

    // Back home: the other node does not answer (it has no listener), is
    // passed over, and home starts the player from the other node's data,
    // not from its own older copy; its next save carries it on.
    let before = saves();
    drop(joined(&home, Options::password(&name, PASSWORD)).await);
    saved_past(&home, before).await;
    let data = hearth_server::game_host::saves::load(&home.storage, account, &game)
        .await
        .unwrap()
        .expect("saved");
    let data: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(data["appearance"], 7, "{data}");
    assert_eq!(
        data["values"],
        serde_json::json!([11, 22, 33, 44]),
        "{data}"
    );
    home.shutdown("test over").await;
}

/// One wrong-password login on `server`'s web API from `from`: the HTTP
/// status.
async fn wrong_login(server: &Running, name: &str, from: std::net::IpAddr) -> u16 {
    reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap()
        .post(format!("http://{}/api/login", server.web))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "name": name, "password": "wrong guess" }).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_spreading_logins_over_the_nodes_gets_the_budget_of_one_server() {
    let cluster = unique("budgets");
    let mut servers = Vec::new();
    for node in ["g1", "g2", "g3"] {
        let mut config = node_config(&cluster, node);
        // The test's client is on loopback: charge it like any address.
        config.limit_loopback = true;
        config.accounts.login_burst = 4;
        config.accounts.login_per_minute = 1;
        servers.push(hearth_server::start(config).await.unwrap());
    }
    let name = unique("victim").replace('-', "_");
    servers[0].accounts.register(&name, PASSWORD).await.unwrap();
    // The shared budgets live in the database every test run shares: this
    // run's guesser has a loopback address of its own (127.x.y.z).
    let random = hearth_proto::os_seed();
    let guesser = std::net::IpAddr::from([127, random[0], random[1], random[2].max(2)]);
    // Each node alone would allow four guesses; the cluster allows four in
    // all, wherever they land.
    let mut statuses = Vec::new();
    for attempt in 0..6 {
        statuses.push(wrong_login(&servers[attempt % 3], &name, guesser).await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429], "{statuses:?}");
    for server in servers {
        server.shutdown("test over").await;
    }
}
