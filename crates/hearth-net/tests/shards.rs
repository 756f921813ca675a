//! The gate's shards over real loopback sockets: sessions spread over
//! shards and keep to themselves; a client whose address changes stays on
//! its shard (its datagrams forwarded from whichever socket they reach); a
//! resume over a new stream finds its session whatever shard the stream
//! would have picked; the session cap is exact under concurrent logins on
//! every shard.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hearth_net::client::{ConnectConfig, Connection, Transport};
use hearth_net::gate::{self, EchoHandler, GateConfig, GateHandle};
use hearth_net::impair::{Relay, RelayConfig};
use hearth_proto::{ChannelKind, ChannelSpec, Delivery, Event, LinkKind, ServerIdentity};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);
const SHARDS: usize = 4;

async fn sharded_gate(configure: impl FnOnce(&mut GateConfig)) -> GateHandle {
    let mut config = GateConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        shards: SHARDS,
        ..GateConfig::default()
    };
    configure(&mut config);
    let gate = gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        EchoHandler,
    )
    .await
    .unwrap();
    assert_eq!(gate.shard_count(), SHARDS);
    gate
}

/// Where `transport` connects: UDP to the UDP port, the rest to TCP's.
fn address(gate: &GateHandle, transport: Transport) -> std::net::SocketAddr {
    match transport {
        Transport::Udp => gate.udp_addr.unwrap(),
        _ => gate.tcp_addr.unwrap(),
    }
}

async fn joined(config: ConnectConfig) -> Connection {
    let mut connection = Connection::connect(config).await.unwrap();
    timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    connection
        .open_channel(
            2,
            ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered),
        )
        .await
        .unwrap();
    connection
}

