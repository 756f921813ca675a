//! `echo-load MODE ADDR [--conns N] [--secs S] [--warmup S] [--size B]
//! [--json] [--deflate]`: N connections, one message in flight each, against
//! an echo server. Prints one line: `rate=<msgs/s> p50_us=<..> p99_us=<..>
//! lost=<..> load_cpu_us=<..>` (this process's CPU time per echoed message
//! in the window), and for `ws` the bytes each message took on the wire
//! (`up_B`, client to server, and `down_B`, frames included).
//!
//! `--json`: JSON-like game state (varying numbers and names) instead of one
//! repeated byte, which deflate would shrink to nothing. `--deflate` (ws
//! only): offer permessage-deflate; the server decides (ws-echo accepts).
//!
//! Modes: ws (any WebSocket echo), udp-bare, tcp-bare, udp-session
//! (Hearth's session path: handshake, AEAD, unreliable channel),
//! udp-session-reliable (the same over KCP), tcp-session (framing + session).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hearth_bench::session_io::{Link, SessionIo};
use hearth_net::ws::{DeflateConfig, Limits, Message, WebSocket};
use hearth_proto::{ChannelKind, ChannelSpec, Delivery, Event};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Parser, Clone)]
struct Args {
    mode: String,
    addr: SocketAddr,
    #[arg(long, default_value_t = 100)]
    conns: usize,
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// JSON-like payloads instead of a repeated byte.
    #[arg(long)]
    json: bool,
    /// ws: offer permessage-deflate.
    #[arg(long)]
    deflate: bool,
}

/// Shared clock of the run: record only inside the measuring window.
struct Window {
    measuring: AtomicBool,
    done: AtomicBool,
    lost: AtomicU64,
    /// ws: bytes on the wire after the handshake, and messages echoed.
    wire_up: AtomicU64,
    wire_down: AtomicU64,
    echoed: AtomicU64,
}

/// Waiting longer than this for an unreliable echo counts it lost and resends.
const LOSS_TIMEOUT: Duration = Duration::from_millis(250);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    hearth_bench::runtime().block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let window = Arc::new(Window {
        measuring: AtomicBool::new(false),
        done: AtomicBool::new(false),
        lost: AtomicU64::new(0),
        wire_up: AtomicU64::new(0),
        wire_down: AtomicU64::new(0),
        echoed: AtomicU64::new(0),
    });
    let mut tasks = Vec::new();
    for index in 0..args.conns {
        let (args, window) = (args.clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            let result = match args.mode.as_str() {
                "ws" => ws(&args, &window).await,
                "udp-bare" => udp_bare(&args, &window).await,
                "tcp-bare" => tcp_bare(&args, &window).await,
                "udp-session" => {
                    session(&args, &window, Link::Udp, Delivery::Unreliable, index).await
                }
                "udp-session-reliable" => {
                    session(&args, &window, Link::Udp, Delivery::ReliableOrdered, index).await
                }
                "tcp-session" => {
                    session(&args, &window, Link::Tcp, Delivery::ReliableOrdered, index).await
                }
                other => bail!("unknown mode {other}"),
            };
            result.with_context(|| format!("connection {index}"))
        }));
        // Do not hit the accept queue with every connection at once.
        if index % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    window.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let cpu_started = hearth_bench::process::cpu_seconds(std::process::id());
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    window.measuring.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed();
    let cpu_ended = hearth_bench::process::cpu_seconds(std::process::id());
    window.done.store(true, Ordering::SeqCst);
    let mut latencies: Vec<u32> = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let echoed = window.echoed.load(Ordering::Relaxed);
    let wire = if echoed > 0 {
        let per = |bytes: &AtomicU64| bytes.load(Ordering::Relaxed) as f64 / echoed as f64;
        format!(
            " up_B={:.1} down_B={:.1}",
            per(&window.wire_up),
            per(&window.wire_down)
        )
    } else {
        String::new()
    };
    // The load generator's own CPU per echoed message in the window: on a
    // machine it shares with the server, it bounds what the server can show.
    let load_cpu = match (cpu_started, cpu_ended) {
        (Some(before), Some(after)) if !latencies.is_empty() => format!(
            " load_cpu_us={:.2}",
            (after - before) * 1e6 / latencies.len() as f64
        ),
        _ => String::new(),
    };
    println!(
        "rate={:.0} p50_us={} p99_us={} lost={} conns={} size={}{wire}{load_cpu}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pick(0.50),
        pick(0.99),
        window.lost.load(Ordering::Relaxed),
        args.conns,
        args.size
    );
    Ok(())
}

