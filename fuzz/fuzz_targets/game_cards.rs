//! Arbitrary client messages into a line of the card example (the server
//! side of a game on the game API), and arbitrary server messages into a
//! client's generic replica of it: nothing may panic, and whatever reaches
//! the game was decoded and within its rate limit.

#![no_main]

use std::sync::Arc;

use hearth_game::GameLine;
use hearth_replica::game_replica::GameReplica;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut line = GameLine::new(Arc::new(cards::Cards), 1);
    for player in 1..=3 {
        line.join(player, None);
    }
    line.tick();
    for (i, chunk) in data.chunks(8).enumerate() {
        let channel = if chunk.first().is_some_and(|b| b & 1 == 0) { 10 } else { 11 };
        let player = 1 + (i as u64 % 3);
        let _ = line.input(player, channel, chunk.get(1..).unwrap_or_default());
        if i % 3 == 2 {
            line.tick();
            line.drain_outputs().for_each(drop);
        }
    }
    let stats = line.stats();
    assert!(stats.messages_in + stats.messages_undecodable + stats.messages_rate_limited <= data.len() as u64);

    let mut replica = GameReplica::new(Arc::new(cards::schema()));
    for chunk in data.chunks(24) {
        let _ = replica.apply_reliable(chunk);
        let _ = replica.apply_frame(chunk);
        while replica.poll_event().is_some() {}
        let _ = replica.poll_ack();
    }
});
