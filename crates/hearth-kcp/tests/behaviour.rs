//! The engine's observable behaviour: errors, limits, timers, probing, statistics.

mod common;

use common::{run_until, Link};
use hearth_kcp::{Command, Config, Header, InputError, Kcp, Profile, SendError};

fn pair(config: Config) -> [Kcp; 2] {
    [
        Kcp::new(1, config.clone()).unwrap(),
        Kcp::new(1, config).unwrap(),
    ]
}

fn drain_all(kcp: &mut Kcp) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| kcp.recv()).collect()
}

#[test]
fn messages_of_every_size_up_to_the_fragment_limit_arrive_intact() {
    let mut ends = pair(Config::default());
    let mss = Config::default().mss();
    let sizes = [0, 1, mss - 1, mss, mss + 1, 10 * mss, 127 * mss];
    let sent: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7) as u8).collect())
        .collect();
    for msg in &sent {
        ends[0].send(msg).unwrap();
    }
    let mut got = Vec::new();
    run_until(&mut Link::perfect(), &mut ends, 0, 20_000, |ends| {
        got.extend(drain_all(&mut ends[1]));
        got.len() == sent.len()
    })
    .expect("all delivered");
    assert_eq!(got, sent);
}

#[test]
fn too_many_fragments_is_refused_and_nothing_is_queued() {
    let mut kcp = Kcp::new(1, Config::default()).unwrap();
    let too_big = vec![0u8; 128 * Config::default().mss()];
    assert!(matches!(
        kcp.send(&too_big),
        Err(SendError::TooManyFragments {
            fragments: 128,
            limit: 127,
            ..
        })
    ));
    assert_eq!(kcp.waiting_to_send(), 0);
    let config = Config {
        max_message_size: 1000,
        large_messages: true,
        ..Config::default()
    };
    let mut kcp = Kcp::new(1, config).unwrap();
    assert_eq!(
        kcp.send(&[0; 1001]),
        Err(SendError::TooLarge {
            len: 1001,
            limit: 1000
        })
    );
    // A limit below one segment holds for one-segment messages too, in both modes.
    for stream in [false, true] {
        let config = Config {
            max_message_size: 10,
            stream,
            ..Config::default()
        };
        let mut kcp = Kcp::new(1, config).unwrap();
        assert_eq!(
            kcp.send(&[0; 11]),
            Err(SendError::TooLarge { len: 11, limit: 10 })
        );
        kcp.send(&[0; 10]).unwrap();
        assert_eq!(kcp.waiting_to_send(), 1);
    }
}

#[test]
fn large_messages_cross_a_lossy_link_when_both_sides_opt_in() {
    let config = Config {
        large_messages: true,
        ..Config::profile(Profile::Fast)
    };
    let mut ends = pair(config);
    // 1000 fragments: eight times ikcp.c's limit and larger than the receive window.
    let big: Vec<u8> = (0..1000 * 1376).map(|i: usize| (i % 251) as u8).collect();
    ends[0].send(&big).unwrap();
    ends[0].send(b"after").unwrap();
    let mut got = Vec::new();
    let mut link = Link::new(5, 10, 2, 40);
    run_until(&mut link, &mut ends, 0, 120_000, |ends| {
        got.extend(drain_all(&mut ends[1]));
        got.len() == 2
    })
    .expect("large message delivered");
    assert!(got[0] == big, "large message corrupted");
    assert_eq!(got[1], b"after");
}

#[test]
fn bad_datagrams_get_typed_errors_counters_and_change_nothing() {
    let mut kcp = Kcp::new(7, Config::default()).unwrap();
    let mut good = Vec::new();
    Header {
        conv: 7,
        cmd: Command::Push,
        frg: 0,
        wnd: 128,
        ts: 0,
        sn: 0,
        una: 0,
        len: 3,
    }
    .encode(&mut good);
    good.extend_from_slice(b"abc");

    assert_eq!(
        kcp.input(&good[..23]),
        Err(InputError::Truncated { len: 23 })
    );
    let mut wrong_conv = good.clone();
    wrong_conv[0] = 8;
    assert_eq!(
        kcp.input(&wrong_conv),
        Err(InputError::ConvMismatch {
            expected: 7,
            got: 8
        })
    );
    assert_eq!(
        kcp.input(&good[..26]),
        Err(InputError::BadLength {
            claimed: 3,
            available: 2
        })
    );
    let mut unknown = good.clone();
    unknown[4] = 0;
    assert_eq!(kcp.input(&unknown), Err(InputError::UnknownCommand(0)));
    assert_eq!(
        kcp.recv(),
        None,
        "nothing from a refused datagram is delivered"
    );

    let stats = kcp.stats();
    assert_eq!(
        (
            stats.rejected_truncated,
            stats.rejected_conv,
            stats.rejected_length,
            stats.rejected_command
        ),
        (1, 1, 1, 1)
    );
    kcp.input(&good).unwrap();
    assert_eq!(kcp.recv().as_deref(), Some(&b"abc"[..]));
}

