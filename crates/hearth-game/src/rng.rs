//! The line's seeded random source.

use serde::{Deserialize, Serialize};

/// SplitMix64: tiny, fast, and its whole state is one number, so a line's
/// randomness is saved and restored with the line (a restored line draws
/// the same numbers the original would have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = (i128::from(high) - i128::from(low)) as u64;
        // Rejection keeps it exactly uniform: a deck shuffled with it has
        // no favoured cards.
        let zone = u64::MAX - u64::MAX % span;
        loop {
            let draw = self.next_u64();
            if draw < zone {
                return (i128::from(low) + i128::from(draw % span)) as i64;
            }
        }
    }

    /// Shuffles `items` (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.range(0, i as i64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_numbers_and_ranges_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.range(-3, 4);
            assert_eq!(x, b.range(-3, 4));
            assert!((-3..4).contains(&x));
        }
        assert_eq!(Rng::new(1).range(5, 5), 5);
        assert!((i64::MIN..i64::MAX).contains(&Rng::new(2).range(i64::MIN, i64::MAX)));
        let mut deck: Vec<u32> = (0..52).collect();
        Rng::new(3).shuffle(&mut deck);
        let mut sorted = deck.clone();
        sorted.sort();
        assert_eq!(sorted, (0..52).collect::<Vec<_>>());
        assert_ne!(deck, sorted);
    }
}
