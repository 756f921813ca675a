//! Protected datagrams per second through the whole session layer (bunch
//! encode, frame, seal, header parse, replay check, open, frame and bunch
//! decode, event) against bare ChaCha20-Poly1305 seal + open of the same
//! payload with the same 17-byte authenticated header, in the same run.
//! Goal from the issue: session layer at least 0.7x bare AEAD.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use hearth_proto::{
    ChannelKind, ChannelSpec, Client, ClientConfig, Delivery, Event, Server, ServerConfig,
    ServerIdentity, Transmit,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

struct Pair {
    server: Server,
    client: Client,
    now: Instant,
    server_addr: SocketAddr,
    client_addr: SocketAddr,
}

impl Pair {
    fn pump(&mut self) -> usize {
        let mut delivered = 0;
        loop {
            let mut moved = false;
            while let Some(transmit) = self.client.poll_transmit() {
                if let Transmit::Datagram { bytes, .. } = transmit {
                    self.server.handle(self.now, self.client_addr, &bytes);
                    moved = true;
                }
            }
            while let Some(transmit) = self.server.poll_transmit() {
                if let Transmit::Datagram { bytes, .. } = transmit {
                    self.client
                        .handle_datagram(self.now, self.server_addr, &bytes);
                    moved = true;
                }
            }
            while let Some((id, event)) = self.server.poll_event() {
                match event {
                    Event::LoginRequest(_) => {
                        self.server.accept_login(self.now, id, None);
                    }
                    Event::Message { payload, .. } => {
                        black_box(payload);
                        delivered += 1;
                    }
                    _ => {}
                }
                moved = true;
            }
            while self.client.poll_event().is_some() {}
            if !moved {
                return delivered;
            }
        }
    }
}

fn joined_pair() -> Pair {
    let now = Instant::now();
    let mut pair = Pair {
        server: Server::new(
            ServerConfig::default(),
            ServerIdentity::generate([1; 32]),
            now,
            [2; 32],
        ),
        client: Client::new(ClientConfig::default(), now, [3; 32]),
        now,
        server_addr: "127.0.0.1:7777".parse().unwrap(),
        client_addr: "127.0.0.1:5000".parse().unwrap(),
    };
    pair.client.connect_datagram(now, pair.server_addr);
    pair.pump();
    assert!(pair.client.session().is_joined());
    pair.client
        .open_channel(
            now,
            1,
            ChannelSpec::new(ChannelKind::Game, Delivery::Unreliable),
        )
        .unwrap();
    pair.pump();
    pair
}

fn session_rate(size: usize, count: u32) -> f64 {
    let mut pair = joined_pair();
    let payload = vec![0x5a; size];
    let start = Instant::now();
    let mut delivered = 0;
    for _ in 0..count {
        pair.client.send(pair.now, 1, &payload).unwrap();
        delivered += pair.pump();
    }
    let elapsed = start.elapsed();
    assert_eq!(delivered, count as usize);
    f64::from(count) / elapsed.as_secs_f64()
}

fn bare_rate(size: usize, count: u32) -> f64 {
    let key = || LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[1; 32]).unwrap());
    let (send, receive) = (key(), key());
    let header = [0x10u8; 17];
    let payload = vec![0x5a; size];
    let start = Instant::now();
    for number in 0..u64::from(count) {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&number.to_be_bytes());
        let mut buffer = payload.clone();
        let tag = send
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header),
                &mut buffer,
            )
            .unwrap();
        buffer.extend_from_slice(tag.as_ref());
        receive
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header),
                &mut buffer,
            )
            .unwrap();
        black_box(&buffer);
    }
    f64::from(count) / start.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "{:>8} {:>16} {:>16} {:>8}",
        "payload", "session dgram/s", "bare AEAD /s", "ratio"
    );
    for (size, count) in [(64usize, 300_000u32), (512, 200_000), (1100, 100_000)] {
        let bare = bare_rate(size, count);
        let session = session_rate(size, count);
        println!(
            "{size:>8} {session:>16.0} {bare:>16.0} {:>7.2}x",
            session / bare
        );
        hearth_figures::figure(
            "datagram_rate",
            &format!("sealed session datagrams, {size} B"),
            "/s",
            session,
            hearth_figures::Better::Higher,
            Some(("bare ChaCha20-Poly1305", bare)),
        );
    }
}
