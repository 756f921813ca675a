//! Echo server: every message (or, in stream mode, every chunk) goes back as it came.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};

use anyhow::Context;
use hearth_kcp::{peek_conv, Kcp};

use crate::clock::Clock;
use crate::settings::KcpArgs;

/// Sessions kept at once; a datagram from one more new peer is dropped.
const MAX_SESSIONS: usize = 4096;
/// A session silent this long is forgotten.
const IDLE_MS: u32 = 60_000;

struct Session {
    kcp: Kcp,
    last_heard: u32,
}

pub fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    UdpSocket::bind(addr).with_context(|| format!("binding UDP {addr}"))
}

/// Serves until an IO error; sessions are keyed by peer address and conversation.
pub fn serve(socket: UdpSocket, args: &KcpArgs) -> anyhow::Result<()> {
    let config = args.config();
    eprintln!(
        "kcp-peer server: echoing on {} (profile {:?})",
        socket.local_addr()?,
        args.profile
    );
    let clock = Clock::start();
    let mut sessions: HashMap<(SocketAddr, u32), Session> = HashMap::new();
    let mut buffer = vec![0u8; 65_536];
    let mut message = Vec::new();
    let mut rejected = 0u64;
    loop {
        let deadline = sessions.values().map(|s| s.kcp.check(clock.now_ms())).min();
        socket.set_read_timeout(Some(
            clock.wait_until(deadline.unwrap_or(clock.now_ms() + 10)),
        ))?;
        let now = clock.now_ms();
        match socket.recv_from(&mut buffer) {
            Ok((len, from)) => {
                let datagram = &buffer[..len];
                let Some(conv) = peek_conv(datagram) else {
                    rejected += 1;
                    continue;
                };
                let key = (from, conv);
                if !sessions.contains_key(&key) && sessions.len() >= MAX_SESSIONS {
                    rejected += 1;
                    continue;
                }
                let session = sessions.entry(key).or_insert_with(|| Session {
                    kcp: Kcp::new(conv, config.clone()).expect("validated config"),
                    last_heard: now,
                });
                if let Err(error) = session.kcp.input(datagram) {
                    rejected += 1;
                    eprintln!("kcp-peer server: {from}: {error} ({rejected} rejected so far)");
                    continue;
                }
                session.last_heard = now;
                while session.kcp.recv_into(&mut message).is_some() {
                    if let Err(error) = session.kcp.send(&message) {
                        eprintln!("kcp-peer server: {from}: cannot echo: {error}");
                    }
                }
            }
            Err(error) if is_timeout(&error) => {}
            Err(error) => return Err(error).context("receiving"),
        }
        let now = clock.now_ms();
        sessions.retain(|_, session| now.wrapping_sub(session.last_heard) < IDLE_MS);
        for (&(peer, _), session) in sessions.iter_mut() {
            session.kcp.update(now);
            for datagram in session.kcp.drain_transmits() {
                socket.send_to(datagram, peer).context("sending")?;
            }
        }
    }
}

pub fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
