//! The sessions' deadlines in a hierarchical timing wheel (as tokio's timer
//! and the Linux kernel's keep theirs): four levels of 64 slots, of 1 ms,
//! 64 ms, 4.1 s and 4.4 min. Adding a deadline, and taking one that is due,
//! cost the same with ten sessions or a hundred thousand; an entry moves down
//! a level at most three times before it fires. Deadlines are milliseconds
//! from the server's epoch.
//!
//! Entries are never removed early: the server keeps each session's current
//! deadline and ignores an entry that no longer matches it (as it did with a
//! heap), and rebuilds the wheel if such entries pile up.

const LEVELS: usize = 4;
const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
/// Deadlines this far ahead or more wait in `overflow` (about 4.7 hours).
const RANGE: u64 = 1 << (BITS * LEVELS as u32);
/// Entries each slot has room for before it first grows.
const SLOT_CAPACITY: usize = 8;

struct Level {
    /// Bit `i` set: slot `i` holds entries.
    occupied: u64,
    slots: [Vec<(u64, u64)>; SLOTS],
    /// The earliest deadline in each occupied slot.
    earliest: [u64; SLOTS],
}

impl Default for Level {
    fn default() -> Self {
        Self {
            occupied: 0,
            // Room from the start (32 KiB a wheel), so that a quiet wakeup
            // never allocates for a slot it uses for the first time.
            slots: std::array::from_fn(|_| Vec::with_capacity(SLOT_CAPACITY)),
            earliest: [0; SLOTS],
        }
    }
}

pub(super) struct TimerWheel {
    /// Every deadline before this has been handed out.
    elapsed: u64,
    levels: [Level; LEVELS],
    overflow: Vec<(u64, u64)>,
    /// The earliest deadline in `overflow` (`u64::MAX` when empty), so that
    /// neither `next_deadline` nor `advance` walks it until it matters.
    overflow_earliest: u64,
    len: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self {
            elapsed: 0,
            levels: Default::default(),
            overflow: Vec::new(),
            overflow_earliest: u64::MAX,
            len: 0,
        }
    }
}

impl TimerWheel {
    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds `id`'s deadline `at` (a past one fires at the next `advance`).
    /// Returns the deadline the entry fires with: `at`, or the wheel's time
    /// if `at` has passed. A caller that recognises its entries by deadline
    /// must keep this one, not `at`.
    pub fn insert(&mut self, at: u64, id: u64) -> u64 {
        let at = at.max(self.elapsed);
        self.len += 1;
        self.place(at, id);
        at
    }

    fn place(&mut self, at: u64, id: u64) {
        let level = level_for(self.elapsed, at);
        if level >= LEVELS {
            self.overflow.push((at, id));
            self.overflow_earliest = self.overflow_earliest.min(at);
            return;
        }
        let slot = slot_for(at, level);
        let level = &mut self.levels[level];
        if level.occupied & (1 << slot) == 0 {
            level.occupied |= 1 << slot;
            level.earliest[slot] = at;
        } else {
            level.earliest[slot] = level.earliest[slot].min(at);
        }
        level.slots[slot].push((at, id));
    }

