//! Two `hearth serve` processes as a cluster (a real NATS server and a real
//! PostgreSQL), the caves pinned to the second. A player of the first plays
//! in the caves; the second is killed outright (SIGKILL: no goodbye, its
//! record in the list of nodes lapses by itself). The player is back in
//! their own node's world, without reconnecting, within three heartbeats
//! and a little: the time is printed.

use std::time::{Duration, Instant};

use hearth_cluster::test_servers::unique;

mod common;
use common::cluster::{arrival, new_player};
use common::serve;

/// Node `name` of `cluster`, the caves pinned to k2.
fn node(cluster: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf, u16, u16) {
    common::cluster::node(
        cluster,
        name,
        HEARTBEAT_MS,
        "[cluster.zones]\ncaves = \"k2\"\n",
    )
}

const HEARTBEAT_MS: u64 = 200;

#[test]
fn a_player_in_a_pinned_zone_whose_node_is_killed_is_back_home_within_three_heartbeats() {
    let cluster = unique("kill");
    let (home_dir, home_config, home_port, home_web) = node(&cluster, "k1");
    let (caves_dir, caves_config, caves_port, caves_web) = node(&cluster, "k2");
    let _home = serve(&home_dir, &home_config, home_port, home_web);
    let mut caves = serve(&caves_dir, &caves_config, caves_port, caves_web);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut ann, zone) = new_player("ann", home_port, home_web).await;
        assert_eq!(zone, "meadow");
        // The home learns the caves' node from the list of nodes (every
        // heartbeat); until then a traveller would stay home.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            ann.travel("caves").await;
            if arrival(&mut ann).await == "caves" {
                break;
            }
            assert!(Instant::now() < deadline, "never reached the caves");
            // (the cooldown between moves)
            tokio::time::sleep(Duration::from_secs(3)).await;
        }

        caves.kill().unwrap();
        caves.wait().unwrap();
        let killed = Instant::now();
        assert_eq!(arrival(&mut ann).await, "meadow");
        let back = killed.elapsed();
        println!(
            "back in the world {} ms after the caves' node was killed (heartbeat {HEARTBEAT_MS} ms)",
            back.as_millis()
        );
        assert!(
            back < Duration::from_millis(3 * HEARTBEAT_MS + 3_000),
            "back within three heartbeats and a little: {back:?}"
        );
    });
}
