//! The web port under pressure and over TLS, over real loopback sockets:
//! slowloris connections cut at the header timeout, connection caps, body
//! limits, HTTPS and `wss://` with a test certificate (and the clear failure
//! without trusting it), /healthz and the server's end after a gate panic,
//! and the plaintext warning.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_client::{connect, Accounts, ChannelKind, ChannelSpec, Delivery, Error, Event, Options};
use hearth_server::listener::WebCutReason;
use hearth_server::{Config, Running, ServeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn start(label: &str, configure: impl FnOnce(&mut Config, &Path)) -> Running {
    let dir = data_dir(label);
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir.clone(),
        ..Config::default()
    };
    if let Ok(url) = std::env::var("HEARTH_TEST_DATABASE_URL") {
        config.database_url = url;
    }
    configure(&mut config, &dir);
    hearth_server::start(config).await.expect("server starts")
}

fn unique(name: &str) -> String {
    let seed = hearth_proto::os_seed();
    format!("{name}_{:02x}{:02x}{:02x}", seed[0], seed[1], seed[2])
}

async fn metrics(server: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", server.web))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Reads until the server closes the connection; the time it took.
async fn closed_by_server(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match timeout(WAIT, stream.read(&mut sink))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn slowloris_connections_are_cut_at_the_header_timeout_while_real_requests_succeed() {
    let server = start("slowloris", |c, _| {
        c.web.header_timeout_ms = 600;
        c.web.max_connections_per_address = 1000;
    })
    .await;
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.web).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: hearth\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let sent = Instant::now();
    // Another connection gets its answer while the 200 hang.
    let health = reqwest::get(format!("http://{}/healthz", server.web))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "answered before the slow ones time out"
    );
    let mut first = slow.remove(0);
    closed_by_server(&mut first).await;
    let held = opened.elapsed();
    assert!(
        held >= Duration::from_millis(550),
        "not cut before the header timeout: {held:?}"
    );
    for stream in &mut slow {
        closed_by_server(stream).await;
    }
    let all_cut = opened.elapsed();
    assert!(
        all_cut < Duration::from_secs(3),
        "all 200 cut near the 600 ms timeout: {all_cut:?}"
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("hearth_rejected_total{layer=\"web\",reason=\"header_timeout\"} 200"),
        "{text}"
    );
    server.shutdown("test over").await;
}

