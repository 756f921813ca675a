//! The protocol fixes of the hardening pass: sealed streams with pinning,
//! nothing before login, per-address login slots, bounded reassembly, the
//! resume count under the proof, repeated acknowledgements, replayed
//! Responses, and a session that lives past the 32-bit millisecond wrap.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hearth_proto::bunch::{flags, ChannelKind, Delivery};
use hearth_proto::control::{ControlMessage, Credentials};
use hearth_proto::handshake::HandshakePacket;
use hearth_proto::{ClientConfig, CloseReason, DropReason, Event, ServerConfig, StreamId};

#[test]
fn a_pinned_client_detects_a_wrong_server_key_over_a_stream() {
    let config = ClientConfig {
        server_key: Some([7; 32]),
        ..ClientConfig::default()
    };
    let mut world = World::new(61, LinkProfile::PERFECT, ServerConfig::default(), config);
    world.open_stream();
    world.client.connect_stream(world.now);
    world
        .run_until(Duration::from_secs(5), |w| w.client_closed().is_some())
        .unwrap();
    assert_eq!(world.client_closed(), Some(&CloseReason::ServerKeyMismatch));
    assert!(
        !world.server_has(&Event::Joined),
        "nothing was logged in through the unproven server"
    );

    let mut world = World::with_defaults(62, LinkProfile::PERFECT);
    let key = world.server.public_key();
    let pinned = ClientConfig {
        server_key: Some(key),
        ..ClientConfig::default()
    };
    world = World::new(62, LinkProfile::PERFECT, ServerConfig::default(), pinned);
    world.login_over_stream();
}

#[test]
fn credentials_never_cross_a_stream_in_the_clear() {
    let password = "correct horse battery staple";
    let config = ClientConfig {
        credentials: Credentials::Password {
            account: "alice".into(),
            password: password.into(),
        },
        ..ClientConfig::default()
    };
    let mut world = World::new(63, LinkProfile::PERFECT, ServerConfig::default(), config);
    world.open_stream();
    world.client.connect_stream(world.now);
    // Watch every stream packet in both directions until the login completes.
    let mut seen = Vec::new();
    let deadline = world.now + Duration::from_secs(10);
    while !world.joined() && world.now < deadline {
        seen.extend(world.stream_bytes_in_flight());
        world.tick();
    }
    assert!(world.joined());
    let wire: Vec<u8> = seen.concat();
    assert!(wire.len() > 200, "the login crossed the stream");
    for secret in [password.as_bytes(), b"alice"] {
        assert!(
            !wire.windows(secret.len()).any(|w| w == secret),
            "{} in the clear",
            String::from_utf8_lossy(secret)
        );
    }
}

#[test]
fn channel_opens_and_messages_before_login_close_the_session() {
    let open = Some((ChannelKind::Game, Delivery::ReliableOrdered));
    // Sequence 1: the Hello below takes 0.
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "channel open",
            bunch_frame(5, 1, flags::RELIABLE | flags::OPEN, open, &[]),
        ),
        (
            "reliable message",
            bunch_frame(5, 1, flags::RELIABLE, None, b"hi"),
        ),
        ("unreliable message", bunch_frame(5, 0, 0, None, b"hi")),
    ];
    for (what, frame) in cases {
        let now = Instant::now();
        let mut server = bare_server(now);
        let mut raw =
            RawStream::connect(&mut server, now, StreamId(9), addr(CLIENT_ADDR), None).unwrap();
        // A proper Hello first, so the session exists; then game traffic.
        let hello = control_frame(&ControlMessage::Hello { version: 2 }, 0);
        raw.send(&mut server, now, &hello);
        raw.send(&mut server, now, &frame);
        raw.receive(&mut server);
        assert!(raw.closed, "{what}: the stream is closed");
        let mut messages = 0;
        let mut reason = None;
        while let Some((_, event)) = server.poll_event() {
            match event {
                Event::Message { .. } | Event::ChannelOpened { .. } => messages += 1,
                Event::Closed(why) => reason = Some(why),
                _ => {}
            }
        }
        assert_eq!(messages, 0, "{what}: nothing reached the application");
        let reason = reason.expect("closed").to_string();
        assert!(reason.contains("before the login"), "{what}: {reason}");
        assert_eq!(server.state_size().sessions, 0);
    }
}

