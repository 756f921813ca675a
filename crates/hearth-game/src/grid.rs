//! A uniform spatial grid over a zone: which actors are near a point,
//! without looking at every actor.

use hearth_replica::geometry::{Pos, UNITS_PER_CELL};

/// Buckets of actor indices by square region. Rebuilt every tick (a pass
/// over the actors, cheaper than tracking each move), so it holds nothing a
/// line needs to save.
#[derive(Debug, Default)]
pub struct Grid {
    bucket_side: i32,
    columns: i32,
    rows: i32,
    buckets: Vec<Vec<u32>>,
}

impl Grid {
    /// A grid over a `width` by `height` cell zone with buckets of
    /// `bucket_cells` cells a side (the view radius is a good choice: a query
    /// then touches at most nine buckets).
    pub fn new(width: i32, height: i32, bucket_cells: i32) -> Self {
        let bucket_side = bucket_cells.max(1) * UNITS_PER_CELL;
        let columns = ((width * UNITS_PER_CELL + bucket_side - 1) / bucket_side).max(1);
        let rows = ((height * UNITS_PER_CELL + bucket_side - 1) / bucket_side).max(1);
        Self {
            bucket_side,
            columns,
            rows,
            buckets: vec![Vec::new(); (columns * rows) as usize],
        }
    }

    /// Built by `Default` (no buckets yet): the line sizes it on first use.
    pub fn is_empty_shape(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn clear(&mut self) {
        for bucket in &mut self.buckets {
            bucket.clear();
        }
    }

    pub fn bucket_of(&self, pos: Pos) -> (i32, i32) {
        (
            (pos.x.div_euclid(self.bucket_side)).clamp(0, self.columns - 1),
            (pos.y.div_euclid(self.bucket_side)).clamp(0, self.rows - 1),
        )
    }

    pub fn insert(&mut self, index: u32, pos: Pos) {
        let (bx, by) = self.bucket_of(pos);
        self.buckets[(by * self.columns + bx) as usize].push(index);
    }

    /// Calls `visit` with every index in a bucket that overlaps the square of
    /// half-side `radius` around `centre` (a superset of the circle).
    pub fn for_each_near(&self, centre: Pos, radius: i64, mut visit: impl FnMut(u32)) {
        let radius = radius.min(i64::from(i32::MAX / 4)) as i32;
        let (x0, y0) = self.bucket_of(Pos::new(
            centre.x.saturating_sub(radius),
            centre.y.saturating_sub(radius),
        ));
        let (x1, y1) = self.bucket_of(Pos::new(
            centre.x.saturating_add(radius),
            centre.y.saturating_add(radius),
        ));
        for by in y0..=y1 {
            for bx in x0..=x1 {
                for &index in &self.buckets[(by * self.columns + bx) as usize] {
                    visit(index);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_find_near_actors_and_skip_far_buckets() {
        let mut grid = Grid::new(100, 100, 10);
        grid.insert(1, Pos::cell_centre(5, 5));
        grid.insert(2, Pos::cell_centre(12, 5));
        grid.insert(3, Pos::cell_centre(90, 90));
        let mut found = Vec::new();
        grid.for_each_near(
            Pos::cell_centre(6, 6),
            10 * i64::from(UNITS_PER_CELL),
            |i| found.push(i),
        );
        found.sort();
        assert_eq!(found, vec![1, 2]);
    }
}
