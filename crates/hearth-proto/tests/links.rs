//! One session, many links: TCP-style login with a UDP ticket, fallback when
//! UDP is blocked or dies, resume over a new link without losing messages.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hearth_proto::{ChannelKind, ClientConfig, CloseReason, Event, LinkKind, ServerConfig};

fn ticket_world(seed: u64, profile: LinkProfile) -> World {
    let server = ServerConfig {
        udp_ticket_port: Some(7777),
        ..ServerConfig::default()
    };
    World::new(seed, profile, server, ClientConfig::default())
}

fn ticket_addr(world: &World) -> SocketAddr {
    let port = world
        .client_events
        .iter()
        .find_map(|e| match e {
            Event::Welcomed {
                ticket: Some(ticket),
                ..
            } => Some(ticket.port),
            _ => None,
        })
        .expect("Welcome over a stream carries a UDP ticket");
    SocketAddr::new(world.server_addr.ip(), port)
}

fn send_both_ways(
    world: &mut World,
    channel: u16,
    count: u32,
    first: u32,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let id = world.session_id();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for index in first..first + count {
        let message = numbered_message(index, 200 + (index as usize * 37) % 3000);
        world.client.send(world.now, channel, &message).unwrap();
        up.push(message.clone());
        world.server.send(world.now, id, channel, &message).unwrap();
        down.push(message);
        world.run_for(Duration::from_millis(4));
    }
    (up, down)
}

