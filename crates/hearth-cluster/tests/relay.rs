//! Players' messages between nodes on a real NATS server: a zone's message
//! and an announcement reach every other node (and never come back to the
//! sender), a message by name reaches the node that has the player and only
//! it, in order, and one for a player no node has comes back undelivered at
//! once (NATS's "no responders"), not after a timeout. What another node
//! sends is untrusted: a malformed message, one on the wrong subject, or
//! one encoded for another version of the game is dropped and counted.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hearth_cluster::relay::{self, Incoming, Outgoing, Relay, RelaySettings};
use hearth_cluster::relay_wire::{self, Envelope, Relayed};
use hearth_cluster::test_servers::{nats_url, unique};
use hearth_cluster::{async_nats, connect_nats, ClusterName, NodeId};
use tokio::sync::mpsc;

/// As the server folds names (`hearth_replica::names::name_key`): ASCII
/// case ignored.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Waits until `relay` listens for `names` player names (its subscriptions
/// are on the server by then).
async fn listening(relay: &Relay, names: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.counters.listening.load(Ordering::Relaxed) != names {
        assert!(
            Instant::now() < deadline,
            "the relay never listened for {names} names"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn node(
    cluster: &ClusterName,
    name: &str,
    schema: &str,
) -> (Relay, mpsc::Receiver<Incoming>, async_nats::Client) {
    let id = NodeId::new(name).unwrap();
    let client = connect_nats(&nats_url(), &id).await.unwrap();
    let settings = RelaySettings {
        schema: schema.to_owned(),
        fold,
    };
    let (relay, incoming) = relay::start(&client, cluster, &id, settings).await.unwrap();
    (relay, incoming, client)
}

async fn next(incoming: &mut mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(Duration::from_secs(5), incoming.recv())
        .await
        .expect("something arrives within 5 s")
        .expect("the relay runs")
}

/// Nothing more arrives within a while.
async fn quiet(incoming: &mut mpsc::Receiver<Incoming>) {
    if let Ok(Some(what)) = tokio::time::timeout(Duration::from_millis(300), incoming.recv()).await
    {
        panic!("nothing more was expected, got {what:?}");
    }
}

#[tokio::test]
async fn zone_messages_and_announcements_reach_every_other_node_once() {
    let cluster = ClusterName::new(&unique("relay-zone")).unwrap();
    let (a, mut a_in, _ca) = node(&cluster, "a", "v1").await;
    let (_b, mut b_in, _cb) = node(&cluster, "b", "v1").await;
    let (_c, mut c_in, _cc) = node(&cluster, "c", "v1").await;
    a.send(Outgoing::Zone {
        zone: "town".into(),
        message: 4,
        body: b"hello".to_vec(),
    });
    a.send(Outgoing::Announce {
        text: "restart at noon".into(),
    });
    for incoming in [&mut b_in, &mut c_in] {
        match next(incoming).await {
            Incoming::Zone {
                zone,
                message,
                body,
            } => assert_eq!(
                (zone.as_str(), message, &body[..]),
                ("town", 4, &b"hello"[..])
            ),
            other => panic!("expected the zone message, got {other:?}"),
        }
        match next(incoming).await {
            Incoming::Announce { text } => assert_eq!(text, "restart at noon"),
            other => panic!("expected the announcement, got {other:?}"),
        }
        quiet(incoming).await;
    }
    // The sender's own lines had it already.
    quiet(&mut a_in).await;
    assert_eq!(a.counters.sent.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_message_by_name_reaches_the_node_with_the_player_in_order_and_is_answered() {
    let cluster = ClusterName::new(&unique("relay-named")).unwrap();
    let (a, mut a_in, _ca) = node(&cluster, "a", "v1").await;
    let (b, mut b_in, _cb) = node(&cluster, "b", "v1").await;
    let (_c, mut c_in, _cc) = node(&cluster, "c", "v1").await;
    b.present("Arwen");
    listening(&b, 1).await;
    for n in 0..20u8 {
        // Any case of the name reaches the player, as on one node.
        a.send(Outgoing::Named {
            sender: 7,
            name: if n % 2 == 0 { "arwen" } else { "ARWEN" }.into(),
            message: 2,
            body: vec![n],
        });
    }
    for n in 0..20u8 {
        match next(&mut b_in).await {
            Incoming::Named {
                message,
                body,
                answer,
                ..
            } => {
                assert_eq!((message, body), (2, vec![n]), "in the order sent");
                answer.answer(true);
            }
            other => panic!("expected a message by name, got {other:?}"),
        }
    }
    quiet(&mut c_in).await;
    // Every one was answered as delivered: nothing comes back to a.
    quiet(&mut a_in).await;
    assert_eq!(a.counters.undelivered.load(Ordering::Relaxed), 0);

    // b answers "not here" (the player left in between): a hears it,
    // once no other node has answered "delivered" for a moment.
    b.present("arwen2");
    listening(&b, 2).await;
    a.send(Outgoing::Named {
        sender: 8,
        name: "arwen2".into(),
        message: 2,
        body: vec![],
    });
    match next(&mut b_in).await {
        Incoming::Named { answer, .. } => answer.answer(false),
        other => panic!("expected a message by name, got {other:?}"),
    }
    match next(&mut a_in).await {
        Incoming::Undelivered { sender, name } => {
            assert_eq!((sender, name.as_str()), (8, "arwen2"))
        }
        other => panic!("expected undelivered, got {other:?}"),
    }

    // Once the player has left b, a message for them is undelivered at
    // once: no node listens for the name.
    b.absent("arwen");
    listening(&b, 1).await;
    let sent = Instant::now();
    a.send(Outgoing::Named {
        sender: 9,
        name: "Arwen".into(),
        message: 2,
        body: vec![],
    });
    match next(&mut a_in).await {
        Incoming::Undelivered { sender, .. } => assert_eq!(sender, 9),
        other => panic!("expected undelivered, got {other:?}"),
    }
    assert!(
        sent.elapsed() < relay::NAMED_WAIT / 2,
        "no responders is known at once, took {:?}",
        sent.elapsed()
    );
    quiet(&mut b_in).await;
}

#[tokio::test]
async fn a_message_nobody_answers_comes_back_undelivered_after_the_wait() {
    let cluster = ClusterName::new(&unique("relay-wait")).unwrap();
    let (a, mut a_in, _ca) = node(&cluster, "a", "v1").await;
    let (b, mut b_in, _cb) = node(&cluster, "b", "v1").await;
    b.present("slow");
    listening(&b, 1).await;
    let sent = Instant::now();
    a.send(Outgoing::Named {
        sender: 1,
        name: "slow".into(),
        message: 2,
        body: vec![],
    });
    // b takes it and never answers (a frozen game host).
    let held = next(&mut b_in).await;
    match next(&mut a_in).await {
        Incoming::Undelivered { sender, .. } => assert_eq!(sender, 1),
        other => panic!("expected undelivered, got {other:?}"),
    }
    let waited = sent.elapsed();
    assert!(
        waited >= relay::NAMED_WAIT && waited < relay::NAMED_WAIT * 2,
        "{waited:?}"
    );
    drop(held);
}

#[tokio::test]
async fn what_another_node_sends_is_checked_and_what_fails_is_counted() {
    let cluster = ClusterName::new(&unique("relay-hostile")).unwrap();
    let (a, mut a_in, client) = node(&cluster, "a", "v1").await;
    let all = format!("{}.relay.all", cluster.as_str());
    let raw = |bytes: Vec<u8>| {
        let (client, all) = (client.clone(), all.clone());
        async move { client.publish(all, bytes.into()).await.unwrap() }
    };
    // Garbage, a cut message, and one too large.
    raw(b"\x00garbage".to_vec()).await;
    let good = relay_wire::encode(&Envelope {
        origin: "b_0123456789ab".into(),
        schema: "v1".into(),
        relayed: Relayed::Zone {
            zone: "town".into(),
            message: 1,
            body: vec![1, 2],
        },
    })
    .unwrap();
    raw(good[..good.len() - 1].to_vec()).await;
    raw(vec![1; relay_wire::MAX_RELAY_MESSAGE + 1]).await;
    // A message by name on the zone subject.
    let misplaced = relay_wire::encode(&Envelope {
        origin: "b_0123456789ab".into(),
        schema: "v1".into(),
        relayed: Relayed::Named {
            name: "x".into(),
            message: 1,
            body: vec![],
        },
    })
    .unwrap();
    raw(misplaced).await;
    // Another version of the game.
    let foreign = relay_wire::encode(&Envelope {
        origin: "b_0123456789ab".into(),
        schema: "v2".into(),
        relayed: Relayed::Announce { text: "hi".into() },
    })
    .unwrap();
    raw(foreign).await;
    // And then a good one still arrives: nothing stalled.
    raw(good).await;
    match next(&mut a_in).await {
        Incoming::Zone { body, .. } => assert_eq!(body, vec![1, 2]),
        other => panic!("expected the good message, got {other:?}"),
    }
    quiet(&mut a_in).await;
    assert_eq!(a.counters.malformed.load(Ordering::Relaxed), 4);
    assert_eq!(a.counters.foreign.load(Ordering::Relaxed), 1);
    assert_eq!(a.counters.received.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn names_are_counted_and_a_message_by_name_is_checked_against_its_subject_and_reply() {
    let cluster = ClusterName::new(&unique("relay-names")).unwrap();
    let (b, mut b_in, client) = node(&cluster, "b", "v1").await;
    // Two players of one name (guests, or sessions side by side): the name
    // is listened for until both have left.
    b.present("twin");
    b.present("TWIN");
    listening(&b, 1).await;
    b.absent("twin");
    tokio::time::sleep(Duration::from_millis(100)).await;
    listening(&b, 1).await;

    // A message by name on the twin's subject, but naming someone else:
    // dropped as malformed (a node cannot reach a player through another's
    // subject).
    let subject = |folded: &str| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(folded.as_bytes());
        let key = hearth_codec::to_hex(&digest[..16]);
        format!("{}.relay.player.{key}", cluster.as_str())
    };
    let named = |name: &str| {
        relay_wire::encode(&Envelope {
            origin: "a_0123456789ab".into(),
            schema: "v1".into(),
            relayed: Relayed::Named {
                name: name.into(),
                message: 1,
                body: vec![],
            },
        })
        .unwrap()
    };
    client
        .publish(subject("twin"), named("someone-else").into())
        .await
        .unwrap();
    // A well-formed one whose reply subject is not a relay's (another
    // node's release request, say): delivered, but the answer goes nowhere.
    let mut elsewhere = client.subscribe("_INBOX.victim.release").await.unwrap();
    client
        .publish_with_reply(
            subject("twin"),
            "_INBOX.victim.release",
            named("Twin").into(),
        )
        .await
        .unwrap();
    match next(&mut b_in).await {
        Incoming::Named { name, answer, .. } => {
            assert_eq!(name, "Twin");
            answer.answer(true);
        }
        other => panic!("expected the message by name, got {other:?}"),
    }
    quiet(&mut b_in).await;
    let answered = tokio::time::timeout(Duration::from_millis(300), elsewhere.next()).await;
    assert!(
        answered.is_err(),
        "a node answered on a subject that was not a relay's"
    );
    assert_eq!(b.counters.malformed.load(Ordering::Relaxed), 1);

    b.absent("Twin");
    listening(&b, 0).await;
}