#[test]
fn a_flood_of_empty_parts_before_login_is_bounded() {
    let now = Instant::now();
    let mut server = bare_server(now);
    let mut raw =
        RawStream::connect(&mut server, now, StreamId(9), addr(CLIENT_ADDR), None).unwrap();
    // Reliable partial bunches on the control channel with distinct part
    // indices and no payload: each used to cost a map entry that no budget
    // counted. Parts of one message take consecutive sequence numbers.
    let mut packet = Vec::new();
    for part in 0..3000u32 {
        let initial = if part == 0 { flags::PARTIAL_INITIAL } else { 0 };
        let bunch = hearth_proto::bunch::Bunch {
            flags: flags::RELIABLE | flags::PARTIAL | initial,
            channel: 0,
            sequence: u64::from(part),
            part,
            open: None,
            payload: &[],
        };
        hearth_proto::frame::Frame::Bunch(bunch).encode(&mut packet);
        if packet.len() > 60_000 {
            raw.send(&mut server, now, &packet);
            packet.clear();
        }
    }
    raw.send(&mut server, now, &packet);
    let session = server.session(raw.session_id).expect("still open");
    assert!(session.stats().drops.get(DropReason::Malformed) >= 3000);
    assert_eq!(session.buffered_parts(), 0);
}

#[test]
fn logins_in_progress_are_limited_per_address_and_released_when_welcomed() {
    let now = Instant::now();
    let config = ServerConfig {
        max_logging_in_per_address: 4,
        ..ServerConfig::default()
    };
    let mut server = server_with(config, now);
    let crowded = addr("10.9.9.9:1000");
    let mut streams = Vec::new();
    for n in 0..4 {
        streams.push(RawStream::connect(&mut server, now, StreamId(n), crowded, None).unwrap());
    }
    // The fifth from the same address (another port) is refused at once.
    let fifth = RawStream::connect(&mut server, now, StreamId(4), addr("10.9.9.9:2000"), None);
    assert!(fifth.is_err(), "refused");
    assert_eq!(server.stats().drops.get(DropReason::TooManyFromAddress), 1);
    // IPv6: one /64 is one address; another /64 is not.
    let other_v6: SocketAddr = "[2001:db8:0:1::5]:9".parse().unwrap();
    RawStream::connect(&mut server, now, StreamId(5), other_v6, None).unwrap();
    // Another address is unaffected.
    RawStream::connect(&mut server, now, StreamId(6), addr("10.9.9.10:1000"), None).unwrap();
    // A stream that gives up frees its slot.
    server.stream_closed(now, streams.pop().unwrap().stream);
    RawStream::connect(&mut server, now, StreamId(7), crowded, None).unwrap();
    // The deadline frees them all.
    server.handle_timeout(now + Duration::from_secs(11));
    assert_eq!(server.state_size().logging_in_addresses, 0);
    assert_eq!(server.state_size().pending_streams, 0);
}

#[test]
fn udp_handshakes_are_limited_per_address_before_any_key_agreement() {
    let config = ServerConfig {
        max_logging_in_per_address: 2,
        ..ServerConfig::default()
    };
    let mut worlds_server = World::new(64, LinkProfile::PERFECT, config, ClientConfig::default());
    // Two sessions from the client's address that never log in.
    for _ in 0..2 {
        let mut client = hearth_proto::Client::new(
            ClientConfig::default(),
            worlds_server.now,
            hearth_proto::os_seed(),
        );
        handshake_once(&mut worlds_server, &mut client);
    }
    assert_eq!(worlds_server.server.state_size().sessions, 2);
    let completed = worlds_server.server.stats().handshakes_completed;
    // The world's own client, from the same address, is refused with a reason.
    let server = worlds_server.server_addr;
    worlds_server
        .client
        .connect_datagram(worlds_server.now, server);
    worlds_server
        .run_until(Duration::from_secs(5), |w| w.client_closed().is_some())
        .unwrap();
    let reason = worlds_server.client_closed().unwrap().to_string();
    assert!(reason.contains("TooManyFromAddress"), "{reason}");
    assert_eq!(
        worlds_server.server.stats().handshakes_completed,
        completed,
        "no key agreement was spent on it"
    );
}

