//! A crowd in one space: what many walking players cost Hearth's server, and
//! the same crowd on Colyseus 0.18 measured in the same run.
//!
//! What it measures. For each player count, Hearth and Colyseus take turns
//! (Hearth, then Colyseus, then the next count) hosting every player in one
//! shared space: a 40 x 40 cell map where everyone sees everyone
//! (`crowd/square.toml`, one line of up to 10,000 players; the Colyseus peer
//! is `colyseus/server.mjs`, one room, the same map, speed and 20 Hz tick).
//! Each player walks to a random nearby cell about every 0.5 s and pings.
//! Then Hearth alone hosts a big zone (`crowd/big.toml`, 250 x 250 cells,
//! default view radius 20) where 5,000 players spread out see about 100
//! others each. For every run it prints the server's CPU (and per player),
//! its memory growth per player, the bytes it sends per player per second,
//! the round trip (p50, p99), how many players it refused, and the load
//! generator's own CPU per client; then the Hearth/Colyseus ratios and a
//! summary against the goals (met / NOT met).
//!
//! How. The server runs pinned to core 0 and the load generator to core 1
//! (`taskset`), so the load's own work never shows as the server's. Hearth is
//! `target/release/hearth serve` (built first with `cargo build --release -p
//! hearth`) with a fresh data directory and anonymous logins; the load is
//! `hearth bot --light --transport udp --watch-pid`, whose JSON report gives
//! the connected and refused counts, bytes received, the RTT and the server's
//! CPU after the ramp and peak memory. Colyseus is `node server.mjs`, loaded
//! by `node load.mjs`; the harness reads the server's CPU time from /proc at
//! the load generator's "window start" and "window end" lines and samples its
//! memory every 500 ms. Memory growth is the peak resident memory less the
//! resident memory just before the first player came, over the players
//! connected.
//!
//! Fairness. Both load generators run "light" players, so that one core can
//! play thousands of them and the figures are the server's: Hearth's `--light`
//! bots keep the sealed session, its acknowledgements, their own moves and
//! pings, but no replica of the other actors; Colyseus's load generator
//! registers a no-op serializer with the official SDK, so every state patch is
//! received in full but not decoded. Both servers do exactly the work real
//! clients would cost them. Both measured windows start when the ramp ends
//! and last `HEARTH_CROWD_SECS`: Colyseus's load generator runs with
//! `--warmup 0` (so it may report a few "joins pending at window start": the
//! last joins, sent as the ramp ends), and Hearth's bot samples the server's
//! CPU at the end of its ramp. Hearth's CPU window ends when the last bot has
//! logged out; Colyseus's at the load generator's "window end" line, before
//! its clients leave. Hearth's bytes and RTT are taken after the ramp too
//! (the bot's `bytes_in_per_s_after_ramp` and `rtt_after_ramp`, sampled once
//! a second per bot). Hearth's RTT is each bot's latest heartbeat round trip
//! (unsmoothed, 1 ms resolution), where Colyseus's is every `ping` message the
//! room answers.
//!
//! Run it (the default run takes about 6 minutes after the build):
//!
//!   cargo bench -p hearth-bench --bench crowd
//!   HEARTH_CROWD_COUNTS=250,1000 HEARTH_CROWD_BIG=0 HEARTH_CROWD_SECS=10 HEARTH_CROWD_RAMP=5 \
//!     cargo bench -p hearth-bench --bench crowd
//!
//! - `HEARTH_CROWD_COUNTS`: players in the one space, each count run on both
//!   systems (default "250,500,1000,2000");
//! - `HEARTH_CROWD_BIG`: players in Hearth's big zone (default 5000; 0 skips);
//! - `HEARTH_CROWD_SECS`: the measured window after the ramp (default 20);
//! - `HEARTH_CROWD_RAMP`: seconds over which the players join (default 10).
//!
//! Colyseus needs `node` (20 or newer); `npm ci` runs in `colyseus/` when its
//! `node_modules` is missing. Without node, Hearth runs alone.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hearth_bench::process::{cpu_seconds, env_or, pinned, raise_fd_limit, rss_bytes};
use hearth_figures::{figure, point, Better};
use serde_json::Value;

