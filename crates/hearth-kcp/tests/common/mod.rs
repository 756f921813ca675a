//! A perfect or lossy in-memory link between two engines, stepping simulated time.

// Two ends indexed by side, each reaching the other as `1 - side`.
#![allow(clippy::needless_range_loop)]
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use hearth_kcp::sim::SimRng;
use hearth_kcp::{DatagramBuffer, Kcp};

pub struct Link {
    rng: SimRng,
    loss_percent: u32,
    duplicate_percent: u32,
    max_delay: u32,
    /// (arrival time, serial, destination side, datagram), unsorted.
    in_transit: Vec<(u32, u64, usize, Vec<u8>)>,
    serial: u64,
    /// Drop everything from this side (a dead or silent peer).
    pub cut: [bool; 2],
}

impl Link {
    pub fn new(seed: u64, loss_percent: u32, duplicate_percent: u32, max_delay: u32) -> Self {
        Self {
            rng: SimRng::new(seed),
            loss_percent,
            duplicate_percent,
            max_delay,
            in_transit: Vec::new(),
            serial: 0,
            cut: [false, false],
        }
    }

    pub fn perfect() -> Self {
        Self::new(0, 0, 0, 0)
    }

    /// Moves datagrams out of both ends onto the link at time `now`; returns how many
    /// each end emitted.
    pub fn carry(&mut self, ends: &mut [Kcp; 2], now: u32) -> [usize; 2] {
        let mut emitted = [0, 0];
        for side in 0..2 {
            let datagrams: Vec<Vec<u8>> =
                ends[side].drain_transmits().map(<[u8]>::to_vec).collect();
            emitted[side] = self.send_all(side, now, datagrams);
        }
        emitted
    }

    /// Puts `datagrams` from `side` on the link; returns how many there were.
    fn send_all(&mut self, side: usize, now: u32, datagrams: Vec<Vec<u8>>) -> usize {
        let count = datagrams.len();
        for datagram in datagrams {
            if self.cut[side] || self.rng.percent(self.loss_percent) {
                continue;
            }
            let copies = if self.rng.percent(self.duplicate_percent) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if self.max_delay == 0 {
                    0
                } else {
                    self.rng.below(self.max_delay + 1)
                };
                self.serial += 1;
                self.in_transit
                    .push((now + delay, self.serial, 1 - side, datagram.clone()));
            }
        }
        count
    }

    /// Like `step`, with both ends flushing into one buffer the caller owns (as a
    /// server drives its sessions), drained after each end.
    pub fn step_shared(
        &mut self,
        ends: &mut [Kcp; 2],
        now: u32,
        shared: &mut DatagramBuffer,
    ) -> [usize; 2] {
        let mut emitted = [0, 0];
        for side in 0..2 {
            ends[side].update_into(now, shared);
            let datagrams: Vec<Vec<u8>> = shared.drain().map(<[u8]>::to_vec).collect();
            emitted[side] = self.send_all(side, now, datagrams);
        }
        self.deliver(ends, now);
        emitted
    }

    /// Delivers everything due by `now`, in arrival order (which reorders).
    pub fn deliver(&mut self, ends: &mut [Kcp; 2], now: u32) {
        if self.in_transit.is_empty() {
            return;
        }
        self.in_transit
            .sort_by_key(|&(at, serial, _, _)| (at, serial));
        let due = self
            .in_transit
            .iter()
            .take_while(|(at, ..)| *at <= now)
            .count();
        for (_, _, to, datagram) in self.in_transit.drain(..due) {
            ends[to].input(&datagram).expect("well-formed datagram");
        }
    }

    pub fn step(&mut self, ends: &mut [Kcp; 2], now: u32) -> [usize; 2] {
        for end in ends.iter_mut() {
            end.update(now);
        }
        let emitted = self.carry(ends, now);
        self.deliver(ends, now);
        emitted
    }
}

/// Steps until `done` holds or `limit_ms` passes; returns the time it held.
pub fn run_until(
    link: &mut Link,
    ends: &mut [Kcp; 2],
    start: u32,
    limit_ms: u32,
    mut done: impl FnMut(&mut [Kcp; 2]) -> bool,
) -> Option<u32> {
    for now in start..start + limit_ms {
        link.step(ends, now);
        if done(ends) {
            return Some(now);
        }
    }
    None
}