#[test]
fn an_oversized_incoming_message_is_discarded_and_the_session_goes_on() {
    let sender = Config {
        large_messages: true,
        ..Config::default()
    };
    let receiver = Config {
        large_messages: true,
        max_message_size: 5000,
        ..Config::default()
    };
    let mut ends = [Kcp::new(1, sender).unwrap(), Kcp::new(1, receiver).unwrap()];
    ends[0].send(&vec![1u8; 20_000]).unwrap();
    ends[0].send(b"small").unwrap();
    let mut got = Vec::new();
    let mut errors = 0;
    for now in 0..10_000 {
        for end in ends.iter_mut() {
            end.update(now);
        }
        let wire: Vec<Vec<u8>> = ends[0].drain_transmits().map(<[u8]>::to_vec).collect();
        for datagram in wire {
            if let Err(error) = ends[1].input(&datagram) {
                assert_eq!(error, InputError::MessageTooLarge { limit: 5000 });
                errors += 1;
            }
        }
        let wire: Vec<Vec<u8>> = ends[1].drain_transmits().map(<[u8]>::to_vec).collect();
        for datagram in wire {
            ends[0].input(&datagram).unwrap();
        }
        got.extend(drain_all(&mut ends[1]));
    }
    assert_eq!(errors, 1);
    assert_eq!(ends[1].stats().oversized_messages, 1);
    assert_eq!(got, vec![b"small".to_vec()]);
}

#[test]
fn a_silent_peer_is_declared_dead_after_dead_link_transmissions() {
    let config = Config {
        dead_link: 5,
        ..Config::profile(Profile::Fast)
    };
    let mut ends = pair(config);
    let mut link = Link::perfect();
    link.cut[0] = true;
    ends[0].send(b"anyone?").unwrap();
    let died_at =
        run_until(&mut link, &mut ends, 0, 60_000, |ends| ends[0].is_dead()).expect("dead");
    assert!(died_at < 5_000, "took {died_at} ms");
    let stats = ends[0].stats();
    assert_eq!(stats.lost_segments, 4, "four timeouts after the first send");
}

#[test]
fn exact_rto_retransmits_at_the_deadline_not_the_next_tick() {
    // As in ikcp.c the congestion window starts at 0, so the first send waits for the
    // 100 ms tick. First RTO 200 + 200/8 = 225 ms: ikcp.c resends at the 400 ms tick,
    // Hearth at 325 ms.
    for (exact, expected) in [(true, 325), (false, 400)] {
        let config = Config {
            exact_rto: exact,
            ..Config::default()
        };
        let mut ends = pair(config);
        let mut link = Link::perfect();
        link.cut[0] = true;
        ends[0].send(b"x").unwrap();
        let mut sends = Vec::new();
        for now in 0..500 {
            let emitted = link.step(&mut ends, now);
            if emitted[0] > 0 {
                sends.push(now);
            }
        }
        assert_eq!(sends[..2], [100, expected], "exact_rto = {exact}");
    }
}

#[test]
fn immediate_ack_answers_at_the_next_update_not_the_next_tick() {
    for (immediate, expected) in [(true, 1), (false, 100)] {
        let config = Config {
            immediate_ack: immediate,
            ..Config::default()
        };
        let mut ends = pair(config);
        for end in ends.iter_mut() {
            end.update(0);
        }
        ends[0].send(b"ping").unwrap();
        ends[0].flush();
        let wire: Vec<Vec<u8>> = ends[0].drain_transmits().map(<[u8]>::to_vec).collect();
        for datagram in wire {
            ends[1].input(&datagram).unwrap();
        }
        assert_eq!(ends[1].check(1) == 1, immediate);
        let acked_at = (1..=200).find(|&now| {
            ends[1].update(now);
            ends[1].has_transmits()
        });
        assert_eq!(acked_at, Some(expected), "immediate_ack = {immediate}");
    }
}

