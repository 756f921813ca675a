//! A crowd's shared units and a newcomer: a client in a crowd is sent its
//! moving neighbours in shared units, but a unit goes whole only while the
//! client knows every actor in it. Someone new walks into the crowd, and
//! until the client's next relevancy pass spawns it (up to fifteen ticks
//! later in a crowd) the unit it joined is not sent whole: the other actors
//! of that unit must still reach the client every tick, one by one, and
//! not wait for the pass.

mod common;

use std::sync::Arc;

use hearth_game::schema::{KindSpec, Movement, Schema};
use hearth_game::{ActorId, Ctx, Game, GameLine, Pos, Zone, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;

use common::{tick_and_follow, SIDE};

/// 300 walkers (a crowd: more than `CROWD_ENTRIES` in view) on a patch of
/// 16 by 16 cells in the middle of the field, all near the player's own
/// actor, on a budget that carries every change every tick.
struct Gathering;

const WALKERS: usize = 300;
const PATCH_CELLS: i64 = 16;
/// When the newcomer arrives (the crowd has settled into units by then).
const NEWCOMER_TICK: u64 = 40;

fn in_patch<P>(ctx: &mut Ctx<'_, P>) -> Pos {
    let unit = i64::from(UNITS_PER_CELL);
    let corner = (SIDE as i64 / 2 - PATCH_CELLS / 2) * unit;
    Pos::new(
        (corner + ctx.rng().range(0, PATCH_CELLS * unit)) as i32,
        (corner + ctx.rng().range(0, PATCH_CELLS * unit)) as i32,
    )
}

impl Game for Gathering {
    type Line = ();
    type Player = ();

    fn schema(&self) -> Schema {
        let walker = KindSpec::moving("walker", Movement::new(8));
        Schema::new("gathering", vec![walker], vec![]).unwrap()
    }

    fn zones(&self) -> Vec<Zone> {
        let mut zone = Zone::open_field("gathering", SIDE, SIDE);
        zone.spec.view_radius = SIDE as u32 * 2;
        vec![Zone::new(zone.spec).unwrap()]
    }

    fn bytes_per_second(&self) -> u32 {
        4_000_000
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
        let walker = ctx.kind("walker").unwrap();
        for _ in 0..WALKERS {
            let actor = ctx.spawn(walker, None);
            let at = in_patch(ctx);
            ctx.place(actor, at).unwrap();
            let to = in_patch(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
    }

    fn on_tick(&self, _: &mut (), ctx: &mut Ctx<'_, ()>) {
        if ctx.tick() == NEWCOMER_TICK {
            let walker = ctx.kind("walker").unwrap();
            let newcomer = ctx.spawn(walker, None);
            let middle = (SIDE as i32 / 2) * UNITS_PER_CELL;
            ctx.place(newcomer, Pos::new(middle + 1, middle + 1))
                .unwrap();
        }
    }

    fn on_walk_end(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, actor: ActorId, _: bool) {
        let to = in_patch(ctx);
        ctx.walk_to(actor, to).unwrap();
    }

    fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: hearth_game::PlayerId) {
        let walker = ctx.kind("walker").unwrap();
        let own = ctx.spawn(walker, Some(player));
        let middle = (SIDE as i32 / 2) * UNITS_PER_CELL;
        ctx.place(own, Pos::new(middle, middle)).unwrap();
        ctx.control(player, Some(own)).unwrap();
    }
}

/// The actors the client has that are not where the line has them.
fn stale(replica: &GameReplica, line: &GameLine<Gathering>) -> Vec<ActorId> {
    replica
        .actors()
        .map(|(id, _)| id)
        .filter(|&id| replica.server_position(id) != line.position(id))
        .collect()
}

#[test]
fn while_a_newcomer_is_not_yet_spawned_for_a_crowded_client_its_unit_mates_still_come_every_tick() {
    let mut line = GameLine::new(Arc::new(Gathering), 5);
    line.join(1, None);
    let mut replica = GameReplica::new(line.schema().clone());
    let mut newcomer_seen_at = None;
    for tick in 1..=NEWCOMER_TICK + 20 {
        tick_and_follow(&mut line, &mut replica, |_| true);
        if tick < 20 {
            continue; // The first frames bring the crowd in.
        }
        assert!(
            replica.actors().count() > WALKERS,
            "tick {tick}: the client has the crowd"
        );
        let stale = stale(&replica, &line);
        assert!(
            stale.is_empty(),
            "tick {tick}: {} actors the client has are not where the line has them ({:?}...)",
            stale.len(),
            &stale[..stale.len().min(5)]
        );
        if tick >= NEWCOMER_TICK
            && newcomer_seen_at.is_none()
            && replica.actors().count() == line.actor_count()
        {
            newcomer_seen_at = Some(tick);
        }
    }
    // The case this test is for: the newcomer came to the client some
    // ticks after it arrived, not at once (else nothing waited).
    let seen = newcomer_seen_at.expect("the newcomer reached the client");
    assert!(
        seen > NEWCOMER_TICK + 1,
        "the newcomer was spawned for the client at tick {seen}, at once: the case is not made"
    );
    assert!(line.stats().shared_updates > 0, "the crowd went in units");
}