const BENCH: &str = "crowd";
/// The goals this benchmark checks (issue: a crowd in one space).
const GOAL_RTT_P99_MS: f64 = 50.0;
const GOAL_MEM_PER_PLAYER_KIB: f64 = 64.0;
const GOAL_CPU_RATIO: f64 = 0.5;
const GOAL_ONE_SPACE_PLAYERS: usize = 2000;
const GOAL_BIG_PLAYERS: usize = 5000;
/// Colyseus "held" a count when everyone got in and its RTT p99 stayed below this.
const HELD_RTT_P99_MS: f64 = 100.0;
/// A server at this share of its core or above is saturated.
const SATURATED_CORES: f64 = 0.97;

struct Settings {
    counts: Vec<usize>,
    big: usize,
    secs: f64,
    ramp: f64,
}

/// What one run measured.
struct Run {
    system: &'static str,
    space: &'static str,
    players: usize,
    connected: f64,
    refused: f64,
    /// Why players failed (Hearth: refusals by reason; Colyseus: failed
    /// joins and other errors, by kind), with their counts.
    reasons: BTreeMap<String, u64>,
    /// Server CPU over the window, in cores (1.0 = one core busy).
    server_cpu: f64,
    baseline_rss: u64,
    peak_rss: u64,
    bytes_out_per_player_s: f64,
    rtt_p50_ms: f64,
    rtt_p99_ms: f64,
    load_cpu_per_client_pct: f64,
    /// How this run's figures differ from the other system's, if they do.
    note: Option<&'static str>,
}

impl Run {
    fn cpu_per_player_pct(&self) -> f64 {
        self.server_cpu * 100.0 / self.connected
    }

    fn mem_growth_per_player_kib(&self) -> f64 {
        (self.peak_rss as f64 - self.baseline_rss as f64) / self.connected / 1024.0
    }

    fn saturated(&self) -> bool {
        self.server_cpu >= SATURATED_CORES || self.server_cpu.is_nan() || self.refused > 0.0
    }

    /// Everyone got in and the round trip stayed reasonable.
    fn held(&self) -> bool {
        self.connected >= self.players as f64 && self.rtt_p99_ms < HELD_RTT_P99_MS
    }

    fn print(&self) {
        println!(
            "crowd {} {} players={} connected={} refused={} server_cpu={:.3} cpu_per_player_pct={:.4} \
             mem_growth_per_player_kib={:.1} bytes_out_per_player_s={:.0} rtt_p50_ms={:.2} rtt_p99_ms={:.2} \
             load_cpu_per_client_pct={:.4}{}",
            self.system,
            self.space,
            self.players,
            self.connected,
            self.refused,
            self.server_cpu,
            self.cpu_per_player_pct(),
            self.mem_growth_per_player_kib(),
            self.bytes_out_per_player_s,
            self.rtt_p50_ms,
            self.rtt_p99_ms,
            self.load_cpu_per_client_pct,
            self.note.map(|n| format!(" note={n}")).unwrap_or_default(),
        );
        for (reason, count) in &self.reasons {
            println!("    {} reported {count} x {reason}", self.system);
        }
    }
}

