//! Idle sessions against a real server, and what they cost it: the load
//! generator behind `cargo bench -p hearth-bench --bench sessions`.
//!
//!   idle-sessions hold --transport udp|tcp|ws --addr ADDR --steps 10000,50000 --server-pid PID
//!       logs sessions in anonymously (hearth-proto's client, one socket
//!       each, spread over loopback addresses), then leaves them idle: they
//!       answer pings and send the client's own heartbeats, nothing else. At
//!       each step it lets them settle, then reads the server's CPU time and
//!       memory from /proc over a window, and prints one `STEP {json}` line.
//!   idle-sessions floor --transport udp|tcp|ws --addr ADDR --sessions N --packets-per-sec P --server-pid PID
//!       the physical limit of the heartbeat itself: N bare sockets (or
//!       WebSockets) sending P small messages a second in total to a bare
//!       echo server; prints one `FLOOR {json}` line with that server's CPU.
//!
//! Both raise their open-file limit as far as they may, and say so when it
//! is short of what the sessions need.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hearth_bench::process::{cpu_seconds, raise_fd_limit, rss_bytes};
use hearth_bench::session_io::{Link, SessionIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        /// New sessions started per second while ramping.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
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

/// Sessions per loopback source address: well within its ephemeral ports.
const SESSIONS_PER_SOURCE: usize = 10_000;

/// The local address of session `index` when the server is on loopback
/// (127.1.0.1, 127.1.0.2, …); any address otherwise.
fn source_for(server: SocketAddr, index: usize) -> Option<IpAddr> {
    (server.ip().is_loopback() && server.is_ipv4())
        .then(|| IpAddr::from([127, 1, 0, 1 + (index / SESSIONS_PER_SOURCE) as u8]))
}

/// What every session adds to while the generator runs.
#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<HashMap<String, u64>>,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    /// Heartbeat round trips (µs) collected while `measuring`.
    rtts: Mutex<Vec<u32>>,
    measuring: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Relaxed);
        // Numbers differ between otherwise identical errors: group by the words.
        let kind: String = why
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(80)
            .collect();
        *self.failures.lock().unwrap().entry(kind).or_default() += 1;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.command {
        Command::Hold {
            common,
            steps,
            rate,
            settle_secs,
        } => runtime.block_on(hold(common, steps, rate, settle_secs)),
        Command::Floor {
            common,
            sessions,
            packets_per_sec,
        } => runtime.block_on(floor(common, sessions, packets_per_sec)),
    }
}

/// Opens the file limit for `sessions` sockets, or says how far it got.
fn open_files_for(sessions: usize) -> usize {
    let want = sessions as u64 + 1024;
    let got = raise_fd_limit(want);
    if got < want {
        eprintln!(
            "idle-sessions: the open-file limit is {got} (wanted {want}); at most about {} sessions",
            got.saturating_sub(1024)
        );
    }
    got.saturating_sub(1024) as usize
}