/// Opens `count` connections that say nothing, and waits until the server
/// has admitted them all.
async fn idle_connections(server: &Running, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..count {
        streams.push(TcpStream::connect(server.web).await.unwrap());
    }
    timeout(WAIT, async {
        while server
            .web_metrics
            .open
            .load(std::sync::atomic::Ordering::Relaxed)
            < count as u64
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("admitted");
    streams
}

/// The answer to a connection the server refuses at once.
async fn refusal(server: &Running) -> String {
    let mut refused = TcpStream::connect(server.web).await.unwrap();
    let mut answer = String::new();
    timeout(WAIT, refused.read_to_string(&mut answer))
        .await
        .expect("closed at once")
        .unwrap();
    answer
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_refused_with_a_reason_and_counted() {
    let server = start("percap", |c, _| {
        c.limit_loopback = true; // the test's client is loopback
        c.web.max_connections_per_address = 3;
    })
    .await;
    let mut open = idle_connections(&server, 3).await;
    let answer = refusal(&server).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections from your address"));
    assert_eq!(server.web_metrics.cuts(WebCutReason::TooManyFromAddress), 1);
    // A closed connection gives its place back.
    drop(open.pop());
    timeout(WAIT, async {
        loop {
            if let Ok(response) = reqwest::get(format!("http://{}/healthz", server.web)).await {
                if response.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("admitted again");
    drop(open);
    server.shutdown("test over").await;
}

#[tokio::test]
async fn connections_over_the_total_cap_are_refused_and_counted() {
    let server = start("totalcap", |c, _| c.web.max_connections = 2).await;
    let _open = idle_connections(&server, 2).await;
    let answer = refusal(&server).await;
    assert!(answer.contains("too many connections open"), "{answer}");
    assert_eq!(server.web_metrics.cuts(WebCutReason::TooManyConnections), 1);
    assert_eq!(server.web_metrics.cuts(WebCutReason::TooManyFromAddress), 0);
    drop(_open);
    // /metrics needs a place too: wait until the idle ones are gone.
    timeout(WAIT, async {
        while server
            .web_metrics
            .open
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let text = metrics(&server).await;
    assert!(
        text.contains("hearth_rejected_total{layer=\"web\",reason=\"too_many_connections\"} 1"),
        "{text}"
    );
    server.shutdown("test over").await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_is_counted() {
    let server = start("body", |c, _| c.web.max_body_bytes = 1024).await;
    let base = format!("http://{}", server.web);
    let padding = "x".repeat(2000);
    let big = reqwest::Client::new()
        .post(format!("{base}/api/register"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"name":"big_body","password":"correct horse","pad":"{padding}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    // A request within the limit is served as usual.
    Accounts::new(&base)
        .register(&unique("small"), "correct horse")
        .await
        .unwrap();
    let text = metrics(&server).await;
    assert!(
        text.contains("hearth_rejected_total{layer=\"web\",reason=\"body_too_large\"} 1"),
        "{text}"
    );
    server.shutdown("test over").await;
}

#[tokio::test]
async fn a_body_trickled_in_slowly_is_cut_at_the_request_timeout() {
    let server = start("trickle", |c, _| c.web.request_timeout_ms = 500).await;
    let mut slow = TcpStream::connect(server.web).await.unwrap();
    let head = format!(
        "POST /api/register HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{{",
        server.web
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // The headers are complete, so the header timeout no longer applies;
    // the body arrives one byte at a time.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
        slow
    });
    let started = Instant::now();
    let mut slow = trickle.await.unwrap();
    let mut answer = Vec::new();
    let _ = timeout(WAIT, slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    let text = metrics(&server).await;
    assert!(
        text.contains("hearth_rejected_total{layer=\"web\",reason=\"request_timeout\"} 1"),
        "{text}"
    );
    server.shutdown("test over").await;
}

/// A self-signed certificate for localhost and 127.0.0.1, written next to
/// the data directory; returns the certificate's PEM.
fn test_certificate(config: &mut Config, dir: &Path) -> String {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (dir.join("web.crt"), dir.join("web.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    config.tls.cert = Some(cert);
    config.tls.key = Some(key);
    certified.cert.pem()
}

#[tokio::test]
async fn https_api_and_a_wss_game_login_work_end_to_end_with_the_certificate_trusted() {
    let mut pem = String::new();
    let server = start("tls", |c, dir| pem = test_certificate(c, dir)).await;
    assert!(server.tls);
    let base = server.web_url();
    assert!(base.starts_with("https://"), "{base}");
    let api = Accounts::trusting(&base, pem.as_bytes()).unwrap();
    let name = unique("tls");
    api.register(&name, "correct horse").await.unwrap();
    let tokens = api.login(&name, "correct horse").await.unwrap();

    let url = format!("wss://127.0.0.1:{}/ws", server.web.port());
    let mut connection = connect(
        &url,
        Options::token(&tokens.access_token).trusting(pem.as_bytes()),
    )
    .await
    .unwrap();
    timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .unwrap()
        .expect("joined over wss://");
    connection
        .open_channel(
            2,
            ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered),
        )
        .await
        .unwrap();
    for index in 0u32..20 {
        connection.send(2, &index.to_be_bytes()).await.unwrap();
        // The world talks on its own channel meanwhile (the map, who is
        // there): only channel 2 carries the echoes.
        let payload = loop {
            match timeout(WAIT, connection.next_event()).await.unwrap() {
                Some(Event::Message {
                    channel: 2,
                    payload,
                }) => break payload,
                Some(Event::Closed(reason)) => panic!("closed: {reason}"),
                Some(_) => {}
                None => panic!("stopped"),
            }
        };
        assert_eq!(payload, index.to_be_bytes(), "echoed through TLS");
    }
    let ws = server
        .gate
        .metrics()
        .ws_accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(ws, 1);

    // The same client without trusting the certificate fails, and says why.
    let untrusted = connect(&url, Options::token(&tokens.access_token))
        .await
        .err()
        .expect("refused without trust");
    let message = untrusted.to_string();
    assert!(
        message.contains("TLS with 127.0.0.1 failed") && message.contains("not trusted"),
        "{message}"
    );
    match Accounts::new(&base).login(&name, "correct horse").await {
        Err(Error::Http { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // The server sees the client's alert a moment after the client gave up.
    timeout(WAIT, async {
        while server.web_metrics.cuts(WebCutReason::TlsHandshake) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both failed handshakes counted");
    // Plain HTTP to the TLS port gets no answer that a client could mistake for one.
    assert!(reqwest::get(format!("http://{}/healthz", server.web))
        .await
        .is_err());
    server.shutdown("test over").await;
}

#[tokio::test]
async fn healthz_answers_503_and_the_server_stops_when_the_gate_task_panics() {
    let server = start("gatepanic", |_, _| {}).await;
    let health = format!("http://{}/healthz", server.web);
    assert_eq!(reqwest::get(&health).await.unwrap().status(), 200);
    let page = reqwest::get(format!("http://{}/", server.web))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("without TLS"), "no warning on loopback");

    // A fault inside a gate shard, as a bug in a handler would cause.
    let _ = server
        .gate
        .run_on_shard(0, |_| panic!("injected fault"))
        .await;
    timeout(WAIT, server.gate.ended()).await.unwrap();
    let answer = reqwest::get(&health).await.unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(
        answer.text().await.unwrap(),
        "a gate shard panicked: injected fault\n"
    );

    let web = server.web;
    let result = timeout(WAIT, server.run_until(std::future::pending()))
        .await
        .expect("the server stops by itself");
    match result {
        Err(error @ ServeError::GatePanicked(_)) => assert!(
            error
                .to_string()
                .starts_with("a gate shard panicked: injected fault"),
            "{error}"
        ),
        other => panic!("expected the gate panic, got {other:?}"),
    }
    assert!(
        TcpStream::connect(web).await.is_err(),
        "the web port no longer answers"
    );
}

#[tokio::test]
async fn serving_beyond_loopback_without_tls_warns_on_the_page() {
    let server = start("plaintext", |c, _| c.bind = "0.0.0.0".parse().unwrap()).await;
    assert!(server.plaintext_public);
    let page = reqwest::get(format!("http://127.0.0.1:{}/", server.web.port()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("from the network without TLS"), "{page}");
    server.shutdown("test over").await;
}
