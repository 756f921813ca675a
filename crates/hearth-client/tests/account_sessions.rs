//! What an account's sessions and the web API owe an administrator and a
//! player, over real sockets: a lock, a deletion and a kick end every
//! session of the account (in the world or not, several at once) within a
//! second; look-alike names reach no account; what administrators send
//! players follows the chat's rules; and the JSON endpoints refuse what a
//! foreign web page could make a browser send.

mod common;

use std::time::Duration;

use common::{config, data_dir, unique};
use hearth_client::{connect, Accounts, CloseReason, Connection, Event, Options};
use hearth_proto::session::ChannelSpec;
use hearth_proto::{ChannelKind, Delivery};
use hearth_server::Running;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse";
const WAIT: Duration = Duration::from_secs(20);
/// The echo channel: not one of the world's.
const ECHO: u16 = 7;
const LOCKED: &str = "this account has been locked by an administrator";

/// A server where an account may have several sessions, with an
/// administrator; returns it, the administrator's name and access token.
async fn server(label: &str) -> (Running, String, String) {
    let dir = data_dir(label);
    let mut settings = config(&dir);
    settings.accounts.single_session = false;
    let server = hearth_server::start(settings).await.unwrap();
    let admin = unique("kadmin");
    server
        .accounts
        .create_admin(&admin, Some(PASSWORD), false)
        .await
        .unwrap();
    let token = api(&server).login(&admin, PASSWORD).await.unwrap();
    (server, admin, token.access_token)
}

fn api(server: &Running) -> Accounts {
    Accounts::new(&format!("http://{}", server.web))
}

async fn player(server: &Running, name: &str) -> String {
    let name = unique(name);
    api(server).register(&name, PASSWORD).await.unwrap();
    name
}

