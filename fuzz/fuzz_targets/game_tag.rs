//! Arbitrary client messages (acknowledgements and moves above all) into a
//! line of the tag example, with a real client replica of one player
//! following the line: nothing may panic, the replica accepts everything
//! the line sends, and no runner is ever put in a wall or outside the
//! arena, whatever moves arrive.

#![no_main]

use std::sync::Arc;

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{Game, GameLine, GameOutput};
use hearth_replica::game_replica::GameReplica;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let game = Arc::new(tag::Tag::default());
    let zone = game.zones().remove(0);
    let mut line = GameLine::new(game, 1);
    for player in 1..=3 {
        line.join(player, None);
    }
    let mut watcher = GameReplica::new(line.schema().clone());
    let mut rest = data;
    let mut i = 0u64;
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head >> 2).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let channel = if head & 1 == 0 { RELIABLE_CHANNEL } else { STATE_CHANNEL };
        let player = 2 + (u64::from(head >> 1) & 1);
        let _ = line.input(player, channel, chunk);
        i += 1;
        if i % 2 == 0 {
            line.tick();
            for output in line.drain_outputs() {
                if let GameOutput::Send {
                    player: 1,
                    channel,
                    bytes,
                } = output
                {
                    match channel {
                        RELIABLE_CHANNEL => watcher.apply_reliable(&bytes).expect("valid"),
                        _ => watcher.apply_frame(&bytes).expect("valid"),
                    }
                }
            }
            while watcher.poll_event().is_some() {}
            if let Some(ack) = watcher.poll_ack() {
                line.input(1, STATE_CHANNEL, &ack).expect("a valid ack");
            }
            for (id, _) in watcher.actors() {
                if let Some(at) = watcher.server_position(id) {
                    assert!(zone.in_bounds(at) && !zone.blocked(at), "{id:?} at {at:?}");
                }
            }
        }
    }
});