/// Runs one client's datagram handshake against the world's server by hand.
fn handshake_once(world: &mut World, client: &mut hearth_proto::Client) {
    let from = world.client_addr;
    client.connect_datagram(world.now, world.server_addr);
    for _ in 0..3 {
        while let Some(transmit) = client.poll_transmit() {
            if let hearth_proto::Transmit::Datagram { bytes, .. } = transmit {
                world.server.handle(world.now, from, &bytes);
            }
        }
        while let Some(transmit) = world.server.poll_transmit() {
            if let hearth_proto::Transmit::Datagram { bytes, .. } = transmit {
                client.handle_datagram(world.now, world.server_addr, &bytes);
            }
        }
    }
}

#[test]
fn a_changed_resume_count_fails_the_attach_proof() {
    let mut world = World::with_defaults(65, LinkProfile::PERFECT);
    world.login_over_udp();
    let id = world.session_id();
    world.capture = true;
    world.cut = true;
    world.run_for(Duration::from_secs(11));
    world.cut = false;
    // The client re-attaches; an on-path attacker changes `received`.
    world.drop_responses = true;
    world
        .client
        .attach_datagram(world.now, world.server_addr)
        .unwrap();
    world.run_for(Duration::from_millis(500));
    let response = world
        .captured_to_server
        .iter()
        .rev()
        .find_map(|(_, bytes)| match HandshakePacket::decode(bytes) {
            Ok(packet @ HandshakePacket::Response { .. }) => Some(packet),
            _ => None,
        })
        .expect("a Response was sent");
    let HandshakePacket::Response {
        version,
        mode,
        client_public,
        cookie,
        proof,
        received,
    } = response
    else {
        unreachable!()
    };
    let tampered = HandshakePacket::Response {
        version,
        mode,
        client_public,
        cookie,
        proof,
        received: received + 5,
    };
    let before = world.server.stats().drops.get(DropReason::BadProof);
    world
        .server
        .handle(world.now, world.client_addr, &tampered.to_vec());
    assert_eq!(
        world.server.stats().drops.get(DropReason::BadProof),
        before + 1
    );
    assert_eq!(world.server.session(id).unwrap().stats().resumes, 0);
}

