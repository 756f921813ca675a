//! The whole session over a simulated network: handshake, login, channels,
//! reliable and unreliable delivery, migration, heartbeats, close.

mod common;

use std::time::Duration;

use common::*;
use hearth_proto::{
    close_code, ChannelKind, ChannelSpec, ClientConfig, CloseReason, Delivery, DropReason, Event,
    LinkKind, ServerConfig,
};

#[test]
fn udp_login_completes_on_a_perfect_link() {
    let mut world = World::with_defaults(1, LinkProfile::PERFECT);
    let took = world.login_over_udp();
    // Initial+Challenge, Response+Ack, then Hello..Joined over the control channel.
    assert!(took < Duration::from_millis(200), "took {took:?}");
    let id = world.session_id();
    assert!(world
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Welcomed { session_id, .. } if *session_id == id)));
    assert!(world
        .server_events
        .iter()
        .any(|(_, e)| matches!(e, Event::LoginRequest(_))));
    assert!(world.client.server_key_is(&world.server.public_key()));
    assert_eq!(
        world.server.session(id).unwrap().net_speed(),
        Some(ClientConfig::default().net_speed)
    );
}

#[test]
fn reliable_messages_arrive_once_in_order_over_a_bad_link_with_an_address_change() {
    for seed in [2, 3, 4] {
        let mut world = World::with_defaults(seed, LinkProfile::BAD);
        world.login_over_udp();
        world.open_channel(1, reliable(ChannelKind::Game));
        let id = world.session_id();
        let sizes = [0usize, 1, 100, 1100, 1200, 5000, 70_000, 300];
        let mut sent_up = Vec::new();
        let mut sent_down = Vec::new();
        for index in 0..240u32 {
            let size = sizes[index as usize % sizes.len()];
            let up = numbered_message(index, size);
            world.client.send(world.now, 1, &up).unwrap();
            sent_up.push(up);
            let down = numbered_message(index + 10_000, size);
            world.server.send(world.now, id, 1, &down).unwrap();
            sent_down.push(down);
            world.run_for(Duration::from_millis(5));
            if index == 120 {
                // The client's NAT mapping changes mid-session.
                world.client_addr = addr("10.0.0.9:40000");
            }
        }
        let done = world.run_until(Duration::from_secs(60), |w| {
            w.messages_at_server(1).len() >= sent_up.len()
                && w.messages_at_client(1).len() >= sent_down.len()
        });
        assert!(
            done.is_some(),
            "seed {seed}: delivered {} up, {} down",
            world.messages_at_server(1).len(),
            world.messages_at_client(1).len()
        );
        world.run_for(Duration::from_secs(1));
        assert_eq!(world.messages_at_server(1), sent_up, "seed {seed}");
        assert_eq!(world.messages_at_client(1), sent_down, "seed {seed}");
        assert!(
            world
                .server_events
                .iter()
                .any(|(_, e)| matches!(e, Event::Migrated { .. })),
            "seed {seed}"
        );
        assert!(world.client_closed().is_none() && world.server_closed().is_none());
        let stats = world.server.session(id).unwrap().stats();
        assert_eq!(stats.migrations, 1);
        assert!(stats.retransmits > 0, "a lossy link needs retransmissions");
        assert!(
            stats.loss_rate() > 0.0 && stats.loss_rate() < 0.5,
            "loss {}",
            stats.loss_rate()
        );
        assert!(stats.rtt.smoothed.is_some());
    }
}