/// Payloads to cycle through: one repeated byte, or (`--json`) 64 distinct
/// game-state-like documents of exactly `size` bytes.
fn payloads(args: &Args) -> Vec<Vec<u8>> {
    if !args.json {
        return vec![vec![0x5Au8; args.size]];
    }
    let names = ["ember", "ash", "cinder", "flint", "spark", "tinder", "coal"];
    let mut state: u32 = 0x2545_F491;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    (0..64)
        .map(|tick| {
            let mut text = format!("{{\"tick\":{tick},\"entities\":[");
            while text.len() < args.size {
                let r = next();
                text.push_str(&format!(
                    "{{\"id\":{},\"name\":\"{}\",\"x\":{}.{},\"y\":{}.{},\"hp\":{}}},",
                    r % 5000,
                    names[(r >> 8) as usize % names.len()],
                    (r >> 4) % 1000,
                    r % 10,
                    (r >> 12) % 1000,
                    (r >> 2) % 10,
                    (r >> 20) % 100
                ));
            }
            let mut bytes = text.into_bytes();
            bytes.truncate(args.size);
            bytes
        })
        .collect()
}

/// A TCP stream counting the bytes that cross it.
struct Counted {
    inner: TcpStream,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.down.fetch_add(read, Ordering::Relaxed);
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &result {
            self.up.fetch_add(*written as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn record(window: &Window, latencies: &mut Vec<u32>, started: Instant) {
    if window.measuring.load(Ordering::Relaxed) {
        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
}

async fn ws(args: &Args, window: &Window) -> anyhow::Result<Vec<u32>> {
    let tcp = TcpStream::connect(args.addr).await?;
    tcp.set_nodelay(true)?;
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let counted = Counted {
        inner: tcp,
        up: up.clone(),
        down: down.clone(),
    };
    let deflate = DeflateConfig {
        enabled: args.deflate,
        ..DeflateConfig::default()
    };
    let host = args.addr.to_string();
    let (mut socket, _) =
        WebSocket::connect_with_deflate(counted, &host, "/", &[], Limits::default(), deflate)
            .await?;
    if args.deflate && !socket.protocol().deflate_enabled() {
        bail!("the server declined permessage-deflate");
    }
    let handshake = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
    let payloads = payloads(args);
    let mut latencies = Vec::new();
    let mut echoed = 0u64;
    while !window.done.load(Ordering::Relaxed) {
        let payload = &payloads[echoed as usize % payloads.len()];
        let started = Instant::now();
        socket.send_binary(payload).await?;
        match socket.recv().await? {
            Some(Message::Binary(echo)) if echo == payload[..] => {}
            other => bail!("unexpected answer {other:?}"),
        }
        echoed += 1;
        record(window, &mut latencies, started);
    }
    window.echoed.fetch_add(echoed, Ordering::Relaxed);
    let up = up.load(Ordering::Relaxed) - handshake.0;
    window.wire_up.fetch_add(up, Ordering::Relaxed);
    let down = down.load(Ordering::Relaxed) - handshake.1;
    window.wire_down.fetch_add(down, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(1000, "done")).await;
    Ok(latencies)
}

async fn udp_bare(args: &Args, window: &Window) -> anyhow::Result<Vec<u32>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(args.addr).await?;
    let payload = vec![0x5Au8; args.size];
    let mut buf = vec![0u8; 2048];
    let mut latencies = Vec::new();
    while !window.done.load(Ordering::Relaxed) {
        let started = Instant::now();
        socket.send(&payload).await?;
        match tokio::time::timeout(LOSS_TIMEOUT, socket.recv(&mut buf)).await {
            Ok(received) => {
                received?;
                record(window, &mut latencies, started);
            }
            Err(_) => {
                window.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(latencies)
}

async fn tcp_bare(args: &Args, window: &Window) -> anyhow::Result<Vec<u32>> {
    let mut stream = TcpStream::connect(args.addr).await?;
    stream.set_nodelay(true)?;
    let payload = vec![0x5Au8; args.size];
    let mut buf = vec![0u8; args.size];
    let mut latencies = Vec::new();
    while !window.done.load(Ordering::Relaxed) {
        let started = Instant::now();
        stream.write_all(&payload).await?;
        stream.read_exact(&mut buf).await?;
        record(window, &mut latencies, started);
    }
    Ok(latencies)
}

async fn session(
    args: &Args,
    window: &Window,
    link: Link,
    delivery: Delivery,
    index: usize,
) -> anyhow::Result<Vec<u32>> {
    let mut io = SessionIo::connect(link, args.addr, index).await?;
    io.join(Duration::from_secs(15)).await?;
    io.client
        .open_channel(
            Instant::now(),
            1,
            ChannelSpec::new(ChannelKind::Game, delivery),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = vec![0x5Au8; args.size];
    let mut latencies = Vec::new();
    while !window.done.load(Ordering::Relaxed) {
        let started = Instant::now();
        io.client
            .send(started, 1, &payload)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        io.flush().await?;
        let give_up = started + LOSS_TIMEOUT;
        let mut echoed = false;
        while !echoed && Instant::now() < give_up {
            io.step(give_up).await?;
            while let Some(event) = io.client.poll_event() {
                match event {
                    Event::Message { .. } => echoed = true,
                    Event::Closed(reason) => bail!("closed: {reason}"),
                    _ => {}
                }
            }
        }
        if echoed {
            record(window, &mut latencies, started);
        } else {
            window.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(latencies)
}