/// Sends `count` messages tagged with `tag` on the reliable channel and
/// returns every echo that comes back, until `count` arrived.
async fn echoes(connection: &mut Connection, tag: u32, count: u32) -> Vec<Vec<u8>> {
    for index in 0..count {
        let mut message = tag.to_be_bytes().to_vec();
        message.extend_from_slice(&index.to_be_bytes());
        connection.send(2, &message).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < count as usize {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("echo in time")
        {
            Some(Event::Message {
                channel: 2,
                payload,
            }) => got.push(payload.to_vec()),
            Some(_) => {}
            None => panic!("connection ended"),
        }
    }
    got
}

/// Each shard's session ids.
async fn sessions_by_shard(gate: &GateHandle) -> Vec<Vec<u64>> {
    gate.query_each(|ctx| ctx.session_ids()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_different_shards_receive_only_their_own_messages() {
    let gate = sharded_gate(|_| {}).await;
    let transports = [Transport::Udp, Transport::Tcp, Transport::Auto];
    let mut clients = Vec::new();
    for index in 0..24u32 {
        let transport = transports[index as usize % transports.len()];
        let server = address(&gate, transport);
        clients.push(tokio::spawn(async move {
            let mut connection = joined(ConnectConfig::new(transport, server)).await;
            let echoed = echoes(&mut connection, index, 40).await;
            (index, echoed, connection)
        }));
    }
    let mut connections = Vec::new();
    for client in clients {
        let (tag, echoed, connection) = client.await.unwrap();
        let expected: Vec<Vec<u8>> = (0..40u32)
            .map(|i| [tag.to_be_bytes(), i.to_be_bytes()].concat())
            .collect();
        assert_eq!(
            echoed, expected,
            "client {tag} got exactly its own echoes, in order"
        );
        connections.push(connection);
    }
    let by_shard = sessions_by_shard(&gate).await;
    for (shard, ids) in by_shard.iter().enumerate() {
        for &id in ids {
            assert_eq!(
                gate.shard_of(id),
                shard,
                "a session lives on the shard its id names"
            );
        }
    }
    let used = by_shard.iter().filter(|ids| !ids.is_empty()).count();
    assert!(
        used >= 3,
        "24 sessions spread over the shards: {by_shard:?}"
    );
    assert_eq!(by_shard.iter().map(Vec::len).sum::<usize>(), 24);
    assert_eq!(gate.session_count(), 24, "the gate-wide count is exact");
    // Nothing is left over for anyone: one more round, each client alone.
    for (tag, connection) in connections.iter_mut().enumerate() {
        let echoed = echoes(connection, 1000 + tag as u32, 3).await;
        assert!(echoed
            .iter()
            .all(|m| m[..4] == (1000 + tag as u32).to_be_bytes()));
    }
}

/// One UDP client through a relay that changes its address again and again.
async fn follow_address_changes(steer: bool) {
    let gate = sharded_gate(|config| config.steer_datagrams = steer).await;
    let relay = Relay::start(RelayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        gate.udp_addr.unwrap(),
    ))
    .await
    .unwrap();
    let mut connection = joined(ConnectConfig::new(Transport::Udp, relay.local_addr)).await;
    echoes(&mut connection, 1, 10).await;
    let by_shard = sessions_by_shard(&gate).await;
    let (owner, id) = by_shard
        .iter()
        .enumerate()
        .find_map(|(shard, ids)| ids.first().map(|id| (shard, *id)))
        .expect("one session");
    // Each address change is a new 4-tuple, which the kernel hashes to any of
    // the four sockets: without steering, within a few changes one lands on
    // another shard's socket and is forwarded.
    let mut changes = 0;
    let forwarded = || gate.metrics().udp_forwarded.load(Ordering::Relaxed);
    while changes < 6 || (!steer && forwarded() == 0) {
        assert!(
            changes < 24,
            "no datagram ever reached another shard's socket"
        );
        relay.change_addresses();
        changes += 1;
        let echoed = echoes(&mut connection, 100 + changes, 10).await;
        assert_eq!(echoed.len(), 10, "echoes after address change {changes}");
        let (shard, migrations) = gate
            .query_on(id, move |ctx| {
                (ctx.shard(), ctx.session(id).map(|s| s.stats().migrations))
            })
            .await
            .unwrap();
        assert_eq!(shard, owner);
        assert!(
            migrations.is_some_and(|m| m >= u64::from(changes)),
            "the session on shard {owner} followed every change: {migrations:?} after {changes}"
        );
    }
    assert_eq!(gate.session_count(), 1, "still the one session");
    assert_eq!(
        gate.metrics().udp_forward_dropped.load(Ordering::Relaxed),
        0
    );
    let stats = gate.endpoint_stats().await.unwrap();
    assert_eq!(stats.sessions_opened, 1);
    assert!(stats.rebinds >= u64::from(changes), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_changes_address_stays_on_its_shard() {
    follow_address_changes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_kernel_steering_a_changed_address_is_forwarded_to_its_shard() {
    follow_address_changes(false).await;
}

/// Sessions that logged in over TCP and then bound UDP by ticket live on
/// the shard their stream picked, whatever socket their UDP address hashes
/// to: how many of their echoed datagrams had to be forwarded.
async fn forwarded_during_ticketed_echoes(steer: bool) -> u64 {
    let gate = sharded_gate(|config| config.steer_datagrams = steer).await;
    let mut connections = Vec::new();
    for _ in 0..8 {
        let mut connection =
            joined(ConnectConfig::new(Transport::Auto, gate.tcp_addr.unwrap())).await;
        // Wait for the UDP link, then echo once to settle.
        timeout(WAIT, async {
            while gate
                .query_each(|ctx| {
                    ctx.session_ids().iter().all(|&id| {
                        ctx.session(id)
                            .is_some_and(|s| s.has_link(LinkKind::Datagram))
                    })
                })
                .await
                .unwrap()
                .contains(&false)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("UDP by ticket");
        echoes(&mut connection, 0, 2).await;
        connections.push(connection);
    }
    let before = gate.metrics().udp_forwarded.load(Ordering::Relaxed);
    for (tag, connection) in connections.iter_mut().enumerate() {
        echoes(connection, tag as u32, 50).await;
    }
    gate.metrics().udp_forwarded.load(Ordering::Relaxed) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_delivers_each_datagram_to_its_sessions_shard() {
    let steered = forwarded_during_ticketed_echoes(true).await;
    assert_eq!(
        steered, 0,
        "every datagram arrived on its own shard's socket"
    );
    let unsteered = forwarded_during_ticketed_echoes(false).await;
    assert!(
        unsteered > 0,
        "without steering some of eight sessions' datagrams land elsewhere (the test would prove nothing)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_over_a_new_stream_finds_its_session_on_another_shard() {
    let gate = sharded_gate(|_| {}).await;
    let mut connection = joined(ConnectConfig::new(Transport::Tcp, gate.tcp_addr.unwrap())).await;
    echoes(&mut connection, 1, 10).await;
    let id = sessions_by_shard(&gate).await.concat()[0];
    // A new stream picks its shard by its number; only a resume that reads
    // the session id from the Hello finds the session every time (a router
    // that did not would lose three resumes in four).
    for round in 0..8u32 {
        connection.drop_stream().await;
        let echoed = echoes(&mut connection, 10 + round, 10).await;
        assert_eq!(echoed.len(), 10, "echoes after resume {round}");
        timeout(WAIT, async {
            while !gate
                .query_on(id, move |ctx| {
                    ctx.session(id)
                        .is_some_and(|s| s.has_link(LinkKind::Stream))
                })
                .await
                .unwrap()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the stream is back");
    }
    let stats = gate.endpoint_stats().await.unwrap();
    assert_eq!(stats.sessions_opened, 1, "every resume found the session");
    assert_eq!(stats.stream_handshakes_completed, 9, "{stats:?}");
    assert_eq!(gate.session_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_holds_exactly_under_concurrent_logins_on_every_shard() {
    const CAP: usize = 20;
    let gate = sharded_gate(|config| config.protocol.max_sessions = CAP).await;
    let attempts: Vec<_> = (0..72)
        .map(|index| {
            let transport = if index % 2 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            let server = address(&gate, transport);
            tokio::spawn(async move {
                let mut config = ConnectConfig::new(transport, server);
                config.reconnect = false;
                let mut connection = Connection::connect(config).await.ok()?;
                match timeout(WAIT, connection.wait_for(|e| *e == Event::Joined)).await {
                    Ok(Ok(_)) => Some(connection),
                    _ => None,
                }
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for attempt in attempts {
        if let Some(connection) = attempt.await.unwrap() {
            admitted.push(connection);
        }
    }
    assert_eq!(admitted.len(), CAP, "exactly the cap got in");
    assert_eq!(gate.session_count(), CAP);
    let by_shard = sessions_by_shard(&gate).await;
    let counts: BTreeMap<usize, usize> = by_shard
        .iter()
        .enumerate()
        .map(|(shard, ids)| (shard, ids.len()))
        .collect();
    assert_eq!(counts.values().sum::<usize>(), CAP, "{counts:?}");
    assert!(
        counts.values().filter(|&&n| n > 0).count() >= 2,
        "the admitted sessions are on several shards: {counts:?}"
    );
    // A place freed on one shard is a place for a login on any.
    let leaving = admitted.pop().unwrap();
    leaving.close(1000, "bye").await;
    timeout(WAIT, async {
        while gate.session_count() >= CAP {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed session leaves");
    let mut config = ConnectConfig::new(Transport::Udp, gate.udp_addr.unwrap());
    config.reconnect = false;
    let _newcomer = joined(config).await;
    assert_eq!(gate.session_count(), CAP);
}
