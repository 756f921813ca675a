//! Logins during a handshake flood: Hearth's UDP gate (`udp-echo`, the whole
//! handshake and login path) on core 0, `login-flood` on core 1. The figure
//! is the share of legitimate logins that succeed during the flood, against
//! the same clients with no flood in the same run; and how many handshakes
//! per second the gate completes while it answers the flood.
//!
//!   cargo bench -p hearth-bench --bench flood
//!   HEARTH_BENCH_SECS=20 HEARTH_FLOOD_RATE=50000 cargo bench -p hearth-bench --bench flood

use std::process::Stdio;
use std::time::Duration;

use hearth_bench::json_number as field;
use hearth_bench::process::{cpu_seconds, env_or, pinned, rss_bytes};
use hearth_figures::{figure, Better};

fn main() {
    let secs = env_or("HEARTH_BENCH_SECS", 8.0f64);
    let rate = env_or("HEARTH_FLOOD_RATE", 0u64);
    let legit = env_or("HEARTH_FLOOD_LEGIT", 16usize);
    let port = env_or("HEARTH_BENCH_PORT", 19500u16);
    let addr = format!("127.0.0.1:{port}");
    let mut server = pinned(0, env!("CARGO_BIN_EXE_udp-echo"))
        .arg(&addr)
        .stderr(Stdio::null())
        .spawn()
        .expect("start udp-echo");
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu_seconds(server.id());
    let output = pinned(1, env!("CARGO_BIN_EXE_login-flood"))
        .args([
            &addr,
            "--secs",
            &secs.to_string(),
            "--rate",
            &rate.to_string(),
            "--legit",
            &legit.to_string(),
        ])
        .output()
        .expect("run login-flood");
    let cpu = cpu_seconds(server.id())
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / (2.0 * secs + 0.5));
    let rss = rss_bytes(server.id());
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "login-flood failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let phases: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    let [quiet, flood] = phases[..] else {
        panic!("login-flood printed {text:?}")
    };
    println!("Logins during a handshake flood: {legit} legitimate clients logging in and out in a loop, {secs} s per phase");
    println!("  {quiet}\n  {flood}");
    println!(
        "  success: {:.1} % quiet, {:.1} % during the flood; logins/s {:.0} -> {:.0}; p99 {:.1} -> {:.1} ms",
        100.0 * field(quiet, "success_share"),
        100.0 * field(flood, "success_share"),
        field(quiet, "logins_per_s"),
        field(flood, "logins_per_s"),
        field(quiet, "login_p99_ms"),
        field(flood, "login_p99_ms"),
    );
    println!(
        "  flood: {:.0} Initials/s sent, {:.0} Challenges/s answered; server CPU {:.0} % of a core, RSS {:.1} MB",
        field(flood, "flood_initials_per_s"),
        field(flood, "flood_challenges_per_s"),
        100.0 * cpu.unwrap_or(f64::NAN),
        rss.map_or(f64::NAN, |b| b as f64 / 1e6),
    );
    let bench = "flood";
    figure(
        bench,
        "share of legitimate logins that succeed during a handshake flood",
        "%",
        100.0 * field(flood, "success_share"),
        Better::Higher,
        Some((
            "the same logins, no flood",
            100.0 * field(quiet, "success_share"),
        )),
    );
    figure(
        bench,
        "logins completed per second during the flood",
        "/s",
        field(flood, "logins_per_s"),
        Better::Higher,
        Some(("no flood", field(quiet, "logins_per_s"))),
    );
    figure(
        bench,
        "login p99 during the flood",
        "ms",
        field(flood, "login_p99_ms"),
        Better::Lower,
        Some(("no flood", field(quiet, "login_p99_ms"))),
    );
    figure(
        bench,
        "flood Challenges answered per second (while serving logins)",
        "/s",
        field(flood, "flood_challenges_per_s"),
        Better::Higher,
        Some(("Initials sent", field(flood, "flood_initials_per_s"))),
    );
}
