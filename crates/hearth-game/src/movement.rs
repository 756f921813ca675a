//! Movement, Hearth's job in every game that opts in: a player's client
//! moves the actor it controls at once (prediction) and sends its moves;
//! the line takes them at the next tick, each checked against the kind's
//! speed, the zone's bounds and walls, and refuses the first that fails
//! (the client is corrected: it snaps back to where the server has it).
//! Also the line's space: the zone and how far players see.

use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
use hearth_replica::schema::{Movement, Schema, Value};
use hearth_replica::zone::{Zone, MAX_ZONE_SIDE};

use crate::ids::ActorId;
use crate::state::{ActorState, Core};

/// Movement a player may bank, in ticks of legal speed.
const ALLOWANCE_TICKS: i64 = 5;
/// Movement a player starts with when given an actor, in ticks of legal
/// speed: its first moves may arrive bunched.
pub(crate) const OPENING_ALLOWANCE_TICKS: i64 = 2;

/// Where a line's moving actors live and how far players see them.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    /// The map: bounds and walls. Without one, moving actors are bounded
    /// by the position type only and nothing blocks them.
    pub zone: Option<Zone>,
    /// An actor of a moving kind enters a player's view within this many
    /// position units of the actor the player controls.
    pub view_in: i64,
    /// ... and leaves it beyond this (a quarter further: hysteresis, so an
    /// actor walking along the edge does not flap in and out).
    pub view_out: i64,
    /// Per kind: its movement, from the schema.
    pub movement: Vec<Option<Movement>>,
    /// Per kind: Hearth keeps its facing (`KindSpec::with_facing`).
    pub facing: Vec<bool>,
    /// This line's zone among the game's, and every zone's name (where
    /// `Ctx::travel` may send a player).
    pub zone_index: u16,
    pub zone_names: Vec<String>,
    /// While the host sheds optional traffic (it is too busy), actors
    /// beyond half the view radius are refreshed `1 << this` times less
    /// often (0: as usual). Not in the snapshot: the host's load, not the
    /// line's state.
    pub far_refresh_shift: u32,
    /// While the host sheds optional traffic, each player's byte budget is
    /// this many thousandths of what it would be (1000: as usual).
    pub budget_permille: u32,
}

impl Space {
    /// The space of a line of zone `zone_index` of `zones` (none: the one
    /// zone without a map, named after the game).
    pub fn new<G: crate::Game>(game: &G, schema: &Schema, zone_index: u16) -> Self {
        let zones = game.zones();
        let view_radius_cells = game.view_radius(zones.get(usize::from(zone_index)));
        let view_in = i64::from(view_radius_cells.max(1)) * i64::from(UNITS_PER_CELL);
        let zone_names = match zones.is_empty() {
            true => vec![schema.game().to_owned()],
            false => zones.iter().map(|z| z.name().to_owned()).collect(),
        };
        let zone = zones.into_iter().nth(usize::from(zone_index));
        let movement = schema
            .kinds()
            .iter()
            .map(|kind| {
                kind.movement
                    .map(|schema| game.movement_in(zone.as_ref(), kind).unwrap_or(schema))
                    .map(|m| Movement {
                        speed: m.speed.clamp(1, hearth_replica::schema::MAX_SPEED),
                        ..m
                    })
            })
            .collect();
        Self {
            zone_index: zone_index.min(zone_names.len() as u16 - 1),
            zone_names,
            zone,
            view_in,
            view_out: view_in + view_in / 4,
            movement,
            facing: schema.kinds().iter().map(|k| k.has_facing()).collect(),
            far_refresh_shift: 0,
            budget_permille: 1000,
        }
    }

    pub fn moves(&self, kind: u16) -> bool {
        self.movement[usize::from(kind)].is_some()
    }

    /// Width and height in cells (the largest zone without a map).
    pub fn cells(&self) -> (i32, i32) {
        match &self.zone {
            Some(zone) => (zone.width, zone.height),
            None => (MAX_ZONE_SIDE as i32, MAX_ZONE_SIDE as i32),
        }
    }

    pub fn in_bounds(&self, pos: Pos) -> bool {
        match &self.zone {
            Some(zone) => zone.in_bounds(pos),
            None => {
                let side = MAX_ZONE_SIDE as i32 * UNITS_PER_CELL;
                (0..=side).contains(&pos.x) && (0..=side).contains(&pos.y)
            }
        }
    }
}

/// A moving actor's position (its first two properties).
pub(crate) fn position(actor: &ActorState) -> Pos {
    match (&actor.values[0], &actor.values[1]) {
        (Value::Int(x), Value::Int(y)) => Pos::new(*x as i32, *y as i32),
        _ => Pos::new(0, 0),
    }
}

/// Puts a moving actor at `pos` as of `tick`.
pub(crate) fn set_position(actor: &mut ActorState, pos: Pos, tick: u64) {
    let before = position(actor);
    if pos.x != before.x {
        actor.values[0] = Value::Int(i64::from(pos.x));
        actor.changed[0] = tick;
        actor.frame_changed = tick;
    }
    if pos.y != before.y {
        actor.values[1] = Value::Int(i64::from(pos.y));
        actor.changed[1] = tick;
        actor.frame_changed = tick;
    }
}

/// The property index of a facing (`KindSpec::with_facing`).
const FACING: usize = 2;

