//! A crowd on a small budget: many more actors changing than a client's
//! budget carries each tick. Each frame keeps to the budget (cut further
//! while the host sheds), the client is sent the near and the stale first,
//! and once the crowd stands still it has every actor exactly where the
//! line has it.

mod common;

use std::sync::Arc;

use hearth_game::schema::{KindSpec, Movement, Schema};
use hearth_game::{ActorId, Ctx, Game, GameLine, Pos, Shedding, Zone, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;

use common::{somewhere, tick_and_follow, SIDE};

/// 400 walkers in a 60 by 60 square, walking until tick `STOP`, and a
/// player who steers one of their own in the middle.
struct Square;

const WALKERS: usize = 400;
const STOP: u64 = 150;
/// 800 bytes a tick at 20 ticks a second: a few dozen updates of the 400.
const BYTES_PER_SECOND: u32 = 16_000;

impl Game for Square {
    type Line = ();
    type Player = ();

    fn schema(&self) -> Schema {
        let walker = KindSpec::moving("walker", Movement::new(8));
        Schema::new("square", vec![walker], vec![]).unwrap()
    }

    fn zones(&self) -> Vec<Zone> {
        let mut zone = Zone::open_field("square", SIDE, SIDE);
        // Everyone in view.
        zone.spec.view_radius = SIDE as u32 * 2;
        vec![Zone::new(zone.spec).unwrap()]
    }

    fn bytes_per_second(&self) -> u32 {
        BYTES_PER_SECOND
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
        let walker = ctx.kind("walker").unwrap();
        for _ in 0..WALKERS {
            let actor = ctx.spawn(walker, None);
            let at = somewhere(ctx);
            ctx.place(actor, at).unwrap();
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
    }

    fn on_walk_end(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, actor: ActorId, _: bool) {
        if ctx.tick() < STOP {
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
    }

    fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: hearth_game::PlayerId) {
        let walker = ctx.kind("walker").unwrap();
        let own = ctx.spawn(walker, Some(player));
        let middle = (SIDE as i32 / 2) * UNITS_PER_CELL;
        ctx.place(own, Pos::new(middle, middle)).unwrap();
        ctx.control(player, Some(own)).unwrap();
    }
}

/// Runs the square for `ticks`, shedding as `shedding` says from tick 1;
/// returns the largest frame, the replica and the line.
fn run(ticks: u64, shedding: Shedding) -> (usize, GameReplica, GameLine<Square>) {
    let mut line = GameLine::new(Arc::new(Square), 3);
    line.set_shedding(shedding);
    line.join(1, None);
    let mut replica = GameReplica::new(line.schema().clone());
    let mut largest = 0;
    for _ in 0..ticks {
        tick_and_follow(&mut line, &mut replica, |frame| {
            largest = largest.max(frame.len());
            true
        });
    }
    (largest, replica, line)
}

#[test]
fn a_crowd_on_a_small_budget_keeps_to_it_and_converges_once_it_stands_still() {
    let budget = (BYTES_PER_SECOND / 20) as usize;
    // Walking: the budget is far short of the crowd's changes.
    let (largest, _, line) = run(STOP, Shedding::NONE);
    assert!(
        largest <= budget,
        "a frame of {largest} bytes, budget {budget}"
    );
    assert!(
        line.stats().deferred > 10 * WALKERS as u64,
        "{} deferred: the budget held back most of the crowd",
        line.stats().deferred
    );
    // Standing still from tick 150: within 20 s every walker is where the
    // line has it.
    let (_, replica, line) = run(STOP + 400, Shedding::NONE);
    assert_eq!(replica.actors().count(), WALKERS + 1);
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
}

#[test]
fn a_host_that_cuts_budgets_sends_each_player_that_share_and_the_crowd_still_converges() {
    let half = Shedding {
        far_refresh_shift: 1,
        budget_permille: 500,
    };
    let (largest, _, _) = run(STOP, half);
    let budget = (BYTES_PER_SECOND / 20) as usize / 2;
    assert!(
        largest <= budget,
        "a frame of {largest} bytes, budget {budget}"
    );
    let (_, replica, line) = run(STOP + 600, half);
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
}
