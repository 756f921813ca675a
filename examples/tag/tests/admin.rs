//! Tag served by `hearth_server::start_game` over real sockets: a guest
//! through the Rust SDK gets a runner to steer, moves it with prediction
//! and sees the server take its moves; the dashboard's overview shows the
//! game's line with its tick figures; an administrator kicks the guest by
//! name (guests have no account) and its session closes, telling it why.

use std::sync::Arc;
use std::time::Duration;

use hearth_client::{connect, Event, Options};
use hearth_game::Pos;
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_server::{Config, Running};
use serde_json::Value;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse";

async fn serve(label: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("hearth-tag-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        ..Config::default()
    };
    config.accounts.allow_anonymous = true;
    if let Ok(url) = std::env::var("HEARTH_TEST_DATABASE_URL") {
        config.database_url = url;
    }
    hearth_server::start_game(config, tag::Tag::default())
        .await
        .expect("tag serves")
}

fn unique(name: &str) -> String {
    let seed = hearth_proto::os_seed();
    format!("{name}_{:02x}{:02x}{:02x}", seed[0], seed[1], seed[2])
}

async fn admin_request(
    server: &Running,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://{}{path}", server.web);
    let request = match body {
        Some(body) => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        None => client.get(url),
    };
    let response = request
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_steers_its_runner_is_on_the_dashboard_and_is_kicked_by_name() {
    let server = serve("guest").await;
    let admin = unique("tadmin");
    server
        .accounts
        .create_admin(&admin, Some(PASSWORD), false)
        .await
        .unwrap();
    let token = hearth_client::Accounts::new(&format!("http://{}", server.web))
        .login(&admin, PASSWORD)
        .await
        .unwrap()
        .access_token;

    let url = format!("hearth://{}", server.game_tcp);
    let mut options = Options::anonymous();
    options.player_name = "zed".to_owned();
    let mut guest = connect(&url, options).await.unwrap();
    timeout(WAIT, guest.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    let mut replica = GameReplica::new(Arc::new(tag::schema()));

    // Until it controls its runner, then walk two cells towards the middle
    // of the arena (every spawn point has room), one move per frame.
    let deadline = Instant::now() + WAIT;
    let mut start: Option<Pos> = None;
    let mut moves = 0;
    let mut step = 5;
    loop {
        assert!(Instant::now() < deadline, "never walked");
        let Ok(Some(event)) = timeout(WAIT, guest.next_event()).await else {
            panic!("the guest's session ended");
        };
        match event {
            Event::Message { channel, payload } if channel == RELIABLE_CHANNEL => {
                replica.apply_reliable(&payload).unwrap();
            }
            Event::Message { channel, payload } if channel == STATE_CHANNEL => {
                replica.apply_frame(&payload).unwrap();
            }
            Event::Closed(reason) => panic!("closed: {reason}"),
            _ => continue,
        }
        while replica.poll_event().is_some() {}
        if let Some(own) = replica.controlled() {
            if let Some(at) = replica.position(own) {
                let origin = *start.get_or_insert_with(|| {
                    if at.x > 24 * 100 {
                        step = -5;
                    }
                    at
                });
                if moves < 40 {
                    replica.move_to(Pos::new(at.x + step, at.y)).unwrap();
                    moves += 1;
                } else if replica.pending_moves() == 0
                    && replica.server_position(own)
                        == Some(Pos::new(origin.x + 40 * step, origin.y))
                {
                    break;
                }
            }
        }
        if let Some(state) = replica.poll_ack() {
            guest.send(STATE_CHANNEL, &state).await.unwrap();
        }
    }
    let own = replica.controlled().unwrap();
    let name = match replica.value(own, "name") {
        Some(hearth_replica::schema::Value::Str(name)) => name.to_string(),
        other => panic!("the runner's name: {other:?}"),
    };
    assert!(name.starts_with("guest-zed"), "{name}");

    // The dashboard shows the game's line, with the guest in it and the
    // line's tick figures.
    let (status, overview) = admin_request(&server, &token, "/api/admin/overview", None).await;
    assert_eq!(status, 200);
    let line = &overview["world"]["lines"][0];
    assert_eq!(line["zone"], "arena", "the line of the arena zone");
    assert_eq!(line["players"], 1);
    assert!(line["tick_p50_us"].as_u64().unwrap() > 0, "{line}");
    assert!(
        line["stats"]["moves_accepted"].as_u64().unwrap() >= 40,
        "{line}"
    );

    // Kicked by name: the session closes with the reason.
    let (status, body) = admin_request(
        &server,
        &token,
        "/api/admin/kick",
        Some(serde_json::json!({ "name": name, "reason": "time for bed" })),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let closed = timeout(WAIT, async {
        loop {
            match guest.next_event().await {
                Some(Event::Closed(reason)) => return reason.to_string(),
                Some(_) => {}
                None => return String::new(),
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(closed.contains("time for bed"), "{closed}");

    // A name nobody plays under is refused.
    let (status, _) = admin_request(
        &server,
        &token,
        "/api/admin/kick",
        Some(serde_json::json!({ "name": "guest-nobody-1" })),
    )
    .await;
    assert_eq!(status, 404);
    server.shutdown("the test is over").await;
}
