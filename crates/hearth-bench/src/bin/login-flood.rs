//! `login-flood ADDR [--legit N] [--flooders F] [--secs S] [--rate R]`: how
//! many legitimate logins a Hearth UDP server completes, alone and during a
//! flood of handshake Initials from many addresses.
//!
//! Two phases of `--secs` each. In both, `--legit` clients loop: a fresh
//! socket and session, the whole handshake and login (Joined), then a clean
//! close; a login that has not joined within 5 s fails. In the second phase,
//! `--flooders` sockets bound to distinct loopback addresses (127.3.x.y) send
//! Initials with fresh keys as fast as one thread can, and never answer a
//! challenge, exactly as a flood with spoofed sources looks to the server
//! (on loopback the replies can be counted: that is the server's challenge
//! rate). Prints one JSON object per phase.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hearth_bench::session_io::{Link, SessionIo};
use hearth_proto::handshake::{HandshakePacket, Mode, PROTOCOL_VERSION};

#[derive(Parser)]
struct Args {
    addr: SocketAddr,
    /// Legitimate clients logging in, each in a loop.
    #[arg(long, default_value_t = 16)]
    legit: usize,
    /// Flood sockets, each on its own loopback address.
    #[arg(long, default_value_t = 256)]
    flooders: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Cap on flood Initials per second (0: as fast as one thread sends).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

const LOGIN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Logins {
    attempts: u64,
    joined: u64,
    failures: std::collections::BTreeMap<String, u64>,
    micros: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = hearth_bench::runtime();
    let quiet = runtime.block_on(logins(&args));
    print_phase("quiet", &args, &quiet, None);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let flood = {
        let sockets = flood_sockets(args.flooders)?;
        let (stop, sent, answered, addr, rate) = (
            stop.clone(),
            sent.clone(),
            answered.clone(),
            args.addr,
            args.rate,
        );
        std::thread::spawn(move || flood(&sockets, addr, rate, &stop, &sent, &answered))
    };
    // Let the flood reach its pace before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let (sent_before, answered_before) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let flooded = runtime.block_on(logins(&args));
    let elapsed = started.elapsed().as_secs_f64();
    let flood_rates = (
        (sent.load(Ordering::Relaxed) - sent_before) as f64 / elapsed,
        (answered.load(Ordering::Relaxed) - answered_before) as f64 / elapsed,
    );
    stop.store(true, Ordering::Relaxed);
    let _ = flood.join();
    print_phase("flood", &args, &flooded, Some(flood_rates));
    Ok(())
}

/// `--legit` clients logging in and out in a loop for `--secs`.
async fn logins(args: &Args) -> Logins {
    let tally = Arc::new(Mutex::new(Logins::default()));
    let end = Instant::now() + Duration::from_secs_f64(args.secs);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.legit {
        let (tally, addr) = (tally.clone(), args.addr);
        tasks.spawn(async move {
            while Instant::now() < end {
                let began = Instant::now();
                let outcome = match SessionIo::connect(Link::Udp, addr, index).await {
                    Ok(mut io) => match io.join(LOGIN_DEADLINE).await {
                        Ok(()) => {
                            io.client.close(Instant::now(), 0, "login-flood: done");
                            let _ = io.flush().await;
                            Ok(began.elapsed())
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                let mut tally = tally.lock().expect("not poisoned");
                tally.attempts += 1;
                match outcome {
                    Ok(took) => {
                        tally.joined += 1;
                        tally.micros.push(took.as_micros() as u64);
                    }
                    Err(e) => *tally.failures.entry(e.to_string()).or_default() += 1,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(tally)
        .ok()
        .expect("every task ended")
        .into_inner()
        .expect("not poisoned")
}

fn print_phase(phase: &str, args: &Args, logins: &Logins, flood: Option<(f64, f64)>) {
    let mut micros = logins.micros.clone();
    micros.sort_unstable();
    let pick = |q: f64| {
        micros
            .get(((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1)))
            .map_or(0.0, |&us| us as f64 / 1000.0)
    };
    let failures: Vec<String> = logins
        .failures
        .iter()
        .map(|(why, n)| format!("{{\"reason\": {why:?}, \"count\": {n}}}"))
        .collect();
    let (sent, answered) = flood.unwrap_or((0.0, 0.0));
    println!(
        "{{\"phase\": \"{phase}\", \"legit_clients\": {}, \"attempts\": {}, \"joined\": {}, \
         \"success_share\": {:.4}, \"logins_per_s\": {:.1}, \"login_p50_ms\": {:.2}, \
         \"login_p99_ms\": {:.2}, \"login_max_ms\": {:.2}, \"flood_initials_per_s\": {sent:.0}, \
         \"flood_challenges_per_s\": {answered:.0}, \"failures\": [{}]}}",
        args.legit,
        logins.attempts,
        logins.joined,
        logins.joined as f64 / logins.attempts.max(1) as f64,
        logins.joined as f64 / args.secs,
        pick(0.5),
        pick(0.99),
        micros.last().map_or(0.0, |&us| us as f64 / 1000.0),
        failures.join(", ")
    );
}

/// Non-blocking sockets on 127.3.0.1, 127.3.0.2, ...: one source address each.
fn flood_sockets(count: usize) -> anyhow::Result<Vec<StdUdpSocket>> {
    (0..count)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 3, (i / 250) as u8, (i % 250 + 1) as u8);
            let socket = StdUdpSocket::bind((ip, 0))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect()
}

/// Sends Initials round robin over the sockets (a fresh key each time, as a
/// spoofer would) and counts the Challenges that come back, until `stop`.
fn flood(
    sockets: &[StdUdpSocket],
    to: SocketAddr,
    rate: u64,
    stop: &AtomicBool,
    sent: &AtomicU64,
    answered: &AtomicU64,
) {
    let mut key = [0u8; 32];
    let mut buf = [0u8; 2048];
    let started = Instant::now();
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for socket in sockets {
            count += 1;
            key[..8].copy_from_slice(&count.to_le_bytes());
            let initial = HandshakePacket::Initial {
                version: PROTOCOL_VERSION,
                mode: Mode::New,
                client_public: key,
            }
            .to_vec();
            if socket.send_to(&initial, to).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            while socket.recv_from(&mut buf).is_ok() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
        if rate > 0 {
            let due = Duration::from_secs_f64(count as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}
