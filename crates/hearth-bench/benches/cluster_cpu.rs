//! What a cluster costs per player against one node, for the same bot load.
//!
//! Four runs of `hearth bot --light` players walking in the built-in world
//! (default zones, lines of 50), each on `hearth serve` processes on the
//! same PostgreSQL (started by `scripts/postgres-up`), so that only the
//! cluster's own work differs:
//!
//! 1. **one node**: every player on one `hearth serve`, no cluster;
//! 2. **two nodes, players at home**: a cluster of two (NATS from
//!    `scripts/nats-up`), half the players logging in on each; placement
//!    keeps them in their own node's lines (each has room), so the cluster
//!    adds its records, its relay and its shared login budgets;
//! 3. **three nodes, players at home**: the same with a third of the
//!    players on each of three nodes (the issue's "one node against
//!    three"; on this machine all three share core 0);
//! 4. **two nodes, every player forwarded**: every zone pinned to the
//!    second node and every player logging in on the first: each player's
//!    messages go client → first node → NATS → second node and back, the
//!    worst case of placement and pinned zones.
//!
//! The servers run on core 0, the bots on core 1 (`taskset`). Server CPU is
//! every `hearth serve` process's CPU over the window after the ramp, plus
//! the NATS server's in the cluster runs (its work is the cluster's), read
//! from /proc. It prints CPU per player for each, and each cluster run
//! against one node (the goal, for players at home: at most 1.3x), with
//! each process's share and the nodes' cluster counters (how many
//! messages were forwarded).
//!
//! Run it: `cargo bench -p hearth-bench --bench cluster_cpu`
//! (`HEARTH_CLUSTER_CPU_PLAYERS`, default 300; `HEARTH_CLUSTER_CPU_SECS`,
//! the window, default 20).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_bench::process::{cpu_seconds, env_or, pinned, raise_fd_limit};
use hearth_cluster::test_servers::{nats_url, postgres_url, unique};
use hearth_figures::figure;

const BENCH: &str = "cluster_cpu";
const GOAL_RATIO: f64 = 1.3;
const RAMP_SECS: f64 = 8.0;

/// A `hearth serve` process, stopped (SIGTERM) when dropped.
struct Node {
    child: Child,
    port: u16,
    web: u16,
}

