//! Idle sessions against a real server, and what they cost it: the load
//! generator behind `cargo bench -p hearth-bench --bench sessions`.
//!
//!   idle-sessions hold --transport udp|tcp|ws --addr ADDR --steps 10000,50000 --server-pid PID
//!       logs lobby players in anonymously (hearth-proto's client, one
//!       socket each, spread over loopback addresses), then leaves them
//!       idle: they answer pings and send the client's own heartbeats,
//!       nothing else. At each step it lets them settle, then reads the
//!       server's CPU time and memory from /proc over a window, and prints
//!       one `STEP {json}` line.
//!   idle-sessions floor --transport udp|tcp|ws --addr ADDR --sessions N --packets-per-sec P --server-pid PID
//!       the physical limit of the heartbeat itself: N bare sockets (or
//!       WebSockets) sending P small messages a second in total to a bare
//!       echo server; prints one `FLOOR {json}` line with that server's CPU.
//!
//! One process may hold only as many sockets as its open-file limit, so the
//! sessions are spread over worker processes (this binary again, see
//! `worker.rs`), each under the limit; the figures are their sums.

mod worker;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hearth_bench::process::{cpu_seconds, raise_fd_limit, rss_bytes};
use hearth_bench::session_io::Link;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Hold {
        #[command(flatten)]
        common: Common,
        /// Session counts to measure at, in increasing order.
        #[arg(long, value_delimiter = ',')]
        steps: Vec<usize>,
        /// New sessions started per second while ramping (over all workers).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds to wait after a ramp before measuring.
        #[arg(long, default_value_t = 5.0)]
        settle_secs: f64,
    },
    Floor {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        sessions: usize,
        /// Messages per second over all sockets (each one echoed).
        #[arg(long)]
        packets_per_sec: f64,
    },
    /// One worker process (started by hold and floor).
    Worker {
        #[arg(long, value_parser = parse_link)]
        transport: Link,
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        first_index: usize,
    },
}

#[derive(clap::Args)]
struct Common {
    #[arg(long, value_parser = parse_link)]
    transport: Link,
    /// The server: the game port for udp and tcp, the web port for ws.
    #[arg(long)]
    addr: SocketAddr,
    /// The server's process id, for its CPU time and memory.
    #[arg(long)]
    server_pid: u32,
    /// Seconds each measurement lasts.
    #[arg(long, default_value_t = 10.0)]
    window_secs: f64,
    /// Sockets per worker process (kept under the open-file limit).
    #[arg(long, default_value_t = 16_000)]
    per_worker: usize,
}

fn parse_link(text: &str) -> Result<Link, String> {
    match text {
        "udp" => Ok(Link::Udp),
        "tcp" => Ok(Link::Tcp),
        "ws" => Ok(Link::Ws),
        _ => Err(format!("{text}: say udp, tcp or ws")),
    }
}

fn link_name(link: Link) -> &'static str {
    match link {
        Link::Udp => "udp",
        Link::Tcp => "tcp",
        Link::Ws => "ws",
    }
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Worker {
            transport,
            addr,
            first_index,
        } => worker::run(transport, addr, first_index),
        Command::Hold {
            common,
            steps,
            rate,
            settle_secs,
        } => hold(&common, &steps, rate, settle_secs),
        Command::Floor {
            common,
            sessions,
            packets_per_sec,
        } => floor(&common, sessions, packets_per_sec),
    }
}

/// The worker processes and the lines they print, tagged by worker.
struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    lines: mpsc::Receiver<(usize, String)>,
}

