//! Shared frame blocks: in a crowd, the frame updates of the moving actors
//! of one square of the zone (a block of [`BLOCK_CELLS`] cells a side, its
//! actors split into [`SPLIT`] units by id) are encoded once a tick and
//! copied whole into the frame of every client that sees them, as Unreal's
//! replication graph and Iris share serialization between connections.
//! A crowded client then costs the line a look at each unit in its view
//! and a copy of the bytes it is sent, not a look at every actor it sees.
//!
//! What makes a unit's bytes the same for every client: they carry
//! absolute values (no client's own delta), of the properties everyone
//! sees, for a choice of seven "since" ticks (changed in the last 1, 2, 4,
//! 8, 16 or 32 ticks, or ever). A client is sent the unit encoded since a
//! tick no newer than the one it has acknowledged for that unit, so one
//! acknowledged frame that carried it tells the server the client has
//! every actor of the unit as of that frame's tick, and the client's
//! whole record of a unit is one entry, not one per actor.
//!
//! An actor that moves into a unit counts there as changed in every
//! property on the tick it arrived (the client's record of the new unit
//! says nothing of it), and a unit goes to a client only while the client
//! knows every actor in it (a frame naming an unknown actor could not be
//! read to its end; see `ClientView::known`).

use hearth_replica::game_wire::put_update;
use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
use hearth_replica::schema::Schema;

use crate::ctx::KindMasks;
use crate::ids::ActorId;
use crate::replicate::Actors;

/// Cells a side of one block.
pub(crate) const BLOCK_CELLS: i32 = 8;

/// Units a block's actors are split into, by id: a crowd standing on one
/// spot still comes in pieces a client's budget can take.
pub(crate) const SPLIT: u32 = 4;

/// Ticks back each "since" choice reaches (the last: everything).
const SINCE_TICKS: [u64; CLASSES - 1] = [1, 2, 4, 8, 16, 32];
const CLASSES: usize = 7;

/// One unit as encoded for one "since" choice this tick.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Encoded {
    /// The tick it was encoded in (0: not this tick).
    stamp: u64,
    start: u32,
    pub len: u32,
    /// Actors it carries (those changed since).
    pub count: u32,
}

/// Where each moving actor is, by unit, and each unit's encodings this
/// tick. Rebuilt every tick but for `placed`, which remembers where each
/// actor was (not saved with the line: after a restore every actor counts
/// as just arrived, which costs bytes, not correctness).
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    columns: i32,
    rows: i32,
    /// Per unit (`block * SPLIT + id % SPLIT`): its members' range in
    /// `members`.
    ranges: Vec<(u32, u32)>,
    /// Members' slots in the tick's actors and the tick each arrived in
    /// its unit, unit by unit, in id order within each.
    members: Vec<(u32, u64)>,
    /// Each moving actor's unit and arrival tick, in id order (last tick's
    /// while locating, then this tick's).
    placed: Vec<(ActorId, u32, u64)>,
    next_placed: Vec<(ActorId, u32, u64)>,
    /// Per unit and "since" choice.
    encoded: Vec<[Encoded; CLASSES]>,
    bytes: Vec<u8>,
    /// Unit of each moving actor, by its index in the tick's moving list.
    unit_of_moving: Vec<u32>,
    /// Unit of each actor by slot (`NO_UNIT`: it does not move).
    unit_of_slot: Vec<u32>,
}

/// What [`Blocks::unit_of`] says of an actor that does not move.
pub(crate) const NO_UNIT: u32 = u32::MAX;

