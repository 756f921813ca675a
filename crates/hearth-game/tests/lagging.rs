//! A client that stops acknowledging, or whose frames are lost for a long
//! while, costs the server a fixed size per actor in its view, not a
//! history that grows with every frame; once its frames arrive again it
//! catches up with the line as it is, exactly. A busy host sheds far
//! actors' refresh, and nothing near.

mod common;

use std::sync::Arc;

use hearth_game::schema::{KindSpec, Movement, Schema};
use hearth_game::{
    ActorId, Ctx, Game, GameLine, Pos, Shedding, Zone, MAX_IN_FLIGHT, UNITS_PER_CELL,
};
use hearth_replica::game_replica::GameReplica;

use common::{somewhere, tick_and_follow, SIDE};

/// 300 bees, each always walking somewhere else in a 60 by 60 field.
struct Swarm;

const BEES: usize = 300;

impl Game for Swarm {
    type Line = ();
    type Player = ();

    fn schema(&self) -> Schema {
        let bee = KindSpec::moving("bee", Movement::new(8));
        Schema::new("swarm", vec![bee], vec![]).unwrap()
    }

    fn zones(&self) -> Vec<Zone> {
        vec![Zone::open_field("field", SIDE, SIDE)]
    }

    /// Every change of every bee fits: this is about memory, not budgets.
    fn bytes_per_second(&self) -> u32 {
        u32::MAX
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
        let bee = ctx.kind("bee").unwrap();
        for _ in 0..BEES {
            let actor = ctx.spawn(bee, None);
            let at = somewhere(ctx);
            ctx.place(actor, at).unwrap();
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
    }

    fn on_walk_end(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, actor: ActorId, _: bool) {
        let to = somewhere(ctx);
        ctx.walk_to(actor, to).unwrap();
    }
}

/// A line with one player who steers nothing (and so sees every bee).
fn swarm() -> GameLine<Swarm> {
    let mut line = GameLine::new(Arc::new(Swarm), 5);
    line.join(1, None);
    line
}

#[test]
fn a_client_that_stops_acknowledging_costs_a_fixed_size_per_actor_it_sees() {
    let mut line = swarm();
    let mut sizes = Vec::new();
    for tick in 1..=300 {
        line.tick();
        line.drain_outputs().for_each(drop);
        if tick == 150 || tick == 300 {
            sizes.push(line.view_bytes(1).unwrap());
        }
    }
    assert_eq!(line.in_view(1), Some(BEES));
    // 32 bytes per bee (the capacity may round up to twice the entries),
    // whatever the frames in flight: remembering which bees each of the 32
    // unacknowledged frames carried, as a list, would take 32 x 300 x 4
    // bytes on its own.
    let bound = BEES * 64 + MAX_IN_FLIGHT * 16;
    assert!(sizes[1] <= bound, "{} bytes, over {bound}", sizes[1]);
    assert_eq!(sizes[0], sizes[1], "nothing grows while it stays silent");
}

#[test]
fn a_client_whose_frames_were_lost_for_five_seconds_converges_exactly() {
    let mut line = swarm();
    let mut replica = GameReplica::new(line.schema().clone());
    for tick in 1..=200 {
        // Ticks 21 to 120: every frame lost (the reliable channel still
        // delivers), so none is acknowledged and the window overflows.
        let lost = (21..=120).contains(&tick);
        tick_and_follow(&mut line, &mut replica, |_| !lost);
    }
    // After the last frame, every bee where the line has it.
    assert_eq!(replica.actors().count(), BEES);
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
}

/// The swarm, and a keeper who steers a bee of their own in the middle.
struct Keeper;

impl Game for Keeper {
    type Line = ();
    type Player = ();

    fn schema(&self) -> Schema {
        Swarm.schema()
    }

    fn zones(&self) -> Vec<Zone> {
        Swarm.zones()
    }

    fn bytes_per_second(&self) -> u32 {
        u32::MAX
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
        Swarm.new_line(ctx)
    }

    fn on_walk_end(&self, line: &mut (), ctx: &mut Ctx<'_, ()>, actor: ActorId, arrived: bool) {
        Swarm.on_walk_end(line, ctx, actor, arrived)
    }

    fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, player: hearth_game::PlayerId) {
        let bee = ctx.kind("bee").unwrap();
        let own = ctx.spawn(bee, Some(player));
        let middle = (SIDE as i32 / 2) * UNITS_PER_CELL;
        ctx.place(own, Pos::new(middle, middle)).unwrap();
        ctx.control(player, Some(own)).unwrap();
    }
}

/// The keeper's frame bytes over ticks 21 to 120, shedding or not from
/// tick 21, and the replica and line at the end.
fn keep(shedding: bool) -> (usize, GameReplica, GameLine<Keeper>) {
    let mut line = GameLine::new(Arc::new(Keeper), 9);
    line.join(1, None);
    let mut replica = GameReplica::new(line.schema().clone());
    let mut frame_bytes = 0;
    for tick in 1..=120 {
        if tick == 21 {
            line.set_shedding(match shedding {
                true => Shedding {
                    far_refresh_shift: 1,
                    budget_permille: 1000,
                },
                false => Shedding::NONE,
            });
        }
        tick_and_follow(&mut line, &mut replica, |frame| {
            if tick > 20 {
                frame_bytes += frame.len();
            }
            true
        });
    }
    (frame_bytes, replica, line)
}

#[test]
fn a_busy_host_sheds_far_actors_refresh_and_nothing_near() {
    let (usual, _, _) = keep(false);
    let (shed, replica, line) = keep(true);
    assert!(
        shed * 10 < usual * 9,
        "shedding sent {shed} frame bytes, as usual {usual}"
    );
    // Near bees (within half the view radius) are exactly where the line
    // has them: shedding leaves them alone.
    let own = replica.controlled().unwrap();
    let centre = line.position(own).unwrap();
    let half_view = i64::from(Swarm.zones()[0].spec.view_radius) * i64::from(UNITS_PER_CELL) / 2;
    let mut near = 0;
    for (id, _) in replica.actors() {
        let at = line.position(id).unwrap();
        if at.distance_squared(centre) < half_view * half_view {
            near += 1;
            assert_eq!(replica.server_position(id), Some(at), "{id:?}");
        }
    }
    assert!(near > 5, "{near} bees near the keeper");
}
