//! What the tests of crowds and lagging clients share: a square field and
//! random places in it.

use hearth_game::{Ctx, Pos, UNITS_PER_CELL};

/// The field's side, in cells.
pub const SIDE: usize = 60;

/// A random spot of the field, off its border.
pub fn somewhere<P>(ctx: &mut Ctx<'_, P>) -> Pos {
    let side = (SIDE as i64 - 2) * i64::from(UNITS_PER_CELL);
    let unit = i64::from(UNITS_PER_CELL);
    Pos::new(
        (unit + ctx.rng().range(0, side)) as i32,
        (unit + ctx.rng().range(0, side)) as i32,
    )
}
