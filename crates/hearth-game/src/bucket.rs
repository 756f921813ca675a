//! A token bucket counted in ticks, so that a line's limits are as
//! deterministic as the rest of it and travel in its snapshot.

use serde::{Deserialize, Serialize};

const MILLI: u64 = 1000;

/// `burst` at once, then `per_second` more each second of ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickBucket {
    milli_tokens: u64,
    /// The tick of the last refill.
    at_tick: u64,
}

impl TickBucket {
    /// A full bucket at `tick`.
    pub fn full(burst: u32, tick: u64) -> Self {
        Self {
            milli_tokens: u64::from(burst) * MILLI,
            at_tick: tick,
        }
    }

    /// Takes one token at `tick` if there is one.
    pub fn take(&mut self, tick: u64, burst: u32, per_second: u32, tick_hz: u32) -> bool {
        let ticks = tick.saturating_sub(self.at_tick);
        self.at_tick = tick;
        // u128: a long idle at a high rate must not overflow; the result is
        // capped at the burst anyway.
        let gained = u128::from(ticks) * u128::from(per_second) * u128::from(MILLI)
            / u128::from(tick_hz.max(1));
        let gained = u64::try_from(gained).unwrap_or(u64::MAX);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(gained)
            .min(u64::from(burst) * MILLI);
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

/// What a player's message rate limits still allow, one bucket per message
/// of the schema: carried from line to line with the player (the lines of
/// a game tick in step, so the buckets' ticks mean the same there), so a
/// change of line refills nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits(pub(crate) Vec<TickBucket>);

impl RateLimits {
    /// The buckets as (milli-tokens, ticks since their last refill) at
    /// tick `now`: to carry to another node's lines, whose ticks count
    /// from another start.
    pub fn since(&self, now: u64) -> Vec<(u64, u64)> {
        self.0
            .iter()
            .map(|b| (b.milli_tokens, now.saturating_sub(b.at_tick)))
            .collect()
    }

    /// Buckets carried from another node ([`RateLimits::since`]), at tick
    /// `now` here. A bucket that claims more than its burst is capped at
    /// its next take.
    pub fn carried(buckets: &[(u64, u64)], now: u64) -> Self {
        Self(
            buckets
                .iter()
                .map(|&(milli_tokens, ago)| TickBucket {
                    milli_tokens,
                    at_tick: now.saturating_sub(ago),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut bucket = TickBucket::full(3, 0);
        assert!((0..3).all(|_| bucket.take(0, 3, 2, 20)));
        assert!(!bucket.take(0, 3, 2, 20));
        assert!(
            !bucket.take(9, 3, 2, 20),
            "9 ticks at 20 Hz is under half a second"
        );
        assert!(bucket.take(10, 3, 2, 20));
        assert!(bucket.take(1000, 3, 2, 20));
        assert!(bucket.take(1000, 3, 2, 20));
        assert!(bucket.take(1000, 3, 2, 20));
        assert!(!bucket.take(1000, 3, 2, 20), "never more than the burst");
        // A long idle at the highest rate a schema allows: no overflow.
        let mut fast = TickBucket::full(1, 0);
        assert!(fast.take(0, 1, u32::MAX, 20));
        assert!(fast.take(u64::MAX, 1, u32::MAX, 20));
    }
}