fn main() {
    let settings = Settings {
        counts: env_list("HEARTH_CROWD_COUNTS", "250,500,1000,2000"),
        big: env_or("HEARTH_CROWD_BIG", GOAL_BIG_PLAYERS),
        secs: env_or("HEARTH_CROWD_SECS", 20.0f64),
        ramp: env_or("HEARTH_CROWD_RAMP", 10.0f64),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hearth = build_hearth(&root);
    let colyseus_dir = bench_dir.join("colyseus");
    let colyseus = !settings.counts.is_empty() && prepare_colyseus(&colyseus_dir);
    // Every player is a socket in the server (a file descriptor for
    // Colyseus's WebSockets); the servers and generators inherit this limit.
    let want_fds = 4 * settings
        .counts
        .iter()
        .chain([&settings.big])
        .max()
        .unwrap_or(&0)
        + 1024;
    let fds = raise_fd_limit(want_fds as u64);
    if fds < want_fds as u64 {
        println!("open-file limit {fds} (wanted {want_fds}): the largest runs may fall short");
    }
    println!(
        "Crowd: {} s ramp, {} s measured window; server on core 0, load on core 1; counts {:?}, big zone {}",
        settings.ramp, settings.secs, settings.counts, settings.big
    );

    let mut ports = Ports(19840);
    let square = bench_dir.join("crowd/square.toml");
    let mut hearth_runs: Vec<Run> = Vec::new();
    let mut colyseus_runs: Vec<Run> = Vec::new();
    for &players in &settings.counts {
        match run_hearth(
            &hearth,
            &square,
            "one-space",
            players,
            &settings,
            &mut ports,
        ) {
            Ok(run) => {
                run.print();
                hearth_runs.push(run);
            }
            Err(e) => println!("crowd hearth one-space players={players} FAILED: {e}"),
        }
        if colyseus {
            match run_colyseus(&colyseus_dir, players, &settings, &mut ports) {
                Ok(run) => {
                    run.print();
                    colyseus_runs.push(run);
                }
                Err(e) => println!("crowd colyseus one-space players={players} FAILED: {e}"),
            }
        }
    }
    let big = if settings.big > 0 {
        let zone = bench_dir.join("crowd/big.toml");
        match run_hearth(
            &hearth,
            &zone,
            "big-zone",
            settings.big,
            &settings,
            &mut ports,
        ) {
            Ok(run) => {
                run.print();
                Some(run)
            }
            Err(e) => {
                println!("crowd hearth big-zone players={} FAILED: {e}", settings.big);
                None
            }
        }
    } else {
        None
    };

    let pairs: Vec<(&Run, &Run)> = hearth_runs
        .iter()
        .filter_map(|h| {
            colyseus_runs
                .iter()
                .find(|c| c.players == h.players)
                .map(|c| (h, c))
        })
        .collect();
    if !pairs.is_empty() {
        println!();
        for (h, c) in &pairs {
            println!(
                "crowd ratio hearth/colyseus players={} cpu_per_player={:.3} mem_growth_per_player={:.3} \
                 bytes_out_per_player={:.3} rtt_p99={:.3}",
                h.players,
                h.cpu_per_player_pct() / c.cpu_per_player_pct(),
                h.mem_growth_per_player_kib() / c.mem_growth_per_player_kib(),
                h.bytes_out_per_player_s / c.bytes_out_per_player_s,
                h.rtt_p99_ms / c.rtt_p99_ms,
            );
        }
    }

    println!();
    summary(&settings, &hearth_runs, &colyseus_runs, big.as_ref());
    figures(&hearth_runs, &colyseus_runs, big.as_ref());
}

/// The summary against the goals, honest about what was not measured.
fn summary(settings: &Settings, hearth: &[Run], colyseus: &[Run], big: Option<&Run>) {
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!("Goals:");
    // One space, 2000 players.
    match hearth.iter().find(|r| r.players == GOAL_ONE_SPACE_PLAYERS) {
        Some(run) => {
            println!(
                "  one space, {} players: server CPU {:.2} cores, {} (refused {}): {}",
                run.players,
                run.server_cpu,
                if run.saturated() {
                    "saturated"
                } else {
                    "not saturated"
                },
                run.refused,
                verdict(!run.saturated())
            );
            println!(
                "  one space, {} players: RTT p99 {:.2} ms < {GOAL_RTT_P99_MS} ms: {}",
                run.players,
                run.rtt_p99_ms,
                verdict(run.rtt_p99_ms < GOAL_RTT_P99_MS)
            );
            println!(
                "  one space, {} players: memory growth {:.1} KiB per player < {GOAL_MEM_PER_PLAYER_KIB} KiB: {}",
                run.players,
                run.mem_growth_per_player_kib(),
                verdict(run.mem_growth_per_player_kib() < GOAL_MEM_PER_PLAYER_KIB)
            );
        }
        None => println!(
            "  one space, {GOAL_ONE_SPACE_PLAYERS} players: not measured (HEARTH_CROWD_COUNTS={:?})",
            settings.counts
        ),
    }
    // CPU per player against Colyseus at the largest count Colyseus held.
    let reference = colyseus
        .iter()
        .filter(|c| c.held())
        .max_by_key(|c| c.players)
        .map(|c| (c, "the largest count Colyseus held"))
        .or_else(|| {
            colyseus
                .iter()
                .min_by_key(|c| c.players)
                .map(|c| (c, "Colyseus held no count: the smallest"))
        });
    match reference {
        Some((c, which)) => match hearth.iter().find(|h| h.players == c.players) {
            Some(h) => {
                let ratio = h.cpu_per_player_pct() / c.cpu_per_player_pct();
                println!(
                    "  CPU per player at {} players ({which}): Hearth {:.4} % vs Colyseus {:.4} %, ratio {ratio:.3} <= {GOAL_CPU_RATIO}: {}",
                    c.players,
                    h.cpu_per_player_pct(),
                    c.cpu_per_player_pct(),
                    verdict(ratio <= GOAL_CPU_RATIO)
                );
            }
            None => println!(
                "  CPU per player against Colyseus: not measured (Hearth failed at {} players)",
                c.players
            ),
        },
        None => println!("  CPU per player against Colyseus: not measured (Colyseus did not run)"),
    }
    // The big zone.
    match big {
        Some(run) => {
            let at = if run.players == GOAL_BIG_PLAYERS {
                String::new()
            } else {
                format!(" (the goal is at {GOAL_BIG_PLAYERS})")
            };
            println!(
                "  big zone, {} players{at}: RTT p99 {:.2} ms < {GOAL_RTT_P99_MS} ms: {}",
                run.players,
                run.rtt_p99_ms,
                verdict(run.rtt_p99_ms < GOAL_RTT_P99_MS)
            );
            println!(
                "  big zone, {} players{at}: refused {}: {}",
                run.players,
                run.refused,
                verdict(run.refused == 0.0 && run.connected >= run.players as f64)
            );
        }
        None if settings.big == 0 => println!("  big zone: skipped (HEARTH_CROWD_BIG=0)"),
        None => println!(
            "  big zone, {} players: NOT met (the run failed)",
            settings.big
        ),
    }
}

/// The machine-readable figures for `scripts/bench`.
fn figures(hearth: &[Run], colyseus: &[Run], big: Option<&Run>) {
    for h in hearth {
        let n = h.players;
        let peer = colyseus.iter().find(|c| c.players == n);
        figure(
            BENCH,
            &format!("one space, {n} players: server CPU per player"),
            "% of a core",
            h.cpu_per_player_pct(),
            Better::Lower,
            peer.map(|c| ("Colyseus 0.18", c.cpu_per_player_pct())),
        );
        figure(
            BENCH,
            &format!("one space, {n} players: bytes sent per player per second"),
            "B/s",
            h.bytes_out_per_player_s,
            Better::Lower,
            peer.map(|c| ("Colyseus 0.18", c.bytes_out_per_player_s)),
        );
        figure(
            BENCH,
            &format!("one space, {n} players: RTT p99"),
            "ms",
            h.rtt_p99_ms,
            Better::Lower,
            Some(("goal", GOAL_RTT_P99_MS)),
        );
        figure(
            BENCH,
            &format!("one space, {n} players: memory growth per player"),
            "KiB",
            h.mem_growth_per_player_kib(),
            Better::Lower,
            Some(("goal", GOAL_MEM_PER_PLAYER_KIB)),
        );
    }
    // Plots for scripts/bench: each system's cost per player, bytes per
    // player and RTT p99 against the players offered.
    for run in hearth.iter().chain(colyseus) {
        let series = match run.system {
            "hearth" => "Hearth",
            _ => "Colyseus 0.18",
        };
        let x = run.players as f64;
        point(
            "crowd-cpu",
            "players offered",
            "server CPU per player (% of a core)",
            series,
            x,
            run.cpu_per_player_pct(),
        );
        point(
            "crowd-bytes",
            "players offered",
            "bytes per player per second",
            series,
            x,
            run.bytes_out_per_player_s,
        );
        point(
            "crowd-rtt",
            "players offered",
            "RTT p99 (ms)",
            series,
            x,
            run.rtt_p99_ms,
        );
    }
    if let Some(run) = big {
        figure(
            BENCH,
            &format!("big zone, {} players: RTT p99", run.players),
            "ms",
            run.rtt_p99_ms,
            Better::Lower,
            Some(("goal", GOAL_RTT_P99_MS)),
        );
    }
}

// ---- Hearth -----------------------------------------------------------------

/// Builds `target/release/hearth` so that the bench measures the current code.
fn build_hearth(root: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("crowd: cargo build --release -p hearth");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "hearth"])
        .current_dir(root)
        .env("CARGO_INCREMENTAL", "0")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!(
                "crowd: `cargo build --release -p hearth` failed ({s}); cannot run the bench"
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("crowd: could not run `{cargo} build --release -p hearth`: {e}");
            std::process::exit(1);
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let hearth = target.join("release/hearth");
    if !hearth.exists() {
        eprintln!("crowd: {} is missing after the build", hearth.display());
        std::process::exit(1);
    }
    hearth
}

