//! Hearth talking to ikcp.c in-process, each side with its own implementation, over a
//! seeded lossy link: every message arrives once, in order, intact, in both directions.

use hearth_kcp::sim::LatencySimulator;
use hearth_kcp::{Config, Kcp, Profile};
use hearth_kcp_compare::{Engine, ReferenceKcp};

fn echo_mixed<A: Engine, B: Engine>(config: &Config, sizes: &[usize], seed: u64) -> u32 {
    let mut sim = LatencySimulator::new(seed, 20, 20, 60, 10_000);
    let mut client = A::create(5, config);
    let mut server = B::create(5, config);
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 7 + j) as u8).collect())
        .collect();
    for msg in &messages {
        assert!(client.send(msg));
    }
    let mut echoed = 0;
    let mut buffer = Vec::new();
    for now in 1..300_000u32 {
        client.update(now, |d| sim.send(0, now, d));
        server.update(now, |d| sim.send(1, now, d));
        while let Some(d) = sim.recv(1, now) {
            server.input(&d);
        }
        while let Some(d) = sim.recv(0, now) {
            client.input(&d);
        }
        while server.recv_into(&mut buffer).is_some() {
            assert!(server.send(&buffer));
        }
        while client.recv_into(&mut buffer).is_some() {
            assert_eq!(
                buffer,
                messages[echoed],
                "{}->{} echo {echoed}",
                A::NAME,
                B::NAME
            );
            echoed += 1;
        }
        if echoed == messages.len() {
            return now;
        }
    }
    panic!(
        "{} client, {} server: {echoed} of {} echoed",
        A::NAME,
        B::NAME,
        messages.len()
    );
}

fn cases() -> Vec<(Config, Vec<usize>)> {
    let largest = 127 * 1376;
    [Profile::Default, Profile::Normal, Profile::Fast]
        .into_iter()
        .map(|profile| {
            (
                Config::profile(profile),
                vec![10, largest, 3000, largest, 1],
            )
        })
        .collect()
}

#[test]
fn hearth_client_with_reference_server() {
    for (config, sizes) in cases() {
        for seed in 1..=3 {
            echo_mixed::<Kcp, ReferenceKcp>(&config, &sizes, seed);
        }
    }
}

#[test]
fn reference_client_with_hearth_server() {
    for (config, sizes) in cases() {
        for seed in 1..=3 {
            echo_mixed::<ReferenceKcp, Kcp>(&config, &sizes, seed);
        }
    }
}
