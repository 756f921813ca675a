//! The echo benchmarks of issue 4, each a ratio measured in the same run.
//!
//! Every server runs pinned to core 0 (`taskset -c 0`), the load generator to
//! core 1; 100 connections, one 64-byte message in flight each. Servers of a
//! group take turns for several rounds and the medians are compared, because
//! a two-core machine drifts by several percent from one run to the next.
//!
//!   cargo bench -p hearth-bench --bench echo
//!   HEARTH_BENCH_ROUNDS=9 HEARTH_BENCH_SECS=5 cargo bench -p hearth-bench --bench echo
//!
//! Groups: WebSocket (hearth vs fastwebsockets vs tokio-tungstenite), UDP
//! (session path vs bare UDP), TCP (framing + sealed session vs bare tokio
//! TCP), and gate shards (UDP session echo with one shard against two, both
//! with every core). `HEARTH_BENCH_GROUPS=tcp,udp` runs only those.

use std::process::{Child, Stdio};

use hearth_bench::process::{cpu_seconds, env_or, pinned};
use std::time::Duration;

struct Server {
    name: &'static str,
    binary: &'static str,
    load_mode: &'static str,
    /// The gate's shards (`HEARTH_SHARDS`); `None`: one per core it may use.
    shards: Option<&'static str>,
    /// Server and load share every core instead of one each.
    shared_cores: bool,
    /// The echo runs off the shards' tasks, behind the bounded handler queue.
    offload: bool,
}

#[derive(Clone, Copy, Default)]
struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
    /// Server CPU (user + system) per echoed message, in microseconds: steadier
    /// than msg/s when the load generator's core is saturated too.
    cpu_us: f64,
    /// The load generator's own CPU per echoed message (NaN if not reported).
    load_cpu_us: f64,
}

