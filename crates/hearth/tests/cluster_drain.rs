//! `hearth admin drain NODE` against two `hearth serve` processes (a real
//! NATS server and a real PostgreSQL): the drained node hands its player to
//! the other without a reconnect, and the command says when it is done; a
//! node the cluster does not have is refused with the names it has.

use std::time::Duration;

use hearth_client::world::generated::Message;
use hearth_client::world::WorldUpdate;
use hearth_cluster::test_servers::unique;

mod common;
use common::cluster::{admin, arrival, new_player};
use common::serve;

/// Node `name` of `cluster`, rewriting its record every 200 ms.
fn node(cluster: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf, u16, u16) {
    common::cluster::node(cluster, name, 200, "")
}

#[test]
fn hearth_admin_drain_hands_a_nodes_player_to_the_other_node() {
    let cluster = unique("drain-cli");
    let (d1_dir, d1_config, d1_port, d1_web) = node(&cluster, "d1");
    let (d2_dir, d2_config, d2_port, d2_web) = node(&cluster, "d2");
    let _d1 = serve(&d1_dir, &d1_config, d1_port, d1_web);
    let _d2 = serve(&d2_dir, &d2_config, d2_port, d2_web);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut ann, zone) = new_player("ann", d1_port, d1_web).await;
        assert_eq!(zone, "meadow");

        let unknown = admin(&d2_config, &["drain", "nosuch"]);
        assert!(!unknown.status.success());
        let said = String::from_utf8_lossy(&unknown.stderr);
        assert!(said.contains("no live node named \"nosuch\""), "{said}");

        // The command waits until d1's lines are empty; meanwhile Ann's
        // client reads on (it sees her new line on d2).
        let config = d2_config.clone();
        let drain = tokio::task::spawn_blocking(move || admin(&config, &["drain", "d1", "--wait", "30"]));
        assert_eq!(arrival(&mut ann).await, "meadow");
        let drained = drain.await.unwrap();
        let out = String::from_utf8_lossy(&drained.stdout);
        assert!(
            drained.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&drained.stderr)
        );
        assert!(out.contains("d1: draining, 1 players to hand on"), "{out}");
        assert!(out.contains("d1 is drained"), "{out}");
        // Still connected to d1, playing on d2: she walks.
        ann.say(hearth_client::world::generated::SayScope::Line, "", "still here")
            .await;
        let heard = ann
            .until(Duration::from_secs(10), |update, _| {
                matches!(update, WorldUpdate::Message(Message::Chat { text, .. }) if text.as_str() == "still here")
            })
            .await;
        assert!(heard.is_some(), "her line chat comes back through d1 from d2");
    });
}
