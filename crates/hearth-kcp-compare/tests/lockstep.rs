//! Byte-for-byte compatibility: Hearth (with `Config::reference()` timing) and ikcp.c
//! receive identical inputs at identical times and must emit identical datagrams and
//! deliver identical messages, through loss, duplication, reordering, fragmentation,
//! stream mode, congestion control and zero-window probing.

// Two ends indexed by side, each reaching the other as `1 - side`.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;

use hearth_kcp::sim::SimRng;
use hearth_kcp::{Config, Kcp};
use hearth_kcp_compare::{Engine, ReferenceKcp};

/// A lossy, duplicating, reordering link, deterministic for a seed.
struct ChaosLink {
    rng: SimRng,
    in_transit: BTreeMap<(u32, u64), Vec<u8>>,
    serial: u64,
}

impl ChaosLink {
    fn new(seed: u64) -> Self {
        Self {
            rng: SimRng::new(seed),
            in_transit: BTreeMap::new(),
            serial: 0,
        }
    }

    fn send(&mut self, now: u32, datagram: &[u8]) {
        if self.rng.percent(15) {
            return;
        }
        let copies = if self.rng.percent(5) { 2 } else { 1 };
        for _ in 0..copies {
            let arrives = now + 5 + self.rng.below(60);
            self.serial += 1;
            self.in_transit
                .insert((arrives, self.serial), datagram.to_vec());
        }
    }

    fn arrived(&mut self, now: u32) -> Vec<Vec<u8>> {
        let later = self.in_transit.split_off(&(now + 1, 0));
        std::mem::replace(&mut self.in_transit, later)
            .into_values()
            .collect()
    }
}

/// One side of the comparison: a pair of engines of one implementation and its links.
struct Pair<E: Engine> {
    ends: [E; 2],
    links: [ChaosLink; 2],
    delivered: [Vec<Vec<u8>>; 2],
    scratch: Vec<u8>,
}

impl<E: Engine> Pair<E> {
    fn new(configs: &[Config; 2], seed: u64) -> Self {
        Self {
            ends: [E::create(9, &configs[0]), E::create(9, &configs[1])],
            links: [ChaosLink::new(seed), ChaosLink::new(seed ^ 0xABCD)],
            delivered: [Vec::new(), Vec::new()],
            scratch: Vec::new(),
        }
    }

    /// One millisecond; returns what each end emitted, for comparison.
    fn step(&mut self, now: u32, reading: [bool; 2]) -> [Vec<Vec<u8>>; 2] {
        let mut emitted = [Vec::new(), Vec::new()];
        for side in 0..2 {
            let (link, out) = (&mut self.links[side], &mut emitted[side]);
            self.ends[side].update(now, |datagram| {
                out.push(datagram.to_vec());
                link.send(now, datagram);
            });
        }
        for side in 0..2 {
            for datagram in self.links[1 - side].arrived(now) {
                self.ends[side].input(&datagram);
            }
            if reading[side] {
                while self.ends[side].recv_into(&mut self.scratch).is_some() {
                    self.delivered[side].push(self.scratch.clone());
                }
            }
        }
        emitted
    }
}

fn message(rng: &mut SimRng, max_len: u32, serial: u32) -> Vec<u8> {
    let len = rng.below(max_len + 1) as usize;
    (0..len)
        .map(|i| (i as u32 ^ serial.wrapping_mul(31)) as u8)
        .collect()
}

fn run_lockstep(name: &str, configs: [Config; 2], seed: u64, max_len: u32, millis: u32) {
    let mut hearth = Pair::<Kcp>::new(&configs, seed);
    let mut reference = Pair::<ReferenceKcp>::new(&configs, seed);
    let mut actions = SimRng::new(seed.wrapping_mul(7919));
    let mut sent = [Vec::new(), Vec::new()];
    let mut reading = [true, true];
    let quiet_from = millis;
    let millis = millis + 200_000;
    for now in 1..=millis {
        for side in 0..2 {
            if now < quiet_from && actions.below(1000) < 4 {
                let msg = message(&mut actions, max_len, now);
                let accepted = Engine::send(&mut hearth.ends[side], &msg);
                assert_eq!(
                    accepted,
                    Engine::send(&mut reference.ends[side], &msg),
                    "{name}: send verdict"
                );
                if accepted {
                    sent[side].push(msg);
                }
            }
            // Now and then an application stops reading for a while: the window
            // closes and the peer must probe it.
            if actions.below(20_000) == 0 {
                reading[side] = !reading[side];
            }
        }
        if now >= quiet_from {
            reading = [true, true];
        }
        let ours = hearth.step(now, reading);
        let theirs = reference.step(now, reading);
        assert_eq!(
            ours, theirs,
            "{name} seed {seed}: datagrams differ at {now} ms"
        );
    }
    assert_eq!(
        hearth.delivered, reference.delivered,
        "{name}: delivered messages differ"
    );
    if !configs[0].stream {
        assert_eq!(
            hearth.delivered[1], sent[0],
            "{name}: 0 -> 1 not delivered intact"
        );
        assert_eq!(
            hearth.delivered[0], sent[1],
            "{name}: 1 -> 0 not delivered intact"
        );
    } else {
        assert_eq!(
            hearth.delivered[1].concat(),
            sent[0].concat(),
            "{name}: stream 0 -> 1"
        );
    }
}

fn both(config: Config) -> [Config; 2] {
    [config.clone(), config]
}

#[test]
fn identical_datagrams_with_default_settings() {
    for seed in 1..=3 {
        run_lockstep("default", both(Config::reference()), seed, 4000, 120_000);
    }
}

#[test]
fn identical_datagrams_in_nodelay_modes_with_fragments() {
    for (nodelay, resend) in [(1, 2), (2, 1)] {
        let mut config = Config {
            mtu: 200,
            ..Config::reference()
        };
        config.set_nodelay(nodelay, 10, resend, true);
        config.min_rto = 10;
        config.send_window = 64;
        for seed in 10..=12 {
            run_lockstep("nodelay", both(config.clone()), seed, 200 * 100, 90_000);
        }
    }
}

#[test]
fn identical_datagrams_with_congestion_control_and_small_windows() {
    let config = Config {
        send_window: 8,
        receive_window: 16,
        mtu: 576,
        ..Config::reference()
    };
    for seed in 20..=22 {
        run_lockstep("congestion", both(config.clone()), seed, 3000, 120_000);
    }
}

#[test]
fn identical_datagrams_in_stream_mode() {
    let config = Config {
        stream: true,
        mtu: 300,
        ..Config::reference()
    };
    for seed in 30..=32 {
        run_lockstep("stream", both(config.clone()), seed, 1000, 90_000);
    }
}
