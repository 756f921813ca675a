//! Players on different nodes of a cluster talk as if on one server: zone
//! chat said on one node reaches the zone's players on every node, a
//! whisper reaches the player on whichever node they play (their name in
//! any case), and only them; an administrator's announcement made on one
//! node reaches everyone; a whisper to a player on no node, or to one who
//! has just left, is refused "not online". Real nodes (`hearth serve` as a
//! library), a real NATS server and a real PostgreSQL.

use std::time::Duration;

use hearth_client::world::generated::{ChatScope, Message, RefusedAbout, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_cluster::test_servers::unique;
use hearth_server::Running;

mod common;
use common::cluster::{node_config, PASSWORD, WAIT};

/// Logs `name` in on `server` and waits until the player is in a line.
async fn join(server: &Running, name: &str) -> WorldClient {
    common::cluster::join_world(server, name).await.0
}

fn chat(update: &WorldUpdate) -> Option<(ChatScope, &str, &str)> {
    match update {
        WorldUpdate::Message(Message::Chat {
            scope, from, text, ..
        }) => Some((*scope, from.as_str(), text.as_str())),
        _ => None,
    }
}

/// Waits until `world` hears `text`: in which scope, from whom; and every
/// chat text heard before it.
async fn hears(world: &mut WorldClient, text: &str) -> (ChatScope, String, Vec<String>) {
    let mut before = Vec::new();
    let got = world
        .until(WAIT, |update, _| match chat(update) {
            Some((_, _, said)) if said == text => true,
            Some((_, _, said)) => {
                before.push(said.to_owned());
                false
            }
            None => false,
        })
        .await;
    let Some(update) = got else {
        panic!("{text:?} never heard; heard {before:?}")
    };
    let (scope, from, _) = chat(&update).unwrap();
    (scope, from.to_owned(), before)
}

/// Waits until `world` is told its chat was refused for a player not
/// online.
async fn refused_not_online(world: &mut WorldClient) {
    let refused = world
        .until(WAIT, |update, _| {
            matches!(update, WorldUpdate::Message(Message::Refused { about: RefusedAbout::Chat, reason })
                if reason.contains("not online"))
        })
        .await;
    assert!(refused.is_some(), "the whisper was refused as not online");
}

/// Waits until `server` listens for `names` player names on the cluster.
async fn listening(server: &Running, names: u64) {
    let counters = &server.cluster.as_ref().expect("a node").relay;
    let deadline = tokio::time::Instant::now() + WAIT;
    while counters
        .listening
        .load(std::sync::atomic::Ordering::Relaxed)
        != names
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never listened for {names} names"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_three_nodes_hear_zone_chat_whispers_and_announcements() {
    let cluster = unique("chat");
    let mut servers = Vec::new();
    for node in ["t1", "t2", "t3"] {
        servers.push(
            hearth_server::start(node_config(&cluster, node))
                .await
                .expect("a node starts"),
        );
    }
    let accounts = hearth_client::Accounts::new(&format!("http://{}", servers[0].web));
    let names: Vec<String> = ["ann", "bob", "cyd"]
        .iter()
        .map(|n| unique(n).replace('-', "_"))
        .collect();
    for name in &names {
        accounts.register(name, PASSWORD).await.unwrap();
    }
    // One player on each node, all in the first zone.
    let mut ann = join(&servers[0], &names[0]).await;
    let mut bob = join(&servers[1], &names[1]).await;
    let mut cyd = join(&servers[2], &names[2]).await;
    // Each node listens for its player's name from their entry on.
    for server in &servers {
        listening(server, 1).await;
    }

    // Zone chat on the first node reaches the zone's players on the others.
    ann.say(SayScope::Zone, "", "hello from t1").await;
    for world in [&mut bob, &mut cyd] {
        let (scope, from, _) = hears(world, "hello from t1").await;
        assert_eq!((scope, from.as_str()), (ChatScope::Zone, names[0].as_str()));
    }
    assert_eq!(hears(&mut ann, "hello from t1").await.0, ChatScope::Zone);

    // A whisper from the first node to the third, the name in capitals:
    // the third hears it, the second never does.
    let shouted = names[2].to_uppercase();
    ann.say(SayScope::Whisper, &shouted, "psst, cyd").await;
    let (scope, from, _) = hears(&mut cyd, "psst, cyd").await;
    assert_eq!(
        (scope, from.as_str()),
        (ChatScope::Whisper, names[0].as_str())
    );
    // The whisperer sees what they whispered.
    assert_eq!(hears(&mut ann, "psst, cyd").await.0, ChatScope::Whisper);
    // Zone chat after the whisper reaches bob after anything that leaked
    // would have: the whisper is not among it.
    ann.say(SayScope::Zone, "", "after the whisper").await;
    let (_, _, before) = hears(&mut bob, "after the whisper").await;
    assert!(
        !before.iter().any(|t| t == "psst, cyd"),
        "a whisper reached a third player: {before:?}"
    );

    // Whispers one after another arrive in order.
    for n in 0..5 {
        bob.say(SayScope::Whisper, &names[0], &format!("one by one {n}"))
            .await;
    }
    let (_, _, before) = hears(&mut ann, "one by one 4").await;
    let order: Vec<&String> = before
        .iter()
        .filter(|t| t.starts_with("one by one"))
        .collect();
    assert_eq!(
        order,
        [
            "one by one 0",
            "one by one 1",
            "one by one 2",
            "one by one 3"
        ]
    );

    // An announcement made on the second node reaches all three.
    assert!(servers[1].game.announce("maintenance at noon").await);
    for world in [&mut ann, &mut bob, &mut cyd] {
        let (scope, _, _) = hears(world, "maintenance at noon").await;
        assert_eq!(scope, ChatScope::System);
    }

    // A whisper to a name no node has, and to a player who just left their
    // node, is refused as not online.
    // (Ann: Bob has spent his burst of chat on the whispers above.)
    ann.say(SayScope::Whisper, "nobody_at_all", "hi").await;
    refused_not_online(&mut ann).await;
    drop(cyd);
    // The third node lets the player go at its next tick and stops
    // listening for the name; from then on a whisper for them is refused at
    // once (no node listens: NATS says so), not after the relay's wait.
    listening(&servers[2], 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // (Bob's chat refills)
    let sent = std::time::Instant::now();
    bob.say(SayScope::Whisper, &names[2], "are you there?")
        .await;
    refused_not_online(&mut bob).await;
    assert!(
        sent.elapsed() < hearth_cluster::relay::NAMED_WAIT,
        "refused at once, not after the wait: {:?}",
        sent.elapsed()
    );
    let relay = |server: &Running| {
        let counters = &server.cluster.as_ref().unwrap().relay;
        (
            counters.sent.load(std::sync::atomic::Ordering::Relaxed),
            counters.received.load(std::sync::atomic::Ordering::Relaxed),
            counters
                .malformed
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    let (sent, _, malformed) = relay(&servers[0]);
    assert!(sent >= 3, "the first node relayed what it said: {sent}");
    assert_eq!(malformed, 0);
    let (_, received, malformed) = relay(&servers[2]);
    assert!(received >= 3, "the third node received: {received}");
    assert_eq!(malformed, 0);

    // /metrics shows the relay's counters.
    let metrics = common::metrics(servers[0].web).await;
    assert!(
        metrics.contains("hearth_cluster_relay_messages_total{outcome=\"sent\"}"),
        "{metrics}"
    );
    for server in servers {
        server.shutdown("test over").await;
    }
}
