//! One worker process of `idle-sessions`: it holds sessions (or bare
//! sockets) and answers its coordinator's commands, one per line on stdin:
//!
//!   ramp N RATE         log in sessions up to N at RATE a second, then `at CONNECTED FAILED`
//!   bare N PERIOD_US    open N bare sockets pinging every PERIOD_US, then `at …`
//!   mark                start counting: `marked`
//!   report              `report\tPACKETS_IN\tPACKETS_OUT\tRTT_HISTOGRAM\tFAILURES`
//!   stop                close everything: `stopped`
//!
//! While ramping it prints `progress CONNECTED FAILED` four times a second.
//! Workers exist because one process may hold only as many sockets as its
//! open-file limit allows.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hearth_bench::session_io::{Link, SessionIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// Logins one worker has in flight at most while ramping.
const MAX_LOGGING_IN: usize = 256;

/// Sessions per loopback source address: well within its ephemeral ports.
const SESSIONS_PER_SOURCE: usize = 10_000;

/// The local address of session `index` when the server is on loopback
/// (127.1.0.1, 127.1.0.2, …); any address otherwise.
fn source_for(server: SocketAddr, index: usize) -> Option<IpAddr> {
    (server.ip().is_loopback() && server.is_ipv4())
        .then(|| IpAddr::from([127, 1, 0, 1 + (index / SESSIONS_PER_SOURCE) as u8]))
}

/// What every session of this worker adds to.
#[derive(Default)]
struct Shared {
    connected: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<HashMap<String, u64>>,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    /// Heartbeat round trips by whole millisecond, counted while `measuring`.
    rtts_ms: Mutex<BTreeMap<u64, u64>>,
    measuring: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Relaxed);
        // Numbers differ between otherwise identical errors: group by the words.
        let kind: String = why
            .chars()
            .filter(|c| !c.is_ascii_digit() && *c != '\t')
            .take(80)
            .collect();
        *self.failures.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn settled(&self) -> u64 {
        self.connected.load(Relaxed) + self.failed.load(Relaxed)
    }
}

/// Runs one worker until `stop` or the end of stdin. `first_index` keeps
/// its sessions' source addresses apart from the other workers'.
pub fn run(link: Link, addr: SocketAddr, first_index: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shared = Arc::new(Shared::default());
        let mut tasks = tokio::task::JoinSet::new();
        let mut started = 0usize;
        let mut mark = (0, 0);
        let mut commands = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = commands.next_line().await? {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["ramp", n, rate] => {
                    let (n, rate): (usize, f64) = (n.parse()?, rate.parse()?);
                    let began = Instant::now();
                    let already = started;
                    let mut tick = tokio::time::interval(Duration::from_millis(10));
                    let mut shown = Instant::now();
                    while started < n {
                        tick.tick().await;
                        let due = already + (began.elapsed().as_secs_f64() * rate) as usize;
                        // Closed loop as well as paced: a server slower than
                        // the rate sees at most this many logins at once,
                        // instead of a backlog in which logins time out.
                        let room =
                            (shared.settled() as usize + MAX_LOGGING_IN).saturating_sub(started);
                        let until = n.min(due.max(started + 1)).min(started + room);
                        while started < until {
                            let index = first_index + started;
                            tasks.spawn(session(link, addr, index, shared.clone()));
                            started += 1;
                        }
                        if shown.elapsed() > Duration::from_millis(250) {
                            shown = Instant::now();
                            println!(
                                "progress {} {}",
                                shared.connected.load(Relaxed),
                                shared.failed.load(Relaxed)
                            );
                        }
                    }
                    settle(&shared, started).await;
                }
                ["bare", n, period_us] => {
                    let (n, period): (usize, u64) = (n.parse()?, period_us.parse()?);
                    let period = Duration::from_micros(period.max(1));
                    while started < n {
                        let phase = period.mul_f64((started as f64 * 0.618_034) % 1.0);
                        let index = first_index + started;
                        tasks.spawn(bare_pinger(
                            link,
                            addr,
                            index,
                            period,
                            phase,
                            shared.clone(),
                        ));
                        started += 1;
                        if started % 500 == 0 {
                            // Let the echo server accept the last batch before the next.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    settle(&shared, started).await;
                }
                ["mark"] => {
                    shared.rtts_ms.lock().unwrap().clear();
                    mark = (
                        shared.packets_in.load(Relaxed),
                        shared.packets_out.load(Relaxed),
                    );
                    shared.measuring.store(true, Relaxed);
                    println!("marked");
                }
                ["report"] => {
                    shared.measuring.store(false, Relaxed);
                    let histogram: Vec<String> = shared
                        .rtts_ms
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(ms, n)| format!("{ms}:{n}"))
                        .collect();
                    let failures: Vec<String> = shared
                        .failures
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(why, n)| format!("{n}x {why}"))
                        .collect();
                    println!(
                        "report\t{}\t{}\t{}\t{}",
                        shared.packets_in.load(Relaxed) - mark.0,
                        shared.packets_out.load(Relaxed) - mark.1,
                        histogram.join(","),
                        failures.join("; ")
                    );
                }
                ["stop"] => break,
                _ => anyhow::bail!("unknown command {line:?}"),
            }
        }
        shared.stop.store(true, Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
        println!("stopped");
        Ok(())
    })
}

/// Waits until every started session has joined or failed (at most a
/// minute), then says so.
async fn settle(shared: &Shared, started: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.settled() < started as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        println!(
            "progress {} {}",
            shared.connected.load(Relaxed),
            shared.failed.load(Relaxed)
        );
    }
    println!(
        "at {} {}",
        shared.connected.load(Relaxed),
        shared.failed.load(Relaxed)
    );
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
                *shared
                    .rtts_ms
                    .lock()
                    .unwrap()
                    .entry(rtt.as_millis() as u64)
                    .or_default() += 1;
            }
        }
        seen = stats;
    }
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
