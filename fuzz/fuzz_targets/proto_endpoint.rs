//! The whole server and client against arbitrary datagrams and stream
//! packets, after a real handshake and login: nothing panics, and the session
//! survives every datagram (a stream may be closed, never the process).
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearth_proto::{Client, ClientConfig, Server, ServerConfig, ServerIdentity, StreamId, Transmit};
use libfuzzer_sys::fuzz_target;

fn pump(server: &mut Server, client: &mut Client, now: Instant, server_addr: SocketAddr, client_addr: SocketAddr) {
    for _ in 0..8 {
        while let Some(t) = client.poll_transmit() {
            if let Transmit::Datagram { bytes, .. } = t {
                server.handle(now, client_addr, &bytes);
            }
        }
        while let Some(t) = server.poll_transmit() {
            if let Transmit::Datagram { bytes, .. } = t {
                client.handle_datagram(now, server_addr, &bytes);
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
    let now = Instant::now();
    let server_addr: SocketAddr = "127.0.0.1:7777".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut server = Server::new(ServerConfig::default(), ServerIdentity::generate([1; 32]), now, [2; 32]);
    let mut client = Client::new(ClientConfig::default(), now, [3; 32]);
    client.connect_datagram(now, server_addr);
    pump(&mut server, &mut client, now, server_addr, client_addr);
    server.stream_opened(now, StreamId(9), client_addr);
    // Split the input into chunks; each goes to one entry point.
    for (index, chunk) in data.split(|b| *b == 0xfe).enumerate() {
        let at = now + Duration::from_millis(index as u64 * 7);
        match index % 4 {
            0 => server.handle(at, client_addr, chunk),
            1 => client.handle_datagram(at, server_addr, chunk),
            2 => server.handle_stream(at, StreamId(9), chunk),
            _ => client.handle_stream(at, chunk),
        }
        server.handle_timeout(at);
        client.handle_timeout(at);
        pump(&mut server, &mut client, at, server_addr, client_addr);
    }
});
