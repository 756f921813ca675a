//! Hostile input: spoofed floods, replays, forged rebinds, tampering, garbage.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use hearth_kcp::sim::SimRng;
use hearth_proto::handshake::{HandshakePacket, Mode, MIN_INITIAL_LEN, PROTOCOL_VERSION};
use hearth_proto::{ChannelKind, DropReason, Event, Transmit};

fn random_addr(rng: &mut SimRng) -> SocketAddr {
    let ip = Ipv4Addr::from(rng.next_u64() as u32);
    SocketAddr::new(ip.into(), 1024 + (rng.below(60_000) as u16))
}

#[test]
fn a_million_spoofed_initials_cost_no_state_and_a_real_client_still_connects() {
    let mut world = World::with_defaults(40, LinkProfile::PERFECT);
    let baseline = world.server.state_size();
    let mut rng = SimRng::new(41);
    let mut initial = HandshakePacket::Initial {
        version: PROTOCOL_VERSION,
        mode: Mode::New,
        client_public: [9; 32],
    }
    .to_vec();
    let mut sent_to: u64 = 0;
    let mut received_from_server: u64 = 0;
    for index in 0..1_000_000u32 {
        initial[12..16].copy_from_slice(&index.to_be_bytes());
        world
            .server
            .handle(world.now, random_addr(&mut rng), &initial);
        sent_to += initial.len() as u64;
        if index % 1000 == 999 {
            // The driver drains replies as it would send them.
            while let Some(transmit) = world.server.poll_transmit() {
                if let Transmit::Datagram { bytes, .. } = transmit {
                    received_from_server += bytes.len() as u64;
                }
            }
            // Only the legitimate client (once it starts) ever gets state.
            let legit = usize::from(index > 500_000);
            let size = world.server.state_size();
            assert!(size.sessions <= legit, "{size:?}");
            assert!(size.completed_handshakes <= legit, "{size:?}");
            assert!(size.timers <= baseline.timers + 4 * legit, "{size:?}");
            assert!(
                size.queued_transmits <= hearth_proto::ServerConfig::default().max_queued_replies
            );
        }
        if index == 500_000 {
            // A legitimate player starts during the flood.
            let server = world.server_addr;
            world.client.connect_datagram(world.now, server);
        }
        if index >= 500_000 && index % 100 == 0 {
            world.tick();
        }
    }
    assert!(world.joined(), "the real client logged in during the flood");
    assert_eq!(world.server.state_size().sessions, 1);
    assert!(
        received_from_server * 10 < sent_to,
        "no amplification: {received_from_server} out for {sent_to} in"
    );
    assert!(world.server.stats().challenges_sent >= 1_000_000);
}