/// A POST with `content_type` and, when given, `origin`: status and body.
async fn post(
    server: &Running,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    origin: Option<&str>,
    body: String,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", server.web))
        .body(body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn metrics(server: &Running) -> String {
    common::metrics(server.web).await
}

/// An administrator's JSON POST: status and body.
async fn admin_post(server: &Running, token: &str, path: &str, body: Value) -> (u16, Value) {
    post(
        server,
        path,
        Some(token),
        Some("application/json"),
        None,
        body.to_string(),
    )
    .await
}

/// `name` logged in over `url` with `options`, its echo answering.
async fn online(url: &str, name: &str, options: &str) -> Connection {
    let mut login = Options::password(name, PASSWORD);
    login.options = options.to_owned();
    let mut connection = connect(url, login).await.unwrap();
    tokio::time::timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    let echo = ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered);
    connection.open_channel(ECHO, echo).await.unwrap();
    assert_eq!(echo_of(&mut connection).await, Ok(()), "{name} {options}");
    connection
}

/// Sends on the echo channel and waits for the answer; Err with the close
/// reason when the session ends first.
async fn echo_of(connection: &mut Connection) -> Result<(), String> {
    connection
        .send(ECHO, b"still here")
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(WAIT, async {
        loop {
            match connection.next_event().await {
                Some(Event::Message { channel, payload }) if channel == ECHO => {
                    assert_eq!(payload, b"still here");
                    return Ok(());
                }
                Some(Event::Closed(reason)) => return Err(reason.to_string()),
                None => return Err("the connection stopped".into()),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("an echo or a close in time")
}

/// The session is closed within a second with `reason` as a kick, and
/// nothing arrives from it afterwards.
async fn closed_with(connection: &mut Connection, what: &str, reason: &str) {
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match connection.next_event().await {
                Some(Event::Closed(why)) => return Some(why),
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} still open a second later"));
    assert_eq!(
        closed,
        Some(CloseReason::Kicked {
            reason: reason.into()
        }),
        "{what}"
    );
    let after = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match connection.next_event().await {
                Some(Event::Message { channel, .. }) => return Some(channel),
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(
        matches!(after, Ok(None) | Err(_)),
        "{what} heard from channel {after:?} after its close"
    );
    assert!(
        connection.send(ECHO, b"anyone?").await.is_err(),
        "{what} can still send"
    );
}

/// Three sessions of one account (out of the world over UDP, in it over
/// TCP, out of it over WebSocket) and one of a bystander's.
struct Sessions {
    lobby: Connection,
    walker: Connection,
    second_lobby: Connection,
    bystander: Connection,
}

async fn sessions_of(server: &Running, name: &str, bystander: &str) -> Sessions {
    let udp = format!("udp://{}", server.game_udp.unwrap());
    let tcp = format!("tcp://{}", server.game_tcp);
    let ws = format!("ws://{}/ws", server.web);
    Sessions {
        lobby: online(&udp, name, "?world=off").await,
        walker: online(&tcp, name, "?zone=meadow").await,
        second_lobby: online(&ws, name, "?world=off").await,
        bystander: online(&tcp, bystander, "?world=off").await,
    }
}

impl Sessions {
    /// Every session of the account ends with `reason`; the bystander's
    /// goes on, and the gate holds it alone.
    async fn all_closed_with(mut self, server: &Running, reason: &str) {
        closed_with(&mut self.lobby, "the ?world=off session", reason).await;
        closed_with(&mut self.walker, "the session in the world", reason).await;
        closed_with(&mut self.second_lobby, "the third session", reason).await;
        assert_eq!(echo_of(&mut self.bystander).await, Ok(()), "the bystander");
        let mut live = 0;
        for _ in 0..50 {
            live = server.gate.session_count();
            if live == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(live, 1, "the gate still holds the account's sessions");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_ends_every_session_of_the_account_within_a_second() {
    let (server, _, admin) = server("lock-sessions").await;
    let name = player(&server, "locked").await;
    let other = player(&server, "bystander").await;
    let sessions = sessions_of(&server, &name, &other).await;
    let (status, body) = admin_post(
        &server,
        &admin,
        "/api/admin/lock",
        json!({ "name": name, "locked": true }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    sessions.all_closed_with(&server, LOCKED).await;
    // And no new one starts.
    let mut login = Options::password(&name, PASSWORD);
    login.options = "?world=off".into();
    let mut refused = connect(&format!("tcp://{}", server.game_tcp), login)
        .await
        .unwrap();
    let outcome = tokio::time::timeout(WAIT, refused.wait_for(|e| *e == Event::Joined))
        .await
        .expect("an answer in time");
    assert!(outcome.is_err(), "a locked account logged in");
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_ends_every_session_of_it_within_a_second() {
    let (server, _, _) = server("delete-sessions").await;
    let name = player(&server, "deleted").await;
    let other = player(&server, "bystander").await;
    let sessions = sessions_of(&server, &name, &other).await;
    api(&server).delete(&name, PASSWORD).await.unwrap();
    sessions
        .all_closed_with(&server, "this account was deleted")
        .await;
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_ends_every_session_of_the_account_within_a_second() {
    let (server, _, admin) = server("kick-sessions").await;
    let name = player(&server, "kicked").await;
    let other = player(&server, "bystander").await;
    let sessions = sessions_of(&server, &name, &other).await;
    let (status, body) = admin_post(
        &server,
        &admin,
        "/api/admin/kick",
        json!({ "name": name.to_uppercase(), "reason": "spam ✋" }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    sessions
        .all_closed_with(&server, "kicked by an administrator: spam ✋")
        .await;
    // Nobody of that name is left: a second kick says so.
    let (status, body) =
        admin_post(&server, &admin, "/api/admin/kick", json!({ "name": name })).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_online")));
    server.shutdown("test over").await;
}

/// KELVIN SIGN (U+212A) in place of the admin's leading 'k': Unicode
/// lowercasing turns it into 'k', and once did.
fn look_alike(name: &str) -> String {
    format!("\u{212A}{}", &name[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_names_neither_log_in_nor_lock_nor_count_as_self() {
    let (server, admin_name, admin) = server("look-alike").await;
    let impostor = look_alike(&admin_name);

    let login = api(&server).login(&impostor, PASSWORD).await;
    assert!(login.is_err(), "a look-alike logged in as {admin_name}");
    let (status, body) = admin_post(
        &server,
        &admin,
        "/api/admin/lock",
        json!({ "name": impostor, "locked": true }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_account")),
        "{body}"
    );
    // The same account under another case is the administrator's own.
    let (status, body) = admin_post(
        &server,
        &admin,
        "/api/admin/lock",
        json!({ "name": admin_name.to_uppercase(), "locked": true }),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("self_lock")));
    api(&server)
        .login(&admin_name, PASSWORD)
        .await
        .expect("the administrator still logs in");

    // A player's look-alike reaches no player either.
    let name = player(&server, "kplayer").await;
    let (status, _) = admin_post(
        &server,
        &admin,
        "/api/admin/lock",
        json!({ "name": look_alike(&name), "locked": true }),
    )
    .await;
    assert_eq!(status, 404);
    api(&server)
        .login(&name, PASSWORD)
        .await
        .expect("the player is not locked");
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_and_reasons_with_escapes_or_invisible_characters_are_refused() {
    let (server, _, admin) = server("admin-text").await;
    let name = player(&server, "reader").await;
    let mut reader = online(&format!("tcp://{}", server.game_tcp), &name, "?world=off").await;
    let bad = [
        "\u{1b}[2J\u{1b}]0;owned\u{7}cleared",
        "\u{1b}[31mred alert",
        "hello\n[whisper] admin: send me your password",
        "reversed \u{202E}txt.exe",
        "in\u{200B}visible",
        "isolated \u{2066}text",
    ];
    for text in bad {
        let (status, body) = admin_post(
            &server,
            &admin,
            "/api/admin/announce",
            json!({ "text": text }),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_text")),
            "{text:?}"
        );
        let (status, body) = admin_post(
            &server,
            &admin,
            "/api/admin/kick",
            json!({ "name": name, "reason": text }),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_text")),
            "{text:?}"
        );
        let (status, body) = admin_post(
            &server,
            &admin,
            "/api/admin/lock",
            json!({ "name": name, "locked": true, "reason": text }),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_text")),
            "{text:?}"
        );
    }
    let counted = metrics(&server).await;
    let line = format!(
        r#"hearth_api_errors_total{{code="bad_text"}} {}"#,
        bad.len() * 3
    );
    assert!(counted.contains(&line), "{line} in {counted}");
    // Nothing was done: the player is neither kicked nor locked.
    assert_eq!(echo_of(&mut reader).await, Ok(()));
    api(&server).login(&name, PASSWORD).await.unwrap();
    // Plain text still goes through.
    let (status, _) = admin_post(
        &server,
        &admin,
        "/api/admin/announce",
        json!({ "text": "Maintenance at 18:00 — ça ira ✋" }),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = admin_post(
        &server,
        &admin,
        "/api/admin/lock",
        json!({ "name": name, "locked": true, "reason": "chargeback" }),
    )
    .await;
    assert_eq!(status, 204);
    closed_with(
        &mut reader,
        "the locked player",
        &format!("{LOCKED}: chargeback"),
    )
    .await;
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_refuse_other_content_types_and_foreign_origins() {
    let (server, _, admin) = server("content-type").await;
    let name = player(&server, "victim").await;
    let fresh = unique("fresh");
    let credentials = |name: &str| json!({ "name": name, "password": PASSWORD }).to_string();
    let form = |name: &str| format!("name={name}&password=correct+horse");
    for path in ["/api/register", "/api/login"] {
        for who in [&name, &fresh] {
            let (status, body) = post(
                &server,
                path,
                None,
                Some("text/plain;charset=UTF-8"),
                None,
                credentials(who),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (415, Some("unsupported_media_type")),
                "text/plain to {path}: {body}"
            );
            let (status, _) = post(
                &server,
                path,
                None,
                Some("application/x-www-form-urlencoded"),
                None,
                form(who),
            )
            .await;
            assert_eq!(status, 415, "a form to {path}");
            let (status, _) = post(&server, path, None, None, None, credentials(who)).await;
            assert_eq!(status, 415, "no type to {path}");
            let (status, body) = post(
                &server,
                path,
                None,
                Some("application/json"),
                Some("https://evil.example"),
                credentials(who),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("foreign_origin")),
                "a foreign page to {path}: {body}"
            );
        }
    }
    // The administrator's endpoints too.
    let (status, _) = post(
        &server,
        "/api/admin/announce",
        Some(&admin),
        Some("text/plain"),
        None,
        json!({ "text": "hello" }).to_string(),
    )
    .await;
    assert_eq!(status, 415);
    let counted = metrics(&server).await;
    for line in [
        r#"hearth_api_errors_total{code="unsupported_media_type"} 13"#,
        r#"hearth_api_errors_total{code="foreign_origin"} 4"#,
    ] {
        assert!(counted.contains(line), "{line} in {counted}");
    }

    // No account was created: the name is still free.
    let (status, body) = post(
        &server,
        "/api/register",
        None,
        Some("application/json; charset=utf-8"),
        Some(&format!("http://{}", server.web)),
        credentials(&fresh),
    )
    .await;
    assert_eq!(status, 201, "this server's own page registers: {body}");
    // The JSON client goes on working, end to end.
    let client = api(&server);
    let pair = client.login(&name, PASSWORD).await.unwrap();
    let pair = client.refresh(&pair.refresh_token).await.unwrap();
    client.logout(&pair.refresh_token).await.unwrap();
    client
        .change_password(&fresh, PASSWORD, "battery staple")
        .await
        .unwrap();
    client.delete(&fresh, "battery staple").await.unwrap();
    server.shutdown("test over").await;
}
