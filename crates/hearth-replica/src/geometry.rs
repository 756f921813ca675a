//! Positions in whole numbers, so every machine computes the same world.
//!
//! A zone is a grid of cells; a position is in hundredths of a cell
//! ([`UNITS_PER_CELL`]). Integer arithmetic keeps a line deterministic (the
//! same inputs give the same state on any machine, which replay and moving a
//! line between machines rely on) and keeps positions small on the wire.

use serde::{Deserialize, Serialize};

/// Position units in one cell.
pub const UNITS_PER_CELL: i32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Pos {
    pub x: i32,
    pub y: i32,
}

impl Pos {
    pub const fn new(x: i32, y: i32) -> Self {
        Self { x, y }
    }

    /// The centre of cell (`cx`, `cy`).
    pub const fn cell_centre(cx: i32, cy: i32) -> Self {
        Self {
            x: cx * UNITS_PER_CELL + UNITS_PER_CELL / 2,
            y: cy * UNITS_PER_CELL + UNITS_PER_CELL / 2,
        }
    }

    /// The cell this position is in.
    pub fn cell(self) -> (i32, i32) {
        (
            self.x.div_euclid(UNITS_PER_CELL),
            self.y.div_euclid(UNITS_PER_CELL),
        )
    }

    /// Saturates at `i64::MAX` (only positions near the ends of `i32`, which
    /// no zone has, come near it).
    pub fn distance_squared(self, other: Pos) -> i64 {
        let dx = i128::from(self.x) - i128::from(other.x);
        let dy = i128::from(self.y) - i128::from(other.y);
        i64::try_from(dx * dx + dy * dy).unwrap_or(i64::MAX)
    }

    /// Rounded down.
    pub fn distance(self, other: Pos) -> i64 {
        isqrt(self.distance_squared(other))
    }

    /// Rounded up: what a move is charged, so that many short diagonal
    /// moves cannot each be charged a unit less than they cover.
    pub fn distance_ceil(self, other: Pos) -> i64 {
        let squared = self.distance_squared(other);
        let root = isqrt(squared);
        if root * root == squared {
            root
        } else {
            root + 1
        }
    }

    /// At most `step` units from `self` towards `target` (exactly `target`
    /// when it is that close).
    pub fn step_towards(self, target: Pos, step: i64) -> Pos {
        let distance = self.distance(target);
        if distance <= step || distance == 0 {
            return target;
        }
        let dx = i64::from(target.x) - i64::from(self.x);
        let dy = i64::from(target.y) - i64::from(self.y);
        Pos {
            x: (i64::from(self.x) + dx * step / distance) as i32,
            y: (i64::from(self.y) + dy * step / distance) as i32,
        }
    }

    /// The facing from `self` to `to` in 256ths of a turn (0 = +x, 64 = +y).
    pub fn facing_towards(self, to: Pos) -> u8 {
        let dx = f64::from(to.x) - f64::from(self.x);
        let dy = f64::from(to.y) - f64::from(self.y);
        if dx == 0.0 && dy == 0.0 {
            return 0;
        }
        // f64 atan2 is correctly rounded enough on every platform we build
        // for; the facing is cosmetic and never feeds back into positions.
        let turns = dy.atan2(dx) / std::f64::consts::TAU;
        (turns.rem_euclid(1.0) * 256.0).round() as i64 as u8
    }
}

/// Integer square root (floor), exact for every i64 a distance produces.
pub fn isqrt(value: i64) -> i64 {
    if value <= 0 {
        return 0;
    }
    // The float estimate is within one of the answer for every i64; the
    // checks in i128 cannot overflow.
    let mut root = (value as f64).sqrt() as i128;
    let value = i128::from(value);
    while root * root > value {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= value {
        root += 1;
    }
    root as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_square_roots_are_floors() {
        for value in [0i64, 1, 2, 3, 4, 15, 16, 17, 99, 100, 10_000_000_000] {
            let root = isqrt(value);
            assert!(root * root <= value && (root + 1) * (root + 1) > value);
        }
    }

    #[test]
    fn extreme_positions_neither_overflow_nor_hang() {
        let far = Pos::new(i32::MIN, i32::MIN + 1);
        let near = Pos::new(i32::MAX, i32::MAX);
        assert_eq!(far.distance_squared(near), i64::MAX);
        assert!(far.distance(near) > 3_000_000_000);
        let _ = far.facing_towards(near);
        let _ = far.step_towards(near, 1_000);
        assert_eq!(Pos::new(0, 0).distance_ceil(Pos::new(1, 1)), 2);
        assert_eq!(Pos::new(0, 0).distance_ceil(Pos::new(3, 4)), 5);
    }

    #[test]
    fn steps_never_overshoot() {
        let from = Pos::new(0, 0);
        let to = Pos::new(300, 400);
        assert_eq!(from.step_towards(to, 100), Pos::new(60, 80));
        assert_eq!(from.step_towards(to, 600), to);
        assert!(from.step_towards(to, 100).distance(from) <= 100);
    }

    #[test]
    fn cells_floor_negative_positions() {
        assert_eq!(Pos::new(-1, 150).cell(), (-1, 1));
        assert_eq!(Pos::cell_centre(2, 3), Pos::new(250, 350));
    }
}