    /// The earliest deadline held, exactly.
    pub fn next_deadline(&self) -> Option<u64> {
        let in_wheel = self
            .first_slot()
            .map(|(level, slot, _)| self.levels[level].earliest[slot]);
        let in_overflow = (!self.overflow.is_empty()).then_some(self.overflow_earliest);
        match (in_wheel, in_overflow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The first occupied slot of the lowest occupied level, with the time
    /// its range starts. Lower levels hold earlier deadlines than higher
    /// ones, and within a level the slots follow `elapsed` in time order.
    fn first_slot(&self) -> Option<(usize, usize, u64)> {
        self.levels.iter().enumerate().find_map(|(index, level)| {
            if level.occupied == 0 {
                return None;
            }
            let shift = BITS * index as u32;
            let current = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            let offset = level.occupied.rotate_right(current as u32).trailing_zeros() as u64;
            let slot = (current + offset as usize) & (SLOTS - 1);
            let start = ((self.elapsed >> shift) + offset) << shift;
            Some((index, slot, start))
        })
    }

    /// Moves time to `now`, appending every entry due by then to `due`.
    pub fn advance(&mut self, now: u64, due: &mut Vec<(u64, u64)>) {
        while let Some((level, slot, start)) = self.first_slot() {
            if start > now {
                break;
            }
            // Everything before the slot's range is handed out already, so
            // time may move to its start; entries not yet due go down a level.
            self.elapsed = self.elapsed.max(start);
            let level_entries = &mut self.levels[level];
            level_entries.occupied &= !(1 << slot);
            let entries = std::mem::take(&mut level_entries.slots[slot]);
            for &(at, id) in &entries {
                if at <= now {
                    self.len -= 1;
                    due.push((at, id));
                } else {
                    self.place(at, id);
                }
            }
            // Keep the slot's allocation for its next entries.
            let mut entries = entries;
            entries.clear();
            let slot_entries = &mut self.levels[level].slots[slot];
            if slot_entries.is_empty() {
                *slot_entries = entries;
            }
        }
        self.elapsed = self.elapsed.max(now);
        // Far deadlines come into the wheel once the earliest is within its range.
        if self.overflow_earliest - self.elapsed.min(self.overflow_earliest) < RANGE {
            self.overflow_earliest = u64::MAX;
            for (at, id) in std::mem::take(&mut self.overflow) {
                if at <= now {
                    self.len -= 1;
                    due.push((at, id));
                } else {
                    self.place(at, id);
                }
            }
        }
    }

    /// Empties the wheel (to rebuild it from the current deadlines).
    pub fn clear(&mut self) {
        for level in &mut self.levels {
            level.occupied = 0;
            for slot in &mut level.slots {
                slot.clear();
            }
        }
        self.overflow.clear();
        self.overflow_earliest = u64::MAX;
        self.len = 0;
    }
}

/// The level whose slots tell `at` apart from `elapsed`: the highest group
/// of six bits in which they differ.
fn level_for(elapsed: u64, at: u64) -> usize {
    if at - elapsed >= RANGE {
        return LEVELS;
    }
    let differing = (elapsed ^ at) | (SLOTS as u64 - 1);
    let significant = 63 - differing.leading_zeros();
    (significant / BITS) as usize
}

fn slot_for(at: u64, level: usize) -> usize {
    ((at >> (BITS * level as u32)) as usize) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn entries_fire_at_their_deadline_in_order_of_time() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut wheel = TimerWheel::default();
        let mut expected = Vec::new();
        let mut now = 0u64;
        let mut fired = Vec::new();
        for step in 0..20_000u64 {
            // Deadlines from now to beyond the wheel's range, most near.
            let ahead = match rng.next_u32() % 10 {
                0 => rng.next_u64() % (2 * RANGE),
                1..=3 => rng.next_u64() % 300_000,
                _ => rng.next_u64() % 2_000,
            };
            wheel.insert(now + ahead, step);
            expected.push((now + ahead, step));
            if step % 7 == 0 {
                // Time moves in uneven steps, sometimes far.
                now += match rng.next_u32() % 20 {
                    0 => rng.next_u64() % 1_000_000,
                    _ => rng.next_u64() % 50,
                };
                let mut due = Vec::new();
                assert!(wheel.next_deadline().is_some());
                wheel.advance(now, &mut due);
                for &(at, _) in &due {
                    assert!(at <= now, "nothing fires early");
                }
                fired.extend(due);
            }
        }
        // Drain the rest by following next_deadline exactly.
        while let Some(at) = wheel.next_deadline() {
            assert!(
                at >= now,
                "the next deadline is never in the past: {at} < {now}"
            );
            now = at;
            let mut due = Vec::new();
            wheel.advance(now, &mut due);
            assert!(
                !due.is_empty(),
                "next_deadline named a moment when something is due"
            );
            assert!(due.iter().all(|&(at, _)| at == now));
            fired.extend(due);
        }
        assert_eq!(wheel.len(), 0);
        fired.sort_unstable();
        expected.sort_unstable();
        assert_eq!(fired, expected, "every entry fired once");
    }

    #[test]
    fn next_deadline_is_exact_at_every_level() {
        for ahead in [
            0,
            1,
            63,
            64,
            65,
            4095,
            4096,
            4097,
            262_143,
            262_144,
            16_777_215,
            RANGE + 5,
        ] {
            let mut wheel = TimerWheel::default();
            wheel.advance(1_000_003, &mut Vec::new());
            let at = 1_000_003 + ahead;
            wheel.insert(at, 1);
            wheel.insert(at + 10, 2);
            assert_eq!(wheel.next_deadline(), Some(at), "{ahead} ms ahead");
            let mut due = Vec::new();
            wheel.advance(at - 1.min(ahead), &mut due);
            if ahead > 0 {
                assert!(due.is_empty(), "not yet, {ahead} ms ahead");
                assert_eq!(wheel.next_deadline(), Some(at));
                wheel.advance(at, &mut due);
            }
            assert_eq!(due, vec![(at, 1)], "{ahead} ms ahead");
            assert_eq!(wheel.next_deadline(), Some(at + 10));
        }
    }
}
