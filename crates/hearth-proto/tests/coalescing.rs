//! What a session sends in reply to an input leaves with the input's
//! acknowledgement: the endpoint flushes a session when its driver polls for
//! transmits, after the game has handled the input's events, not while the
//! input is being read.

mod common;

use std::time::Duration;

use common::*;
use hearth_proto::{ChannelKind, ChannelSpec, Delivery};

/// A logged-in session over UDP with `channel` open in `delivery`, settled.
fn world_with_channel(seed: u64, channel: u16, delivery: Delivery) -> World {
    let mut world = World::with_defaults(seed, LinkProfile::PERFECT);
    world.login_over_udp();
    world.open_channel(channel, ChannelSpec::new(ChannelKind::Game, delivery));
    world.run_for(Duration::from_millis(300));
    world
}

/// Sends `count` messages one at a time on `channel` and counts the
/// datagrams the server sent between each message's arrival and its echo's.
fn server_datagrams_per_echo(world: &mut World, channel: u16, count: u32) -> Vec<u64> {
    world.echo_channel = Some(channel);
    let mut per_echo = Vec::new();
    for index in 0..count {
        // Let the previous exchange's acknowledgements settle first.
        world.run_for(Duration::from_millis(200));
        let echoed = world.messages_at_client(channel).len();
        let before = world.server_datagrams;
        world
            .client
            .send(world.now, channel, &numbered_message(index, 48))
            .unwrap();
        world
            .run_until(Duration::from_secs(5), |w| {
                w.messages_at_client(channel).len() > echoed
            })
            .expect("the echo comes back");
        per_echo.push(world.server_datagrams - before);
    }
    per_echo
}

#[test]
fn a_reliable_echo_and_the_acknowledgement_of_its_request_share_one_datagram() {
    // Reliable over UDP: KCP, which acknowledges every segment at once.
    let mut world = world_with_channel(11, 1, Delivery::ReliableOrdered);
    let per_echo = server_datagrams_per_echo(&mut world, 1, 10);
    // Flushed while the input was read, the KCP acknowledgement would leave
    // alone and the echo in a second datagram: two per message.
    assert_eq!(per_echo, vec![1; 10], "server datagrams per echo");
    let echoes = world.messages_at_client(1);
    assert_eq!(echoes.len(), 10);
    for (index, echo) in echoes.iter().enumerate() {
        assert_eq!(echo, &numbered_message(index as u32, 48));
    }
}

#[test]
fn an_unreliable_echo_is_one_datagram_too() {
    let mut world = world_with_channel(12, 2, Delivery::Unreliable);
    assert_eq!(server_datagrams_per_echo(&mut world, 2, 10), vec![1; 10]);
}

#[test]
fn sends_in_one_turn_share_packets() {
    let mut world = world_with_channel(13, 3, Delivery::Unreliable);
    let before = world.server_datagrams;
    let id = world.session_id();
    for index in 0..8 {
        world
            .server
            .send(world.now, id, 3, &numbered_message(index, 40))
            .unwrap();
    }
    world
        .run_until(Duration::from_secs(5), |w| {
            w.messages_at_client(3).len() == 8
        })
        .expect("all eight arrive");
    // Eight 40-byte messages fit one datagram: one flush for the turn.
    assert_eq!(world.server_datagrams - before, 1);
}

/// A send deferred at `t`, a `handle_timeout` at `t + gap` (the gate reads a
/// burst of inputs, then runs due timers, then polls), then silence: the
/// session must still time out. Its timer was once re-armed at a deadline
/// the wheel had already passed and was then mistaken for a stale one, so
/// the session never woke again.
#[test]
fn a_session_whose_flush_waited_past_a_timeout_still_expires() {
    for gap_ms in [0u64, 5, 12, 25] {
        let mut world = world_with_channel(20 + gap_ms, 1, Delivery::ReliableOrdered);
        let id = world.session_id();
        world.drop_to_client = true;
        let asked = world.now;
        world.server.send(asked, id, 1, b"hello").unwrap();
        world
            .server
            .handle_timeout(asked + Duration::from_millis(gap_ms));
        while world.server.poll_transmit().is_some() {}
        world.cut = true;
        // Ten seconds of idle timeout, then the resume grace.
        world.run_for(Duration::from_secs(120));
        assert!(
            world.server.session(id).is_none(),
            "gap {gap_ms} ms: the silent session is still held after 120 s"
        );
    }
}

/// Deferring the flush must not turn the link's queue bound into a limit on
/// what one turn sends: 400 kB of unreliable messages in one turn all go.
#[test]
fn a_turn_may_send_more_than_the_link_queue_holds() {
    let mut world = world_with_channel(30, 3, Delivery::Unreliable);
    let id = world.session_id();
    for index in 0..400 {
        world
            .server
            .send(world.now, id, 3, &numbered_message(index, 1000))
            .unwrap_or_else(|e| panic!("send {index} refused: {e}"));
    }
    world
        .run_until(Duration::from_secs(5), |w| {
            w.messages_at_client(3).len() == 400
        })
        .expect("every message arrives on a perfect link");
}
