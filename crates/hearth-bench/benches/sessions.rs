//! Idle sessions held by a real `hearth serve`, and what each costs it.
//!
//! `hearth serve` (anonymous logins allowed) runs on core 0; `idle-sessions`
//! on core 1 ramps lobby players (`?world=off`: logged in, heartbeating,
//! nothing else) over UDP, then TCP, then WebSocket, and at each step reads
//! the server's CPU time and memory from /proc. The floor is measured in the
//! same run: a bare echo server (tokio UDP, TCP, or fastwebsockets) on core 0
//! answering the same number of messages per second from the same number of
//! sockets, the physical cost of the heartbeat itself. The ratio is the
//! server's CPU over the floor's.
//!
//!   cargo build --release -p hearth && cargo bench -p hearth-bench --bench sessions
//!   HEARTH_SESSIONS_UDP=10000,50000 HEARTH_SESSIONS_TCP=20000 HEARTH_SESSIONS_WS= cargo bench -p hearth-bench --bench sessions
//!
//! The two processes never share a core, so the generator's own work does
//! not show as the server's; it prints its CPU beside the server's.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hearth_bench::json_number;
use hearth_bench::process::{env_or, pinned, raise_fd_limit};
use hearth_figures::{figure, point, Better};

struct Step {
    transport: &'static str,
    line: String,
    floor: Option<String>,
}