/// Turns an actor of a kind with a facing towards `to` as of `tick`.
pub(crate) fn set_facing(actor: &mut ActorState, facing: u8, tick: u64) {
    let facing = Value::Int(i64::from(facing));
    if actor.values[FACING] != facing {
        actor.values[FACING] = facing;
        actor.changed[FACING] = tick;
        actor.frame_changed = tick;
    }
}

/// Legal movement per tick, in position units.
pub(crate) fn step_per_tick(movement: Movement, tick_hz: u32) -> i64 {
    (i64::from(movement.speed) * i64::from(UNITS_PER_CELL) / i64::from(tick_hz.max(1))).max(1)
}

/// Why a move was refused.
enum Refusal {
    OutOfBounds,
    TooFast,
    Blocked,
}

/// Takes every player's moves that arrived since the last tick.
pub(crate) fn take_moves<P>(core: &mut Core<P>, space: &Space) {
    let (tick, tick_hz) = (core.tick, core.tick_hz);
    for player in core.players.values_mut() {
        let steer = &mut player.steer;
        let Some(id) = steer.actor else {
            steer.moves.clear();
            continue;
        };
        let Some(actor) = core.actors.get_mut(&id) else {
            steer.moves.clear();
            continue;
        };
        let Some(movement) = space.movement[usize::from(actor.kind)] else {
            steer.moves.clear();
            continue;
        };
        let step = step_per_tick(movement, tick_hz);
        steer.allowance = (steer.allowance + step).min(step * ALLOWANCE_TICKS);
        let moves = std::mem::take(&mut steer.moves);
        let mut pos = position(actor);
        let mut facing = None;
        for (at, m) in moves.iter().enumerate() {
            if !after(m.seq, steer.last_seq) {
                continue;
            }
            steer.last_seq = m.seq;
            steer.moved = true;
            let verdict = if !space.in_bounds(m.pos) {
                Err(Refusal::OutOfBounds)
            } else if pos.distance_ceil(m.pos) > steer.allowance {
                Err(Refusal::TooFast)
            } else if movement.collides
                && space
                    .zone
                    .as_ref()
                    .is_some_and(|zone| !zone.path_clear(pos, m.pos))
            {
                Err(Refusal::Blocked)
            } else {
                Ok(())
            };
            match verdict {
                Ok(()) => {
                    steer.allowance -= pos.distance_ceil(m.pos);
                    if m.pos != pos {
                        facing = Some((pos, m.pos));
                    }
                    pos = m.pos;
                    core.stats.moves_accepted += 1;
                }
                Err(why) => {
                    match why {
                        Refusal::OutOfBounds => core.stats.moves_out_of_bounds += 1,
                        Refusal::TooFast => core.stats.moves_too_fast += 1,
                        Refusal::Blocked => core.stats.moves_blocked += 1,
                    }
                    // The later moves were predicted from the refused one:
                    // taken as refused too; the client snaps back to the
                    // position the frame carries.
                    steer.corrected = true;
                    if let Some(last) = moves[at..].iter().map(|m| m.seq).reduce(newest) {
                        steer.last_seq = newest(steer.last_seq, last);
                    }
                    break;
                }
            }
        }
        set_position(actor, pos, tick);
        if let Some((from, to)) = facing.filter(|_| space.facing[usize::from(actor.kind)]) {
            set_facing(actor, from.facing_towards(to), tick);
        }
    }
}

/// One tick of every walk (`Ctx::walk_to`): each walker steps towards its
/// target at its kind's speed; a walker that arrives, or that a wall
/// stops, stands still (and is in `walks_ended` for the game to hear of).
/// One pass over the actors in order, not a lookup per walker.
pub(crate) fn take_walks<P>(core: &mut Core<P>, space: &Space) {
    if core.walkers == 0 {
        return;
    }
    let (tick, tick_hz) = (core.tick, core.tick_hz);
    let mut walkers = 0;
    for (id, actor) in core.actors.iter_mut() {
        let Some(target) = actor.walk_to else {
            continue;
        };
        let Some(movement) = space.movement[usize::from(actor.kind)] else {
            actor.walk_to = None;
            continue;
        };
        let at = position(actor);
        let step = match actor.walk_step {
            0 => step_per_tick(movement, tick_hz),
            slower => i64::from(slower),
        };
        let next = at.step_towards(target, step);
        let clear = !movement.collides
            || space
                .zone
                .as_ref()
                .is_none_or(|zone| zone.path_clear(at, next));
        if clear {
            set_position(actor, next, tick);
        }
        if !clear || next == target {
            actor.walk_to = None;
            core.walks_ended.push((*id, clear));
        } else {
            walkers += 1;
        }
    }
    core.walkers = walkers;
}

/// `seq` comes after `last` (sequence numbers wrap).
pub(crate) fn after(seq: u32, last: u32) -> bool {
    let ahead = seq.wrapping_sub(last);
    ahead != 0 && ahead < u32::MAX / 2
}

fn newest(a: u32, b: u32) -> u32 {
    if after(b, a) {
        b
    } else {
        a
    }
}

/// The centre of `controlled`'s view: its position, if it is a moving actor.
pub(crate) fn view_centre(
    actors: &std::collections::BTreeMap<ActorId, ActorState>,
    space: &Space,
    controlled: Option<ActorId>,
) -> Option<Pos> {
    let actor = actors.get(&controlled?)?;
    space.moves(actor.kind).then(|| position(actor))
}
