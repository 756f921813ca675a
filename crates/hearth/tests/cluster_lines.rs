//! Lines that outlive their node, with two `hearth serve` processes (a real
//! NATS server and a real PostgreSQL): each line is held under a lease with
//! a cluster-wide name and saved under its epoch. The first node is frozen
//! (SIGSTOP): its lease lapses and the second restarts the line from its
//! last save, at the next epoch. Thawed, the first finds the line taken,
//! drops it and tells its player why, and writes nothing. Then the second
//! is killed (SIGKILL), and the first restarts the line again from what the
//! second saved. The times are printed.

use std::time::{Duration, Instant};

use hearth_client::world::WorldUpdate;
use hearth_client::Event;
use hearth_cluster::test_servers::{postgres_url, unique};
use serde_json::Value;

mod common;
use common::cluster::{admin, new_player};
use common::serve;

const LEASE_MS: u64 = 1_500;

/// A node of a test's cluster, serving: its process (killed with the
/// test), config, game port and web port.
struct Served {
    process: common::Killed,
    config: std::path::PathBuf,
    port: u16,
    web: u16,
}

/// Node `name` of `cluster` (heartbeats every 200 ms, lines saved every
/// 300 ms, a lease of `lease_ms`), serving.
fn serving(cluster: &str, name: &str, lease_ms: u64) -> Served {
    let extra = format!("lease_ms = {lease_ms}\nline_save_ms = 300\n");
    let (dir, config, port, web) = common::cluster::node(cluster, name, 200, &extra);
    let process = serve(&dir, &config, port, web);
    Served {
        process,
        config,
        port,
        web,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The lines a node's `/api/world` lists.
async fn lines(web: u16) -> Vec<Value> {
    let body = reqwest::get(format!("http://127.0.0.1:{web}/api/world"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let world: Value = serde_json::from_str(&body).unwrap();
    world["lines"].as_array().cloned().unwrap_or_default()
}

/// Polls `web`'s lines (15 s at most) until one is the line named `name`
/// and passes `wanted`: that line.
async fn line_until(web: u16, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = lines(web)
            .await
            .into_iter()
            .find(|line| line["lease"]["name"] == name && wanted(line));
        if let Some(line) = found {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "line {name} never as wanted on :{web}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(web: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{web}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn signal(pid: u32, signal: i32) {
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

#[test]
fn a_frozen_nodes_line_restarts_on_another_from_its_save_and_the_frozen_node_writes_nothing() {
    let cluster = unique("lines");
    let one = serving(&cluster, "l1", LEASE_MS);
    let mut two = serving(&cluster, "l2", LEASE_MS);
    runtime().block_on(async {
        let (mut ann, zone) = new_player("ann", one.port, one.web).await;
        assert_eq!(zone, "meadow");
        let name = format!("{cluster}/world/meadow/1");
        // l1 holds the meadow's line 1 and has saved it.
        let held = line_until(one.web, &name, |line| !line["lease"]["saved_tick"].is_null()).await;
        let first_epoch = held["lease"]["epoch"].as_i64().unwrap();
        let saved_tick = held["lease"]["saved_tick"].as_u64().unwrap();
        assert_eq!(held["players"], 1);

        // l1 freezes: its lease lapses, and l2 restarts the line from l1's
        // last save, at the next epoch.
        signal(one.process.id(), libc::SIGSTOP);
        let frozen = Instant::now();
        let restarted = line_until(two.web, &name, |line| line["lease"]["restarted"] == true).await;
        let took = frozen.elapsed();
        println!(
            "the frozen node's line ran again on the other {} ms after the freeze (lease {LEASE_MS} ms)",
            took.as_millis()
        );
        assert!(took < Duration::from_millis(LEASE_MS + 3_000), "{took:?}");
        assert!(restarted["lease"]["epoch"].as_i64().unwrap() > first_epoch);
        assert!(
            restarted["tick"].as_u64().unwrap() > saved_tick,
            "it goes on from the save: {restarted}"
        );
        assert_eq!(restarted["players"], 0, "its players were on the frozen node");
        // And l2 saves it under its own epoch.
        let second =
            line_until(two.web, &name, |line| !line["lease"]["saved_tick"].is_null()).await;
        let second_epoch = second["lease"]["epoch"].as_i64().unwrap();

        // l1 thaws: it finds the line taken, drops it, and tells Ann why.
        signal(one.process.id(), libc::SIGCONT);
        let mut reason = None;
        ann.until(Duration::from_secs(15), |update, _| {
            if let WorldUpdate::Session(Event::Closed(why)) = update {
                reason = Some(why.clone());
            }
            reason.is_some()
        })
        .await;
        let reason = reason.expect("Ann's session closed");
        let reason = format!("{reason:?}");
        assert!(reason.contains("another server"), "{reason}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(one.web)
            .await
            .iter()
            .any(|line| line["lease"]["name"] == name.as_str())
        {
            assert!(Instant::now() < deadline, "l1 still runs the line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // l1 paused the line as it thawed (its lease clock), before its
        // renewal was refused and it dropped it.
        let metrics = metrics(one.web).await;
        assert!(metrics.contains("hearth_lines_total{event=\"lost\"} 1"), "{metrics}");
        assert!(!metrics.contains("hearth_line_pauses_total 0"), "{metrics}");
        // Nothing l1 wrote after the freeze landed: the save is l2's.
        let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
        let saved: (i64,) = sqlx::query_as("SELECT epoch FROM cluster_line_saves WHERE line = $1")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(saved.0, second_epoch);

        // l2 is killed: l1 restarts the line again, from l2's save.
        let second_tick = line_until(two.web, &name, |_| true).await["lease"]["saved_tick"]
            .as_u64()
            .unwrap();
        two.process.kill().unwrap();
        two.process.wait().unwrap();
        let killed = Instant::now();
        let back = line_until(one.web, &name, |line| line["lease"]["restarted"] == true).await;
        println!(
            "the killed node's line ran again on the other {} ms after the kill",
            killed.elapsed().as_millis()
        );
        assert!(back["lease"]["epoch"].as_i64().unwrap() > second_epoch);
        assert!(back["tick"].as_u64().unwrap() > second_tick);

        // Every take of the line is in its history, one holder per epoch,
        // and the holders alternate as the test made them.
        let history: Vec<(i64, String)> = sqlx::query_as(
            "SELECT epoch, owner FROM cluster_lease_history WHERE line = $1 ORDER BY epoch",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let owners: Vec<&str> = history
            .iter()
            .map(|(_, owner)| owner.split('_').next().unwrap())
            .collect();
        assert_eq!(owners, ["l1", "l2", "l1"], "{history:?}");
    });
    drop(one);
}

#[test]
fn a_drained_nodes_line_moves_whole_and_its_player_follows_without_a_reconnect() {
    let cluster = unique("move");
    let one = serving(&cluster, "m1", LEASE_MS);
    let two = serving(&cluster, "m2", LEASE_MS);
    runtime().block_on(async {
        let (mut ann, zone) = new_player("ann", one.port, one.web).await;
        assert_eq!(zone, "meadow");
        let name = format!("{cluster}/world/meadow/1");
        let held = line_until(one.web, &name, |line| line["players"] == 1).await;
        let epoch = held["lease"]["epoch"].as_i64().unwrap();
        let tick = held["tick"].as_u64().unwrap();

        // m1 drains: its meadow line moves to m2 whole, and Ann follows it,
        // still connected to m1.
        let config = two.config.clone();
        let asked = Instant::now();
        let drain =
            tokio::task::spawn_blocking(move || admin(&config, &["drain", "m1", "--wait", "30"]));
        assert_eq!(common::cluster::arrival(&mut ann).await, "meadow");
        println!(
            "Ann was in the moved line on the other node {} ms after the drain was asked (the command's start included)",
            asked.elapsed().as_millis()
        );
        let drained = drain.await.unwrap();
        assert!(drained.status.success(), "{drained:?}");
        let moved = line_until(two.web, &name, |line| line["players"] == 1).await;
        assert!(moved["lease"]["epoch"].as_i64().unwrap() > epoch);
        assert_eq!(moved["lease"]["restarted"], true);
        assert!(moved["tick"].as_u64().unwrap() > tick, "its own ticks go on: {moved}");
        assert!(lines(one.web)
            .await
            .iter()
            .all(|line| line["lease"]["name"] != name.as_str()));

        // She plays on in it: her line chat comes back through m1 from m2.
        ann.say(hearth_client::world::generated::SayScope::Line, "", "moved along")
            .await;
        let heard = ann
            .until(Duration::from_secs(10), |update, _| {
                matches!(update, WorldUpdate::Message(hearth_client::world::generated::Message::Chat { text, .. }) if text.as_str() == "moved along")
            })
            .await;
        assert!(heard.is_some(), "her line chat comes back");

        // And back: m1 is undrained, m2 drains. The line moves to m1, Ann's
        // own node, and she follows it home.
        let undo = admin(&two.config, &["drain", "m1", "--undo"]);
        assert!(undo.status.success(), "{undo:?}");
        let config = one.config.clone();
        let drain =
            tokio::task::spawn_blocking(move || admin(&config, &["drain", "m2", "--wait", "30"]));
        assert_eq!(common::cluster::arrival(&mut ann).await, "meadow");
        assert!(drain.await.unwrap().status.success());
        let home = line_until(one.web, &name, |line| line["players"] == 1).await;
        assert!(home["lease"]["epoch"].as_i64().unwrap() > moved["lease"]["epoch"].as_i64().unwrap());
        // One copy of the line in the cluster, and m2 runs none of it.
        for web in [one.web, two.web] {
            let copies = lines(web)
                .await
                .iter()
                .filter(|line| line["lease"]["name"] == name.as_str())
                .count();
            assert_eq!(copies, usize::from(web == one.web), "on :{web}");
        }

        let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
        let owners: Vec<(String,)> = sqlx::query_as(
            "SELECT owner FROM cluster_lease_history WHERE line = $1 ORDER BY epoch",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let owners: Vec<&str> = owners
            .iter()
            .map(|(owner,)| owner.split('_').next().unwrap())
            .collect();
        assert_eq!(owners, ["m1", "m2", "m1"]);
    });
}

#[test]
fn a_node_stopped_with_sigterm_hands_its_lines_to_another_node_which_restarts_them_at_once() {
    const LONG_LEASE_MS: u64 = 6_000;
    let cluster = unique("stop");
    let one = serving(&cluster, "s1", LONG_LEASE_MS);
    let two = serving(&cluster, "s2", LONG_LEASE_MS);
    runtime().block_on(async {
        let (_ann, _) = new_player("ann", one.port, one.web).await;
        let name = format!("{cluster}/world/meadow/1");
        let held = line_until(one.web, &name, |line| !line["lease"]["saved_tick"].is_null()).await;
        let tick = held["tick"].as_u64().unwrap();
        signal(one.process.id(), libc::SIGTERM);
        let stopped = Instant::now();
        let restarted = line_until(two.web, &name, |line| line["lease"]["restarted"] == true).await;
        let took = stopped.elapsed();
        println!(
            "the stopped node's line ran again on the other {} ms after SIGTERM (lease {LONG_LEASE_MS} ms)",
            took.as_millis()
        );
        // Handed to the other node, which restarts it at once: not left to
        // lapse (a lease), nor to the others' next look (half a lease).
        assert!(
            took < Duration::from_millis(LONG_LEASE_MS / 3),
            "handed over: {took:?}"
        );
        assert!(restarted["tick"].as_u64().unwrap() > tick);
    });
}