async fn hold(common: Common, steps: Vec<usize>, rate: u64, settle: f64) -> anyhow::Result<()> {
    let target = steps.iter().copied().max().unwrap_or(0);
    let possible = open_files_for(target);
    let shared = Arc::new(Shared::default());
    let baseline_rss = rss_bytes(common.server_pid).unwrap_or(0);
    let mut started = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    for step in steps {
        let step = step.min(possible);
        let ramp_began = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while started < step {
            tick.tick().await;
            let due = (ramp_began.elapsed().as_secs_f64() * rate as f64) as usize;
            let batch_end = step.min(due.max(started + 1));
            while started < batch_end {
                tasks.spawn(session(
                    common.transport,
                    common.addr,
                    started,
                    shared.clone(),
                ));
                started += 1;
            }
            if started % 250 == 0 {
                progress(&shared, step, ramp_began);
            }
        }
        // Every login has finished (joined or failed), or a minute has passed.
        let deadline = Instant::now() + Duration::from_secs(60);
        while (shared.connected.load(Relaxed) + shared.failed.load(Relaxed)) < started as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
            progress(&shared, step, ramp_began);
        }
        eprintln!();
        let ramp_secs = ramp_began.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let line = measure(&common, &shared, baseline_rss, step, ramp_secs).await;
        println!("STEP {line}");
    }
    shared.stop.store(true, Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::timeout_at(deadline, tasks.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    Ok(())
}

fn progress(shared: &Shared, step: usize, began: Instant) {
    let connected = shared.connected.load(Relaxed);
    let failed = shared.failed.load(Relaxed);
    let width = 40usize;
    let filled = ((connected + failed) as usize * width / step.max(1)).min(width);
    eprint!(
        "\r[{}{}] {connected}/{step} connected, {failed} failed, {:.0} s   ",
        "#".repeat(filled),
        ".".repeat(width - filled),
        began.elapsed().as_secs_f64()
    );
}

/// One step's figures: the server's CPU and memory over the window, the
/// heartbeats' round trips, and the packet rates the floor must match.
async fn measure(
    common: &Common,
    shared: &Shared,
    baseline_rss: u64,
    step: usize,
    ramp_secs: f64,
) -> String {
    let pid = common.server_pid;
    shared.rtts.lock().unwrap().clear();
    let (in_before, out_before) = (
        shared.packets_in.load(Relaxed),
        shared.packets_out.load(Relaxed),
    );
    let own = std::process::id();
    let (server_before, own_before) = (cpu_seconds(pid), cpu_seconds(own));
    shared.measuring.store(true, Relaxed);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(common.window_secs)).await;
    shared.measuring.store(false, Relaxed);
    let secs = began.elapsed().as_secs_f64();
    let cpu_pct = |before: Option<f64>, pid: u32| {
        cpu_seconds(pid)
            .zip(before)
            .map_or(f64::NAN, |(a, b)| 100.0 * (a - b) / secs)
    };
    let server_cpu_pct = cpu_pct(server_before, pid);
    let generator_cpu_pct = cpu_pct(own_before, own);
    let rss = rss_bytes(pid).unwrap_or(0);
    let connected = shared.connected.load(Relaxed);
    let mut rtts = std::mem::take(&mut *shared.rtts.lock().unwrap());
    rtts.sort_unstable();
    let percentile = |p: f64| {
        rtts.get(((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let failures: Vec<String> = shared
        .failures
        .lock()
        .unwrap()
        .iter()
        .map(|(why, n)| format!("{n}x {why}"))
        .collect();
    format!(
        concat!(
            "{{\"transport\": \"{}\", \"target\": {}, \"sessions\": {}, \"failed\": {}, ",
            "\"ramp_secs\": {:.1}, \"server_cpu_pct\": {:.2}, \"server_rss_bytes\": {}, ",
            "\"rss_per_session_b\": {:.0}, \"heartbeat_rtt_p50_us\": {}, \"heartbeat_rtt_p99_us\": {}, ",
            "\"rtt_samples\": {}, \"packets_to_server_per_s\": {:.0}, \"packets_from_server_per_s\": {:.0}, ",
            "\"generator_cpu_pct\": {:.2}, \"failures\": {:?}}}"
        ),
        link_name(common.transport),
        step,
        connected,
        shared.failed.load(Relaxed),
        ramp_secs,
        server_cpu_pct,
        rss,
        rss.saturating_sub(baseline_rss) as f64 / connected.max(1) as f64,
        percentile(0.5),
        percentile(0.99),
        rtts.len(),
        (shared.packets_out.load(Relaxed) - out_before) as f64 / secs,
        (shared.packets_in.load(Relaxed) - in_before) as f64 / secs,
        generator_cpu_pct,
        failures.join("; "),
    )
}

/// One idle session: logs in, then only answers the protocol until told to stop.
async fn session(link: Link, addr: SocketAddr, index: usize, shared: Arc<Shared>) {
    // A player in the lobby: logged in, heartbeating, not in the world
    // (whose traffic would make the session anything but idle).
    let connected =
        SessionIo::connect_from(link, addr, index, source_for(addr, index), "?world=off");
    let mut io = match connected.await {
        Ok(io) => io,
        Err(e) => return shared.fail(format!("connect: {e:#}")),
    };
    if let Err(e) = io.join(Duration::from_secs(30)).await {
        return shared.fail(format!("{e:#}"));
    }
    shared.connected.fetch_add(1, Relaxed);
    let mut seen = io.client.session().stats();
    loop {
        if shared.stop.load(Relaxed) {
            io.client.close(Instant::now(), 1000, "load test over");
            let _ = io.flush().await;
            return;
        }
        // Wakes for input or the client's own timers, at least once a second
        // to notice the stop.
        if let Err(e) = io.step(Instant::now() + Duration::from_secs(1)).await {
            shared.connected.fetch_sub(1, Relaxed);
            return shared.fail(format!("after login: {e:#}"));
        }
        while let Some(event) = io.client.poll_event() {
            if let hearth_proto::Event::Closed(reason) = event {
                shared.connected.fetch_sub(1, Relaxed);
                return shared.fail(format!("closed after login: {reason}"));
            }
        }
        let stats = io.client.session().stats();
        shared
            .packets_in
            .fetch_add(stats.packets_in - seen.packets_in, Relaxed);
        shared
            .packets_out
            .fetch_add(stats.packets_out - seen.packets_out, Relaxed);
        if stats.rtt.samples != seen.rtt.samples && shared.measuring.load(Relaxed) {
            if let Some(rtt) = stats.rtt.latest {
                shared.rtts.lock().unwrap().push(rtt.as_micros() as u32);
            }
        }
        seen = stats;
    }
}

/// The floor: bare sockets to a bare echo server at the same packet rate.
async fn floor(common: Common, sessions: usize, packets_per_sec: f64) -> anyhow::Result<()> {
    let sessions = sessions.min(open_files_for(sessions)).max(1);
    let shared = Arc::new(Shared::default());
    let period = Duration::from_secs_f64(sessions as f64 / packets_per_sec.max(0.001));
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for index in 0..sessions {
        let phase = period.mul_f64((index as f64 * 0.618_034) % 1.0);
        tasks.spawn(bare_pinger(
            common.transport,
            common.addr,
            index,
            period,
            phase,
            shared.clone(),
        ));
        if index % 500 == 499 {
            // Let the echo server accept the last batch before the next.
            tokio::time::sleep(Duration::from_millis(20)).await;
            progress(&shared, sessions, began);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (shared.connected.load(Relaxed) + shared.failed.load(Relaxed)) < sessions as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        progress(&shared, sessions, began);
    }
    eprintln!();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let line = measure(&common, &shared, 0, sessions, began.elapsed().as_secs_f64()).await;
    println!("FLOOR {line}");
    shared.stop.store(true, Relaxed);
    tasks.abort_all();
    Ok(())
}

/// A 32-byte message every `period` on a bare socket, each echo counted.
async fn bare_pinger(
    link: Link,
    addr: SocketAddr,
    index: usize,
    period: Duration,
    phase: Duration,
    shared: Arc<Shared>,
) {
    if let Err(e) = ping_loop(link, addr, index, period, phase, &shared).await {
        shared.fail(format!("{e:#}"));
    }
}

async fn ping_loop(
    link: Link,
    addr: SocketAddr,
    index: usize,
    period: Duration,
    phase: Duration,
    shared: &Shared,
) -> anyhow::Result<()> {
    let source = source_for(addr, index);
    {
        let local = SocketAddr::new(source.unwrap_or(IpAddr::from([0, 0, 0, 0])), 0);
        let message = [7u8; 32];
        let mut buf = [0u8; 64];
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
        match link {
            Link::Udp => {
                let socket = tokio::net::UdpSocket::bind(local).await?;
                socket.connect(addr).await?;
                shared.connected.fetch_add(1, Relaxed);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            socket.send(&message).await?;
                            shared.packets_out.fetch_add(1, Relaxed);
                        }
                        received = socket.recv(&mut buf) => {
                            received?;
                            shared.packets_in.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            Link::Tcp => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                if source.is_some() {
                    socket.bind(local)?;
                }
                let mut stream = socket.connect(addr).await?;
                stream.set_nodelay(true)?;
                shared.connected.fetch_add(1, Relaxed);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            stream.write_all(&message).await?;
                            shared.packets_out.fetch_add(1, Relaxed);
                        }
                        read = stream.read(&mut buf) => {
                            if read? == 0 {
                                anyhow::bail!("the echo server closed the connection");
                            }
                            shared.packets_in.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            Link::Ws => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                if source.is_some() {
                    socket.bind(local)?;
                }
                let stream = socket.connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut ws, _) =
                    tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await?;
                shared.connected.fetch_add(1, Relaxed);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            ws.send(tokio_tungstenite::tungstenite::Message::Binary(message.to_vec().into())).await?;
                            shared.packets_out.fetch_add(1, Relaxed);
                        }
                        message = ws.next() => {
                            message.transpose()?.ok_or_else(|| anyhow::anyhow!("the echo server closed the WebSocket"))?;
                            shared.packets_in.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
        }
    }
}