#[test]
fn stream_login_then_udp_ticket_then_traffic_on_both_links() {
    let mut world = ticket_world(30, LinkProfile::BAD);
    world.login_over_stream();
    let udp = ticket_addr(&world);
    world.client.attach_datagram(world.now, udp).unwrap();
    world
        .run_until(Duration::from_secs(10), |w| {
            w.server_has(&Event::LinkUp(LinkKind::Datagram))
                && w.client_has(&Event::LinkUp(LinkKind::Datagram))
        })
        .unwrap();
    assert!(world.client.has_link(LinkKind::Datagram) && world.client.has_link(LinkKind::Stream));
    // Channel 1 prefers TCP, channel 2 KCP, channel 3 raw UDP: all at once.
    world.open_channel(1, reliable(ChannelKind::Data).on_stream());
    world.open_channel(2, reliable(ChannelKind::Game));
    world.open_channel(
        3,
        hearth_proto::ChannelSpec::new(ChannelKind::Voice, hearth_proto::Delivery::Unreliable),
    );
    let id = world.session_id();
    let mut expected: (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    for index in 0..150u32 {
        let message = numbered_message(index, 100 + index as usize * 13);
        world.client.send(world.now, 1, &message).unwrap();
        world.client.send(world.now, 2, &message).unwrap();
        world.client.send(world.now, 3, &message[..50]).unwrap();
        world.server.send(world.now, id, 2, &message).unwrap();
        expected.0.push(message.clone());
        expected.1.push(message.clone());
        world.run_for(Duration::from_millis(5));
    }
    world
        .run_until(Duration::from_secs(30), |w| {
            w.messages_at_server(1).len() == 150
                && w.messages_at_server(2).len() == 150
                && w.messages_at_client(2).len() == 150
        })
        .unwrap();
    assert_eq!(world.messages_at_server(1), expected.0);
    assert_eq!(world.messages_at_server(2), expected.1);
    assert_eq!(world.messages_at_client(2), expected.1);
    assert!(
        world.messages_at_server(3).len() > 100,
        "raw UDP carries most"
    );
    let stats = world.server.session(id).unwrap().stats();
    assert!(
        stats.retransmits > 0,
        "the reliable UDP channel went over KCP on a lossy link"
    );
}

#[test]
fn blocked_udp_falls_back_to_the_stream_and_the_game_does_not_notice() {
    let mut world = ticket_world(31, LinkProfile::PERFECT);
    world.udp_blocked = true;
    world.login_over_stream();
    let udp = ticket_addr(&world);
    world.client.attach_datagram(world.now, udp).unwrap();
    world.open_channel(2, reliable(ChannelKind::Game));
    let (up, down) = send_both_ways(&mut world, 2, 100, 0);
    world
        .run_until(Duration::from_secs(15), |w| {
            w.client_has(&Event::DatagramUnavailable)
        })
        .unwrap();
    let (up2, down2) = send_both_ways(&mut world, 2, 50, 100);
    world.run_for(Duration::from_secs(1));
    assert_eq!(world.messages_at_server(2), [up, up2].concat());
    assert_eq!(world.messages_at_client(2), [down, down2].concat());
    assert!(world.client_closed().is_none());
}

#[test]
fn when_udp_dies_traffic_moves_to_the_stream_with_nothing_lost() {
    let mut world = ticket_world(
        32,
        LinkProfile {
            loss_percent: 5,
            ..LinkProfile::BAD
        },
    );
    world.login_over_stream();
    let udp = ticket_addr(&world);
    world.client.attach_datagram(world.now, udp).unwrap();
    world
        .run_until(Duration::from_secs(10), |w| {
            w.server_has(&Event::LinkUp(LinkKind::Datagram))
        })
        .unwrap();
    world.open_channel(2, reliable(ChannelKind::Game));
    let (up, down) = send_both_ways(&mut world, 2, 100, 0);
    // UDP stops mid-flight: messages queued in KCP must reach the peer over TCP.
    world.udp_blocked = true;
    let (up2, down2) = send_both_ways(&mut world, 2, 100, 100);
    world
        .run_until(Duration::from_secs(20), |w| {
            w.server_has(&Event::LinkDown(LinkKind::Datagram))
        })
        .unwrap();
    world
        .run_until(Duration::from_secs(20), |w| {
            w.messages_at_server(2).len() == 200 && w.messages_at_client(2).len() == 200
        })
        .unwrap();
    assert_eq!(world.messages_at_server(2), [up, up2].concat());
    assert_eq!(world.messages_at_client(2), [down, down2].concat());
    assert!(world.client_closed().is_none() && world.server_closed().is_none());
}

#[test]
fn resume_over_a_new_datagram_link_keeps_the_session_and_its_messages() {
    let mut world = World::with_defaults(
        33,
        LinkProfile {
            loss_percent: 5,
            ..LinkProfile::BAD
        },
    );
    world.login_over_udp();
    world.open_channel(2, reliable(ChannelKind::Game));
    let id = world.session_id();
    let (up, down) = send_both_ways(&mut world, 2, 60, 0);
    // The network goes away while messages are in flight; both ends keep sending.
    world.cut = true;
    let (up2, down2) = send_both_ways(&mut world, 2, 60, 60);
    world
        .run_until(Duration::from_secs(15), |w| {
            w.client_has(&Event::Detached) && w.server_has(&Event::Detached)
        })
        .unwrap();
    // The phone comes back on another network.
    world.cut = false;
    world.client_addr = addr("10.0.0.77:41000");
    let server = world.server_addr;
    world.client.attach_datagram(world.now, server).unwrap();
    world
        .run_until(Duration::from_secs(10), |w| {
            w.client_has(&Event::Resumed) && w.server_has(&Event::Resumed)
        })
        .unwrap();
    let (up3, down3) = send_both_ways(&mut world, 2, 20, 120);
    world
        .run_until(Duration::from_secs(30), |w| {
            w.messages_at_server(2).len() == 140 && w.messages_at_client(2).len() == 140
        })
        .unwrap();
    world.run_for(Duration::from_secs(1));
    assert_eq!(world.messages_at_server(2), [up, up2, up3].concat());
    assert_eq!(world.messages_at_client(2), [down, down2, down3].concat());
    assert_eq!(world.session_id(), id, "same session");
    assert_eq!(world.server.session(id).unwrap().stats().resumes, 1);
}

#[test]
fn resume_over_a_new_stream_keeps_the_session_and_its_messages() {
    let mut world = World::with_defaults(34, LinkProfile::PERFECT);
    world.login_over_stream();
    world.open_channel(2, reliable(ChannelKind::Game));
    let (up, down) = send_both_ways(&mut world, 2, 50, 0);
    world.break_stream();
    world
        .run_until(Duration::from_secs(1), |w| w.server_has(&Event::Detached))
        .unwrap();
    let (up2, down2) = send_both_ways(&mut world, 2, 30, 50);
    world.open_stream();
    world.client.resume_stream(world.now).unwrap();
    world
        .run_until(Duration::from_secs(5), |w| {
            w.server_has(&Event::Resumed) && w.client_has(&Event::Resumed)
        })
        .unwrap();
    world
        .run_until(Duration::from_secs(10), |w| {
            w.messages_at_server(2).len() == 80 && w.messages_at_client(2).len() == 80
        })
        .unwrap();
    assert_eq!(world.messages_at_server(2), [up, up2].concat());
    assert_eq!(world.messages_at_client(2), [down, down2].concat());
}

#[test]
fn a_resume_with_a_wrong_token_or_after_the_grace_window_fails() {
    let mut server = ServerConfig::default();
    server.session.resume_grace = Duration::from_secs(2);
    let mut world = World::new(35, LinkProfile::PERFECT, server, ClientConfig::default());
    world.login_over_udp();
    world.cut = true;
    world
        .run_until(Duration::from_secs(15), |w| w.client_has(&Event::Detached))
        .unwrap();
    world
        .run_until(Duration::from_secs(5), |w| w.server_closed().is_some())
        .unwrap();
    assert_eq!(world.server_closed(), Some(&CloseReason::Timeout));
    world.cut = false;
    let server = world.server_addr;
    world.client.attach_datagram(world.now, server).unwrap();
    world
        .run_until(Duration::from_secs(5), |w| {
            w.client_has(&Event::DatagramUnavailable)
        })
        .unwrap();
    assert_eq!(
        world
            .server
            .stats()
            .drops
            .get(hearth_proto::DropReason::UnknownSession),
        1
    );
}

#[test]
fn a_client_that_connects_a_stream_and_says_nothing_is_dropped() {
    let mut world = World::with_defaults(36, LinkProfile::PERFECT);
    world.open_stream();
    let took = world
        .run_until(Duration::from_secs(20), |w| !w.stream_open)
        .unwrap();
    assert_eq!(took, Duration::from_secs(10), "the login deadline");
    assert_eq!(world.server.state_size().pending_streams, 0);
}

#[test]
fn out_of_order_and_wrong_version_control_messages_close_with_a_reason() {
    use hearth_proto::control::ControlMessage;
    for (message, expect) in [
        (
            ControlMessage::Join,
            "expected Hello during login, got Join",
        ),
        (ControlMessage::Hello { version: 99 }, "upgrade required"),
    ] {
        let now = Instant::now();
        let mut server = bare_server(now);
        let mut raw =
            RawStream::connect(&mut server, now, SERVER_STREAM, addr(CLIENT_ADDR), None).unwrap();
        raw.send(&mut server, now, &control_frame(&message, 0));
        let answers = raw.receive(&mut server);
        assert!(raw.closed, "the stream is closed");
        let closed = std::iter::from_fn(|| server.poll_event())
            .find_map(|(_, event)| match event {
                Event::Closed(reason) => Some(reason.to_string()),
                _ => None,
            })
            .expect("the session closed");
        assert!(closed.contains(expect), "{closed}");
        assert!(!answers.is_empty(), "the client is told why");
    }
}