#[test]
fn short_initials_and_wrong_versions_get_no_amplified_answer() {
    let mut world = World::with_defaults(42, LinkProfile::PERFECT);
    let initial = HandshakePacket::Initial {
        version: PROTOCOL_VERSION,
        mode: Mode::New,
        client_public: [9; 32],
    }
    .to_vec();
    world.server.handle(
        world.now,
        addr("1.2.3.4:5"),
        &initial[..MIN_INITIAL_LEN - 1],
    );
    assert!(world.server.poll_transmit().is_none());
    assert_eq!(world.server.stats().drops.get(DropReason::Malformed), 1);
    let future = HandshakePacket::Initial {
        version: PROTOCOL_VERSION + 1,
        mode: Mode::New,
        client_public: [9; 32],
    }
    .to_vec();
    world.server.handle(world.now, addr("1.2.3.4:5"), &future);
    match world.server.poll_transmit() {
        Some(Transmit::Datagram { bytes, .. }) => {
            assert!(bytes.len() < 10);
            assert!(matches!(
                HandshakePacket::decode(&bytes),
                Ok(HandshakePacket::VersionMismatch { .. })
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_of_another_version_is_told_to_upgrade() {
    let mut world = World::with_defaults(43, LinkProfile::PERFECT);
    let future = HandshakePacket::Initial {
        version: PROTOCOL_VERSION + 1,
        mode: Mode::New,
        client_public: [9; 32],
    }
    .to_vec();
    world.server.handle(world.now, world.client_addr, &future);
    let Some(Transmit::Datagram { bytes, .. }) = world.server.poll_transmit() else {
        panic!()
    };
    world.client.connect_datagram(world.now, world.server_addr);
    world
        .client
        .handle_datagram(world.now, world.server_addr, &bytes);
    world.run_for(Duration::from_millis(10));
    let reason = world.client_closed().expect("closed").to_string();
    assert!(reason.contains("upgrade required"), "{reason}");
}

/// A joined session and the client's datagrams carrying one message; with
/// `intercept` those datagrams never reach the server (an on-path attacker
/// holds them).
fn joined_world_with_capture(seed: u64, intercept: bool) -> World {
    let mut world = World::with_defaults(seed, LinkProfile::PERFECT);
    world.login_over_udp();
    world.open_channel(1, reliable(ChannelKind::Game));
    world.capture = true;
    world.cut = intercept;
    world.client.send(world.now, 1, b"move north").unwrap();
    world.run_for(Duration::from_millis(30));
    world.capture = false;
    world.cut = false;
    world
}

#[test]
fn replayed_datagrams_are_dropped_and_deliver_nothing() {
    let mut world = joined_world_with_capture(44, false);
    assert_eq!(world.messages_at_server(1).len(), 1);
    let id = world.session_id();
    let captured = world.captured_to_server.clone();
    assert!(!captured.is_empty());
    for (from, bytes) in &captured {
        world.server.handle(world.now, *from, bytes);
    }
    world.run_for(Duration::from_millis(100));
    assert_eq!(
        world.messages_at_server(1).len(),
        1,
        "nothing delivered twice"
    );
    let drops = world.server.session(id).unwrap().stats().drops;
    assert_eq!(drops.get(DropReason::Replay), captured.len() as u64);
}

#[test]
fn tampered_ciphertext_fails_authentication() {
    let mut world = joined_world_with_capture(45, true);
    let id = world.session_id();
    let (from, bytes) = world.captured_to_server.first().unwrap().clone();
    for position in [0usize, 9, 17, bytes.len() / 2, bytes.len() - 1] {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x40;
        world.server.handle(world.now, from, &tampered);
    }
    let session = world.server.session(id).unwrap().stats();
    let endpoint = world.server.stats().drops.clone();
    // Header changes: wrong type (malformed) or unknown session; body changes: authentication.
    assert!(
        session.drops.get(DropReason::AuthFailed) >= 3,
        "{:?}",
        session.drops
    );
    assert!(endpoint.total() >= 1);
    assert!(world.messages_at_server(1).is_empty());
    // The genuine packet still works afterwards: tampering consumed nothing.
    world.server.handle(world.now, from, &bytes);
    world.run_for(Duration::from_millis(50));
    assert_eq!(world.messages_at_server(1), vec![b"move north".to_vec()]);
    assert!(world.server_closed().is_none());
}

#[test]
fn a_forged_rebind_cannot_steal_the_session() {
    let mut world = joined_world_with_capture(46, true);
    let id = world.session_id();
    let attacker = addr("66.66.66.66:6666");
    // An on-path attacker forwards a datagram it intercepted from its own
    // address: authentic, so the server challenges that address (rate-limited).
    let (_, captured) = world.captured_to_server.first().unwrap().clone();
    world.server.handle(world.now, attacker, &captured);
    let restart = loop {
        match world.server.poll_transmit() {
            Some(Transmit::Datagram { to, bytes }) if to == attacker => break bytes,
            Some(_) => continue,
            None => panic!("expected a restart challenge"),
        }
    };
    assert!(restart.len() <= captured.len(), "no amplification");
    let HandshakePacket::Restart { cookie, .. } = HandshakePacket::decode(&restart).unwrap() else {
        panic!()
    };
    // Without the session keys it can only guess the tag.
    let forged = HandshakePacket::RestartResponse {
        version: PROTOCOL_VERSION,
        session_id: id,
        cookie,
        packet_number: 1 << 40,
        tag: [0xaa; 16],
    }
    .to_vec();
    world.server.handle(world.now, attacker, &forged);
    world.server.handle(world.now, attacker, &captured);
    assert_eq!(world.server.stats().drops.get(DropReason::AuthFailed), 1);
    assert_eq!(
        world
            .server
            .stats()
            .drops
            .get(DropReason::RebindRateLimited),
        1
    );
    assert!(!world
        .server_events
        .iter()
        .any(|(_, e)| matches!(e, Event::Migrated { .. })));
    // The real client is unaffected.
    world.client.send(world.now, 1, b"still here").unwrap();
    world.run_for(Duration::from_millis(100));
    assert_eq!(world.messages_at_server(1).last().unwrap(), b"still here");
}

#[test]
fn garbage_of_every_size_is_counted_and_harmless() {
    let mut world = World::with_defaults(47, LinkProfile::PERFECT);
    world.login_over_udp();
    world.open_channel(1, reliable(ChannelKind::Game));
    let id = world.session_id();
    let mut rng = SimRng::new(48);
    for round in 0..20_000u32 {
        let len = match round % 4 {
            0 => rng.below(40) as usize,
            1 => rng.below(1500) as usize,
            2 => 65_535,
            _ => MIN_INITIAL_LEN,
        };
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if round % 3 == 0 && !junk.is_empty() {
            junk[0] = (round % 12) as u8; // aim at every packet type
        }
        if round % 5 == 0 && junk.len() > 9 {
            junk[0] = 0x10;
            junk[1..9].copy_from_slice(&id.to_be_bytes()); // a real session id
        }
        world.server.handle(world.now, world.client_addr, &junk);
        world
            .client
            .handle_datagram(world.now, world.server_addr, &junk);
        while world.server.poll_transmit().is_some() {}
    }
    world.run_for(Duration::from_millis(50));
    assert!(
        world.server.stats().drops.total()
            + world.server.session(id).unwrap().stats().drops.total()
            > 15_000
    );
    assert!(world.server_closed().is_none() && world.client_closed().is_none());
    world.client.send(world.now, 1, b"alive").unwrap();
    world.run_for(Duration::from_millis(100));
    assert_eq!(world.messages_at_server(1), vec![b"alive".to_vec()]);
}

#[test]
fn a_stream_of_garbage_closes_that_stream_only() {
    let mut world = World::with_defaults(49, LinkProfile::PERFECT);
    world.login_over_stream();
    // Garbage that is not sealed under the stream's keys: tampering.
    world
        .server
        .handle_stream(world.now, SERVER_STREAM, &[0x99, 1, 2, 3]);
    world.run_for(Duration::from_millis(50));
    assert!(matches!(
        world.server_closed(),
        Some(hearth_proto::CloseReason::ProtocolError(_))
    ));
    assert_eq!(world.server.state_size().sessions, 0);
}