#[test]
fn a_closed_window_is_probed_and_reopens_when_the_reader_catches_up() {
    let config = Config {
        send_window: 256,
        receive_window: 128,
        ..Config::profile(Profile::Normal)
    };
    let mut ends = pair(config);
    let mut link = Link::perfect();
    for i in 0..300u32 {
        ends[0].send(&i.to_le_bytes()).unwrap();
    }
    // The receiver reads nothing: after 128 segments its window is shut.
    run_until(&mut link, &mut ends, 0, 5_000, |ends| {
        ends[0].stats().remote_window == 0
    })
    .expect("window closes");
    assert_eq!(ends[1].stats().receive_window_free, 0);
    let got = drain_all(&mut ends[1]);
    assert_eq!(got.len(), 128);
    // Reading announces the window at once (WINS) and the rest flows.
    let mut rest = Vec::new();
    run_until(&mut link, &mut ends, 5_000, 30_000, |ends| {
        rest.extend(drain_all(&mut ends[1]));
        rest.len() == 172
    })
    .expect("transfer resumes");
    assert_eq!(u32::from_le_bytes(rest[171][..].try_into().unwrap()), 299);
}

#[test]
fn a_lost_window_update_is_recovered_by_probing() {
    let config = Config {
        send_window: 256,
        ..Config::profile(Profile::Normal)
    };
    let mut ends = pair(config);
    let mut link = Link::perfect();
    for i in 0..200u32 {
        ends[0].send(&i.to_le_bytes()).unwrap();
    }
    run_until(&mut link, &mut ends, 0, 5_000, |ends| {
        ends[0].stats().remote_window == 0
    })
    .unwrap();
    // The reader catches up while the link back is cut: the WINS is lost.
    link.cut[1] = true;
    let first = drain_all(&mut ends[1]);
    for now in 5_000..5_100 {
        link.step(&mut ends, now);
    }
    link.cut[1] = false;
    let mut rest = Vec::new();
    let done = run_until(&mut link, &mut ends, 5_100, 60_000, |ends| {
        rest.extend(drain_all(&mut ends[1]));
        first.len() + rest.len() == 200
    });
    // The sender probes after 7 s (ikcp.c's PROBE_INIT) and learns the window.
    let done = done.expect("probe reopens the window");
    assert!(
        (5_000 + 7_000..5_000 + 20_000).contains(&done),
        "reopened at {done}"
    );
}

#[test]
fn stream_mode_coalesces_small_writes() {
    let config = Config {
        stream: true,
        ..Config::default()
    };
    let mut ends = pair(config);
    for _ in 0..100 {
        ends[0].send(b"0123456789").unwrap();
    }
    let mut bytes = Vec::new();
    run_until(&mut Link::perfect(), &mut ends, 0, 5_000, |ends| {
        while let Some(chunk) = ends[1].recv() {
            bytes.extend(chunk);
        }
        bytes.len() == 1000
    })
    .unwrap();
    assert_eq!(bytes, b"0123456789".repeat(100));
    assert_eq!(
        ends[0].stats().segments_sent,
        1,
        "1000 bytes fit one 1376-byte segment"
    );
}

#[test]
fn statistics_track_loss_and_round_trip_time() {
    let mut ends = pair(Config::profile(Profile::Fast));
    let mut link = Link::new(11, 20, 0, 0);
    let mut got = 0;
    let mut now = 0;
    for i in 0..500u32 {
        ends[0].send(&i.to_le_bytes()).unwrap();
        for _ in 0..10 {
            link.step(&mut ends, now);
            now += 1;
            got += drain_all(&mut ends[1]).len();
        }
    }
    run_until(&mut link, &mut ends, now, 10_000, |ends| {
        got += drain_all(&mut ends[1]).len();
        got == 500
    })
    .unwrap();
    let stats = ends[0].stats();
    assert!(stats.retransmits > 50, "{stats:?}");
    assert!(stats.fast_retransmits > 0, "{stats:?}");
    assert_eq!(stats.segments_sent, 500);
    assert!(
        stats.srtt_ms <= 5,
        "zero-delay link, srtt {}",
        stats.srtt_ms
    );
    assert!(stats.datagrams_out > 0 && stats.bytes_out > 0);
}

#[test]
fn check_never_sleeps_past_the_next_deadline() {
    let mut kcp = Kcp::new(1, Config::default()).unwrap();
    assert_eq!(kcp.check(5), 5, "never updated: update now");
    kcp.update(0);
    let next = kcp.check(1);
    assert!((1..=100).contains(&next), "next {next}");
    kcp.send(b"x").unwrap();
    kcp.update(100);
    // First RTO: 200 + 25 after 100.
    let mut now = 101;
    loop {
        let next = kcp.check(now);
        assert!(next >= now && next - now <= 100);
        if next >= 325 {
            break;
        }
        now = next + 1;
        kcp.update(now);
    }
}