#[test]
fn a_replayed_response_gets_the_same_ack_and_never_a_second_session() {
    let mut world = World::with_defaults(66, LinkProfile::PERFECT);
    world.capture = true;
    world.login_over_udp();
    let response = world
        .captured_to_server
        .iter()
        .find(|(_, bytes)| {
            matches!(
                HandshakePacket::decode(bytes),
                Ok(HandshakePacket::Response { .. })
            )
        })
        .map(|(_, bytes)| bytes.clone())
        .expect("captured");
    // The session ends; the attacker replays the Response within the cookie's life.
    world.client.close(world.now, 0, "bye");
    world
        .run_until(Duration::from_secs(5), |w| {
            w.server.state_size().sessions == 0
        })
        .unwrap();
    let opened = world.server.stats().sessions_opened;
    for _ in 0..3 {
        world.server.handle(world.now, world.client_addr, &response);
    }
    let acks: Vec<_> = std::iter::from_fn(|| world.server.poll_transmit())
        .filter_map(|t| match t {
            hearth_proto::Transmit::Datagram { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 3);
    assert!(
        acks.windows(2).all(|pair| pair[0] == pair[1]),
        "the same Ack"
    );
    assert_eq!(world.server.stats().sessions_opened, opened);
    assert_eq!(world.server.state_size().sessions, 0);
}

#[test]
fn a_lost_final_ack_does_not_make_a_close_wait_the_whole_linger() {
    let mut world = World::with_defaults(67, LinkProfile::PERFECT);
    world.login_over_udp();
    world.open_channel(2, reliable(ChannelKind::Game));
    // The server's Acks for this message are lost...
    world.drop_to_client = true;
    world.client.send(world.now, 2, b"last words").unwrap();
    world.run_for(Duration::from_millis(100));
    assert_eq!(world.messages_at_server(2).len(), 1);
    world.drop_to_client = false;
    // ...so the client still holds it when it closes.
    world.client.close(world.now, 0, "bye");
    let took = world
        .run_until(Duration::from_secs(2), |w| w.client_closed().is_some())
        .unwrap();
    assert!(
        took < Duration::from_millis(400),
        "closed after {took:?}; the linger is 1 s"
    );
}

#[test]
fn a_session_lives_across_the_32_bit_millisecond_wrap() {
    let mut server = ServerConfig::default();
    server.session.heartbeat_interval = Duration::from_secs(3600);
    server.session.idle_timeout = Duration::from_secs(4 * 3600);
    let client = ClientConfig {
        session: server.session.clone(),
        ..ClientConfig::default()
    };
    let mut world = World::new(68, LinkProfile::PERFECT, server, client);
    world.login_over_udp();
    world.open_channel(2, reliable(ChannelKind::Game));
    // 50 days in half-hour steps (2^32 ms is 49.7 days), a message each day.
    let mut sent = 0;
    let mut samples_before_wrap = 0;
    for step in 0..(50 * 48) {
        if step == 49 * 48 {
            let id = world.session_id();
            samples_before_wrap = world.server.session(id).unwrap().stats().rtt.samples;
        }
        world.now += Duration::from_secs(1800);
        if step % 48 == 0 {
            world
                .client
                .send(world.now, 2, &numbered_message(sent, 100))
                .unwrap();
            sent += 1;
        }
        world.run_for(Duration::from_millis(200));
        assert!(world.client_closed().is_none(), "closed on step {step}");
    }
    world.run_for(Duration::from_secs(1));
    assert_eq!(world.messages_at_server(2).len(), sent as usize);
    let next = world.server.poll_timeout().unwrap();
    assert!(
        next > world.now,
        "no timer spins after the wrap (next {:?} after now)",
        next - world.now
    );
    let rtt = world
        .server
        .session(world.session_id())
        .unwrap()
        .stats()
        .rtt;
    assert!(
        rtt.samples >= samples_before_wrap + 20,
        "heartbeats measured across the wrap: {} then {}",
        samples_before_wrap,
        rtt.samples
    );
    assert!(rtt.smoothed.unwrap() < Duration::from_secs(1), "{rtt:?}");
}

#[test]
fn connect_and_close_churn_keeps_the_stream_table_bounded() {
    let now = Instant::now();
    let config = ServerConfig {
        max_pending_streams: 100,
        ..ServerConfig::default()
    };
    let mut server = server_with(config, now);
    for n in 0..50_000u64 {
        let peer = SocketAddr::from(([10, 3, (n >> 8) as u8, n as u8], 4000));
        server.stream_opened(now, StreamId(n), peer);
        server.stream_closed(now, StreamId(n));
        while server.poll_transmit().is_some() {}
    }
    let size = server.state_size();
    assert_eq!(size.pending_streams, 0);
    assert_eq!(size.logging_in_addresses, 0);
    assert!(
        size.pending_stream_deadlines <= 2 * 100 + 65,
        "{} deadlines queued",
        size.pending_stream_deadlines
    );
}

/// The control messages in the plaintext of stream packets from the server.
fn control_messages(packets: &[Vec<u8>]) -> Vec<ControlMessage> {
    let mut messages = Vec::new();
    for packet in packets {
        for frame in hearth_proto::frame::decode_all(packet).unwrap() {
            if let hearth_proto::frame::Frame::Bunch(bunch) = frame {
                if bunch.channel == 0 && !bunch.payload.is_empty() {
                    messages.push(ControlMessage::decode(bunch.payload).unwrap());
                }
            }
        }
    }
    messages
}

#[test]
fn with_require_join_game_traffic_after_welcome_but_before_join_closes_the_session() {
    for require_join in [false, true] {
        let now = Instant::now();
        let mut config = ServerConfig::default();
        config.session.require_join = require_join;
        let mut server = server_with(config, now);
        let mut raw =
            RawStream::connect(&mut server, now, StreamId(1), addr(CLIENT_ADDR), None).unwrap();
        raw.send(
            &mut server,
            now,
            &control_frame(&ControlMessage::Hello { version: 2 }, 0),
        );
        let Some(ControlMessage::Challenge { nonce }) =
            control_messages(&raw.receive(&mut server)).pop()
        else {
            panic!("a Challenge");
        };
        let login = ControlMessage::Login {
            nonce,
            credentials: Credentials::Anonymous,
            player_name: "ann".into(),
            options: String::new(),
        };
        raw.send(&mut server, now, &control_frame(&login, 1));
        let id = raw.session_id;
        assert!(server.accept_login(now, id, None));
        let welcomed = control_messages(&raw.receive(&mut server));
        assert!(matches!(
            welcomed.last(),
            Some(ControlMessage::Welcome { .. })
        ));
        while server.poll_event().is_some() {}
        // Welcomed, not joined: open a game channel.
        let open = Some((ChannelKind::Game, Delivery::ReliableOrdered));
        raw.send(
            &mut server,
            now,
            &bunch_frame(5, 2, flags::RELIABLE | flags::OPEN, open, &[]),
        );
        raw.receive(&mut server);
        let opened = std::iter::from_fn(|| server.poll_event())
            .any(|(_, event)| matches!(event, Event::ChannelOpened { .. }));
        assert_eq!(raw.closed, require_join, "require_join = {require_join}");
        assert_eq!(opened, !require_join, "require_join = {require_join}");
    }
}

#[test]
fn a_peer_that_is_not_logged_in_cannot_make_the_server_buffer_much() {
    let now = Instant::now();
    let mut server = bare_server(now);
    let mut raw =
        RawStream::connect(&mut server, now, StreamId(1), addr(CLIENT_ADDR), None).unwrap();
    raw.send(
        &mut server,
        now,
        &control_frame(&ControlMessage::Hello { version: 2 }, 0),
    );
    // Sequence 1 never comes: everything after it waits in the reorder buffer.
    let chunk = vec![7u8; 8 * 1024];
    for sequence in 2..200u64 {
        if raw.closed {
            break;
        }
        raw.send(
            &mut server,
            now,
            &bunch_frame(0, sequence, flags::RELIABLE, None, &chunk),
        );
        raw.receive(&mut server);
    }
    assert!(raw.closed, "closed long before 1.6 MB were buffered");
    let reason = std::iter::from_fn(|| server.poll_event())
        .find_map(|(_, event)| match event {
            Event::Closed(reason) => Some(reason.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("buffered before the login"), "{reason}");
    assert_eq!(server.stats().drops.get(DropReason::BeforeLogin), 1);
}

#[test]
fn a_resume_refused_for_a_crowded_address_or_a_dropped_connection_keeps_the_session() {
    let config = ServerConfig {
        max_logging_in_per_address: 2,
        ..ServerConfig::default()
    };
    let mut world = World::new(69, LinkProfile::PERFECT, config, ClientConfig::default());
    world.login_over_stream();
    world.break_stream();
    world
        .run_until(Duration::from_secs(1), |w| w.server_has(&Event::Detached))
        .unwrap();
    // Others at the client's address fill its login slots.
    let crowd: Vec<RawStream> = (0..2)
        .map(|n| {
            RawStream::connect(
                &mut world.server,
                world.now,
                StreamId(100 + n),
                world.client_addr,
                None,
            )
            .unwrap()
        })
        .collect();
    world.open_stream();
    world.client.resume_stream(world.now).unwrap();
    world.run_for(Duration::from_millis(200));
    assert!(
        world.client_closed().is_none(),
        "a busy address is worth a retry"
    );
    assert!(!world.stream_open, "the refused connection is closed");
    // A connection that drops during the resume handshake costs nothing either.
    world.open_stream();
    world.client.resume_stream(world.now).unwrap();
    world.break_stream();
    world.run_for(Duration::from_millis(200));
    assert!(world.client_closed().is_none());
    // The crowd leaves; the next attempt resumes the same session.
    for raw in &crowd {
        world.server.stream_closed(world.now, raw.stream);
    }
    world.open_stream();
    world.client.resume_stream(world.now).unwrap();
    world
        .run_until(Duration::from_secs(5), |w| w.client_has(&Event::Resumed))
        .unwrap();
    assert!(world.client_closed().is_none());
}

#[test]
fn a_full_table_of_answered_handshakes_forgets_the_oldest_and_refuses_their_replays() {
    let config = ServerConfig {
        max_recent_handshakes: 8,
        ..ServerConfig::default()
    };
    let mut world = World::new(70, LinkProfile::PERFECT, config, ClientConfig::default());
    let server_addr = world.server_addr;
    let mut responses = Vec::new();
    for n in 0..20u8 {
        world.now += Duration::from_millis(10);
        let from = SocketAddr::from(([10, 7, 0, n], 4000));
        let mut client =
            hearth_proto::Client::new(ClientConfig::default(), world.now, hearth_proto::os_seed());
        client.connect_datagram(world.now, server_addr);
        for _ in 0..3 {
            while let Some(hearth_proto::Transmit::Datagram { bytes, .. }) = client.poll_transmit()
            {
                if matches!(
                    HandshakePacket::decode(&bytes),
                    Ok(HandshakePacket::Response { .. })
                ) {
                    responses.push((from, bytes.clone()));
                }
                world.server.handle(world.now, from, &bytes);
            }
            while let Some(transmit) = world.server.poll_transmit() {
                if let hearth_proto::Transmit::Datagram { bytes, .. } = transmit {
                    client.handle_datagram(world.now, server_addr, &bytes);
                }
            }
        }
        assert!(
            client.has_link(hearth_proto::LinkKind::Datagram),
            "handshake {n}"
        );
    }
    assert_eq!(world.server.state_size().completed_handshakes, 8);
    // The first one was forgotten: its replay is refused, not a new session.
    let sessions = world.server.stats().sessions_opened;
    let (from, first) = &responses[0];
    world.server.handle(world.now, *from, first);
    assert_eq!(world.server.stats().sessions_opened, sessions);
    assert!(world.server.stats().drops.get(DropReason::CookieExpired) >= 1);
    // A remembered one gets its old Ack; a new client still gets in.
    let (from, last) = responses.last().unwrap();
    world.server.handle(world.now, *from, last);
    assert_eq!(world.server.stats().sessions_opened, sessions);
    world.now += Duration::from_millis(10);
    world.login_over_udp();
}

#[test]
fn key_agreements_are_rate_limited_per_address_but_not_for_loopback() {
    let now = Instant::now();
    let mut server = bare_server(now);
    let churn = |server: &mut hearth_proto::Server, at: Instant, from: &str, count: u64| {
        (0..count)
            .filter(|n| {
                let stream = StreamId(1_000_000 + n);
                let connected = RawStream::connect(server, at, stream, addr(from), None);
                server.stream_closed(at, stream);
                connected.is_ok()
            })
            .count()
    };
    // A connect-Hello-close loop: the burst (32), then 16 a second.
    assert_eq!(churn(&mut server, now, "10.8.0.1:1", 100), 32);
    assert!(server.stats().drops.get(DropReason::TooManyFromAddress) >= 68);
    let later = now + Duration::from_secs(1);
    assert_eq!(churn(&mut server, later, "10.8.0.1:2", 100), 16);
    // Another address has its own budget; loopback (bots, load tests) has none.
    assert_eq!(churn(&mut server, later, "10.8.0.2:1", 10), 10);
    assert_eq!(churn(&mut server, later, "127.0.0.1:1", 200), 200);
    assert!(server.state_size().rate_limited_addresses <= 4);
}