#[test]
fn unreliable_and_sequenced_channels() {
    // Little jitter: with heavy reordering a sequenced channel rightly drops most.
    let mut world = World::with_defaults(
        5,
        LinkProfile {
            jitter_ms: 5,
            ..LinkProfile::BAD
        },
    );
    world.login_over_udp();
    world.open_channel(
        2,
        ChannelSpec::new(ChannelKind::Voice, Delivery::Unreliable),
    );
    world.open_channel(
        3,
        ChannelSpec::new(ChannelKind::Game, Delivery::UnreliableSequenced),
    );
    // The server can tell how each open channel delivers (a gate's handler
    // queue drops only what was droppable).
    let session = world.server.session(world.session_id()).unwrap();
    assert_eq!(session.channel_delivery(2), Some(Delivery::Unreliable));
    assert_eq!(
        session.channel_delivery(3),
        Some(Delivery::UnreliableSequenced)
    );
    assert_eq!(session.channel_delivery(4), None, "not open");
    assert_eq!(session.channel_delivery(0), None, "the control channel");
    for index in 0..300u32 {
        world
            .client
            .send(world.now, 2, &numbered_message(index, 40))
            .unwrap();
        world
            .client
            .send(world.now, 3, &numbered_message(index, 3000))
            .unwrap();
        world.run_for(Duration::from_millis(3));
    }
    world.run_for(Duration::from_secs(2));
    let index_of = |m: &Vec<u8>| u32::from_be_bytes(m[..4].try_into().unwrap());
    let plain: Vec<u32> = world.messages_at_server(2).iter().map(index_of).collect();
    let sequenced: Vec<u32> = world.messages_at_server(3).iter().map(index_of).collect();
    // Unreliable: most arrive, intact, each at most once (duplicates are filtered by the replay window).
    assert!(plain.len() > 200 && plain.len() < 300, "{}", plain.len());
    let mut unique = plain.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), plain.len());
    for message in world.messages_at_server(2) {
        assert_eq!(message, numbered_message(index_of(&message), 40));
    }
    // Sequenced: strictly increasing; multi-part messages are whole or absent.
    assert!(sequenced.windows(2).all(|w| w[0] < w[1]));
    assert!(sequenced.len() > 100, "{}", sequenced.len());
    for message in world.messages_at_server(3) {
        assert_eq!(message, numbered_message(index_of(&message), 3000));
    }
    let stats = world.server.session(world.session_id()).unwrap().stats();
    assert!(
        stats.drops.get(DropReason::PartialIncomplete) + stats.drops.get(DropReason::Stale) > 0
    );
}

#[test]
fn the_pre_login_hook_can_refuse_with_a_reason() {
    let mut world = World::with_defaults(6, LinkProfile::PERFECT);
    world.hook = Hook::Refuse("server is whitelisted");
    world.client.connect_datagram(world.now, world.server_addr);
    world
        .run_until(Duration::from_secs(5), |w| w.client_closed().is_some())
        .expect("client learns");
    assert_eq!(
        world.client_closed(),
        Some(&CloseReason::LoginRefused("server is whitelisted".into()))
    );
    world.run_for(Duration::from_millis(100));
    assert_eq!(world.server.state_size().sessions, 0);
}

#[test]
fn an_unanswered_login_step_times_out() {
    let mut server = ServerConfig::default();
    server.session.login_step_timeout = Duration::from_secs(2);
    let mut world = World::new(7, LinkProfile::PERFECT, server, ClientConfig::default());
    world.hook = Hook::Ignore;
    world.client.connect_datagram(world.now, world.server_addr);
    let took = world
        .run_until(Duration::from_secs(10), |w| w.client_closed().is_some())
        .unwrap();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        matches!(world.server_closed(), Some(CloseReason::LoginTimeout(why)) if why.contains("pre-login decision"))
    );
    assert!(matches!(
        world.client_closed(),
        Some(CloseReason::LoginTimeout(_))
    ));
}

#[test]
fn graceful_close_carries_the_reason_both_ways() {
    let mut world = World::with_defaults(8, LinkProfile::PERFECT);
    world.login_over_udp();
    let id = world.session_id();
    world
        .server
        .close(world.now, id, close_code::KICKED, "cheating");
    world
        .run_until(Duration::from_secs(5), |w| w.client_closed().is_some())
        .unwrap();
    assert_eq!(
        world.client_closed(),
        Some(&CloseReason::Kicked {
            reason: "cheating".into()
        })
    );
    assert_eq!(
        world.server_closed(),
        Some(&CloseReason::Local {
            code: close_code::KICKED
        })
    );

    let mut world = World::with_defaults(9, LinkProfile::PERFECT);
    world.login_over_udp();
    world.open_channel(1, reliable(ChannelKind::Data));
    world.client.send(world.now, 1, b"last words").unwrap();
    world.client.close(world.now, close_code::NORMAL, "quit");
    world
        .run_until(Duration::from_secs(5), |w| w.server_closed().is_some())
        .unwrap();
    assert_eq!(
        world.messages_at_server(1),
        vec![b"last words".to_vec()],
        "close waits for reliable data"
    );
    assert_eq!(
        world.server_closed(),
        Some(&CloseReason::ClosedByPeer {
            code: 0,
            reason: "quit".into()
        })
    );
}