fn run_hearth(
    binary: &Path,
    zone: &Path,
    space: &'static str,
    players: usize,
    settings: &Settings,
    ports: &mut Ports,
) -> Result<Run, String> {
    eprintln!("crowd: hearth {space} {players} players");
    let (game, web) = ports.next_pair();
    let dir = std::env::temp_dir().join(format!(
        "hearth-bench-crowd-{}-{space}-{players}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("data directory: {e}"))?;
    let config = dir.join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "[accounts]\nallow_anonymous = true\n[world]\nzones = {:?}\n[web]\nmax_connections = 20000\nmax_connections_per_address = 20000\n",
            zone.to_str().ok_or("the zone file's path is not UTF-8")?
        ),
    )
    .map_err(|e| format!("write the config: {e}"))?;
    let log = dir.join("server.log");
    let mut command = pinned(0, binary.to_str().ok_or("the binary's path is not UTF-8")?);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--port", &game.to_string(), "--web-port", &web.to_string()])
        .env("RUST_LOG", "warn");
    let mut server = Server::start(command, "hearth serving", &log, Some(dir.clone()))?;
    let pid = server.pid();
    let baseline_rss = rss_bytes(pid).ok_or("cannot read the server's memory")?;

    let mut bot = pinned(1, binary.to_str().unwrap_or("hearth"));
    bot.arg("bot")
        .args(["-n", &players.to_string()])
        .args(["--anonymous", "--transport", "udp", "--light"])
        .args(["--move-every", "0.5"])
        .args(["--ramp", &settings.ramp.to_string()])
        .args(["--secs", &(settings.ramp + settings.secs).to_string()])
        .args(["--port", &game.to_string(), "--web-port", &web.to_string()])
        .args(["--json", "--watch-pid", &pid.to_string()]);
    let timeout = Duration::from_secs_f64(settings.ramp + settings.secs + 60.0);
    let load = run_load(bot, timeout, |_| {})?;
    let server_alive = server.alive();
    server.stop();
    if !server_alive {
        return Err(format!(
            "hearth serve exited during the run; its log: {}",
            server.log_tail()
        ));
    }
    let report: Value = serde_json::from_str(&load.stdout).map_err(|e| {
        format!(
            "hearth bot printed no JSON report ({e}; {}); its stderr ends: {}",
            load.status_text(),
            load.stderr_tail
        )
    })?;
    let connected = number(&report, &["connected"]);
    // Prefer figures over the window after the ramp, when the bot gives them.
    let window_bytes = report
        .get("bytes_in_per_s_after_ramp")
        .and_then(Value::as_f64);
    let window_rtt = report.get("rtt_after_ramp").filter(|r| r.is_object());
    let note = match (window_bytes, window_rtt) {
        (Some(_), Some(_)) => None,
        _ => Some("bytes-and-rtt-over-whole-run-incl-ramp"),
    };
    let bytes_in_per_s = window_bytes.unwrap_or_else(|| number(&report, &["bytes_in_per_s"]));
    let rtt = window_rtt.unwrap_or(&report["rtt"]);
    let reasons = report["failed_by_reason"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        system: "hearth",
        space,
        players,
        connected,
        refused: number(&report, &["failed"]),
        reasons,
        server_cpu: number(&report, &["server", "cpu_cores_after_ramp"]),
        baseline_rss,
        peak_rss: number(&report, &["server", "rss_max_bytes"]) as u64,
        bytes_out_per_player_s: bytes_in_per_s / connected,
        rtt_p50_ms: number(rtt, &["p50_ms"]),
        rtt_p99_ms: number(rtt, &["p99_ms"]),
        load_cpu_per_client_pct: number(&report, &["bots_cpu", "per_bot_percent_of_a_core"]),
        note,
    })
}

