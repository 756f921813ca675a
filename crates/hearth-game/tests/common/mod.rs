//! What the tests of crowds and lagging clients share: a square field,
//! random places in it, and player 1's client following a line.

use hearth_game::{Ctx, Game, GameLine, GameOutput, Pos, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};

/// The field's side, in cells.
pub const SIDE: usize = 60;

/// A random spot of the field, off its border.
#[allow(dead_code)] // Not every test file places its actors at random.
pub fn somewhere<P>(ctx: &mut Ctx<'_, P>) -> Pos {
    let side = (SIDE as i64 - 2) * i64::from(UNITS_PER_CELL);
    let unit = i64::from(UNITS_PER_CELL);
    Pos::new(
        (unit + ctx.rng().range(0, side)) as i32,
        (unit + ctx.rng().range(0, side)) as i32,
    )
}

/// One tick of `line` as player 1's client sees it: its reliable messages
/// applied, each frame shown to `arrives` and applied if that says it
/// arrived, and what the client then has to say sent back.
pub fn tick_and_follow<G: Game>(
    line: &mut GameLine<G>,
    replica: &mut GameReplica,
    mut arrives: impl FnMut(&[u8]) -> bool,
) {
    line.tick();
    let outputs: Vec<GameOutput> = line.drain_outputs().collect();
    for output in outputs {
        let GameOutput::Send {
            player: 1,
            channel,
            bytes,
        } = output
        else {
            continue;
        };
        match channel {
            RELIABLE_CHANNEL => replica.apply_reliable(&bytes).unwrap(),
            _ if arrives(&bytes) => replica.apply_frame(&bytes).unwrap(),
            _ => {}
        }
    }
    while replica.poll_event().is_some() {}
    if let Some(ack) = replica.poll_ack() {
        line.input(1, STATE_CHANNEL, &ack).unwrap();
    }
}