impl Workers {
    /// Enough workers for `sessions` sockets at `per_worker` each, with the
    /// open-file limit raised for them (they inherit it).
    fn start(common: &Common, sessions: usize) -> anyhow::Result<Self> {
        let want = common.per_worker as u64 + 1024;
        let got = raise_fd_limit(want);
        let per_worker = if got < want {
            let fit = got.saturating_sub(1024).max(64) as usize;
            eprintln!("idle-sessions: the open-file limit is {got}: {fit} sockets per worker");
            fit
        } else {
            common.per_worker
        };
        let count = sessions.div_ceil(per_worker).max(1);
        let (tell, lines) = mpsc::channel();
        let (mut children, mut stdins) = (Vec::new(), Vec::new());
        for index in 0..count {
            let mut child = Process::new(std::env::current_exe()?)
                .arg("worker")
                .args(["--transport", link_name(common.transport)])
                .args(["--addr", &common.addr.to_string()])
                .args(["--first-index", &(index * 100_000).to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            stdins.push(child.stdin.take().expect("piped"));
            let stdout = child.stdout.take().expect("piped");
            let tell = tell.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tell.send((index, line)).is_err() {
                        return;
                    }
                }
            });
            children.push(child);
        }
        Ok(Self {
            children,
            stdins,
            lines,
        })
    }

    fn count(&self) -> usize {
        self.children.len()
    }

    /// `total` split as evenly as the workers allow.
    fn shares(&self, total: usize) -> Vec<usize> {
        let n = self.count();
        (0..n)
            .map(|i| total / n + usize::from(i < total % n))
            .collect()
    }

    fn tell(&mut self, worker: usize, command: &str) -> anyhow::Result<()> {
        writeln!(self.stdins[worker], "{command}")?;
        Ok(())
    }

    fn tell_all(&mut self, command: &str) -> anyhow::Result<()> {
        (0..self.count()).try_for_each(|i| self.tell(i, command))
    }

    /// Every worker's next line starting with `word`; `progress` lines in
    /// between redraw the bar towards `target`.
    fn answers(
        &mut self,
        word: &str,
        target: usize,
        began: Instant,
    ) -> anyhow::Result<Vec<String>> {
        let mut answers: Vec<Option<String>> = vec![None; self.count()];
        let mut progress = vec![(0u64, 0u64); self.count()];
        while answers.iter().any(Option::is_none) {
            let (worker, line) = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .map_err(|_| anyhow::anyhow!("a worker said nothing for two minutes"))?;
            if let Some(rest) = line.strip_prefix("progress ") {
                let mut numbers = rest.split(' ').filter_map(|n| n.parse().ok());
                progress[worker] = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
                let (connected, failed) = progress
                    .iter()
                    .fold((0, 0), |(c, f), (wc, wf)| (c + wc, f + wf));
                draw(connected, failed, target, began);
            } else if line.starts_with(word) {
                answers[worker] = Some(line);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    fn cpu_seconds(&self) -> f64 {
        self.children
            .iter()
            .filter_map(|c| cpu_seconds(c.id()))
            .sum()
    }

    fn stop(mut self) {
        let _ = self.tell_all("stop");
        let _ = self.answers("stopped", 0, Instant::now());
        for mut child in self.children {
            let _ = child.wait();
        }
    }
}

fn draw(connected: u64, failed: u64, target: usize, began: Instant) {
    let width = 40usize;
    let filled = ((connected + failed) as usize * width / target.max(1)).min(width);
    eprint!(
        "\r[{}{}] {connected}/{target} connected, {failed} failed, {:.0} s   ",
        "#".repeat(filled),
        ".".repeat(width - filled),
        began.elapsed().as_secs_f64()
    );
}

fn hold(common: &Common, steps: &[usize], rate: f64, settle: f64) -> anyhow::Result<()> {
    let largest = steps.iter().copied().max().unwrap_or(0);
    let mut workers = Workers::start(common, largest)?;
    let baseline_rss = rss_bytes(common.server_pid).unwrap_or(0);
    for &step in steps {
        let began = Instant::now();
        let per_worker_rate = rate / workers.count() as f64;
        for (worker, share) in workers.shares(step).into_iter().enumerate() {
            workers.tell(worker, &format!("ramp {share} {per_worker_rate}"))?;
        }
        let at = workers.answers("at ", step, began)?;
        eprintln!();
        let ramp_secs = began.elapsed().as_secs_f64();
        let connected: u64 = at.iter().map(|l| word(l, 1)).sum();
        std::thread::sleep(Duration::from_secs_f64(settle));
        let figures = measure(common, &mut workers)?;
        let rss = rss_bytes(common.server_pid).unwrap_or(0);
        println!(
            "STEP {{\"transport\": \"{}\", \"target\": {step}, \"sessions\": {connected}, \"failed\": {}, \"ramp_secs\": {ramp_secs:.1}, \"server_rss_bytes\": {rss}, \"rss_per_session_b\": {:.0}, \"workers\": {}, {figures}}}",
            link_name(common.transport),
            at.iter().map(|l| word(l, 2)).sum::<u64>(),
            rss.saturating_sub(baseline_rss) as f64 / connected.max(1) as f64,
            workers.count(),
        );
    }
    workers.stop();
    Ok(())
}

fn floor(common: &Common, sessions: usize, packets_per_sec: f64) -> anyhow::Result<()> {
    let mut workers = Workers::start(common, sessions)?;
    let period_us = (1e6 * sessions as f64 / packets_per_sec.max(0.001)) as u64;
    let began = Instant::now();
    for (worker, share) in workers.shares(sessions).into_iter().enumerate() {
        workers.tell(worker, &format!("bare {share} {period_us}"))?;
    }
    let at = workers.answers("at ", sessions, began)?;
    eprintln!();
    let connected: u64 = at.iter().map(|l| word(l, 1)).sum();
    std::thread::sleep(Duration::from_secs(2));
    let figures = measure(common, &mut workers)?;
    println!(
        "FLOOR {{\"transport\": \"{}\", \"sessions\": {connected}, \"failed\": {}, \"server_rss_bytes\": {}, {figures}}}",
        link_name(common.transport),
        at.iter().map(|l| word(l, 2)).sum::<u64>(),
        rss_bytes(common.server_pid).unwrap_or(0),
    );
    workers.stop();
    Ok(())
}

/// One window: the server's and the workers' CPU from /proc, the packets
/// both ways and the round trips the workers saw. JSON fields, no braces.
fn measure(common: &Common, workers: &mut Workers) -> anyhow::Result<String> {
    workers.tell_all("mark")?;
    workers.answers("marked", 0, Instant::now())?;
    let (server_before, workers_before) = (cpu_seconds(common.server_pid), workers.cpu_seconds());
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(common.window_secs));
    let server_after = cpu_seconds(common.server_pid);
    let workers_cpu = workers.cpu_seconds() - workers_before;
    let secs = began.elapsed().as_secs_f64();
    workers.tell_all("report")?;
    let reports = workers.answers("report", 0, Instant::now())?;
    let (mut packets_in, mut packets_out) = (0u64, 0u64);
    let mut rtts: BTreeMap<u64, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for report in &reports {
        let fields: Vec<&str> = report.split('\t').collect();
        packets_in += fields.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        packets_out += fields.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        for bucket in fields.get(3).unwrap_or(&"").split(',') {
            if let Some((ms, n)) = bucket.split_once(':') {
                *rtts.entry(ms.parse()?).or_default() += n.parse::<u64>()?;
            }
        }
        if let Some(text) = fields.get(4).filter(|t| !t.is_empty()) {
            failures.push(text.to_string());
        }
    }
    let samples: u64 = rtts.values().sum();
    let percentile = |p: f64| {
        let rank = (samples as f64 * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in &rtts {
            seen += n;
            if seen >= rank {
                return ms * 1000;
            }
        }
        0
    };
    let server_cpu_pct = server_after
        .zip(server_before)
        .map_or(f64::NAN, |(a, b)| 100.0 * (a - b) / secs);
    Ok(format!(
        concat!(
            "\"server_cpu_pct\": {:.2}, \"heartbeat_rtt_p50_us\": {}, \"heartbeat_rtt_p99_us\": {}, ",
            "\"rtt_samples\": {}, \"packets_to_server_per_s\": {:.0}, \"packets_from_server_per_s\": {:.0}, ",
            "\"generator_cpu_pct\": {:.2}, \"failures\": {:?}"
        ),
        server_cpu_pct,
        percentile(0.5),
        percentile(0.99),
        samples,
        packets_out as f64 / secs,
        packets_in as f64 / secs,
        100.0 * workers_cpu / secs,
        failures.join("; "),
    ))
}

/// The `n`th space-separated number of a worker's line.
fn word(line: &str, n: usize) -> u64 {
    line.split(' ')
        .nth(n)
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}