impl Blocks {
    /// Sorts this tick's moving actors (`(id, position, slot)`, in id
    /// order) into units.
    pub fn locate(
        &mut self,
        tick: u64,
        cells: (i32, i32),
        moving: &[(ActorId, Pos, u32)],
        actor_count: usize,
    ) {
        let side = BLOCK_CELLS * UNITS_PER_CELL;
        self.columns = (cells.0 * UNITS_PER_CELL + side - 1) / side;
        self.rows = (cells.1 * UNITS_PER_CELL + side - 1) / side;
        self.columns = self.columns.max(1);
        self.rows = self.rows.max(1);
        let units = self.units();
        self.ranges.clear();
        self.ranges.resize(units, (0, 0));
        self.encoded.clear();
        self.encoded.resize(units, [Encoded::default(); CLASSES]);
        self.bytes.clear();
        self.unit_of_moving.clear();
        self.unit_of_slot.clear();
        self.unit_of_slot.resize(actor_count, NO_UNIT);
        self.next_placed.clear();
        // Where each was: both lists in id order, one walk.
        let mut before = self.placed.iter().peekable();
        for &(id, pos, slot) in moving {
            let unit = self.unit_at(pos, id);
            while before.next_if(|(b, _, _)| *b < id).is_some() {}
            let arrived = match before.next_if(|(b, _, _)| *b == id) {
                Some(&(_, was, since)) if was == unit => since,
                _ => tick,
            };
            self.unit_of_moving.push(unit);
            if let Some(at) = self.unit_of_slot.get_mut(slot as usize) {
                *at = unit;
            }
            self.next_placed.push((id, unit, arrived));
            self.ranges[unit as usize].1 += 1;
        }
        std::mem::swap(&mut self.placed, &mut self.next_placed);
        // Counting sort by unit (stable: id order within each).
        let mut start = 0;
        for range in &mut self.ranges {
            let count = range.1;
            *range = (start, start);
            start += count;
        }
        self.members.clear();
        self.members.resize(moving.len(), (0, 0));
        for (index, &(_, _, slot)) in moving.iter().enumerate() {
            let unit = self.unit_of_moving[index] as usize;
            let at = self.ranges[unit].1;
            self.members[at as usize] = (slot, self.placed[index].2);
            self.ranges[unit].1 += 1;
        }
    }

    /// Units this tick (the zone's blocks times [`SPLIT`]).
    pub fn unit_count(&self) -> usize {
        self.ranges.len()
    }

    fn units(&self) -> usize {
        (self.columns * self.rows) as usize * SPLIT as usize
    }

    /// The unit of an actor of `id` standing at `pos`.
    fn unit_at(&self, pos: Pos, id: ActorId) -> u32 {
        let side = BLOCK_CELLS * UNITS_PER_CELL;
        let bx = pos.x.div_euclid(side).clamp(0, self.columns - 1);
        let by = pos.y.div_euclid(side).clamp(0, self.rows - 1);
        (by * self.columns + bx) as u32 * SPLIT + id.0 % SPLIT
    }

    /// The units of the blocks that overlap the square of half-side
    /// `radius` around `centre`, in order.
    pub fn units_near(&self, centre: Pos, radius: i64, out: &mut Vec<u32>) {
        out.clear();
        if self.ranges.is_empty() {
            return;
        }
        let side = i64::from(BLOCK_CELLS * UNITS_PER_CELL);
        let block = |v: i64, most: i32| (v.div_euclid(side)).clamp(0, i64::from(most - 1)) as i32;
        let (x0, x1) = (
            block(i64::from(centre.x) - radius, self.columns),
            block(i64::from(centre.x) + radius, self.columns),
        );
        let (y0, y1) = (
            block(i64::from(centre.y) - radius, self.rows),
            block(i64::from(centre.y) + radius, self.rows),
        );
        for by in y0..=y1 {
            for bx in x0..=x1 {
                let first = (by * self.columns + bx) as u32 * SPLIT;
                out.extend(first..first + SPLIT);
            }
        }
    }

    /// The unit of the actor in `slot` this tick.
    pub fn unit_of(&self, slot: u32) -> u32 {
        self.unit_of_slot
            .get(slot as usize)
            .copied()
            .unwrap_or(NO_UNIT)
    }