impl Node {
    fn start(binary: &Path, dir: &Path, name: &str, cluster: Option<(&str, &str)>) -> Node {
        let port = free_port();
        let web = free_port();
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = format!(
            "database_url = {:?}\n[accounts]\nallow_anonymous = true\n\
             [web]\nmax_connections = 20000\nmax_connections_per_address = 20000\n",
            postgres_url()
        );
        if let Some((cluster, pins)) = cluster {
            config.push_str(&format!(
                "[cluster]\nnats = {:?}\nname = {cluster:?}\nnode = {name:?}\n{pins}",
                nats_url()
            ));
        }
        let file = dir.join("hearth.toml");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let mut child = pinned(0, binary.to_str().unwrap())
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--port", &port.to_string(), "--web-port", &web.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("hearth serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("hearth serving") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{name} never said it was serving: see {}", dir.display()));
        Node { child, port, web }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let began = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && began.elapsed() < Duration::from_secs(15)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `players` bots on `node`, for the ramp, the window and a little.
fn bots(binary: &Path, node: &Node, players: usize, secs: f64) -> Child {
    pinned(1, binary.to_str().unwrap())
        .arg("bot")
        .args(["-n", &players.to_string()])
        .args(["--anonymous", "--transport", "udp", "--light"])
        .args(["--move-every", "0.5"])
        .args(["--ramp", &RAMP_SECS.to_string()])
        .args(["--secs", &(RAMP_SECS + secs + 4.0).to_string()])
        .args([
            "--port",
            &node.port.to_string(),
            "--web-port",
            &node.web.to_string(),
        ])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hearth bot starts")
}

/// A node's `/metrics` page (empty if it cannot be read).
fn metrics(web: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", web)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

/// CPU seconds of every process in `pids` together.
fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|pid| cpu_seconds(*pid)).sum()
}

/// The NATS server `scripts/nats-up` runs, by its pid file.
fn nats_pid() -> Option<u32> {
    let port = std::env::var("HEARTH_NATS_PORT").unwrap_or_else(|_| "54222".into());
    let dir =
        std::env::var("HEARTH_NATS_DIR").unwrap_or_else(|_| format!("/tmp/hearth-nats-{port}"));
    std::fs::read_to_string(Path::new(&dir).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs the load (bots per node) and measures: (server cores over the
/// window, players connected). Prints each process's share.
fn measure(binary: &Path, load: &[(&Node, usize)], extra: &[u32], secs: f64) -> (f64, f64) {
    let mut running: Vec<Child> = load
        .iter()
        .map(|(node, players)| bots(binary, node, *players, secs))
        .collect();
    let mut pids: Vec<u32> = load.iter().map(|(node, _)| node.pid()).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.extend_from_slice(extra);
    std::thread::sleep(Duration::from_secs_f64(RAMP_SECS + 2.0));
    let before: Vec<f64> = pids.iter().map(|pid| cpu_of(&[*pid])).collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let window = t0.elapsed().as_secs_f64();
    let each: Vec<f64> = pids
        .iter()
        .zip(&before)
        .map(|(pid, before)| (cpu_of(&[*pid]) - before) / window)
        .collect();
    let shares: Vec<String> = pids
        .iter()
        .zip(&each)
        .map(|(pid, cores)| format!("{pid}: {cores:.3}"))
        .collect();
    println!("{BENCH}   cores by process: {}", shares.join(", "));
    for (node, _) in load {
        let counted: Vec<String> = metrics(node.web)
            .lines()
            .filter(|line| line.starts_with("hearth_cluster_") && !line.ends_with(" 0"))
            .map(str::to_owned)
            .collect();
        if !counted.is_empty() {
            println!("{BENCH}   node {}: {}", node.pid(), counted.join("; "));
        }
    }
    let cores: f64 = each.iter().sum();
    let mut connected = 0.0;
    for child in running.drain(..) {
        let output = child.wait_with_output().expect("the bots end");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        connected += report["connected"].as_f64().unwrap_or(0.0);
    }
    (cores, connected)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let players: usize = env_or("HEARTH_CLUSTER_CPU_PLAYERS", 300);
    let secs: f64 = env_or("HEARTH_CLUSTER_CPU_SECS", 20.0);
    raise_fd_limit(65_536);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // (HEARTH_BENCH_PREBUILT=1: target/release/hearth is built already.)
    if std::env::var_os("HEARTH_BENCH_PREBUILT").is_none() {
        let built = Command::new("cargo")
            .args(["build", "--release", "-p", "hearth"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(built.success(), "cargo build --release -p hearth failed");
    }
    let binary = root.join("target/release/hearth");
    let dir = std::env::temp_dir().join(unique("hearth-cluster-cpu"));
    // Both started before any run, so that their start is in none.
    let _ = (postgres_url(), nats_url());
    let nats = nats_pid();
    if nats.is_none() {
        eprintln!("{BENCH}: the NATS server's pid file was not found: its CPU is left out");
    }
    let nats: Vec<u32> = nats.into_iter().collect();
    println!("{BENCH}: {players} players, {RAMP_SECS} s ramp, {secs} s window; servers on core 0, bots on core 1");

    let single = {
        let node = Node::start(&binary, &dir, "alone", None);
        measure(&binary, &[(&node, players)], &[], secs)
    };
    let home = {
        let cluster = unique("cpu-home");
        let a = Node::start(&binary, &dir, "c1", Some((&cluster, "")));
        let b = Node::start(&binary, &dir, "c2", Some((&cluster, "")));
        std::thread::sleep(Duration::from_secs(3));
        measure(
            &binary,
            &[(&a, players / 2), (&b, players - players / 2)],
            &nats,
            secs,
        )
    };
    let three = {
        let cluster = unique("cpu-three");
        let a = Node::start(&binary, &dir, "t1", Some((&cluster, "")));
        let b = Node::start(&binary, &dir, "t2", Some((&cluster, "")));
        let c = Node::start(&binary, &dir, "t3", Some((&cluster, "")));
        std::thread::sleep(Duration::from_secs(3));
        let third = players / 3;
        measure(
            &binary,
            &[(&a, third), (&b, third), (&c, players - 2 * third)],
            &nats,
            secs,
        )
    };
    let forwarded = {
        let cluster = unique("cpu-fwd");
        let pins = "[cluster.zones]\nmeadow = \"f2\"\ntown = \"f2\"\ncaves = \"f2\"\n";
        let a = Node::start(&binary, &dir, "f1", Some((&cluster, pins)));
        let b = Node::start(&binary, &dir, "f2", Some((&cluster, pins)));
        std::thread::sleep(Duration::from_secs(3));
        // Both measured; only the first has bots.
        let pids = [b.pid()];
        let mut all = nats.clone();
        all.extend_from_slice(&pids);
        measure(&binary, &[(&a, players)], &all, secs)
    };
    let _ = std::fs::remove_dir_all(&dir);

    let per_player = |(cores, connected): (f64, f64)| cores * 100.0 / connected.max(1.0);
    let base = per_player(single);
    let mut met = true;
    for (name, run) in [
        ("one node", single),
        ("two nodes, players at home", home),
        ("three nodes, players at home", three),
        ("two nodes, every player forwarded", forwarded),
    ] {
        let each = per_player(run);
        let ratio = each / base;
        println!(
            "{BENCH} {name}: connected={} server_cores={:.3} cpu_per_player_pct={each:.4} ratio_to_one_node={ratio:.2}",
            run.1, run.0
        );
        if name != "one node" {
            // The goal is the cluster's own cost; forwarding every player
            // is the worst case, printed beside it.
            if name.ends_with("players at home") {
                met &= ratio <= GOAL_RATIO;
            }
            figure(
                BENCH,
                &format!("server CPU per player, {name}"),
                "% of a core",
                each,
                hearth_figures::Better::Lower,
                Some(("one node", base)),
            );
        }
    }
    println!(
        "goal: a cluster of two or three nodes, players at home, costs at most {GOAL_RATIO}x one node's CPU per player ({})",
        if met { "met" } else { "NOT met" }
    );
}
