//! The reference repository's test.cpp workload, on simulated time: endpoint 1 sends
//! an 8-byte message (index, send time) every 20 ms, endpoint 2 echoes everything,
//! both are updated every millisecond, over test.h's lossy, jittery link.

use hearth_kcp::sim::LatencySimulator;
use hearth_kcp::{Config, Profile};

use crate::Engine;

/// The three modes of test.cpp, as the settings of each endpoint.
pub fn reference_mode(profile: Profile) -> (Config, Config) {
    let base = Config::profile(profile);
    let mut sender = base.clone();
    if profile == Profile::Fast {
        // test.cpp tightens only kcp1: `rx_minrto = 10; fastresend = 1`.
        sender.min_rto = 10;
        sender.fast_resend = 1;
    }
    (sender, base)
}

/// One run's figures, as test.cpp prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReport {
    pub echoes: u32,
    pub avg_rtt_ms: u32,
    pub max_rtt_ms: u32,
    /// Datagrams endpoint 1 handed to the network (test.cpp's `tx`).
    pub sender_datagrams: u64,
    pub echoer_datagrams: u64,
    pub elapsed_ms: u32,
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoFailure {
    OutOfOrder { expected: u32, got: u32 },
    Corrupted { index: u32 },
    TimedOut { echoes: u32, elapsed_ms: u32 },
}

/// Runs `echoes` round trips with engine `E` on the link of `seed`.
pub fn run_echo<E: Engine>(
    sender_config: &Config,
    echoer_config: &Config,
    seed: u64,
    echoes: u32,
) -> Result<EchoReport, EchoFailure> {
    const CONV: u32 = 0x1122_3344;
    let mut sim = LatencySimulator::reference_test(seed);
    let mut sender = E::create(CONV, sender_config);
    let mut echoer = E::create(CONV, echoer_config);
    let time_limit = echoes * 20 + 120_000;
    let mut now = 0u32;
    let mut next_send_at = 20u32;
    let mut sent = 0u32;
    let mut received = 0u32;
    let mut sum_rtt = 0u64;
    let mut max_rtt = 0u32;
    let mut buffer = Vec::with_capacity(2048);

    while received < echoes {
        now += 1;
        if now > time_limit {
            return Err(EchoFailure::TimedOut {
                echoes: received,
                elapsed_ms: now,
            });
        }
        sender.update(now, |datagram| sim.send(0, now, datagram));
        echoer.update(now, |datagram| sim.send(1, now, datagram));

        while next_send_at <= now {
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&sent.to_le_bytes());
            msg[4..].copy_from_slice(&now.to_le_bytes());
            sent += 1;
            assert!(sender.send(&msg), "{} refused an 8-byte message", E::NAME);
            next_send_at += 20;
        }
        while let Some(datagram) = sim.recv(1, now) {
            echoer.input(&datagram);
        }
        while let Some(datagram) = sim.recv(0, now) {
            sender.input(&datagram);
        }
        while echoer.recv_into(&mut buffer).is_some() {
            assert!(echoer.send(&buffer), "{} refused an echo", E::NAME);
        }
        while sender.recv_into(&mut buffer).is_some() {
            let [a, b, c, d, e, f, g, h] = buffer[..] else {
                return Err(EchoFailure::Corrupted { index: received });
            };
            let index = u32::from_le_bytes([a, b, c, d]);
            let sent_at = u32::from_le_bytes([e, f, g, h]);
            if index != received {
                return Err(EchoFailure::OutOfOrder {
                    expected: received,
                    got: index,
                });
            }
            let rtt = now - sent_at;
            received += 1;
            sum_rtt += u64::from(rtt);
            max_rtt = max_rtt.max(rtt);
        }
    }
    Ok(EchoReport {
        echoes,
        avg_rtt_ms: (sum_rtt / u64::from(echoes.max(1))) as u32,
        max_rtt_ms: max_rtt,
        sender_datagrams: sim.sent[0],
        echoer_datagrams: sim.sent[1],
        elapsed_ms: now,
    })
}
