//! Arbitrary bytes into `Kcp::input`, interleaved with sends, receives and time, for
//! every mode and both ways of flushing: no panic, no unbounded growth, and a
//! well-formed session stays usable.
#![no_main]

use hearth_kcp::{Config, DatagramBuffer, Kcp, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut config = match mode % 3 {
        0 => Config::profile(Profile::Default),
        1 => Config::profile(Profile::Normal),
        _ => Config::profile(Profile::Fast),
    };
    config.stream = mode & 0x10 != 0;
    config.large_messages = mode & 0x20 != 0;
    config.max_message_size = 1 << 16;
    config.mtu = if mode & 0x40 != 0 { 60 } else { 1400 };
    let mtu = config.mtu;
    let stream = config.stream;
    let mut kcp = Kcp::new(0x0102_0304, config).unwrap();
    let mut now = 0u32;
    let mut out = Vec::new();
    let mut shared = DatagramBuffer::new();
    // Records: [op, len, payload...]. Op picks what to do with the payload.
    let mut input = rest;
    while let [op, len, tail @ ..] = input {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        input = next;
        match op % 4 {
            0 | 1 => {
                let _ = kcp.input(payload);
            }
            2 => {
                let _ = kcp.send(payload);
            }
            _ => {
                now = now.wrapping_add(u32::from(*op));
                // Both ways of flushing: into the session's buffer or a caller's.
                if op & 0x80 != 0 {
                    kcp.update_into(now, &mut shared);
                    for datagram in shared.drain() {
                        assert!(datagram.len() <= mtu);
                    }
                } else {
                    kcp.update(now);
                    for datagram in kcp.drain_transmits() {
                        assert!(datagram.len() <= mtu);
                    }
                }
            }
        }
        while kcp.recv_into(&mut out).is_some() {
            assert!(out.len() <= 1 << 16 || stream);
        }
        let _ = kcp.check(now);
        let stats = kcp.stats();
        assert!(stats.receive_window_free <= stats.receive_window);
        // Bounded: the send side by what was queued (the input is small), the
        // receive side by the window and the message limit.
        assert!(kcp.buffered_bytes() <= 8 << 20);
    }
});
