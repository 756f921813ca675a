//! A crowd on a small budget: many more actors changing than a client's
//! budget carries each tick. The frames keep to the budget (cut further
//! while the host sheds), the saturated client is sent fewer and larger
//! frames but never waits long, the near and the stale go first, and once
//! the crowd stands still the client has every actor exactly where the
//! line has it.

mod common;

use std::sync::Arc;

use hearth_game::schema::{KindSpec, Movement, Schema};
use hearth_game::{
    ActorId, Ctx, Game, GameLine, Pos, Shedding, Zone, MAX_FRAME_SHIFT, UNITS_PER_CELL,
};
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
    /// The walkers, oldest first: every 7th tick while they walk, the
    /// oldest leaves the line (the slots of every actor after it move, on
    /// ticks a saturated client may not be replicated in).
    type Line = std::collections::VecDeque<ActorId>;
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

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> Self::Line {
        let walker = ctx.kind("walker").unwrap();
        let mut walkers = Self::Line::new();
        for _ in 0..WALKERS {
            let actor = ctx.spawn(walker, None);
            walkers.push_back(actor);
            let at = somewhere(ctx);
            ctx.place(actor, at).unwrap();
            let to = somewhere(ctx);
            ctx.walk_to(actor, to).unwrap();
        }
        walkers
    }

    fn on_tick(&self, walkers: &mut Self::Line, ctx: &mut Ctx<'_, ()>) {
        if ctx.tick() < STOP && ctx.tick() % 7 == 0 {
            if let Some(oldest) = walkers.pop_front() {
                ctx.despawn(oldest);
            }
        }
    }

    fn on_walk_end(&self, _: &mut Self::Line, ctx: &mut Ctx<'_, ()>, actor: ActorId, _: bool) {
        if ctx.tick() < STOP {
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

/// What player 1 was sent on the state channel while the crowd walked.
#[derive(Default)]
struct Frames {
    /// The largest frame.
    largest: usize,
    /// Every frame's bytes together.
    total: usize,
    /// The most ticks from one frame to the next.
    longest_gap: u64,
}

/// Runs the square for `ticks`, shedding as `shedding` says from tick 1;
/// returns what the frames of the first `STOP` ticks came to, the replica
/// and the line.
fn run(ticks: u64, shedding: Shedding) -> (Frames, GameReplica, GameLine<Square>) {
    run_losing(ticks, shedding, |_| false)
}

/// [`run`], the frames of the ticks `lost` says lost.
fn run_losing(
    ticks: u64,
    shedding: Shedding,
    lost: impl Fn(u64) -> bool,
) -> (Frames, GameReplica, GameLine<Square>) {
    let mut line = GameLine::new(Arc::new(Square), 3);
    line.set_shedding(shedding);
    line.join(1, None);
    let mut replica = GameReplica::new(line.schema().clone());
    let mut frames = Frames::default();
    let mut last_frame = 0;
    for tick in 1..=ticks {
        tick_and_follow(&mut line, &mut replica, |frame| {
            if tick <= STOP {
                frames.largest = frames.largest.max(frame.len());
                frames.total += frame.len();
                frames.longest_gap = frames.longest_gap.max(tick - last_frame);
                last_frame = tick;
            }
            !lost(tick)
        });
    }
    (frames, replica, line)
}

/// A frame may carry the budget of the ticks its client was paused
/// (`MAX_FRAME_SHIFT`), never more; and all frames together keep to the
/// budget of the ticks they cover, with the first frame's headers.
fn assert_within(frames: &Frames, per_tick: usize) {
    let most_paused = 1usize << MAX_FRAME_SHIFT;
    assert!(
        frames.largest <= per_tick * most_paused,
        "a frame of {} bytes, budget {per_tick} a tick",
        frames.largest
    );
    assert!(
        frames.total <= per_tick * STOP as usize,
        "{} bytes in {STOP} ticks, budget {per_tick} a tick",
        frames.total
    );
    assert!(
        frames.longest_gap <= most_paused as u64,
        "{} ticks without a frame",
        frames.longest_gap
    );
}

#[test]
fn a_crowd_on_a_small_budget_keeps_to_it_and_converges_once_it_stands_still() {
    let budget = (BYTES_PER_SECOND / 20) as usize;
    // Walking: the budget is far short of the crowd's changes.
    let (frames, _, line) = run(STOP, Shedding::NONE);
    assert_within(&frames, budget);
    assert!(
        line.stats().deferred > 10 * WALKERS as u64,
        "{} deferred: the budget held back most of the crowd",
        line.stats().deferred
    );
    // A crowd: the walkers' updates went in shared units.
    assert!(
        line.stats().shared_updates > 10 * WALKERS as u64,
        "{} updates in shared units",
        line.stats().shared_updates
    );
    // Saturated: the client was sent fewer, larger frames.
    assert!(
        line.stats().frames_paused > STOP / 4,
        "{} ticks paused",
        line.stats().frames_paused
    );
    // Standing still from tick 150: within 20 s every walker is where the
    // line has it.
    let (_, replica, line) = run(STOP + 400, Shedding::NONE);
    assert_eq!(replica.actors().count(), line.actor_count());
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
    let (frames, _, _) = run(STOP, half);
    assert_within(&frames, (BYTES_PER_SECOND / 20) as usize / 2);
    let (_, replica, line) = run(STOP + 600, half);
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
}

#[test]
fn a_crowd_client_whose_frames_were_lost_for_five_seconds_converges_exactly() {
    // Ticks 21 to 120: every frame lost (the reliable channel still
    // delivers), so no shared unit is acknowledged and the window of
    // frames in flight overflows; the crowd stops at tick 150.
    let (_, replica, line) = run_losing(STOP + 400, Shedding::NONE, |tick| {
        (21..=120).contains(&tick)
    });
    assert!(line.stats().shared_updates > 0);
    assert_eq!(replica.actors().count(), line.actor_count());
    for (id, _) in replica.actors() {
        assert_eq!(replica.server_position(id), line.position(id), "{id:?}");
    }
}
