//! permessage-deflate over a real loopback socket: a hyper server upgrading
//! as hearth-server's web port does, a `WebSocket` client offering deflate,
//! and the bytes that actually cross the socket counted.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hearth_net::ws::{self, DeflateConfig, Limits, Message, WebSocket, WsError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// An echo server; `deflate` is what its config allows.
async fn serve_echo(deflate: DeflateConfig, max_message: usize) -> SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| async move {
                        let limits = Limits { max_message };
                        let response = match ws::upgrade_with_deflate(
                            &mut request,
                            &["hearth.v1"],
                            limits,
                            deflate,
                        ) {
                            Ok(pending) => {
                                let response = pending.response.clone().map(|()| String::new());
                                tokio::spawn(async move {
                                    if let Ok(mut socket) = pending.socket().await {
                                        echo(&mut socket).await;
                                    }
                                });
                                response
                            }
                            Err(refused) => refused.response(),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn echo(socket: &mut ws::UpgradedSocket) {
    while let Ok(Some(message)) = socket.recv().await {
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && socket.send(&message).await.is_err()
        {
            return;
        }
    }
}

/// A TCP stream that counts the bytes it reads and writes.
struct Counted {
    inner: TcpStream,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.read.fetch_add(n, Ordering::Relaxed);
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Client {
    socket: WebSocket<Counted>,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

async fn connect(addr: SocketAddr, deflate: DeflateConfig) -> Client {
    let read = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let io = Counted {
        inner: TcpStream::connect(addr).await.unwrap(),
        read: read.clone(),
        written: written.clone(),
    };
    let (socket, protocol) = WebSocket::connect_with_deflate(
        io,
        &addr.to_string(),
        "/ws",
        &["hearth.v1"],
        Limits::default(),
        deflate,
    )
    .await
    .unwrap();
    assert_eq!(protocol.as_deref(), Some("hearth.v1"));
    Client {
        socket,
        read,
        written,
    }
}

/// JSON-ish status lines, as a web page or chat would send.
fn message(i: usize) -> String {
    format!(
        "{{\"zone\":\"Entry\",\"tick\":{i},\"players\":[{{\"name\":\"ember\",\"x\":{},\"y\":12}},\
         {{\"name\":\"ash\",\"x\":-4,\"y\":{}}}],\"chat\":\"the hearth keeps the fire\"}}",
        i % 17,
        i % 5
    )
}

/// Sends `count` messages, checks each echo, returns (bytes written, read)
/// by the client after the handshake.
async fn echo_round(client: &mut Client, count: usize) -> (u64, u64) {
    let (written0, read0) = (
        client.written.load(Ordering::Relaxed),
        client.read.load(Ordering::Relaxed),
    );
    for i in 0..count {
        let text = message(i);
        let sent = if i % 2 == 0 {
            Message::Text(Bytes::from(text.clone()))
        } else {
            Message::Binary(Bytes::from(text.clone()))
        };
        client.socket.send(&sent).await.unwrap();
        let got = timeout(WAIT, client.socket.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, sent, "message {i}");
    }
    (
        client.written.load(Ordering::Relaxed) - written0,
        client.read.load(Ordering::Relaxed) - read0,
    )
}

#[tokio::test]
async fn a_client_that_offers_deflate_gets_compressed_echoes_both_ways() {
    let addr = serve_echo(DeflateConfig::on(), 1 << 20).await;
    let mut plain = connect(addr, DeflateConfig::default()).await;
    assert!(!plain.socket.protocol().deflate_enabled());
    let (plain_up, plain_down) = echo_round(&mut plain, 200).await;
    let mut deflating = connect(addr, DeflateConfig::on()).await;
    assert!(deflating.socket.protocol().deflate_enabled());
    let (up, down) = echo_round(&mut deflating, 200).await;
    // Context takeover: each message is mostly a repeat of the last ones.
    assert!(
        up * 3 < plain_up,
        "client to server: {up} vs {plain_up} bytes"
    );
    assert!(
        down * 3 < plain_down,
        "server to client: {down} vs {plain_down} bytes"
    );
    deflating.socket.close(1000, "done").await.unwrap();
}

#[tokio::test]
async fn every_negotiated_variant_echoes_through_a_real_socket() {
    for (server_cap, client_cap) in [(15, 15), (9, 15), (15, 10), (12, 9)] {
        let server = DeflateConfig {
            max_window_bits: server_cap,
            ..DeflateConfig::on()
        };
        let addr = serve_echo(server, 1 << 20).await;
        let client = DeflateConfig {
            max_window_bits: client_cap,
            min_size: 0,
            ..DeflateConfig::on()
        };
        let mut client = connect(addr, client).await;
        assert!(client.socket.protocol().deflate_enabled());
        echo_round(&mut client, 50).await;
        // A long message across the window and an empty one.
        let long = Message::Binary(Bytes::from(
            (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        ));
        for sent in [long, Message::Text(Bytes::new())] {
            client.socket.send(&sent).await.unwrap();
            let got = timeout(WAIT, client.socket.recv()).await.unwrap().unwrap();
            assert_eq!(got, Some(sent), "caps {server_cap}/{client_cap}");
        }
    }
}

#[tokio::test]
async fn a_server_with_deflate_off_declines_and_the_client_goes_on_plain() {
    let addr = serve_echo(DeflateConfig::default(), 1 << 20).await;
    let mut client = connect(addr, DeflateConfig::on()).await;
    assert!(!client.socket.protocol().deflate_enabled());
    echo_round(&mut client, 20).await;
}

#[tokio::test]
async fn a_deflate_bomb_is_refused_with_1009() {
    let addr = serve_echo(DeflateConfig::on(), 64 * 1024).await;
    let mut client = connect(addr, DeflateConfig::on()).await;
    // 10 MB of zeros: about 10 KB on the wire.
    client
        .socket
        .send_binary(&vec![0u8; 10 * 1024 * 1024])
        .await
        .unwrap();
    assert!(client.written.load(Ordering::Relaxed) < 64 * 1024);
    let answer = timeout(WAIT, client.socket.recv()).await.unwrap();
    match answer {
        Ok(Some(Message::Close(Some((code, _))))) => assert_eq!(code, 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    let _: Result<_, WsError> = client.socket.recv().await;
}
