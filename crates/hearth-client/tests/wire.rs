//! What crosses the wire: a recording proxy sits between a real client and
//! `hearth serve`'s services (TCP game port, WebSocket gate) and keeps every
//! byte in both directions, through a login, messages, a dropped connection
//! and a resume. The password, the UDP ticket secret (which is also the
//! resume token) and the player's account name never appear in it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_client::{connect, Accounts, ChannelKind, ChannelSpec, Delivery, Event, Options};
use hearth_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "tr0ub4dor&3 is a fine password";

/// Every byte that crossed the proxy, in both directions, all connections.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy to `upstream` that records what it forwards.
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Recording) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recording = Recording::default();
    let record = recording.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, record.clone()));
            tokio::spawn(pipe(server_read, client_write, record.clone()));
        }
    });
    (addr, recording)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Recording,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        record.lock().unwrap().extend_from_slice(&buffer[..n]);
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn echo(connection: &mut hearth_client::Connection, text: &'static [u8]) {
    connection.send(2, text).await.unwrap();
    timeout(
        WAIT,
        connection.wait_for(|e| matches!(e, Event::Message { payload, .. } if payload == text)),
    )
    .await
    .expect("echo in time")
    .expect("echoed");
}

/// Logs in through `url`, exchanges messages, drops the stream, resumes,
/// exchanges more; returns the ticket secret the client was given.
async fn session_through(url: &str, name: &str) -> [u8; 32] {
    let mut options = Options::password(name, PASSWORD);
    options.udp_wait = Duration::from_millis(200);
    let mut connection = connect(url, options).await.unwrap();
    let events = timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    let secret = events
        .iter()
        .find_map(|event| match event {
            Event::Welcomed {
                ticket: Some(ticket),
                ..
            } => Some(ticket.secret),
            _ => None,
        })
        .expect("a stream login gets a UDP ticket");
    let spec = ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered).on_stream();
    connection.open_channel(2, spec).await.unwrap();
    echo(&mut connection, b"before the drop").await;
    connection.drop_stream().await;
    timeout(WAIT, connection.wait_for(|e| *e == Event::Resumed))
        .await
        .expect("resumed in time")
        .expect("resumed over a new connection");
    echo(&mut connection, b"after the resume").await;
    connection.close(0, "done").await;
    secret
}

#[tokio::test]
async fn no_secret_crosses_a_tcp_or_websocket_link_in_the_clear() {
    let dir = std::env::temp_dir().join(format!("hearth-test-wire-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir.clone(),
        ..Config::default()
    };
    // The ticket is offered but UDP never comes up through the TCP-only proxy.
    config.game.udp = true;
    if let Ok(url) = std::env::var("HEARTH_TEST_DATABASE_URL") {
        config.database_url = url;
    }
    let server = hearth_server::start(config).await.expect("server starts");
    let accounts = Accounts::new(&format!("http://{}", server.web));
    let name = format!(
        "wire_{:02x}{:02x}",
        hearth_proto::os_seed()[0],
        hearth_proto::os_seed()[1]
    );
    accounts.register(&name, PASSWORD).await.unwrap();

    let (tcp_proxy, tcp_recording) = recording_proxy(server.game_tcp).await;
    let tcp_secret = session_through(&format!("tcp://{tcp_proxy}"), &name).await;
    let (ws_proxy, ws_recording) = recording_proxy(server.web).await;
    let ws_secret = session_through(&format!("ws://{ws_proxy}/ws"), &name).await;

    for (transport, recording, secret) in [
        ("TCP", tcp_recording, tcp_secret),
        ("WebSocket", ws_recording, ws_secret),
    ] {
        let wire = recording.lock().unwrap().clone();
        assert!(
            wire.len() > 400,
            "{transport}: the session crossed the proxy ({} bytes)",
            wire.len()
        );
        assert!(
            !contains(&wire, PASSWORD.as_bytes()),
            "{transport}: the password crossed in the clear"
        );
        assert!(
            !contains(&wire, name.as_bytes()),
            "{transport}: the account name crossed in the clear"
        );
        assert!(
            !contains(&wire, &secret),
            "{transport}: the ticket secret (resume token) crossed in the clear"
        );
        assert!(
            !contains(&wire, &secret[..8]),
            "{transport}: part of the ticket secret crossed in the clear"
        );
    }
    server.shutdown("test over").await;
    let _ = std::fs::remove_dir_all(&dir);
}
