//! Verifying client: sends numbered messages, checks every echoed byte, reports RTTs.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};

use anyhow::{bail, Context};
use hearth_kcp::Kcp;

use crate::clock::Clock;
use crate::pattern;
use crate::server::is_timeout;
use crate::settings::KcpArgs;

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub count: u32,
    pub size: usize,
    /// Messages in flight at once.
    pub window: usize,
    pub timeout_ms: u32,
}

/// Round-trip figures of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub count: u32,
    pub lost: u32,
    pub avg_ms: u32,
    pub p50_ms: u32,
    pub p99_ms: u32,
    pub max_ms: u32,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "count={} lost={} avg={}ms p50={}ms p99={}ms max={}ms",
            self.count, self.lost, self.avg_ms, self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

impl Report {
    fn from_rtts(count: u32, mut rtts: Vec<u32>) -> Self {
        rtts.sort_unstable();
        let percentile = |p: usize| {
            rtts.get((rtts.len() * p / 100).min(rtts.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        Self {
            count,
            lost: count - rtts.len() as u32,
            avg_ms: (rtts.iter().map(|&r| u64::from(r)).sum::<u64>() / rtts.len().max(1) as u64)
                as u32,
            p50_ms: percentile(50),
            p99_ms: percentile(99),
            max_ms: rtts.last().copied().unwrap_or(0),
        }
    }
}

/// Runs the plan against `server`. Fails on the first byte that differs; a run that
/// times out returns its report with `lost > 0`.
pub fn run(server: SocketAddr, args: &KcpArgs, plan: &ClientPlan) -> anyhow::Result<Report> {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()?;
    let socket = UdpSocket::bind(local).context("binding client socket")?;
    socket
        .connect(server)
        .with_context(|| format!("connecting to {server}"))?;
    let mut kcp = Kcp::new(args.conv, args.config())?;
    let clock = Clock::start();
    let mut sent_at: VecDeque<u32> = VecDeque::new();
    let mut next_to_send = 0u32;
    let mut next_to_check = 0u32;
    let mut rtts = Vec::with_capacity(plan.count as usize);
    let mut stream_bytes: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    let mut echoed = Vec::new();

    while next_to_check < plan.count {
        let now = clock.now_ms();
        if now > plan.timeout_ms {
            break;
        }
        while next_to_send < plan.count && sent_at.len() < plan.window {
            kcp.send(&pattern::message(next_to_send, plan.size))?;
            sent_at.push_back(now);
            next_to_send += 1;
        }
        kcp.update(now);
        for datagram in kcp.drain_transmits() {
            socket.send(datagram).context("sending")?;
        }
        socket.set_read_timeout(Some(clock.wait_until(kcp.check(clock.now_ms()))))?;
        loop {
            match socket.recv(&mut buffer) {
                Ok(len) => {
                    if let Err(error) = kcp.input(&buffer[..len]) {
                        eprintln!("kcp-peer client: dropped a datagram: {error}");
                    }
                    socket.set_nonblocking(true)?;
                }
                Err(error) if is_timeout(&error) => break,
                Err(error) => return Err(error).context("receiving"),
            }
        }
        socket.set_nonblocking(false)?;
        let now = clock.now_ms();
        while kcp.recv_into(&mut echoed).is_some() {
            if args.stream {
                stream_bytes.extend_from_slice(&echoed);
            } else {
                check_echo(next_to_check, plan.size, &echoed)?;
                rtts.push(now - sent_at.pop_front().expect("echo of a sent message"));
                next_to_check += 1;
            }
        }
        while args.stream && stream_bytes.len() >= plan.size && next_to_check < plan.count {
            check_echo(next_to_check, plan.size, &stream_bytes[..plan.size])?;
            stream_bytes.drain(..plan.size);
            rtts.push(now - sent_at.pop_front().expect("echo of a sent message"));
            next_to_check += 1;
        }
    }
    Ok(Report::from_rtts(plan.count, rtts))
}

fn check_echo(index: u32, size: usize, echoed: &[u8]) -> anyhow::Result<()> {
    let expected = pattern::message(index, size);
    if echoed != expected {
        let at = echoed.iter().zip(&expected).position(|(a, b)| a != b);
        bail!(
            "echo of message {index} differs: {} bytes back, {} expected, first difference at {at:?}",
            echoed.len(),
            expected.len()
        );
    }
    Ok(())
}