#[test]
fn an_ack_echoing_an_ancient_timestamp_cannot_overflow_the_rtt_estimate() {
    // Found by the fuzzer: rtt = now - ts close to 2^31 overflowed `7 * srtt + rtt`.
    let mut kcp = Kcp::new(1, Config::default()).unwrap();
    kcp.update(0x7fff_0000);
    for ts in [0, 1, 0x8000_0000, 5] {
        let mut ack = Vec::new();
        Header {
            conv: 1,
            cmd: Command::Ack,
            frg: 0,
            wnd: 128,
            ts,
            sn: 0,
            una: 0,
            len: 0,
        }
        .encode(&mut ack);
        kcp.input(&ack).unwrap();
    }
    let stats = kcp.stats();
    assert!(stats.rto_ms <= 60_000, "{stats:?}");
}

#[test]
fn a_link_dead_for_weeks_keeps_sane_retransmission_deadlines() {
    // The longest interval, so that walking weeks of simulated time stays quick.
    let mut kcp = Kcp::new(
        1,
        Config {
            interval: 5000,
            ..Config::default()
        },
    )
    .unwrap();
    kcp.update(0);
    kcp.send(b"lost forever").unwrap();
    let (mut now, mut elapsed) = (0u32, 0u64);
    let mut send_times = Vec::new();
    // Jump from deadline to deadline through 40 timeouts, RTO doubling each time; the
    // wrapping millisecond clock goes round several times.
    while send_times.len() < 40 {
        let next = kcp.check(now);
        let step = next.wrapping_sub(now).max(1);
        now = now.wrapping_add(step);
        elapsed += u64::from(step);
        kcp.update(now);
        if kcp.drain_transmits().count() > 0 {
            send_times.push(elapsed);
        }
    }
    let gaps: Vec<u64> = send_times
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .collect();
    // A wrapped timeout would resend at every tick: gaps must keep growing to the cap.
    for pair in gaps[10..].windows(2) {
        assert!(pair[1] >= pair[0], "gaps shrank: {gaps:?}");
    }
    assert!(*gaps.last().unwrap() <= (1 << 30) + 100, "{gaps:?}");
    assert!(kcp.is_dead());
}

#[test]
fn redundant_copies_recover_a_lost_datagram_without_waiting_for_a_resend() {
    // One small message every 20 ms; the first datagram of every message is
    // lost on the way. With two copies 5 ms apart each arrives 5 ms late and
    // nothing is retransmitted; without them each waits for a resend.
    let latencies = |copies: u8| {
        let mut config = Config::profile(Profile::Fast);
        config.redundant_copies = copies;
        config.redundant_gap_ms = 5;
        let [mut sender, mut receiver] = pair(config);
        let mut latencies = Vec::new();
        let mut sent_at = Vec::new();
        // Messages for 1.8 s, then time for the last resends to arrive.
        for now in 0..20_000u32 {
            if now % 20 == 0 && now < 1_800 {
                sender.send(&now.to_be_bytes()).unwrap();
                sent_at.push(now);
                sender.update(now);
                // The message's first transmission is lost.
                let _lost: Vec<_> = sender.drain_transmits().map(<[u8]>::to_vec).collect();
            }
            sender.update(now);
            let outgoing: Vec<Vec<u8>> = sender.drain_transmits().map(<[u8]>::to_vec).collect();
            for datagram in outgoing {
                receiver.input(&datagram).unwrap();
            }
            receiver.update(now);
            while let Some(message) = receiver.recv() {
                let sent = u32::from_be_bytes(message[..4].try_into().unwrap());
                latencies.push(now - sent);
            }
            let acks: Vec<Vec<u8>> = receiver.drain_transmits().map(<[u8]>::to_vec).collect();
            for datagram in acks {
                sender.input(&datagram).unwrap();
            }
        }
        assert_eq!(latencies.len(), sent_at.len(), "every message arrives");
        (latencies, sender.stats())
    };
    let (with_copies, stats) = latencies(2);
    assert!(
        with_copies.iter().all(|&ms| ms == 5),
        "each message came with its first copy: {with_copies:?}"
    );
    assert_eq!(stats.retransmits, 0, "no resend was needed");
    assert!(stats.redundant_copies >= 90 && stats.redundant_copies <= 180);
    let (without, stats) = latencies(0);
    assert!(
        without.iter().all(|&ms| ms >= 30),
        "each waited for a resend: {without:?}"
    );
    assert!(stats.retransmits >= 90);
}
