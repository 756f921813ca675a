//! Handshake throughput on one core, in the same run as its bare peer:
//! - challenges answered per second (Initial in, Challenge out), against bare
//!   HMAC-SHA256 over the same cookie input (the floor of a stateless answer);
//! - full handshakes completed per second (Initial, Challenge, Response, Ack,
//!   both ends' X25519 and key derivation), against bare X25519 agreements;
//! - stream key agreements per second (StreamHello, StreamAccept, the first
//!   sealed packet opening a session), against the same bare X25519 pairs.
//!
//! Goal from the issue: at least 100,000 challenges per second per core.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearth_proto::handshake::{HandshakePacket, Mode, PROTOCOL_VERSION};
use hearth_proto::{Client, ClientConfig, Server, ServerConfig, ServerIdentity, Transmit};

fn rate(duration: Duration, count: u64) -> f64 {
    count as f64 / duration.as_secs_f64()
}

fn challenges_per_second() -> f64 {
    let now = Instant::now();
    let mut server = Server::new(
        ServerConfig::default(),
        ServerIdentity::generate([1; 32]),
        now,
        [2; 32],
    );
    let initial = HandshakePacket::Initial {
        version: PROTOCOL_VERSION,
        mode: Mode::New,
        client_public: [5; 32],
    }
    .to_vec();
    let count = 400_000u32;
    let start = Instant::now();
    for index in 0..count {
        let from = SocketAddr::from((
            [10, (index >> 16) as u8, (index >> 8) as u8, index as u8],
            4000,
        ));
        server.handle(now, from, &initial);
        black_box(server.poll_transmit());
    }
    rate(start.elapsed(), u64::from(count))
}

fn bare_hmac_per_second() -> f64 {
    let count = 400_000u32;
    let key = [7u8; 32];
    let start = Instant::now();
    for index in 0..count {
        let mac = hearth_proto::crypto::hmac_parts(
            &key,
            &[
                &u64::from(index).to_be_bytes(),
                &[4, 10, 0, 0, 1, 15, 160],
                &[0; 43],
            ],
        );
        black_box(mac);
    }
    rate(start.elapsed(), u64::from(count))
}

fn full_handshakes_per_second() -> f64 {
    let now = Instant::now();
    let mut server = Server::new(
        ServerConfig::default(),
        ServerIdentity::generate([1; 32]),
        now,
        [2; 32],
    );
    let server_addr: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let count = 10_000u32;
    let start = Instant::now();
    for index in 0..count {
        let mut seed = [3u8; 32];
        seed[..4].copy_from_slice(&index.to_be_bytes());
        let mut client = Client::new(ClientConfig::default(), now, seed);
        let client_addr = SocketAddr::from(([10, 1, (index >> 8) as u8, index as u8], 5000));
        client.connect_datagram(now, server_addr);
        while !client.has_link(hearth_proto::LinkKind::Datagram) {
            while let Some(Transmit::Datagram { bytes, .. }) = client.poll_transmit() {
                server.handle(now, client_addr, &bytes);
            }
            while let Some(transmit) = server.poll_transmit() {
                if let Transmit::Datagram { to, bytes } = transmit {
                    if to == client_addr {
                        client.handle_datagram(now, server_addr, &bytes);
                    }
                }
            }
        }
        while server.poll_event().is_some() {}
    }
    rate(start.elapsed(), u64::from(count))
}

fn stream_handshakes_per_second() -> f64 {
    use hearth_proto::StreamId;
    let now = Instant::now();
    let mut server = Server::new(
        ServerConfig::default(),
        ServerIdentity::generate([1; 32]),
        now,
        [2; 32],
    );
    let count = 10_000u32;
    let start = Instant::now();
    for index in 0..count {
        let mut seed = [4u8; 32];
        seed[..4].copy_from_slice(&index.to_be_bytes());
        let mut client = Client::new(ClientConfig::default(), now, seed);
        let stream = StreamId(u64::from(index));
        let peer = SocketAddr::from(([10, 2, (index >> 8) as u8, index as u8], 5000));
        server.stream_opened(now, stream, peer);
        client.connect_stream(now);
        // Hello -> Accept -> the first sealed packet, which opens the session.
        for _ in 0..2 {
            while let Some(transmit) = client.poll_transmit() {
                if let Transmit::Stream { bytes, .. } = transmit {
                    server.handle_stream(now, stream, &bytes);
                }
            }
            while let Some(transmit) = server.poll_transmit() {
                if let Transmit::Stream { bytes, .. } = transmit {
                    client.handle_stream(now, &bytes);
                }
            }
        }
        assert!(client.has_link(hearth_proto::LinkKind::Stream));
        while server.poll_event().is_some() {}
    }
    assert_eq!(server.state_size().sessions, count as usize);
    rate(start.elapsed(), u64::from(count))
}

fn bare_x25519_per_second() -> f64 {
    use x25519_dalek::{PublicKey, StaticSecret};
    let count = 10_000u32;
    let server = StaticSecret::from([9u8; 32]);
    let server_public = PublicKey::from(&server);
    let start = Instant::now();
    for index in 0..count {
        let mut bytes = [3u8; 32];
        bytes[..4].copy_from_slice(&index.to_be_bytes());
        let client = StaticSecret::from(bytes);
        let client_public = PublicKey::from(&client);
        // The handshake does four agreements (two per side) and two key generations.
        black_box(client.diffie_hellman(&server_public));
        black_box(server.diffie_hellman(&client_public));
    }
    rate(start.elapsed(), u64::from(count))
}

fn main() {
    let challenges = challenges_per_second();
    let hmac = bare_hmac_per_second();
    println!(
        "challenges answered:   {challenges:>12.0} /s  (goal 100,000: {:.2}x)",
        challenges / 100_000.0
    );
    println!(
        "bare HMAC-SHA256:      {hmac:>12.0} /s  (challenge / bare = {:.2}x)",
        challenges / hmac
    );
    let handshakes = full_handshakes_per_second();
    let x25519 = bare_x25519_per_second();
    println!(
        "full handshakes:       {handshakes:>12.0} /s  (client and server in this one thread)"
    );
    println!(
        "bare X25519 pairs:     {x25519:>12.0} /s  (handshake / bare pair = {:.2}x)",
        handshakes / x25519
    );
    let streams = stream_handshakes_per_second();
    use hearth_figures::{figure, Better::Higher};
    let bench = "handshake_rate";
    figure(
        bench,
        "challenges answered (one core)",
        "/s",
        challenges,
        Higher,
        Some(("bare HMAC-SHA256", hmac)),
    );
    figure(
        bench,
        "full UDP handshakes (both ends, one core)",
        "/s",
        handshakes,
        Higher,
        Some(("bare X25519 pairs", x25519)),
    );
    figure(
        bench,
        "stream key agreements (both ends, one core)",
        "/s",
        streams,
        Higher,
        Some(("bare X25519 pairs", x25519)),
    );
    println!(
        "stream key agreements: {streams:>12.0} /s  (stream handshake / bare pair = {:.2}x)",
        streams / x25519
    );
}
