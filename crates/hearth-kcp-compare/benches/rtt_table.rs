//! test.cpp's table — average RTT, maximum RTT, datagrams sent — for Hearth and for
//! ikcp.c, side by side, on the same seeded links, in the same run.
//!
//! `cargo bench -p hearth-kcp-compare --bench rtt_table [-- SEEDS]`

use hearth_kcp::{Kcp, Profile};
use hearth_kcp_compare::workload::{reference_mode, run_echo, EchoReport};
use hearth_kcp_compare::{Engine, ReferenceKcp};

struct Summary {
    avg_rtt: f64,
    worst_max_rtt: u32,
    mean_max_rtt: f64,
    sender_datagrams: f64,
}

fn summarize<E: Engine>(profile: Profile, seeds: u64) -> Summary {
    // The same settings for both; ikcp.c ignores the switches it does not have.
    let (sender, echoer) = reference_mode(profile);
    let reports: Vec<EchoReport> = (1..=seeds)
        .map(|seed| {
            run_echo::<E>(&sender, &echoer, seed, 1000).unwrap_or_else(|failure| {
                panic!("{} {profile:?} seed {seed}: {failure:?}", E::NAME)
            })
        })
        .collect();
    let n = reports.len() as f64;
    Summary {
        avg_rtt: reports.iter().map(|r| f64::from(r.avg_rtt_ms)).sum::<f64>() / n,
        worst_max_rtt: reports.iter().map(|r| r.max_rtt_ms).max().unwrap_or(0),
        mean_max_rtt: reports.iter().map(|r| f64::from(r.max_rtt_ms)).sum::<f64>() / n,
        sender_datagrams: reports
            .iter()
            .map(|r| r.sender_datagrams as f64)
            .sum::<f64>()
            / n,
    }
}

fn main() {
    let seeds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(20);
    println!("test.cpp workload: 1000 echoes of 8 bytes every 20 ms, LatencySimulator");
    println!(
        "(10% round-trip loss, one-way delay 30-61 ms, in-order), {seeds} seeds, simulated time"
    );
    println!();
    println!(
        "{:<8} {:<7} {:>9} {:>13} {:>13} {:>9}",
        "mode", "impl", "avg rtt", "mean max rtt", "worst max rtt", "tx"
    );
    for (name, profile) in [
        ("default", Profile::Default),
        ("normal", Profile::Normal),
        ("fast", Profile::Fast),
    ] {
        let hearth = summarize::<Kcp>(profile, seeds);
        let reference = summarize::<ReferenceKcp>(profile, seeds);
        for (implementation, s) in [("hearth", &hearth), ("ikcp.c", &reference)] {
            println!(
                "{name:<8} {implementation:<7} {:>7.1}ms {:>11.1}ms {:>11}ms {:>9.0}",
                s.avg_rtt, s.mean_max_rtt, s.worst_max_rtt, s.sender_datagrams
            );
        }
        for (what, value, peer) in [
            ("average RTT", hearth.avg_rtt, reference.avg_rtt),
            (
                "mean maximum RTT",
                hearth.mean_max_rtt,
                reference.mean_max_rtt,
            ),
        ] {
            hearth_figures::figure(
                "rtt_table",
                &format!("KCP {name} profile, {what} (test.cpp workload)"),
                "ms",
                value,
                hearth_figures::Better::Lower,
                Some(("ikcp.c", peer)),
            );
        }
        println!(
            "{name:<8} ratio   {:>8.3}x {:>12.3}x {:>12.3}x {:>8.3}x   (hearth / ikcp.c, lower is better)",
            hearth.avg_rtt / reference.avg_rtt,
            hearth.mean_max_rtt / reference.mean_max_rtt,
            f64::from(hearth.worst_max_rtt) / f64::from(reference.worst_max_rtt),
            hearth.sender_datagrams / reference.sender_datagrams,
        );
    }
}