    /// The centre of a unit's block.
    pub fn centre(&self, unit: u32) -> Pos {
        let block = (unit / SPLIT) as i32;
        let side = BLOCK_CELLS * UNITS_PER_CELL;
        Pos::new(
            (block % self.columns.max(1)) * side + side / 2,
            (block / self.columns.max(1)) * side + side / 2,
        )
    }

    /// The slots of a unit's actors this tick.
    pub fn members(&self, unit: u32) -> impl Iterator<Item = u32> + '_ {
        let (start, end) = self.ranges.get(unit as usize).copied().unwrap_or((0, 0));
        self.members[start as usize..end as usize]
            .iter()
            .map(|&(slot, _)| slot)
    }

    /// The choice of "since" for a client that has the unit as of
    /// `acked`: the newest tick no newer than it.
    pub fn class_for(tick: u64, acked: u64) -> usize {
        let behind = tick.saturating_sub(acked);
        SINCE_TICKS
            .iter()
            .position(|&back| back >= behind)
            .unwrap_or(CLASSES - 1)
    }

    /// The unit encoded for `class` (encoded on first use in a tick): the
    /// actors changed since that class's tick (or arrived since), each its
    /// id and the properties everyone sees that changed since.
    #[allow(clippy::too_many_arguments)]
    pub fn encoded(
        &mut self,
        tick: u64,
        unit: u32,
        class: usize,
        actors: Actors<'_>,
        masks: &[KindMasks],
        schema: &Schema,
    ) -> Encoded {
        let at = &self.encoded[unit as usize][class];
        if at.stamp == tick {
            return *at;
        }
        let since = match SINCE_TICKS.get(class) {
            Some(back) => tick.saturating_sub(*back),
            None => 0,
        };
        let start = self.bytes.len();
        let mut count = 0;
        let (first, end) = self.ranges[unit as usize];
        for &(slot, arrived) in &self.members[first as usize..end as usize] {
            let (id, actor) = actors[slot as usize];
            let kind = &masks[usize::from(actor.kind)];
            let shown = kind.frame & kind.everyone;
            let mask = if arrived > since || since == 0 {
                // New here (or everything asked): every property that ever
                // changed, or all of them after an arrival.
                if arrived > since {
                    shown
                } else {
                    changed_after(&actor.changed, shown, 0)
                }
            } else if actor.frame_changed > since {
                changed_after(&actor.changed, shown, since)
            } else {
                0
            };
            if mask == 0 {
                continue;
            }
            put_update(
                &mut self.bytes,
                &schema.kinds()[usize::from(actor.kind)],
                id,
                mask,
                &actor.values,
            );
            count += 1;
        }
        let encoded = Encoded {
            stamp: tick,
            start: start as u32,
            len: (self.bytes.len() - start) as u32,
            count,
        };
        self.encoded[unit as usize][class] = encoded;
        encoded
    }

    /// An encoding's bytes.
    pub fn bytes(&self, encoded: Encoded) -> &[u8] {
        &self.bytes[encoded.start as usize..(encoded.start + encoded.len) as usize]
    }
}

/// The properties in `candidates` that changed after `tick`, by each
/// property's change tick.
pub(crate) fn changed_after(changed: &[u64], candidates: u64, tick: u64) -> u64 {
    let mut mask = 0;
    let mut rest = candidates;
    while rest != 0 {
        let index = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if changed[index] > tick {
            mask |= 1 << index;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_sent_a_unit_since_a_tick_no_newer_than_it_acknowledged() {
        assert_eq!(Blocks::class_for(100, 99), 0);
        assert_eq!(Blocks::class_for(100, 97), 2, "3 behind: since 4 back");
        assert_eq!(Blocks::class_for(100, 68), 5);
        assert_eq!(Blocks::class_for(100, 67), 6, "33 behind: everything");
        assert_eq!(Blocks::class_for(100, 0), 6);
        for acked in 0..100 {
            let class = Blocks::class_for(100, acked);
            let since = SINCE_TICKS.get(class).map_or(0, |back| 100 - back);
            assert!(since <= acked, "{acked}: since {since}");
        }
    }
}
