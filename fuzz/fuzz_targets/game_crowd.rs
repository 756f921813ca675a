//! A crowd as one client sees it, with the client's fortune chosen by the
//! input: 300 walkers in one view (so the client is sent shared units and,
//! on a small budget, paused frames), frames lost, acknowledgements
//! withheld, and arbitrary bytes on the state channel among the client's
//! own. Nothing may panic and the client's replica must read everything it
//! is sent; once the crowd stands still and the frames arrive, a client
//! that never sent the server anything but its own acknowledgements must
//! have every actor exactly where the line has it.

#![no_main]

use std::collections::VecDeque;
use std::sync::Arc;

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::schema::{KindSpec, Movement, Schema};
use hearth_game::{ActorId, Ctx, Game, GameLine, GameOutput, Pos, Zone, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;
use libfuzzer_sys::fuzz_target;

const SIDE: usize = 40;
const WALKERS: usize = 300;
/// Ticks the input steers; then the crowd stands and every frame arrives.
const STEERED: usize = 120;

struct Crowd;

fn somewhere<P>(ctx: &mut Ctx<'_, P>) -> Pos {
    let side = (SIDE as i64 - 2) * i64::from(UNITS_PER_CELL);
    let unit = i64::from(UNITS_PER_CELL);
    Pos::new(
        (unit + ctx.rng().range(0, side)) as i32,
        (unit + ctx.rng().range(0, side)) as i32,
    )
}

impl Game for Crowd {
    type Line = VecDeque<ActorId>;
    type Player = ();

    fn schema(&self) -> Schema {
        let walker = KindSpec::moving("walker", Movement::new(8));
        Schema::new("crowd", vec![walker], vec![]).unwrap()
    }

    fn zones(&self) -> Vec<Zone> {
        let mut zone = Zone::open_field("crowd", SIDE, SIDE);
        zone.spec.view_radius = SIDE as u32 * 2;
        vec![Zone::new(zone.spec).unwrap()]
    }

    fn bytes_per_second(&self) -> u32 {
        // A few dozen updates a tick: saturated, so frames pause too.
        20_000
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> Self::Line {
        let walker = ctx.kind("walker").unwrap();
        let mut walkers = VecDeque::new();
        for _ in 0..WALKERS {
            let actor = ctx.spawn(walker, None);
            let at = somewhere(ctx);
            ctx.place(actor, at).unwrap();
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
            walkers.push_back(actor);
        }
        walkers
    }

    fn on_walk_end(&self, _: &mut Self::Line, ctx: &mut Ctx<'_, ()>, actor: ActorId, _: bool) {
        if ctx.tick() < STEERED as u64 {
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
    }

    fn on_join(&self, _: &mut Self::Line, ctx: &mut Ctx<'_, ()>, player: hearth_game::PlayerId) {
        let walker = ctx.kind("walker").unwrap();
        let own = ctx.spawn(walker, Some(player));
        let middle = (SIDE as i32 / 2) * UNITS_PER_CELL;
        ctx.place(own, Pos::new(middle, middle)).unwrap();
        ctx.control(player, Some(own)).unwrap();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut line = GameLine::new(Arc::new(Crowd), 7);
    line.join(1, None);
    let mut replica = GameReplica::new(line.schema().clone());
    let mut bytes = data.iter().copied();
    // The server took bytes from the input as the client's: it may have
    // been told of frames the client never applied.
    let mut lied = false;
    for tick in 0..STEERED + 400 {
        // Per steered tick, one byte: bit 0 loses the frame, bit 1 keeps
        // the acknowledgement back, bit 4 sends the next bytes as a state
        // message.
        let steer = if tick < STEERED {
            bytes.next().unwrap_or(0)
        } else {
            0
        };
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
                RELIABLE_CHANNEL => replica
                    .apply_reliable(&bytes)
                    .expect("a reliable message reads"),
                _ if steer & 1 == 0 => replica.apply_frame(&bytes).expect("a frame reads"),
                _ => {}
            }
        }
        while replica.poll_event().is_some() {}
        if steer & 2 == 0 {
            if let Some(ack) = replica.poll_ack() {
                line.input(1, STATE_CHANNEL, &ack)
                    .expect("the client's own");
            }
        }
        if steer & 16 != 0 {
            let len = usize::from(bytes.next().unwrap_or(0) % 32);
            let junk: Vec<u8> = bytes.by_ref().take(len).collect();
            lied |= line.input(1, STATE_CHANNEL, &junk).is_ok();
        }
    }
    if lied {
        return;
    }
    // Standing, every frame arriving for 20 s: exactly where the line has them.
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
});