fn main() {
    let want_fds = 200_000;
    let fds = raise_fd_limit(want_fds);
    if fds < want_fds {
        println!("open-file limit {fds} (wanted {want_fds}): the largest steps may fall short");
    }
    let hearth = hearth_binary();
    let window = env_or("HEARTH_SESSIONS_WINDOW", 10.0f64);
    let rate = env_or("HEARTH_SESSIONS_RATE", 1000u64);
    let plan = [
        ("udp", env_list("HEARTH_SESSIONS_UDP", "10000,25000,50000")),
        // Each stream session is a file descriptor in the server too: at a
        // hard open-file limit of 20,000 (this machine's), 19,000 fit.
        ("tcp", env_list("HEARTH_SESSIONS_TCP", "10000,19000")),
        ("ws", env_list("HEARTH_SESSIONS_WS", "10000,19000")),
    ];
    let (game, web) = (19810u16, 19811u16);
    println!(
        "Idle sessions against hearth serve, lobby logins, default heartbeat; {window} s windows"
    );
    let mut steps = Vec::new();
    for (transport, counts) in &plan {
        if counts.is_empty() {
            continue;
        }
        // A fresh server per transport: memory the allocator kept from the
        // last transport's sessions would hide the next one's.
        let mut server = HearthServe::start(&hearth, game, web);
        let port = if *transport == "ws" { web } else { game };
        let output = pinned(1, env!("CARGO_BIN_EXE_idle-sessions"))
            .args(["hold", "--transport", transport])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--steps", &join(counts)])
            .args(["--rate", &rate.to_string()])
            .args(["--window-secs", &window.to_string()])
            .args(["--server-pid", &server.child.id().to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run idle-sessions");
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines().filter_map(|l| l.strip_prefix("STEP ")) {
            println!("  {line}");
            steps.push(Step {
                transport,
                line: line.to_owned(),
                floor: None,
            });
        }
        assert!(output.status.success(), "idle-sessions failed: {text}");
        server.stop();
    }

    for step in &mut steps {
        let sessions = json_number(&step.line, "sessions");
        let rate = json_number(&step.line, "packets_to_server_per_s");
        if !(sessions > 0.0 && rate > 0.0) {
            continue;
        }
        step.floor = Some(floor(step.transport, sessions as usize, rate, window));
    }

    println!();
    println!("| transport | sessions | server CPU % | per 1,000 | floor CPU % | ratio | RSS per session | heartbeat RTT p99 | generator CPU % |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for step in &steps {
        let sessions = json_number(&step.line, "sessions");
        let cpu = json_number(&step.line, "server_cpu_pct");
        let floor_cpu = step
            .floor
            .as_deref()
            .map_or(f64::NAN, |f| json_number(f, "server_cpu_pct"));
        let rss = json_number(&step.line, "rss_per_session_b");
        let p99 = json_number(&step.line, "heartbeat_rtt_p99_us");
        eprintln!(
            "transport={} sessions={sessions} server_cpu_pct={cpu:.1} rss_per_session_b={rss:.0} heartbeat_rtt_p99_us={p99} floor_cpu_pct={floor_cpu:.1} ratio={:.2}",
            step.transport,
            cpu / floor_cpu
        );
        println!(
            "| {} | {sessions} of {} | {cpu:.1} | {:.2} | {floor_cpu:.1} | {:.2}x | {:.1} KB | {:.1} ms | {:.1} |",
            step.transport,
            json_number(&step.line, "target"),
            cpu * 1000.0 / sessions,
            cpu / floor_cpu,
            rss / 1000.0,
            p99 / 1000.0,
            json_number(&step.line, "generator_cpu_pct"),
        );
        point(
            "idle-sessions-cpu",
            "idle sessions",
            "server CPU, % of a core",
            step.transport,
            sessions,
            cpu,
        );
        point(
            "idle-sessions-cpu",
            "idle sessions",
            "server CPU, % of a core",
            &format!("{} floor", step.transport),
            sessions,
            floor_cpu,
        );
    }
    // The figures: each transport at its largest step.
    for (transport, _) in &plan {
        let Some(step) = steps.iter().rev().find(|s| s.transport == *transport) else {
            continue;
        };
        let sessions = json_number(&step.line, "sessions");
        let per_thousand = json_number(&step.line, "server_cpu_pct") * 1000.0 / sessions;
        let floor_per_thousand = step
            .floor
            .as_deref()
            .map(|f| json_number(f, "server_cpu_pct") * 1000.0 / json_number(f, "sessions"));
        figure(
            "sessions",
            &format!("{transport}: server CPU per 1,000 idle sessions at {sessions}"),
            "% of a core",
            per_thousand,
            Better::Lower,
            floor_per_thousand.map(|f| ("bare-socket floor, same pings", f)),
        );
        figure(
            "sessions",
            &format!("{transport}: server memory per idle session at {sessions}"),
            "B",
            json_number(&step.line, "rss_per_session_b"),
            Better::Lower,
            None,
        );
    }
}

/// `hearth serve` on core 0 with a throwaway data directory, anonymous
/// logins, and connection caps above the plan's counts.
struct HearthServe {
    child: Child,
    dir: PathBuf,
}

impl HearthServe {
    fn start(binary: &std::path::Path, game: u16, web: u16) -> Self {
        let dir =
            std::env::temp_dir().join(format!("hearth-bench-sessions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a data directory");
        let config = dir.join("hearth.toml");
        std::fs::write(
            &config,
            "[accounts]\nallow_anonymous = true\n\n[web]\nmax_connections = 200000\nmax_connections_per_address = 200000\n",
        )
        .expect("write the config");
        let mut child = pinned(0, binary.to_str().expect("a UTF-8 path"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--port", &game.to_string(), "--web-port", &web.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hearth serve");
        let stdout = child.stdout.take().expect("piped");
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("hearth serving") {
                    let _ = ready.send(());
                }
            }
        });
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("hearth serve did not say it was serving within 30 s");
        Self { child, dir }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for HearthServe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The floor for one step: its bare echo server on core 0, the same sockets
/// and message rate from core 1. Returns the FLOOR line.
fn floor(transport: &str, sessions: usize, packets_per_sec: f64, window: f64) -> String {
    let (binary, port) = match transport {
        "udp" => (env!("CARGO_BIN_EXE_udp-echo-bare"), 19820),
        "tcp" => (env!("CARGO_BIN_EXE_tcp-echo-bare"), 19821),
        _ => (env!("CARGO_BIN_EXE_ws-echo-fastwebsockets"), 19822),
    };
    let addr = format!("127.0.0.1:{port}");
    let mut server = pinned(0, binary)
        .arg(&addr)
        .stderr(Stdio::null())
        .spawn()
        .expect("start the floor's echo server");
    wait_until_answering(transport, &addr);
    let output = pinned(1, env!("CARGO_BIN_EXE_idle-sessions"))
        .args(["floor", "--transport", transport, "--addr", &addr])
        .args(["--sessions", &sessions.to_string()])
        .args(["--packets-per-sec", &format!("{packets_per_sec:.0}")])
        .args(["--window-secs", &window.to_string()])
        .args(["--server-pid", &server.id().to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run idle-sessions floor");
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("FLOOR "))
        .unwrap_or_else(|| panic!("idle-sessions floor printed {text:?}"))
        .to_owned();
    println!("  floor: {line}");
    line
}

/// Waits (up to 5 s) until the echo server at `addr` answers: a TCP
/// connection, or a UDP datagram echoed.
fn wait_until_answering(transport: &str, addr: &str) {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(5) {
        let answered = if transport == "udp" {
            std::net::UdpSocket::bind("127.0.0.1:0").is_ok_and(|socket| {
                let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
                socket.send_to(b"ready?", addr).is_ok() && socket.recv(&mut [0u8; 16]).is_ok()
            })
        } else {
            std::net::TcpStream::connect(addr).is_ok()
        };
        if answered {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the floor's echo server on {addr} did not answer within 5 s");
}

/// `target/release/hearth`, beside this bench's own directory.
fn hearth_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("this bench's path");
    let release = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/release/deps");
    let hearth = release.join("hearth");
    assert!(
        hearth.exists(),
        "{} is missing: run `cargo build --release -p hearth` first",
        hearth.display()
    );
    hearth
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn join(counts: &[usize]) -> String {
    counts
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
