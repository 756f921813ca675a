//! KCP against kernel TCP with the KCP reference test's workload: a message
//! every 20 ms, echoed, its round trip measured. `scripts/bench-kcp-tcp`
//! runs it across three network namespaces (client, router, server) with
//! random loss (nftables) and a delay added by the router at the IP layer;
//! this binary is each piece:
//!
//!   kcp-vs-tcp echo --kcp ADDR --tcp ADDR        the echo servers
//!   kcp-vs-tcp delay --a TUN --b TUN --ms D      the router's delay: every IP
//!                                                packet routed into one TUN
//!                                                device leaves by the other D ms later
//!   kcp-vs-tcp client --kcp ADDR | --tcp ADDR [--secs S] [--interval-ms 20] [--size 100]
//!                                                prints one JSON line of RTT figures
//!
//! The delay is on the IP path, as netem's would be (this kernel has none),
//! so TCP's own retransmissions and acknowledgements cross it too: both
//! transports recover from loss over the same delayed, lossy path.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hearth_kcp::{Config, Kcp, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Echo {
        #[arg(long)]
        kcp: SocketAddr,
        #[arg(long)]
        tcp: SocketAddr,
    },
    Delay {
        /// A TUN device (created by the script); packets read from it are
        /// written to --b after the delay.
        #[arg(long)]
        a: String,
        /// The other TUN device; packets read from it are written to --a.
        #[arg(long)]
        b: String,
        #[arg(long)]
        ms: u64,
    },
    Client {
        #[arg(long)]
        kcp: Option<SocketAddr>,
        #[arg(long)]
        tcp: Option<SocketAddr>,
        #[arg(long, default_value_t = 20.0)]
        secs: f64,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
}

const CONV: u32 = 0x4845_4152;

fn kcp() -> Kcp {
    // The reference test's fast profile: nodelay 2, interval 10, resend 2, no congestion control.
    let mut config = Config::profile(Profile::Fast);
    // HEARTH_KCP_COPIES=2 HEARTH_KCP_COPY_GAP_MS=7: each segment sent twice more,
    // 7 ms apart, ahead of any loss (both ends of a run set the same).
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    config.redundant_copies = env("HEARTH_KCP_COPIES").unwrap_or(0) as u8;
    config.redundant_gap_ms = env("HEARTH_KCP_COPY_GAP_MS").unwrap_or(10);
    Kcp::new(CONV, config).expect("valid profile")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Echo { kcp, tcp } => {
            tokio::try_join!(kcp_echo(kcp), tcp_echo(tcp))?;
        }
        Command::Delay { a, b, ms } => tun_delay(&a, &b, Duration::from_millis(ms))?,
        Command::Client {
            kcp,
            tcp,
            secs,
            interval_ms,
            size,
        } => {
            let workload = Workload {
                secs,
                interval: Duration::from_millis(interval_ms),
                size: size.max(12),
            };
            let rtts = match (kcp, tcp) {
                (Some(addr), None) => kcp_client(addr, &workload).await?,
                (None, Some(addr)) => tcp_client(addr, &workload).await?,
                _ => bail!("say --kcp ADDR or --tcp ADDR"),
            };
            println!("{}", summary(&rtts, &workload));
        }
    }
    Ok(())
}

struct Workload {
    secs: f64,
    interval: Duration,
    size: usize,
}

fn clock(start: Instant) -> u32 {
    start.elapsed().as_millis() as u32
}

/// One KCP session per peer address, echoing every message back.
async fn kcp_echo(addr: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(addr).await.context("bind the KCP echo")?;
    let start = Instant::now();
    let mut sessions: std::collections::HashMap<SocketAddr, Kcp> = Default::default();
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, peer) = received?;
                let session = sessions.entry(peer).or_insert_with(kcp);
                if session.input(&buf[..n]).is_ok() {
                    while let Some(message) = session.recv() {
                        let _ = session.send(&message);
                    }
                    // Echo and acknowledge now, not at the next interval tick.
                    session.update(clock(start));
                    session.flush();
                    for datagram in session.drain_transmits() {
                        socket.send_to(datagram, peer).await?;
                    }
                }
            }
            _ = tick.tick() => {
                for (peer, session) in &mut sessions {
                    session.update(clock(start));
                    for datagram in session.drain_transmits() {
                        socket.send_to(datagram, *peer).await?;
                    }
                }
            }
        }
    }
}

