//! `hearth serve`'s services over real loopback sockets: the web API,
//! accounts and tokens, game logins over every transport, single sessions,
//! restarts, metrics and graceful shutdown.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{config, data_dir, unique};
use hearth_client::{
    connect, Accounts, ChannelKind, ChannelSpec, CloseReason, Delivery, Error, Event, Options,
};
use hearth_server::{Config, Running};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

async fn start(config: Config) -> (Running, Accounts) {
    let running = hearth_server::start(config).await.expect("server starts");
    let accounts = Accounts::new(&format!("http://{}", running.web));
    (running, accounts)
}

/// A started server in a fresh data directory with one registered player
/// whose password is "correct horse".
async fn server_with_player(
    label: &str,
    configure: impl FnOnce(&mut Config),
) -> (PathBuf, Running, Accounts, String) {
    let dir = data_dir(label);
    let mut config = config(&dir);
    configure(&mut config);
    let (server, api) = start(config).await;
    let name = unique(label);
    api.register(&name, "correct horse").await.unwrap();
    (dir, server, api, name)
}

fn api_code(result: Result<impl std::fmt::Debug, Error>) -> (u16, String) {
    match result {
        Err(Error::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn joined(url: &str, options: Options) -> hearth_client::Connection {
    let mut connection = connect(url, options).await.unwrap();
    timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("in time")
        .expect("joined");
    connection
}

async fn refused(url: &str, options: Options) -> CloseReason {
    let mut connection = connect(url, options).await.unwrap();
    loop {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("in time")
        {
            Some(Event::Closed(reason)) => return reason,
            Some(Event::Joined) => panic!("should have been refused"),
            Some(_) => {}
            None => panic!("stopped without a reason"),
        }
    }
}

async fn echo(connection: &mut hearth_client::Connection, channel: u16, count: u32) {
    for index in 0..count {
        connection
            .send(channel, &index.to_be_bytes())
            .await
            .unwrap();
    }
    for index in 0..count {
        let payload = loop {
            match timeout(WAIT, connection.next_event()).await.unwrap() {
                Some(Event::Message {
                    channel: c,
                    payload,
                }) if c == channel => break payload,
                Some(Event::Closed(reason)) => panic!("closed: {reason}"),
                Some(_) => {}
                None => panic!("stopped"),
            }
        };
        assert_eq!(payload, index.to_be_bytes());
    }
}

async fn closed_reason(connection: &mut hearth_client::Connection) -> String {
    let events = timeout(WAIT, connection.wait_for(|e| matches!(e, Event::Closed(_))))
        .await
        .expect("closed in time")
        .expect("a close event");
    match events.last() {
        Some(Event::Closed(reason)) => reason.to_string(),
        other => panic!("expected Closed, got {other:?}"),
    }
}

fn game_channel() -> ChannelSpec {
    ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered)
}

#[tokio::test]
async fn the_api_registers_logs_in_refreshes_and_revokes_with_clear_errors() {
    let (_dir, server, api, name) = server_with_player("api", |_| {}).await;
    assert_eq!(
        api_code(api.register(&name.to_uppercase(), "another pass").await),
        (409, "name_taken".into())
    );
    assert_eq!(
        api_code(api.register("x", "correct horse").await),
        (400, "invalid_name".into())
    );
    assert_eq!(
        api_code(api.register(&unique("bob"), "short").await),
        (400, "weak_password".into())
    );
    assert_eq!(
        api_code(api.login(&name, "wrong horse").await),
        (401, "wrong_credentials".into())
    );
    assert_eq!(
        api_code(api.login("nobody_here", "whatever1").await),
        (401, "wrong_credentials".into())
    );
    let first = api.login(&name, "correct horse").await.unwrap();
    let second = api.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(first.access_token, second.access_token);
    // The rotated-out refresh token comes back: treated as stolen, every token revoked.
    assert_eq!(
        api_code(api.refresh(&first.refresh_token).await),
        (401, "token_revoked".into())
    );
    assert_eq!(
        api_code(api.refresh(&second.refresh_token).await),
        (401, "token_revoked".into())
    );
    assert_eq!(
        api_code(api.refresh(&second.access_token).await),
        (401, "token_revoked".into())
    );
    let third = api.login(&name, "correct horse").await.unwrap();
    assert_eq!(
        api_code(api.refresh(&third.access_token).await),
        (401, "wrong_token_kind".into())
    );
    api.logout(&third.refresh_token).await.unwrap();
    assert_eq!(
        api_code(api.refresh(&third.refresh_token).await),
        (401, "token_revoked".into())
    );
    // Changing the password revokes the tokens issued before.
    let fourth = api.login(&name, "correct horse").await.unwrap();
    api.change_password(&name, "correct horse", "battery staple")
        .await
        .unwrap();
    assert_eq!(
        api_code(api.refresh(&fourth.refresh_token).await),
        (401, "token_revoked".into())
    );
    api.login(&name, "battery staple").await.unwrap();
    // Malformed JSON.
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/login", server.web))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("bad_request"));
    server.shutdown("test over").await;
}

#[tokio::test]
async fn too_many_wrong_passwords_lock_the_account_for_a_growing_while() {
    let (_dir, server, api, name) = server_with_player("lock", |c| {
        c.accounts.lock_secs = 1;
        c.accounts.max_lock_secs = 3;
    })
    .await;
    let lock_out = || async {
        for _ in 0..4 {
            assert_eq!(
                api_code(api.login(&name, "nope nope").await).1,
                "wrong_credentials"
            );
        }
        let locked = raw_post(&server, "/api/login", &name, "nope nope").await;
        assert_eq!(locked.status, 423, "{}", locked.body);
        locked
    };
    let first = lock_out().await;
    assert_eq!(first.retry_after.as_deref(), Some("1"));
    assert_eq!(
        api_code(api.login(&name, "correct horse").await),
        (423, "locked".into()),
        "locked even for the right password"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The second lock in a row is twice as long; the third is capped.
    assert_eq!(lock_out().await.retry_after.as_deref(), Some("2"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(lock_out().await.retry_after.as_deref(), Some("3"));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // A successful login ends the backoff: the next lock is short again.
    api.login(&name, "correct horse").await.unwrap();
    assert_eq!(lock_out().await.retry_after.as_deref(), Some("1"));
    server.shutdown("test over").await;
}

/// A response as the wire carried it.
struct Raw {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

async fn raw_post(server: &Running, path: &str, name: &str, password: &str) -> Raw {
    raw_json(
        server,
        path,
        serde_json::json!({ "name": name, "password": password }),
    )
    .await
}

async fn raw_json(server: &Running, path: &str, body: serde_json::Value) -> Raw {
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", server.web))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Raw {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

async fn metrics(server: &Running) -> String {
    common::metrics(server.web).await
}

/// The value of the metric line that starts with `series` (name and labels).
async fn metric(server: &Running, series: &str) -> u64 {
    let text = metrics(server).await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

const HASHES: &str = "hearth_password_hashes_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_never_evaluate_more_than_the_limit() {
    let (_dir, server, _api, name) = server_with_player("guesses", |c| {
        // The lockout alone is under test here, not the address limit; and
        // the lock must outlast the burst.
        c.accounts.login_per_minute = 0;
        c.accounts.lock_secs = 120;
    })
    .await;
    let hashes_before = metric(&server, HASHES).await;
    let server = std::sync::Arc::new(server);
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let server = server.clone();
            let name = name.clone();
            tokio::spawn(async move {
                raw_post(&server, "/api/login", &name, &format!("guess number {i}")).await
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for guess in guesses {
        let raw = guess.await.unwrap();
        *statuses.entry(raw.status).or_insert(0) += 1;
    }
    // Four wrong answers, the fifth evaluated guess locks, and the 45 others
    // are refused without their password ever being hashed.
    assert_eq!(
        statuses,
        [(401, 4), (423, 46)].into_iter().collect(),
        "statuses"
    );
    assert_eq!(
        metric(&server, HASHES).await - hashes_before,
        5,
        "passwords hashed: exactly the limit"
    );
    std::sync::Arc::into_inner(server)
        .unwrap()
        .shutdown("test over")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_token_used_concurrently_is_spent_once_and_trips_reuse_detection() {
    let (_dir, server, api, name) = server_with_player("reuse", |_| {}).await;
    let pair = api.login(&name, "correct horse").await.unwrap();
    let uses: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            let token = pair.refresh_token.clone();
            tokio::spawn(async move { api.refresh(&token).await })
        })
        .collect();
    let mut winners = Vec::new();
    for used in uses {
        match used.await.unwrap() {
            Ok(new) => winners.push(new),
            Err(error) => assert_eq!(api_code(Err::<(), _>(error)), (401, "token_revoked".into())),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one use succeeds");
    // The reuse revoked everything, the winner's new pair included.
    let winner = &winners[0];
    assert!(matches!(
        server.accounts.verify_access(&winner.access_token).await,
        Err(hearth_server::accounts::AccountError::TokenRevoked)
    ));
    assert_eq!(
        api_code(api.refresh(&winner.refresh_token).await),
        (401, "token_revoked".into())
    );
    assert!(server
        .accounts
        .verify_access(&pair.access_token)
        .await
        .is_err());
    server.shutdown("test over").await;
}

#[tokio::test]
async fn an_unknown_name_and_a_wrong_password_look_the_same() {
    let (_dir, server, _api, name) = server_with_player("same", |_| {}).await;
    let timed = |who: String| {
        let server = &server;
        async move {
            let hashes = metric(server, HASHES).await;
            let started = std::time::Instant::now();
            let raw = raw_post(server, "/api/login", &who, "not the password").await;
            let took = started.elapsed();
            (raw, took, metric(server, HASHES).await - hashes)
        }
    };
    let (wrong, wrong_took, wrong_hashes) = timed(name.clone()).await;
    let (unknown, unknown_took, unknown_hashes) = timed(unique("nobody")).await;
    assert_eq!(
        (wrong.status, &wrong.body, &wrong.retry_after),
        (unknown.status, &unknown.body, &unknown.retry_after)
    );
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("wrong name or password"),
        "{}",
        wrong.body
    );
    // Both paths do the same work: one argon2 hash, which takes milliseconds.
    assert_eq!((wrong_hashes, unknown_hashes), (1, 1));
    for took in [wrong_took, unknown_took] {
        assert!(
            took >= Duration::from_millis(2),
            "{took:?}: no hash computed?"
        );
    }
    server.shutdown("test over").await;
}

#[tokio::test]
async fn too_many_attempts_from_one_address_get_429_with_retry_after_and_are_counted() {
    let (_dir, server, api, name) = server_with_player("throttle", |c| {
        c.limit_loopback = true; // the test's client is loopback
        c.accounts.login_burst = 3;
        c.accounts.login_per_minute = 1;
        c.accounts.register_burst = 2;
        c.accounts.register_per_minute = 1;
    })
    .await;
    // The player's registration took one of two registrations.
    let fresh = unique("second");
    assert_eq!(
        raw_post(&server, "/api/register", &fresh, "correct horse")
            .await
            .status,
        201
    );
    let refused = raw_post(&server, "/api/register", &unique("third"), "correct horse").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("rate_limited"), "{}", refused.body);
    let wait: u64 = refused.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Logins, password changes and game logins share one budget.
    api.login(&name, "correct horse").await.unwrap();
    let _ = api
        .change_password(&name, "wrong horse", "battery staple")
        .await;
    let reason = refused_login(&server, Options::password(&name, "wrong horse")).await;
    assert!(reason.contains("wrong name or password"), "{reason}");
    let limited = raw_post(&server, "/api/login", &name, "correct horse").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.retry_after.is_some());
    let reason = refused_login(&server, Options::password(&name, "correct horse")).await;
    assert!(reason.contains("too many attempts"), "{reason}");
    assert_eq!(
        metric(
            &server,
            "hearth_rejected_total{layer=\"accounts\",reason=\"rate_limited_register\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &server,
            "hearth_rejected_total{layer=\"accounts\",reason=\"rate_limited_login\"}"
        )
        .await,
        2
    );
    assert_eq!(
        metric(&server, "hearth_logins_total{outcome=\"rate_limited\"}").await,
        1
    );
    assert_eq!(
        metric(&server, "hearth_api_errors_total{code=\"rate_limited\"}").await,
        2
    );
    server.shutdown("test over").await;
}

/// A game login over UDP, the link that reports the client's address.
async fn refused_login(server: &Running, options: Options) -> String {
    refused(&format!("udp://{}", server.game_udp.unwrap()), options)
        .await
        .to_string()
}

#[tokio::test]
async fn game_logins_over_tcp_udp_and_websocket_reach_one_session_api() {
    let (_dir, server, api, name) = server_with_player("game", |_| {}).await;
    // TCP first, then UDP by ticket.
    let mut auto = joined(
        &format!("hearth://{}", server.game_tcp),
        Options::password(&name, "correct horse"),
    )
    .await;
    auto.open_channel(2, game_channel()).await.unwrap();
    echo(&mut auto, 2, 100).await;
    auto.close(0, "done").await;
    // UDP alone, with a token from the API.
    let tokens = api.login(&name, "correct horse").await.unwrap();
    let mut udp = joined(
        &format!("udp://{}", server.game_udp.unwrap()),
        Options::token(&tokens.access_token),
    )
    .await;
    udp.open_channel(2, game_channel()).await.unwrap();
    echo(&mut udp, 2, 100).await;
    udp.close(0, "done").await;
    // WebSocket on the web port.
    let mut ws = joined(
        &format!("ws://{}/ws", server.web),
        Options::token(&tokens.access_token),
    )
    .await;
    ws.open_channel(2, game_channel()).await.unwrap();
    echo(&mut ws, 2, 100).await;
    server.shutdown("test over").await;
}

#[tokio::test]
async fn wrong_passwords_expired_and_revoked_tokens_are_refused_with_the_reason() {
    let (_dir, server, api, name) =
        server_with_player("refuse", |c| c.accounts.access_token_secs = 1).await;
    let url = format!("hearth://{}", server.game_tcp);
    let reason = refused(&url, Options::password(&name, "wrong horse")).await;
    assert!(
        matches!(&reason, CloseReason::LoginRefused(why) if why.contains("wrong name or password")),
        "{reason}"
    );
    let reason = refused(&url, Options::anonymous()).await;
    assert!(
        matches!(&reason, CloseReason::LoginRefused(why) if why.contains("requires an account")),
        "{reason}"
    );
    let reason = refused(&url, Options::token("made-up-token")).await;
    assert!(
        matches!(&reason, CloseReason::LoginRefused(why) if why.contains("unknown token")),
        "{reason}"
    );
    let revoked = api.login(&name, "correct horse").await.unwrap();
    api.logout(&revoked.access_token).await.unwrap();
    let reason = refused(&url, Options::token(&revoked.access_token)).await;
    assert!(
        matches!(&reason, CloseReason::LoginRefused(why) if why.contains("revoked")),
        "{reason}"
    );
    let expiring = api.login(&name, "correct horse").await.unwrap();
    joined(&url, Options::token(&expiring.access_token)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reason = refused(&url, Options::token(&expiring.access_token)).await;
    assert!(
        matches!(&reason, CloseReason::LoginRefused(why) if why.contains("expired")),
        "{reason}"
    );
    let metrics = common::metrics(server.web).await;
    for outcome in [
        "wrong_credentials",
        "anonymous_refused",
        "token_unknown",
        "token_revoked",
        "token_expired",
    ] {
        assert!(
            metrics.contains(&format!("hearth_logins_total{{outcome=\"{outcome}\"}} 1")),
            "{outcome} in\n{metrics}"
        );
    }
    server.shutdown("test over").await;
}

#[tokio::test]
async fn a_new_login_ends_the_old_session_of_the_same_account() {
    let (_dir, server, _api, name) = server_with_player("single", |_| {}).await;
    let url = format!("tcp://{}", server.game_tcp);
    let mut first = joined(&url, Options::password(&name, "correct horse")).await;
    let _second = joined(&url, Options::password(&name, "correct horse")).await;
    let reason = closed_reason(&mut first).await;
    assert!(reason.contains("logged in from another place"), "{reason}");
    server.shutdown("test over").await;
}

#[tokio::test]
async fn accounts_and_the_server_key_survive_a_restart() {
    let (dir, server, _api, name) = server_with_player("restart", |_| {}).await;
    let key = server.public_key;
    server.shutdown("restart").await;
    let (server, api) = start(config(&dir)).await;
    assert_eq!(
        server.public_key, key,
        "the key in the data directory is reused"
    );
    api.login(&name, "correct horse").await.unwrap();
    let mut options = Options::password(&name, "correct horse");
    options.server_key = Some(key);
    joined(&format!("hearth://{}", server.game_tcp), options).await;
    server.shutdown("test over").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_tells_connected_clients_why() {
    let (_dir, server, _api, name) = server_with_player("shutdown", |_| {}).await;
    let mut client = joined(
        &format!("hearth://{}", server.game_tcp),
        Options::password(&name, "correct horse"),
    )
    .await;
    let shutdown = tokio::spawn(server.shutdown("maintenance at noon"));
    let reason = closed_reason(&mut client).await;
    assert!(reason.contains("maintenance at noon"), "{reason}");
    timeout(WAIT, shutdown).await.unwrap().unwrap();
}

#[tokio::test]
async fn health_metrics_pages_and_upgrade_refusals() {
    let dir = data_dir("web");
    let (server, _api) = start(config(&dir)).await;
    let base = format!("http://{}", server.web);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok\n"
    );
    assert!(reqwest::get(&base)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("Hearth"));
    let old_version = reqwest::Client::new()
        .get(format!("{base}/ws"))
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(old_version.status(), 426);
    assert_eq!(old_version.headers()["sec-websocket-version"], "13");
    let post = reqwest::Client::new()
        .post(format!("{base}/ws"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    // A silent TCP client on the game port is counted once it is dropped.
    let silent = tokio::net::TcpStream::connect(server.game_tcp)
        .await
        .unwrap();
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("# TYPE hearth_rejected_total counter"));
    // The gate's own counters are exported, at zero on a quiet server.
    for zero in [
        "hearth_udp_forwarded_total 0",
        "hearth_udp_forward_dropped_total 0",
        "hearth_handler_queue_sessions_shed_total 0",
        "hearth_handler_queue_waiting_events 0",
        "hearth_handler_queue_waiting_bytes 0",
        "hearth_handler_queue_events_total{outcome=\"shed\"} 0",
    ] {
        assert!(metrics.contains(zero), "{zero} in {metrics}");
    }
    assert!(
        metrics.contains("hearth_api_errors_total{code=\"websocket_refused\"} 2"),
        "{metrics}"
    );
    drop(silent);
    server.shutdown("test over").await;
}

#[tokio::test]
async fn websocket_text_and_oversized_messages_close_that_connection_with_a_status() {
    use hearth_net::ws::{Limits, Message, WebSocket};
    let dir = data_dir("wsbad");
    let (server, _api) = start(config(&dir)).await;
    let open = || async {
        let tcp = tokio::net::TcpStream::connect(server.web).await.unwrap();
        let (socket, protocol) = WebSocket::connect(
            tcp,
            &server.web.to_string(),
            "/ws",
            &["hearth.v1"],
            Limits::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            protocol.as_deref(),
            Some("hearth.v1"),
            "subprotocol negotiated"
        );
        socket
    };
    let close_code = |message: Option<Message>| match message {
        Some(Message::Close(Some((code, _)))) => code,
        other => panic!("expected a close frame, got {other:?}"),
    };
    let mut text = open().await;
    text.send(&Message::Text("hello".into())).await.unwrap();
    assert_eq!(
        close_code(timeout(WAIT, text.recv()).await.unwrap().unwrap()),
        1003
    );
    let mut big = open().await;
    // The server may refuse before the whole frame is written.
    let _ = big.send_binary(&vec![0u8; 70_000]).await;
    assert_eq!(
        close_code(timeout(WAIT, big.recv()).await.unwrap().unwrap()),
        1009
    );
    let metrics = common::metrics(server.web).await;
    assert!(
        metrics.contains("hearth_rejected_total{layer=\"gate\",reason=\"malformed_frame\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_rejected_total{layer=\"gate\",reason=\"oversized_frame\"} 1"),
        "{metrics}"
    );
    server.shutdown("test over").await;
}
