//! Arbitrary client messages (moves, chat, line changes and travel above
//! all) into every line of the built-in world on the game API, as the
//! server's game host runs them (`GameLines`), with a real client replica
//! of one player following wherever it is and an observer of the meadow's
//! line (a line recording): nothing may panic, both replicas accept
//! everything they are sent, across lines too, and no actor the player
//! sees is ever in a wall or outside its zone. The same bytes as a
//! recording file (`hearth replay`, the replay page) read without a panic.

#![no_main]

use std::sync::Arc;

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{GameLines, Joining, LinesOutput};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::zone::{Zone, ZoneSpec};
use hearth_world::{parse_zone_file, WorldGame, DEFAULT_ZONES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let zones = parse_zone_file(DEFAULT_ZONES).expect("the default zones");
    let spec = |name: &str| zones.iter().find(|z| z.name() == name).unwrap().spec.clone();
    let game = Arc::new(WorldGame::new(zones.clone()).expect("the default world"));
    let mut lines = GameLines::new(game, 1);
    for player in 1..=3 {
        lines.enter(Joining {
            player,
            name: format!("p{player}"),
            ..Joining::default()
        });
    }
    let _ = hearth_replica::record::read_all(data);
    let meadow = lines.line_named("meadow", 1).expect("the players opened it");
    let observer = lines.observe(meadow).expect("room for an observer");
    let mut recorded = GameReplica::new(Arc::new(hearth_world::world_schema()));
    let mut watcher = GameReplica::new(Arc::new(hearth_world::world_schema()));
    let mut zone: Option<Zone> = None;
    let mut rest = data;
    let (mut i, mut now_ms) = (0u64, 0u64);
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head >> 2).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let channel = if head & 1 == 0 { RELIABLE_CHANNEL } else { STATE_CHANNEL };
        let player = 2 + (u64::from(head >> 1) & 1);
        let _ = lines.input(player, channel, chunk);
        i += 1;
        if i % 2 == 0 {
            // A second a step: cooldowns pass, so travel goes on.
            now_ms += 1000;
            let outputs: Vec<LinesOutput> = lines.step(now_ms).collect();
            for output in outputs {
                let (replica, channel, bytes) = match output {
                    LinesOutput::Send {
                        player: 1,
                        channel,
                        bytes,
                    } => (&mut watcher, channel, bytes),
                    LinesOutput::Observed {
                        observer: o,
                        channel,
                        bytes,
                        ..
                    } if o == observer => (&mut recorded, channel, bytes),
                    _ => continue,
                };
                match channel {
                    RELIABLE_CHANNEL => replica.apply_reliable(&bytes).expect("valid"),
                    _ => replica.apply_frame(&bytes).expect("valid"),
                }
            }
            while watcher.poll_event().is_some() {}
            while recorded.poll_event().is_some() {}
            if let Some(ack) = watcher.poll_ack() {
                lines.input(1, STATE_CHANNEL, &ack).expect("a valid ack");
            }
            if zone.as_ref().map(|z| z.spec.map.as_str()) != Some(watcher.map()) {
                zone = ["meadow", "town", "caves"]
                    .into_iter()
                    .map(spec)
                    .find(|s: &ZoneSpec| s.map == watcher.map())
                    .map(|s| Zone::new(s).expect("valid"));
            }
            if let Some(zone) = &zone {
                for (id, _) in watcher.actors() {
                    if let Some(at) = watcher.server_position(id) {
                        assert!(zone.in_bounds(at) && !zone.blocked(at), "{id:?} at {at:?}");
                    }
                }
            }
        }
    }
});