/// Length-prefixed messages (4 bytes, big-endian) echoed on each connection.
async fn tcp_echo(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await.context("bind the TCP echo")?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn kcp_client(addr: SocketAddr, workload: &Workload) -> anyhow::Result<Vec<Option<f64>>> {
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    socket.connect(addr).await?;
    let start = Instant::now();
    let mut session = kcp();
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut rtts: Vec<Option<f64>> = Vec::new();
    let mut send = tokio::time::interval(workload.interval);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let end = start + Duration::from_secs_f64(workload.secs);
    let drain = end + Duration::from_secs(5);
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= drain
            || (now >= end && rtts.iter().filter(|r| r.is_some()).count() == sent_at.len())
        {
            break;
        }
        tokio::select! {
            _ = send.tick(), if now < end => {
                let seq = sent_at.len() as u64;
                let mut message = vec![0u8; workload.size];
                message[..8].copy_from_slice(&seq.to_be_bytes());
                sent_at.push(Instant::now());
                rtts.push(None);
                let _ = session.send(&message);
                session.update(clock(start));
                session.flush();
            }
            _ = tick.tick() => session.update(clock(start)),
            received = socket.recv(&mut buf) => {
                let n = received?;
                if session.input(&buf[..n]).is_ok() {
                    while let Some(message) = session.recv() {
                        let seq = u64::from_be_bytes(message[..8].try_into().expect("8 bytes")) as usize;
                        if let Some(slot) = rtts.get_mut(seq) {
                            slot.get_or_insert(sent_at[seq].elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                    session.update(clock(start));
                    session.flush();
                }
            }
        }
        for datagram in session.drain_transmits() {
            socket.send(datagram).await?;
        }
    }
    Ok(rtts)
}

async fn tcp_client(addr: SocketAddr, workload: &Workload) -> anyhow::Result<Vec<Option<f64>>> {
    let stream = TcpStream::connect(addr)
        .await
        .context("connect to the TCP echo")?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(workload.secs);
    let size = workload.size;
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let sent = sent_at.clone();
    let interval = workload.interval;
    let sender = tokio::spawn(async move {
        let mut send = tokio::time::interval(interval);
        while Instant::now() < end {
            send.tick().await;
            let seq = {
                let mut sent = sent.lock().expect("not poisoned");
                sent.push(Instant::now());
                sent.len() as u64 - 1
            };
            let mut message = vec![0u8; size];
            message[..8].copy_from_slice(&seq.to_be_bytes());
            if writer.write_all(&message).await.is_err() {
                return;
            }
        }
    });
    let mut rtts: Vec<Option<f64>> = Vec::new();
    let mut pending = VecDeque::new();
    let mut buf = vec![0u8; 64 * 1024];
    let drain = end + Duration::from_secs(5);
    loop {
        let expected = sent_at.lock().expect("not poisoned").len();
        if Instant::now() >= end && rtts.len() >= expected {
            break;
        }
        let Ok(read) = tokio::time::timeout_at(drain.into(), reader.read(&mut buf)).await else {
            break;
        };
        let n = read?;
        if n == 0 {
            break;
        }
        pending.extend(&buf[..n]);
        while pending.len() >= size {
            let message: Vec<u8> = pending.drain(..size).collect();
            let seq = u64::from_be_bytes(message[..8].try_into().expect("8 bytes")) as usize;
            let at = sent_at.lock().expect("not poisoned")[seq];
            if rtts.len() <= seq {
                rtts.resize(seq + 1, None);
            }
            rtts[seq] = Some(at.elapsed().as_secs_f64() * 1000.0);
        }
    }
    sender.abort();
    let total = sent_at.lock().expect("not poisoned").len();
    rtts.resize(total, None);
    Ok(rtts)
}

/// Opens an existing TUN device by name, without the packet-info header:
/// each read is one IP packet, each write injects one.
fn open_tun(name: &str) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("open /dev/net/tun")?;
    anyhow::ensure!(name.len() < libc::IFNAMSIZ, "TUN name {name:?} is too long");
    // SAFETY: ifreq is plain data; zeroed is a valid value of it.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
    let result = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if result < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("TUNSETIFF {name}"));
    }
    Ok(file)
}

/// Both directions through the router: a reader per device queues each
/// packet with its due time, a writer per direction injects it into the
/// other device then. A constant delay keeps every direction in order.
fn tun_delay(a: &str, b: &str, delay: Duration) -> anyhow::Result<()> {
    let a = std::sync::Arc::new(open_tun(a)?);
    let b = std::sync::Arc::new(open_tun(b)?);
    let mut threads = Vec::new();
    for (from, to) in [(a.clone(), b.clone()), (b, a)] {
        let (queue, due) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
        threads.push(std::thread::spawn(move || {
            use std::io::Write;
            for (at, packet) in due {
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let _ = (&*to).write(&packet);
            }
        }));
        threads.push(std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = (&*from).read(&mut buf) {
                if queue
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    for thread in threads {
        let _ = thread.join();
    }
    bail!("a TUN device went away")
}

fn summary(rtts: &[Option<f64>], workload: &Workload) -> String {
    let mut got: Vec<f64> = rtts.iter().flatten().copied().collect();
    got.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let pick = |q: f64| {
        got.get(((got.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let avg = got.iter().sum::<f64>() / got.len().max(1) as f64;
    format!(
        "{{\"messages\": {}, \"echoed\": {}, \"avg_ms\": {avg:.2}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}, \"max_ms\": {:.2}, \"interval_ms\": {}, \"size\": {}}}",
        rtts.len(),
        got.len(),
        pick(0.5),
        pick(0.99),
        got.last().copied().unwrap_or(f64::NAN),
        workload.interval.as_millis(),
        workload.size
    )
}