fn wait_until_listening(addr: &str, udp: bool) {
    for _ in 0..100 {
        if udp {
            // UDP servers bind immediately; give the process a moment to start.
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on {addr} did not start");
}

fn run_one(server: &Server, port: u16, secs: f64, conns: usize) -> Run {
    let addr = format!("127.0.0.1:{port}");
    let mut command = if server.shared_cores {
        std::process::Command::new(server.binary)
    } else {
        pinned(0, server.binary)
    };
    if let Some(shards) = server.shards {
        command.env("HEARTH_SHARDS", shards);
    }
    if server.offload {
        command.env("HEARTH_ECHO_OFFLOAD", "1");
    }
    let mut child: Child = command
        .arg(&addr)
        .stderr(Stdio::null())
        .spawn()
        .expect("start the echo server");
    wait_until_listening(&addr, server.load_mode.starts_with("udp"));
    let warmup = 1.0;
    let cpu_before = cpu_seconds(child.id());
    let load = env!("CARGO_BIN_EXE_echo-load");
    let mut load = if server.shared_cores {
        std::process::Command::new(load)
    } else {
        pinned(1, load)
    };
    let output = load
        .args([
            server.load_mode,
            &addr,
            "--secs",
            &secs.to_string(),
            "--warmup",
            &warmup.to_string(),
            "--conns",
            &conns.to_string(),
        ])
        .output()
        .expect("run echo-load");
    let cpu_after = cpu_seconds(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        panic!(
            "echo-load against {} failed: {}{}",
            server.name,
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |key: &str| -> f64 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
    };
    let rate = field("rate=");
    let cpu_us = match (cpu_before, cpu_after) {
        // The warm-up runs at about the measured rate.
        (Some(before), Some(after)) => (after - before) * 1e6 / (rate * (secs + warmup)),
        _ => f64::NAN,
    };
    Run {
        rate,
        p50: field("p50_us="),
        p99: field("p99_us="),
        cpu_us,
        load_cpu_us: text
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("load_cpu_us="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN),
    }
}

/// The median of the values that are numbers (NaN when none is).
fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|value| !value.is_nan());
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The medians of each server's runs, and every run (for paired ratios).
struct Group {
    medians: Vec<Run>,
    runs: Vec<Vec<Run>>,
}

impl Group {
    /// Median over rounds of server `a`'s rate over server `b`'s in the same
    /// round: pairs share the machine's mood, so this drifts less than a
    /// ratio of medians.
    fn ratio(&self, a: usize, b: usize) -> f64 {
        median(
            self.runs[a]
                .iter()
                .zip(&self.runs[b])
                .map(|(x, y)| x.rate / y.rate)
                .collect(),
        )
    }
}

/// The group's figures for `scripts/bench`: each pair's median rate (the
/// ratio is the median of per-round ratios, as printed above) and p99.
fn echo_figures(title: &str, group: &Group, servers: &[Server], pairs: &[(usize, usize)]) {
    use hearth_figures::{figure, Better};
    for &(a, b) in pairs {
        let (ours, peer) = (&group.medians[a], &group.medians[b]);
        let name = format!("{title}, {}, 100 connections", servers[a].name);
        // The printed ratio is the paired one; the peer value is scaled to match it.
        let paired_peer = ours.rate / group.ratio(a, b);
        figure(
            "echo",
            &name,
            "msg/s",
            ours.rate,
            Better::Higher,
            Some((servers[b].name, paired_peer)),
        );
        figure(
            "echo",
            &format!("{name}, p99"),
            "us",
            ours.p99,
            Better::Lower,
            Some((servers[b].name, peer.p99)),
        );
    }
}

fn group(title: &str, servers: &[Server], rounds: usize, secs: f64, port: &mut u16) -> Group {
    let cores = if servers.iter().all(|s| s.shared_cores) {
        "server and load on both cores"
    } else {
        "server on core 0, load on core 1"
    };
    println!("\n{title}: 100 connections, 64-byte messages, one in flight each, {cores}");
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        for (index, server) in servers.iter().enumerate() {
            *port += 1;
            let run = run_one(server, *port, secs, 100);
            eprintln!(
                "  round {} {:<28} {:>9.0} msg/s  p50 {:>5.0} us  p99 {:>5.0} us  cpu {:>5.2} us/msg  load {:>5.2} us/msg",
                round + 1,
                server.name,
                run.rate,
                run.p50,
                run.p99,
                run.cpu_us,
                run.load_cpu_us
            );
            runs[index].push(run);
        }
    }
    let medians: Vec<Run> = runs
        .iter()
        .map(|r| Run {
            rate: median(r.iter().map(|x| x.rate).collect()),
            p50: median(r.iter().map(|x| x.p50).collect()),
            p99: median(r.iter().map(|x| x.p99).collect()),
            cpu_us: median(r.iter().map(|x| x.cpu_us).collect()),
            load_cpu_us: median(r.iter().map(|x| x.load_cpu_us).collect()),
        })
        .collect();
    println!(
        "  {:<28} {:>12} {:>9} {:>9} {:>14}",
        "server (median)", "msg/s", "p50 us", "p99 us", "server cpu/msg"
    );
    for (server, m) in servers.iter().zip(&medians) {
        println!(
            "  {:<28} {:>12.0} {:>9.0} {:>9.0} {:>11.2} us",
            server.name, m.rate, m.p50, m.p99, m.cpu_us
        );
    }
    Group { medians, runs }
}

const HEARTH_WS: Server = Server {
    name: "hearth ws-echo",
    binary: env!("CARGO_BIN_EXE_ws-echo"),
    load_mode: "ws",
    shards: None,
    shared_cores: false,
    offload: false,
};
const FASTWEBSOCKETS: Server = Server {
    name: "fastwebsockets",
    binary: env!("CARGO_BIN_EXE_ws-echo-fastwebsockets"),
    load_mode: "ws",
    shards: None,
    shared_cores: false,
    offload: false,
};
const TUNGSTENITE: Server = Server {
    name: "tokio-tungstenite",
    binary: env!("CARGO_BIN_EXE_ws-echo-tungstenite"),
    load_mode: "ws",
    shards: None,
    shared_cores: false,
    offload: false,
};
const HEARTH_UDP: Server = Server {
    name: "hearth session (unreliable)",
    binary: env!("CARGO_BIN_EXE_udp-echo"),
    load_mode: "udp-session",
    shards: None,
    shared_cores: false,
    offload: false,
};
const HEARTH_KCP: Server = Server {
    name: "hearth session (KCP)",
    binary: env!("CARGO_BIN_EXE_udp-echo"),
    load_mode: "udp-session-reliable",
    shards: None,
    shared_cores: false,
    offload: false,
};
const HEARTH_UDP_OFFLOAD: Server = Server {
    name: "hearth session (unreliable), offloaded",
    binary: env!("CARGO_BIN_EXE_udp-echo"),
    load_mode: "udp-session",
    shards: None,
    shared_cores: false,
    offload: true,
};
const BARE_UDP: Server = Server {
    name: "bare tokio UDP",
    binary: env!("CARGO_BIN_EXE_udp-echo-bare"),
    load_mode: "udp-bare",
    shards: None,
    shared_cores: false,
    offload: false,
};
const HEARTH_TCP: Server = Server {
    name: "hearth framing + sealed session",
    binary: env!("CARGO_BIN_EXE_tcp-echo"),
    load_mode: "tcp-session",
    shards: None,
    shared_cores: false,
    offload: false,
};
const BARE_TCP: Server = Server {
    name: "bare tokio TCP",
    binary: env!("CARGO_BIN_EXE_tcp-echo-bare"),
    load_mode: "tcp-bare",
    shards: None,
    shared_cores: false,
    offload: false,
};

const ONE_SHARD: Server = Server {
    name: "hearth session, 1 shard",
    binary: env!("CARGO_BIN_EXE_udp-echo"),
    load_mode: "udp-session",
    shards: Some("1"),
    shared_cores: true,
    offload: false,
};
const TWO_SHARDS: Server = Server {
    name: "hearth session, 2 shards",
    binary: env!("CARGO_BIN_EXE_udp-echo"),
    load_mode: "udp-session",
    shards: Some("2"),
    shared_cores: true,
    offload: false,
};

/// Throughput and latency against load: each server once per connection
/// count, for the plots of `scripts/bench`.
fn load_sweep(counts: &[usize], secs: f64, port: &mut u16) {
    println!("\nEcho against load (connections, one 64-byte message in flight each)");
    for &conns in counts {
        for server in [
            &HEARTH_UDP,
            &BARE_UDP,
            &HEARTH_WS,
            &FASTWEBSOCKETS,
            &HEARTH_TCP,
            &BARE_TCP,
        ] {
            *port += 1;
            let run = run_one(server, *port, secs, conns);
            println!(
                "  {conns:>5} conns {:<32} {:>9.0} msg/s  p99 {:>6.0} us",
                server.name, run.rate, run.p99
            );
            let plot = hearth_figures::point;
            plot(
                "echo-throughput",
                "connections",
                "messages per second",
                server.name,
                conns as f64,
                run.rate,
            );
            plot(
                "echo-p99",
                "connections",
                "p99 round trip (us)",
                server.name,
                conns as f64,
                run.p99,
            );
        }
    }
}

fn main() {
    let rounds = env_or("HEARTH_BENCH_ROUNDS", 5usize);
    let secs = env_or("HEARTH_BENCH_SECS", 4.0f64);
    let mut port = env_or("HEARTH_BENCH_PORT", 19300u16);
    let groups = env_or("HEARTH_BENCH_GROUPS", "ws,udp,tcp,shards".to_owned());
    let wanted = |name: &str| groups.split(',').any(|g| g.trim() == name);
    if wanted("ws") {
        websocket_group(rounds, secs, &mut port);
    }
    if wanted("udp") {
        udp_group(rounds, secs, &mut port);
    }
    if wanted("tcp") {
        tcp_group(rounds, secs, &mut port);
    }
    if wanted("shards") {
        shards_group(rounds, secs, &mut port);
    }
    // e.g. HEARTH_BENCH_LOAD=10,100,400: the load sweep (off unless asked).
    let counts: Vec<usize> = env_or("HEARTH_BENCH_LOAD", String::new())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    if !counts.is_empty() {
        load_sweep(&counts, secs, &mut port);
    }
}

fn websocket_group(rounds: usize, secs: f64, port: &mut u16) {
    let ws = group(
        "WebSocket echo",
        &[HEARTH_WS, FASTWEBSOCKETS, TUNGSTENITE],
        rounds,
        secs,
        port,
    );
    println!(
        "  hearth / fastwebsockets: {:.2}x msg/s, median of per-round ratios (goal >= 1.0); median p99 {:.0} vs {:.0} us ({})",
        ws.ratio(0, 1),
        ws.medians[0].p99,
        ws.medians[1].p99,
        if ws.medians[0].p99 <= ws.medians[1].p99 {
            "no worse"
        } else {
            "worse"
        }
    );
    println!(
        "  server CPU per message, fastwebsockets / hearth: {:.2}x (above 1: hearth is cheaper)",
        ws.medians[1].cpu_us / ws.medians[0].cpu_us
    );
    println!("  hearth / tokio-tungstenite: {:.2}x msg/s", ws.ratio(0, 2));
    echo_figures(
        "WebSocket echo",
        &ws,
        &[HEARTH_WS, FASTWEBSOCKETS, TUNGSTENITE],
        &[(0, 1), (0, 2)],
    );
}

fn udp_group(rounds: usize, secs: f64, port: &mut u16) {
    let servers = [HEARTH_UDP, HEARTH_KCP, BARE_UDP, HEARTH_UDP_OFFLOAD];
    let udp = group("UDP echo", &servers, rounds, secs, port);
    println!(
        "  session (AEAD, unreliable channel) / bare UDP: {:.2}x (goal >= 0.6)",
        udp.ratio(0, 2)
    );
    println!(
        "  session (AEAD, KCP reliable channel) / bare UDP: {:.2}x",
        udp.ratio(1, 2)
    );
    println!(
        "  echo off the shards' tasks (bounded handler queue) / inline: {:.2}x msg/s",
        udp.ratio(3, 0)
    );
    echo_figures("UDP echo", &udp, &servers, &[(0, 2), (1, 2), (3, 0)]);
}

fn tcp_group(rounds: usize, secs: f64, port: &mut u16) {
    let tcp = group("TCP echo", &[HEARTH_TCP, BARE_TCP], rounds, secs, port);
    println!(
        "  framing + sealed session / bare TCP: {:.2}x (goal >= 0.85)",
        tcp.ratio(0, 1)
    );
    echo_figures("TCP echo", &tcp, &[HEARTH_TCP, BARE_TCP], &[(0, 1)]);
}

/// One gate shard against two, the server and the load generator both
/// free to use every core. On a machine where the load generator must share
/// the server's cores (this one has two) the measured throughput ratio is
/// bounded by the generator's own cost, so the capacity ratio is also given:
/// messages per core-second of server CPU with one shard on one core
/// against two shards on two (`2 x cpu_one / cpu_two`), which is what the
/// throughput ratio becomes when the load comes from elsewhere.
fn shards_group(rounds: usize, secs: f64, port: &mut u16) {
    let servers = [ONE_SHARD, TWO_SHARDS];
    let shards = group(
        "UDP session echo by shard count",
        &servers,
        rounds,
        secs,
        port,
    );
    let measured = shards.ratio(1, 0);
    let capacity = 2.0 * shards.medians[0].cpu_us / shards.medians[1].cpu_us;
    println!(
        "  2 shards / 1 shard: {measured:.2}x msg/s measured with the load on the same two cores"
    );
    println!(
        "  server CPU per message: {:.2} us with 1 shard, {:.2} us with 2; capacity on two cores: {capacity:.2}x one shard's (goal >= 1.7)",
        shards.medians[0].cpu_us, shards.medians[1].cpu_us
    );
    // With the load on the same two cores, server and generator split two
    // cores' time: a run reaches at most 2 / (server + load CPU per message),
    // and one shard also at most 1 / (its CPU per message). So the generator
    // caps the measurable ratio, and 1.7x needs one that costs at most
    // 2 x one / 1.7 - two per message.
    let (one, two) = (&shards.medians[0], &shards.medians[1]);
    let cap_one = (1.0 / one.cpu_us).min(2.0 / (one.cpu_us + one.load_cpu_us));
    let cap_two = 2.0 / (two.cpu_us + two.load_cpu_us);
    let needed = 2.0 * one.cpu_us / 1.7 - two.cpu_us;
    println!(
        "  load generator CPU per message: {:.2} us with 1 shard, {:.2} us with 2: on these two cores that caps the ratio near {:.2}x; 1.7x needs a generator at {needed:.2} us per message or on another machine",
        one.load_cpu_us,
        two.load_cpu_us,
        cap_two / cap_one
    );
    echo_figures("UDP session echo by shards", &shards, &servers, &[(1, 0)]);
    hearth_figures::figure(
        "echo",
        "UDP session echo capacity, 2 shards on 2 cores",
        "x one shard",
        capacity,
        hearth_figures::Better::Higher,
        Some(("1 shard on 1 core", 1.0)),
    );
}