// ---- Colyseus ---------------------------------------------------------------

/// Whether Colyseus can run: node present and the packages installed.
fn prepare_colyseus(dir: &Path) -> bool {
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {
            eprintln!(
                "crowd: node {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        _ => {
            println!(
                "node is missing: running Hearth alone, without the Colyseus peer (install Node.js 20 or newer)"
            );
            return false;
        }
    }
    if !dir.join("node_modules").exists() {
        eprintln!("crowd: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            println!(
                "`npm ci` failed in {}: running Hearth alone, without the Colyseus peer",
                dir.display()
            );
            return false;
        }
    }
    true
}

fn run_colyseus(
    dir: &Path,
    players: usize,
    settings: &Settings,
    ports: &mut Ports,
) -> Result<Run, String> {
    eprintln!("crowd: colyseus one-space {players} players");
    let (port, _) = ports.next_pair();
    let log = std::env::temp_dir().join(format!(
        "hearth-bench-crowd-{}-colyseus-{players}.log",
        std::process::id()
    ));
    let mut command = pinned(0, "node");
    command
        .current_dir(dir)
        .args(["server.mjs", "--port", &port.to_string()]);
    let mut server = Server::start(command, "ready", &log, None)?;
    // taskset execs node, so the child's pid is the server's.
    let pid = server.pid();
    let baseline_rss = rss_bytes(pid).ok_or("cannot read the server's memory")?;
    let peak = RssSampler::start(pid);

    // The server's CPU time at the load generator's window start and end
    // (its stderr lines "[..s] window start: .." and "[..s] window end ..").
    // With --warmup 0 the window starts when the ramp ends, as Hearth's does.
    let marks: Arc<Mutex<Vec<CpuMark>>> = Arc::default();
    let on_line = {
        let marks = marks.clone();
        move |line: &str| {
            if line.contains("] window start:") || line.contains("] window end") {
                let cpu = cpu_seconds(pid);
                marks
                    .lock()
                    .expect("not poisoned")
                    .push((Instant::now(), cpu));
            }
        }
    };
    let mut load = pinned(1, "node");
    load.current_dir(dir)
        .arg("load.mjs")
        .args(["--url", &format!("ws://127.0.0.1:{port}")])
        .args(["--clients", &players.to_string()])
        .args(["--ramp", &settings.ramp.to_string()])
        .args(["--secs", &settings.secs.to_string()])
        .args(["--move-every", "0.5", "--warmup", "0"]);
    let timeout = Duration::from_secs_f64(settings.ramp + settings.secs + 60.0);
    let load = run_load(load, timeout, on_line);
    let peak_rss = peak.stop();
    let server_alive = server.alive();
    server.stop();
    let load = load?;
    if !server_alive {
        return Err(format!(
            "node server.mjs exited during the run; its log: {}",
            server.log_tail()
        ));
    }
    let _ = std::fs::remove_file(&log);
    let line = load
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let report: Value = serde_json::from_str(line).map_err(|e| {
        format!(
            "load.mjs printed no JSON line ({e}; {}); its stderr ends: {}",
            load.status_text(),
            load.stderr_tail
        )
    })?;
    let marks = marks.lock().expect("not poisoned").clone();
    let server_cpu = match marks[..] {
        [(start, Some(before)), (end, Some(after)), ..] => {
            (after - before) / end.duration_since(start).as_secs_f64()
        }
        _ => {
            return Err(format!(
                "load.mjs printed no window start and end lines; its stderr ends: {}",
                load.stderr_tail
            ))
        }
    };
    let connected = number(&report, &["connected"]);
    let reasons = report["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        system: "colyseus",
        space: "one-space",
        players,
        connected,
        refused: number(&report, &["failed"]),
        reasons,
        server_cpu,
        baseline_rss,
        peak_rss,
        bytes_out_per_player_s: number(&report, &["bytes_in_per_client_per_s"]),
        rtt_p50_ms: number(&report, &["rtt_p50_ms"]),
        rtt_p99_ms: number(&report, &["rtt_p99_ms"]),
        load_cpu_per_client_pct: load
            .cpu_seconds
            .map_or(f64::NAN, |cpu| cpu / load.wall_secs / connected * 100.0),
        note: None,
    })
}