#[test]
fn heartbeats_keep_an_idle_session_alive_and_measure_rtt() {
    let mut world = World::with_defaults(
        10,
        LinkProfile {
            delay_ms: 40,
            ..LinkProfile::PERFECT
        },
    );
    world.login_over_udp();
    world.run_for(Duration::from_secs(60));
    assert!(world.client_closed().is_none() && world.server_closed().is_none());
    let stats = world.server.session(world.session_id()).unwrap().stats();
    let rtt = stats.rtt.smoothed.unwrap();
    assert!(
        rtt >= Duration::from_millis(79) && rtt <= Duration::from_millis(90),
        "{rtt:?}"
    );
    // Each end pings once it has sent nothing else for an interval: the
    // server, which answers the client's pings every second, pings only to
    // refresh its measurement (every fourth interval); together the two ends
    // still hear each other every second.
    let client_samples = world.client.session().stats().rtt.samples;
    assert!(
        stats.rtt.samples >= 60 / u64::from(hearth_proto::link::RTT_REFRESH) - 2,
        "the server measures at least every fourth second: {}",
        stats.rtt.samples
    );
    // Before heartbeats were skipped after other traffic, each end pinged
    // every second: 120 in a minute. A pong is traffic too, so now the two
    // share the work.
    let total = client_samples + stats.rtt.samples;
    assert!(
        (55..=80).contains(&total),
        "between one and one and a third heartbeats a second between them: client {client_samples}, server {}",
        stats.rtt.samples
    );
}

#[test]
fn a_cut_link_is_detected_within_timeout_plus_one_interval() {
    let mut server = ServerConfig::default();
    server.session.resume_grace = Duration::from_secs(5);
    let mut world = World::new(11, LinkProfile::PERFECT, server, ClientConfig::default());
    world.login_over_udp();
    world.run_for(Duration::from_millis(2500));
    world.cut = true;
    let bound = Duration::from_secs(10) + Duration::from_secs(1);
    let took = world
        .run_until(Duration::from_secs(20), |w| w.server_has(&Event::Detached))
        .unwrap();
    assert!(took <= bound, "server noticed after {took:?}");
    let client_took = world
        .run_until(bound, |w| w.client_has(&Event::Detached))
        .unwrap()
        + took;
    assert!(client_took <= bound, "client noticed after {client_took:?}");
    assert!(world.server_has(&Event::LinkDown(LinkKind::Datagram)));
    // Without a resume in the grace window the session ends as timed out.
    world
        .run_until(Duration::from_secs(6), |w| w.server_closed().is_some())
        .unwrap();
    assert_eq!(world.server_closed(), Some(&CloseReason::Timeout));
    world.run_for(Duration::from_millis(10));
    assert_eq!(world.server.state_size().sessions, 0);
}

#[test]
fn handshake_resends_every_second_then_gives_up_clearly() {
    let mut world = World::with_defaults(12, LinkProfile::PERFECT);
    world.udp_blocked = true;
    world.capture = true;
    world.client.connect_datagram(world.now, world.server_addr);
    let took = world
        .run_until(Duration::from_secs(20), |w| w.client_closed().is_some())
        .unwrap();
    assert_eq!(took, Duration::from_secs(10));
    assert_eq!(world.client_closed(), Some(&CloseReason::HandshakeTimeout));
    // The first Initial and one each second after it.
    assert_eq!(world.captured_to_server.len(), 10);
    assert!(world
        .captured_to_server
        .iter()
        .all(|(_, bytes)| bytes.len() == 1200));
}

#[test]
fn handshake_survives_loss_of_each_stage() {
    for seed in 20..30 {
        let mut world = World::with_defaults(
            seed,
            LinkProfile {
                loss_percent: 40,
                ..LinkProfile::BAD
            },
        );
        world.login_over_udp();
        assert_eq!(
            world.server.state_size().sessions,
            1,
            "resent Responses never make a second session"
        );
    }
}

#[test]
fn pinned_server_key_connects_and_a_wrong_pin_fails() {
    let mut world = World::with_defaults(13, LinkProfile::PERFECT);
    let key = world.server.public_key();
    let mut config = ClientConfig {
        server_key: Some(key),
        ..ClientConfig::default()
    };
    let mut pinned = World::new(
        13,
        LinkProfile::PERFECT,
        ServerConfig::default(),
        config.clone(),
    );
    pinned.login_over_udp();

    config.server_key = Some([7; 32]);
    world = World::new(14, LinkProfile::PERFECT, ServerConfig::default(), config);
    world.client.connect_datagram(world.now, world.server_addr);
    world
        .run_until(Duration::from_secs(5), |w| w.client_closed().is_some())
        .unwrap();
    assert_eq!(world.client_closed(), Some(&CloseReason::ServerKeyMismatch));
}
