//! A deterministic simulated network for tests and benchmarks: the KCP reference
//! repository's `LatencySimulator` (test.h) with a seeded generator, so a run can be
//! replayed exactly and two implementations can face the same conditions.

use std::collections::VecDeque;

/// A small seeded generator (SplitMix64). Not for cryptography.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(bound)) >> 32) as u32
    }

    /// True with the given probability in percent.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }
}

/// test.h's `Random`: draws 0..n without replacement, refilling when empty, so that
/// exactly `k` of every `n` draws fall below `k`.
#[derive(Debug, Clone)]
struct ShuffleBag {
    values: Vec<u32>,
    left: usize,
}

impl ShuffleBag {
    fn new(size: u32) -> Self {
        Self {
            values: (0..size).collect(),
            left: 0,
        }
    }

    fn draw(&mut self, rng: &mut SimRng) -> u32 {
        if self.left == 0 {
            self.values
                .iter_mut()
                .zip(0..)
                .for_each(|(value, index)| *value = index);
            self.left = self.values.len();
        }
        let index = rng.below(self.left as u32) as usize;
        let value = self.values[index];
        self.values[index] = self.values[self.left - 1];
        self.left -= 1;
        value
    }
}

/// Two endpoints, 0 and 1, joined by two one-way tunnels. Each datagram is dropped
/// with the one-way loss rate, otherwise delayed uniformly in `[min, max)` and
/// delivered in order: a quick datagram waits behind a slow one, as in test.h.
#[derive(Debug, Clone)]
pub struct LatencySimulator {
    rng: SimRng,
    one_way_loss_percent: u32,
    delay_min: u32,
    delay_max: u32,
    queue_limit: usize,
    loss_bags: [ShuffleBag; 2],
    tunnels: [VecDeque<(u32, Vec<u8>)>; 2],
    /// Datagrams each endpoint handed to the network, dropped ones included.
    pub sent: [u64; 2],
}

impl LatencySimulator {
    /// `round_trip_loss_percent` is halved per direction and the round-trip times
    /// halved into one-way delays, exactly as test.h does.
    pub fn new(
        seed: u64,
        round_trip_loss_percent: u32,
        rtt_min: u32,
        rtt_max: u32,
        queue_limit: usize,
    ) -> Self {
        Self {
            rng: SimRng::new(seed),
            one_way_loss_percent: round_trip_loss_percent / 2,
            delay_min: rtt_min / 2,
            delay_max: rtt_max / 2,
            queue_limit,
            loss_bags: [ShuffleBag::new(100), ShuffleBag::new(100)],
            tunnels: [VecDeque::new(), VecDeque::new()],
            sent: [0, 0],
        }
    }

    /// The link of the reference test: 10 % round-trip loss, RTT 60–125 ms.
    pub fn reference_test(seed: u64) -> Self {
        Self::new(seed, 10, 60, 125, 1000)
    }

    /// Endpoint `from` (0 or 1) sends a datagram at time `now`.
    pub fn send(&mut self, from: usize, now: u32, datagram: &[u8]) {
        self.sent[from] += 1;
        if self.loss_bags[from].draw(&mut self.rng) < self.one_way_loss_percent {
            return;
        }
        if self.tunnels[from].len() >= self.queue_limit {
            return;
        }
        let mut delay = self.delay_min;
        if self.delay_max > self.delay_min {
            delay += self.rng.below(self.delay_max - self.delay_min);
        }
        self.tunnels[from].push_back((now.wrapping_add(delay), datagram.to_vec()));
    }

    /// The next datagram for endpoint `to` that has arrived by `now`.
    pub fn recv(&mut self, to: usize, now: u32) -> Option<Vec<u8>> {
        let tunnel = &mut self.tunnels[1 - to];
        let &(arrives, _) = tunnel.front()?;
        if (now.wrapping_sub(arrives) as i32) < 0 {
            return None;
        }
        tunnel.pop_front().map(|(_, datagram)| datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_bag_drops_exactly_the_rate() {
        let mut sim = LatencySimulator::reference_test(1);
        for _ in 0..1000 {
            sim.send(0, 0, b"x");
        }
        let mut delivered = 0;
        while sim.recv(1, 100).is_some() {
            delivered += 1;
        }
        assert_eq!(delivered, 950);
    }

    #[test]
    fn delivers_in_order_after_the_delay() {
        let mut sim = LatencySimulator::new(7, 0, 60, 125, 1000);
        sim.send(0, 0, b"a");
        sim.send(0, 0, b"b");
        assert_eq!(sim.recv(1, 29), None);
        let mut got = Vec::new();
        for now in 30..70 {
            while let Some(datagram) = sim.recv(1, now) {
                got.push((now, datagram));
            }
        }
        assert_eq!(got.len(), 2);
        assert!(got[0].0 >= 30 && got[1].0 < 62);
        assert_eq!(got[0].1, b"a");
        assert_eq!(got[1].1, b"b");
    }
}