// ---- processes --------------------------------------------------------------

/// A server process: started, waited for until it says it is ready, stopped
/// with SIGTERM (SIGKILL after 10 s) when done or dropped.
struct Server {
    child: Child,
    log: PathBuf,
    dir: Option<PathBuf>,
    stopped: bool,
}

impl Server {
    /// Starts `command` with its stdout read until a line containing `ready`
    /// (30 s at most; then drained), its stderr written to `log`.
    fn start(
        mut command: Command,
        ready: &str,
        log: &Path,
        dir: Option<PathBuf>,
    ) -> Result<Self, String> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {command:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = ready.to_owned();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(());
                }
            }
        });
        let mut server = Self {
            child,
            log: log.to_owned(),
            dir,
            stopped: false,
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let tail = server.log_tail();
            server.stop();
            return Err(format!(
                "{command:?} did not say it was ready within 30 s; its log: {tail}"
            ));
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let began = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if began.elapsed() > Duration::from_secs(10) {
                    eprintln!("crowd: the server ignored SIGTERM for 10 s: SIGKILL");
                    let _ = self.child.kill();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// When a line came, and the server's CPU seconds then.
type CpuMark = (Instant, Option<f64>);

/// A load generator's run: what it printed, and the CPU it used.
struct LoadRun {
    stdout: String,
    stderr_tail: String,
    status: Option<ExitStatus>,
    timed_out: bool,
    /// Its CPU seconds over its whole life (read before it is reaped).
    cpu_seconds: Option<f64>,
    wall_secs: f64,
}

impl LoadRun {
    fn status_text(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "killed after its timeout".to_owned(),
            (false, Some(status)) => status.to_string(),
            (false, None) => "exit status unknown".to_owned(),
        }
    }
}

/// Runs a load generator to the end (killed after `timeout`), handing each
/// line of its stderr to `on_line` as it comes.
fn run_load(
    mut command: Command,
    timeout: Duration,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> Result<LoadRun, String> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {command:?}: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut tail = VecDeque::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_line(&line);
            tail.push_back(line);
            if tail.len() > 8 {
                tail.pop_front();
            }
        }
        Vec::from(tail).join("\n")
    });
    let mut cpu = None;
    let mut timed_out = false;
    while !out.is_finished() {
        cpu = cpu_seconds(pid).or(cpu);
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    // Its stdout is closed: it is exiting, or a zombie whose /proc entry
    // still holds its CPU time until we reap it.
    cpu = cpu_seconds(pid).or(cpu);
    let status = child.wait().ok();
    let wall_secs = started.elapsed().as_secs_f64();
    Ok(LoadRun {
        stdout: out.join().unwrap_or_default(),
        stderr_tail: err.join().unwrap_or_default(),
        status,
        timed_out,
        cpu_seconds: cpu,
        wall_secs,
    })
}

/// Samples a process's resident memory every 500 ms and keeps the largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let thread = {
            let (stop, max) = (stop.clone(), max.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(bytes) = rss_bytes(pid) {
                        max.fetch_max(bytes, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Self { stop, max, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.max.load(Ordering::Relaxed)
    }
}

/// Ports for the servers: pairs free on 127.0.0.1 (TCP and UDP), a fresh
/// pair for every run so that no run meets the last one's sockets.
struct Ports(u16);

impl Ports {
    fn next_pair(&mut self) -> (u16, u16) {
        loop {
            let (a, b) = (self.0, self.0 + 1);
            self.0 += 2;
            let free = |p: u16| {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            };
            if free(a) && free(b) {
                return (a, b);
            }
        }
    }
}

/// The number at `path` in a JSON report; NaN when it is missing or null.
fn number(value: &Value, path: &[&str]) -> f64 {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect()
}
