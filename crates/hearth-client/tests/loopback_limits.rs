//! One switch for loopback clients, over real sockets: against a default
//! server, a load test on the server's own machine is held by no per-address
//! limit (more registrations and logins than the bursts allow, more web
//! connections than the per-address cap), while totals still hold; with
//! `limit_loopback` the same clients are refused, with 429 and 503, as a
//! remote address would be.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, data_dir, unique};
use hearth_client::{connect, Event, Options};
use hearth_server::listener::WebCutReason;
use hearth_server::{Config, Running};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

/// More than the default `register_burst` (5).
const REGISTRATIONS: usize = 8;
/// More than the default `login_burst` (20).
const LOGINS: usize = 24;
/// More than the default `max_connections_per_address` (64).
const WEB_CONNECTIONS: usize = 70;

async fn start(label: &str, limit_loopback: bool) -> Running {
    let config = Config {
        limit_loopback,
        ..config(&data_dir(label))
    };
    hearth_server::start(config).await.expect("server starts")
}

/// Opens idle connections to the web port until `count` are admitted or one
/// is refused; the connections, and the refusal's answer if one came.
async fn web_connections(server: &Running, count: usize) -> (Vec<TcpStream>, Option<String>) {
    let mut open = Vec::new();
    for _ in 0..count {
        let mut stream = TcpStream::connect(server.web).await.unwrap();
        let admitted = open.len() as u64 + 1;
        // Admitted (counted open) or refused (answered and closed at once).
        let refused = timeout(WAIT, async {
            let mut answer = Vec::new();
            loop {
                if server.web_metrics.open.load(Ordering::Relaxed) >= admitted {
                    return None;
                }
                let mut buf = [0u8; 512];
                match timeout(Duration::from_millis(10), stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        return Some(String::from_utf8_lossy(&answer).into_owned())
                    }
                    Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
            }
        })
        .await
        .expect("admitted or refused in time");
        if refused.is_some() {
            return (open, refused);
        }
        open.push(stream);
    }
    (open, None)
}

async fn wait_until_no_web_connection_is_open(server: &Running) {
    timeout(WAIT, async {
        while server.web_metrics.open.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("closed connections give their places back");
}

/// The status of `count` POSTs of `{name, password}` to `path`, names from `name_of`.
async fn statuses(
    server: &Running,
    path: &str,
    count: usize,
    name_of: impl Fn(usize) -> String,
) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for index in 0..count {
        let body = serde_json::json!({ "name": name_of(index), "password": "correct horse" });
        let response = client
            .post(format!("http://{}{path}", server.web))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

/// A game login over UDP (which reports the client's loopback address):
/// joined, or the reason it was refused.
async fn game_login(server: &Running, name: &str) -> Result<(), String> {
    let url = format!("udp://{}", server.game_udp.expect("UDP is served"));
    let mut connection = connect(&url, Options::password(name, "correct horse"))
        .await
        .unwrap();
    loop {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("joined or refused in time")
        {
            Some(Event::Joined) => return Ok(()),
            Some(Event::Closed(reason)) => return Err(reason.to_string()),
            Some(_) => {}
            None => return Err("stopped without a reason".to_owned()),
        }
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test]
async fn a_default_server_holds_loopback_clients_to_no_per_address_limit() {
    let server = start("loopback-default", false).await;
    let (open, refused) = web_connections(&server, WEB_CONNECTIONS).await;
    assert_eq!(
        refused, None,
        "the web port's per-address cap held loopback"
    );
    assert_eq!(open.len(), WEB_CONNECTIONS);
    assert_eq!(server.web_metrics.cuts(WebCutReason::TooManyFromAddress), 0);
    drop(open);
    wait_until_no_web_connection_is_open(&server).await;

    let base = unique("local");
    let name = |index: usize| format!("{base}{index}");
    let registered = statuses(&server, "/api/register", REGISTRATIONS, name).await;
    assert_eq!(count(&registered, 201), REGISTRATIONS, "{registered:?}");
    let logged_in = statuses(&server, "/api/login", LOGINS, |i| name(i % REGISTRATIONS)).await;
    assert_eq!(count(&logged_in, 200), LOGINS, "{logged_in:?}");
    // Game logins share the login budget, long spent had it applied.
    game_login(&server, &name(0)).await.unwrap();
    let stats = server.accounts.stats();
    assert_eq!(
        (stats.rate_limited_register, stats.rate_limited_login),
        (0, 0)
    );
    server.shutdown("test over").await;
}

#[tokio::test]
async fn with_limit_loopback_the_same_clients_are_refused_like_any_address() {
    let server = start("loopback-limited", true).await;
    let defaults = Config::default();
    let (open, refused) = web_connections(&server, WEB_CONNECTIONS).await;
    assert_eq!(open.len(), defaults.web.max_connections_per_address);
    let refused = refused.expect("the connection past the cap is refused");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("too many connections from your address"),
        "{refused}"
    );
    assert_eq!(server.web_metrics.cuts(WebCutReason::TooManyFromAddress), 1);
    drop(open);
    wait_until_no_web_connection_is_open(&server).await;

    let base = unique("local");
    let name = |index: usize| format!("{base}{index}");
    let registered = statuses(&server, "/api/register", REGISTRATIONS, name).await;
    let burst = defaults.accounts.register_burst as usize;
    assert_eq!(
        (count(&registered, 201), count(&registered, 429)),
        (burst, REGISTRATIONS - burst),
        "{registered:?}"
    );
    let logged_in = statuses(&server, "/api/login", LOGINS, |i| name(i % burst)).await;
    let burst = defaults.accounts.login_burst as usize;
    assert_eq!(
        (count(&logged_in, 200), count(&logged_in, 429)),
        (burst, LOGINS - burst),
        "{logged_in:?}"
    );
    let refusal = game_login(&server, &name(0)).await.unwrap_err();
    assert!(refusal.contains("too many attempts"), "{refusal}");
    server.shutdown("test over").await;
}
