//! Receive flow control: a server application that pauses a session's
//! receiving (its own queue is full) stops getting its reliable messages
//! and stops acknowledging them; the client then keeps them, until its own
//! unacknowledged limit refuses more sends with `Backpressure`. Nothing is
//! lost: resumed, the server gets every message, in order, and the client
//! is acknowledged. Over datagrams (KCP) and over a stream alike.

mod common;

use std::time::Duration;

use common::*;
use hearth_proto::{ChannelKind, ClientConfig, SendError, ServerConfig};

const CHANNEL: u16 = 5;
const SIZE: usize = 16 * 1024;

fn paused_then_resumed(over_stream: bool) {
    let mut world = World::new(
        41,
        LinkProfile::PERFECT,
        ServerConfig::default(),
        ClientConfig::default(),
    );
    if over_stream {
        world.login_over_stream();
    } else {
        world.login_over_udp();
    }
    world.open_channel(CHANNEL, reliable(ChannelKind::Game));
    let id = world.session_id();
    assert!(world.server.pause_receive(world.now, id));

    // The client sends until its own limit refuses: the server took none of
    // it and acknowledged none of it.
    let mut sent = Vec::new();
    loop {
        let message = numbered_message(sent.len() as u32, SIZE);
        match world.client.send(world.now, CHANNEL, &message) {
            Ok(()) => sent.push(message),
            Err(SendError::Backpressure) => break,
            Err(other) => panic!("{other}"),
        }
        assert!(sent.len() < 10_000, "the client was never held back");
        world.run_for(Duration::from_millis(1));
    }
    world.run_for(Duration::from_millis(500));
    assert!(
        world.messages_at_server(CHANNEL).is_empty(),
        "delivered while paused"
    );
    let session = world.server.session(id).expect("open");
    assert!(session.is_receive_paused());
    assert_eq!(session.stats().receive_pauses, 1);
    let limit = ClientConfig::default().session.max_unacked_bytes;
    assert!(
        sent.len() * SIZE <= limit && sent.len() * SIZE > limit / 2,
        "{} messages of {SIZE} bytes, limit {limit}",
        sent.len()
    );
    assert_eq!(
        world
            .client
            .send(world.now, CHANNEL, &numbered_message(0, SIZE)),
        Err(SendError::Backpressure),
        "still held back"
    );

    // Resumed ten at a time at first, as an application with little room
    // does: those ten, acknowledged, and the rest still held.
    assert!(!world.server.resume_receive(world.now, id, 10));
    world.run_for(Duration::from_millis(200));
    assert_eq!(world.messages_at_server(CHANNEL), sent[..10]);
    assert!(world.server.session(id).unwrap().is_receive_paused());
    // The ten acknowledged made the client room for more.
    let extra = numbered_message(sent.len() as u32, SIZE);
    world
        .client
        .send(world.now, CHANNEL, &extra)
        .expect("ten acknowledged: room for one more");
    sent.push(extra);
    world.run_for(Duration::from_millis(200));
    assert_eq!(
        world.messages_at_server(CHANNEL),
        sent[..10],
        "held, not delivered"
    );
    // Then all of it: every message, in order; the client's backlog clears.
    assert!(world.server.resume_receive(world.now, id, usize::MAX));
    world.run_for(Duration::from_millis(1000));
    assert_eq!(world.messages_at_server(CHANNEL), sent);
    assert!(!world.server.session(id).unwrap().is_receive_paused());
    world
        .client
        .send(world.now, CHANNEL, &numbered_message(0, SIZE))
        .expect("acknowledged: room again");
    assert!(world.server_closed().is_none() && world.client_closed().is_none());
}

#[test]
fn a_paused_session_over_datagrams_holds_its_sender_back_and_loses_nothing() {
    paused_then_resumed(false);
}

#[test]
fn a_paused_session_over_a_stream_holds_its_sender_back_and_loses_nothing() {
    paused_then_resumed(true);
}
