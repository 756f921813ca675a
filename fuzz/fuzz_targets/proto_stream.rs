//! The stream key agreement: its decoder round-trips; a server fed arbitrary
//! packets at every stage of a pending stream (Hello, then proof) and a
//! client fed arbitrary answers to its Hello never panic; after a real sealed
//! stream login, arbitrary packets on either end close that stream at worst.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearth_proto::stream_handshake::StreamHandshake;
use hearth_proto::{Client, ClientConfig, Server, ServerConfig, ServerIdentity, StreamId, Transmit};
use libfuzzer_sys::fuzz_target;

const LOGGED_IN: StreamId = StreamId(2);

/// Carries stream packets between the real client and the server's stream 2.
fn pump(server: &mut Server, client: &mut Client, now: Instant) {
    for _ in 0..8 {
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Stream { bytes, .. } = t {
                server.handle_stream(now, LOGGED_IN, &bytes);
            }
        }
        while let Some(t) = server.poll_transmit() {
            if let Transmit::Stream { stream, bytes } = t {
                if stream == LOGGED_IN {
                    client.handle_stream(now, &bytes);
                }
            }
        }
        while let Some((id, event)) = server.poll_event() {
            if let hearth_proto::Event::LoginRequest(_) = event {
                server.accept_login(now, id, None);
            }
        }
        while client.poll_event().is_some() {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = StreamHandshake::decode(data) {
        assert_eq!(StreamHandshake::decode(&packet.to_vec()).as_ref(), Ok(&packet));
    }
    let now = Instant::now();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut server = Server::new(ServerConfig::default(), ServerIdentity::generate([1; 32]), now, [2; 32]);
    let mut client = Client::new(ClientConfig::default(), now, [3; 32]);
    server.stream_opened(now, LOGGED_IN, peer);
    client.connect_stream(now);
    pump(&mut server, &mut client, now);

    // A client whose Hello is answered with fuzz.
    let mut answered = Client::new(ClientConfig::default(), now, [4; 32]);
    answered.connect_stream(now);
    let mut raw_stream = 10;
    server.stream_opened(now, StreamId(raw_stream), peer);
    for (index, chunk) in data.split(|b| *b == 0xfe).enumerate() {
        let at = now + Duration::from_millis(index as u64 * 7);
        match index % 4 {
            // A pending stream: the first chunk meets the Hello stage, a later
            // one the proof stage (after a valid-looking Hello was answered).
            0 => {
                server.handle_stream(at, StreamId(raw_stream), chunk);
                if server.state_size().pending_streams == 0 {
                    raw_stream += 1;
                    server.stream_opened(at, StreamId(raw_stream), peer);
                }
            }
            1 => answered.handle_stream(at, chunk),
            2 => server.handle_stream(at, LOGGED_IN, chunk),
            _ => client.handle_stream(at, chunk),
        }
        server.handle_timeout(at);
        client.handle_timeout(at);
        answered.handle_timeout(at);
        while answered.poll_transmit().is_some() {}
        pump(&mut server, &mut client, at);
    }
});
