//! The built-in world (a game on the game API), served by
//! `hearth_server::start` over real sockets: its page at `/`, two
//! players through the SDK's `GameSession` (one over TCP and UDP, one over
//! WebSocket) with the world's schema, chat on the line and whispers, a
//! travel to another zone (a new Joined, the zone's own speed), a whisper
//! that finds the traveller there, a refused line change, and an
//! administrator's announcement in both zones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hearth_client::game::GameSession;
use hearth_client::{Accounts, Event, Options};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::schema::Value;
use hearth_server::Running;
use tokio::time::{timeout, Instant};

const PASSWORD: &str = "correct horse";
const WAIT: Duration = Duration::from_secs(10);

/// On PostgreSQL when `HEARTH_TEST_DATABASE_URL` is set (scripts/test).
async fn serve(label: &str) -> Running {
    let config = common::config(&common::data_dir(&format!("world-api-{label}")));
    hearth_server::start(config)
        .await
        .expect("the world serves")
}

/// A player: the session and what it made of what arrived.
struct Player {
    session: GameSession,
    replica: GameReplica,
    /// (message name, values), in order.
    messages: Vec<(String, Vec<Value>)>,
    joins: usize,
}

impl Player {
    async fn join(url: &str, name: &str) -> Player {
        let schema = Arc::new(hearth_world::world_schema());
        let session = GameSession::join(url, Options::password(name, PASSWORD), schema.version())
            .await
            .unwrap_or_else(|e| panic!("{name} joins: {e}"));
        Player {
            session,
            replica: GameReplica::new(schema),
            messages: Vec::new(),
            joins: 0,
        }
    }

    /// Takes what arrives for `within`, acknowledging as a client does.
    async fn pump(&mut self, within: Duration) {
        let until = Instant::now() + within;
        while let Ok(Some(event)) = timeout(
            until.saturating_duration_since(Instant::now()),
            self.session.next_event(),
        )
        .await
        {
            let Event::Message { channel, payload } = event else {
                continue;
            };
            match channel {
                RELIABLE_CHANNEL => self.replica.apply_reliable(&payload).unwrap(),
                STATE_CHANNEL => self.replica.apply_frame(&payload).unwrap(),
                _ => continue,
            }
            while let Some(event) = self.replica.poll_event() {
                match event {
                    GameEvent::Joined { .. } => self.joins += 1,
                    GameEvent::Message { index, values } => {
                        let name = self.replica.schema().messages()[usize::from(index)]
                            .name
                            .clone();
                        self.messages.push((name, values));
                    }
                    _ => {}
                }
            }
            if let Some(ack) = self.replica.poll_ack() {
                let _ = self.session.send(STATE_CHANNEL, &ack).await;
            }
        }
    }

    /// Pumps until `done` holds (or fails after [`WAIT`]).
    async fn until(&mut self, what: &str, done: impl Fn(&Player) -> bool) {
        let until = Instant::now() + WAIT;
        while !done(self) {
            assert!(Instant::now() < until, "{what}: {:?}", self.messages);
            self.pump(Duration::from_millis(50)).await;
        }
    }

    async fn send(&self, message: &str, values: Vec<Value>) {
        let bytes = self.replica.message(message, values).unwrap();
        self.session.send(RELIABLE_CHANNEL, &bytes).await.unwrap();
    }

    async fn say(&self, scope: i64, to: &str, text: &str) {
        self.send(
            "say",
            vec![
                Value::Int(scope),
                Value::Str(to.into()),
                Value::Str(text.into()),
            ],
        )
        .await;
    }

    fn heard(&self, name: &str, field: usize, text: &str) -> bool {
        self.messages
            .iter()
            .any(|(n, values)| n == name && values.get(field) == Some(&Value::Str(text.into())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_players_chat_whisper_and_travel() {
    let server = serve("play").await;
    let page = reqwest::get(server.web_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Enter the world"), "the world's page at /");
    let accounts = Accounts::new(&server.web_url());
    // Unique names: runs share one PostgreSQL database.
    let (ann_name, ben_name) = (common::unique("ann"), common::unique("ben"));
    for name in [&ann_name, &ben_name] {
        accounts.register(name, PASSWORD).await.unwrap();
    }
    let mut ann = Player::join(&format!("hearth://{}", server.game_tcp), &ann_name).await;
    let mut ben = Player::join(&format!("ws://{}/ws", server.web), &ben_name).await;
    ann.until("ann enters the meadow", |p| p.heard("entered", 0, "meadow"))
        .await;
    ben.until("ben enters the meadow", |p| p.heard("entered", 0, "meadow"))
        .await;
    assert_eq!(ann.replica.speed(0), Some(5), "the meadow's walking speed");

    // Chat on the line, and a whisper back.
    ann.say(1, "", "hello, line").await;
    ben.until("ben hears ann", |p| p.heard("chat", 3, "hello, line"))
        .await;
    // Names compare without case.
    ben.say(2, &ann_name.to_uppercase(), "psst").await;
    ann.until("ann hears the whisper", |p| p.heard("chat", 3, "psst"))
        .await;

    // Ann travels to the caves: a new line, a new Joined, the caves' speed.
    ann.send("travel", vec![Value::Str("caves".into())]).await;
    ann.until("ann enters the caves", |p| p.heard("entered", 0, "caves"))
        .await;
    ann.until("ann's replica joined the caves", |p| p.joins == 2)
        .await;
    assert_eq!(ann.replica.speed(0), Some(4), "the caves are slower");
    assert!(ann.replica.controlled().is_some(), "steering in the caves");

    // A whisper finds her there; a line that is not open is refused.
    ben.say(2, &ann_name, "where are you?").await;
    ann.until("ann hears ben in the caves", |p| {
        p.heard("chat", 3, "where are you?")
    })
    .await;
    ann.send("switch_line", vec![Value::Int(9)]).await;
    ann.until("the line change is refused", |p| {
        p.messages.iter().any(|(n, v)| {
            n == "refused"
                && matches!(&v[1], Value::Str(reason) if reason.contains("not open")
                    || reason.contains("a moment ago"))
        })
    })
    .await;

    // An administrator's announcement reaches both, in their two zones.
    let keeper = common::unique("keeper");
    server
        .accounts
        .create_admin(&keeper, Some(PASSWORD), false)
        .await
        .unwrap();
    let token = accounts
        .login(&keeper, PASSWORD)
        .await
        .unwrap()
        .access_token;
    let response = reqwest::Client::new()
        .post(format!("{}/api/admin/announce", server.web_url()))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(r#"{"text":"the inn closes at dusk"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    ann.until("ann hears the announcement", |p| {
        p.heard("chat", 3, "the inn closes at dusk")
    })
    .await;
    ben.until("ben hears the announcement", |p| {
        p.heard("chat", 3, "the inn closes at dusk")
    })
    .await;

    assert!(ann.session.leave("done", WAIT).await);
    assert!(ben.session.leave("done", WAIT).await);
    server.shutdown("the test is over").await;
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// What a recording holds, played into a fresh replica as `hearth replay`
/// does: the replica, and the chat texts heard.
fn replay(file: &[u8]) -> (GameReplica, Vec<String>) {
    let mut records = hearth_replica::record::read_all(file).expect("a recording");
    let first = records.remove(0);
    assert_eq!(first.channel, hearth_replica::record::SCHEMA_CHANNEL);
    let schema: hearth_replica::schema::Schema = serde_json::from_slice(&first.bytes).unwrap();
    assert_eq!(schema.version(), hearth_world::world_schema().version());
    let mut replica = GameReplica::new(Arc::new(schema));
    let mut heard = Vec::new();
    for record in records {
        match record.channel {
            RELIABLE_CHANNEL => replica.apply_reliable(&record.bytes).unwrap(),
            STATE_CHANNEL => replica.apply_frame(&record.bytes).unwrap(),
            other => panic!("a record on channel {other}"),
        }
        while let Some(event) = replica.poll_event() {
            if let GameEvent::Message { index, values } = event {
                if replica.schema().messages()[usize::from(index)].name == "chat" {
                    if let Value::Str(text) = &values[3] {
                        heard.push(text.to_string());
                    }
                }
            }
        }
    }
    (replica, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_records_a_player_and_a_line_and_both_replay_whole() {
    let server = serve("record").await;
    let accounts = Accounts::new(&server.web_url());
    let (ann_name, ben_name) = (common::unique("ann"), common::unique("ben"));
    for name in [&ann_name, &ben_name] {
        accounts.register(name, PASSWORD).await.unwrap();
    }
    let mut ann = Player::join(&format!("hearth://{}", server.game_tcp), &ann_name).await;
    let mut ben = Player::join(&format!("ws://{}/ws", server.web), &ben_name).await;
    ann.until("ann enters the meadow", |p| p.heard("entered", 0, "meadow"))
        .await;
    ben.until("ben enters the meadow", |p| p.heard("entered", 0, "meadow"))
        .await;

    let keeper = common::unique("keeper");
    server
        .accounts
        .create_admin(&keeper, Some(PASSWORD), false)
        .await
        .unwrap();
    let token = accounts
        .login(&keeper, PASSWORD)
        .await
        .unwrap()
        .access_token;
    let web = server.web_url();
    let http = reqwest::Client::new();
    let record = |body: String| {
        http.post(format!("{web}/api/admin/record"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let started = record(format!(r#"{{"name":"{ann_name}","seconds":2}}"#))
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let player_file = json(started).await["file"].as_str().unwrap().to_owned();
    let again = record(format!(r#"{{"name":"{ann_name}","seconds":2}}"#))
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "one recording of a player at a time");
    let started = record(r#"{"zone":"meadow","line":1,"seconds":2}"#.into())
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let line_file = json(started).await["file"].as_str().unwrap().to_owned();
    for (body, why) in [
        (r#"{"name":"nobody-here","seconds":2}"#, "not online"),
        (r#"{"zone":"meadow","line":9,"seconds":2}"#, "no line 9"),
    ] {
        let refused = record(body.into()).await.unwrap();
        assert_eq!(refused.status(), 404, "{body}");
        let text = refused.text().await.unwrap();
        assert!(text.contains(why), "{text}");
    }

    // Ann's client is sent everything again (her recording starts whole).
    ann.until("ann's replica starts afresh", |p| p.joins == 2)
        .await;
    ben.say(1, "", "on the record").await;
    ann.until("ann hears ben", |p| p.heard("chat", 3, "on the record"))
        .await;
    assert!(ann.replica.controlled().is_some(), "still steering");

    // Both recordings end after their two seconds.
    let until = Instant::now() + WAIT;
    loop {
        ann.pump(Duration::from_millis(100)).await;
        ben.pump(Duration::from_millis(100)).await;
        let listed = json(
            http.get(format!("{web}/api/admin/recordings"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if listed["cost"]["active"] == 0 {
            break;
        }
        assert!(Instant::now() < until, "the recordings end: {listed}");
    }
    let download = |file: String| {
        http.get(format!("{web}/api/admin/recordings/{file}"))
            .bearer_auth(&token)
            .send()
    };
    let bytes = download(player_file).await.unwrap().bytes().await.unwrap();
    let (seen, heard) = replay(&bytes);
    assert_eq!(heard, ["on the record"]);
    let own = seen
        .controlled()
        .expect("the recording knows whom ann steers");
    assert_eq!(Some(own), ann.replica.controlled());
    assert!(seen.actors().count() > 2, "ann, ben and the meadow's NPCs");

    let bytes = download(line_file).await.unwrap().bytes().await.unwrap();
    let (seen, heard) = replay(&bytes);
    assert_eq!(heard, ["on the record"]);
    assert_eq!(seen.controlled(), None, "an observer steers nothing");
    assert!(seen.actor(own).is_some(), "the line's recording has ann");
    assert!(seen.actors().count() >= ann.replica.actors().count());

    assert!(ann.session.leave("done", WAIT).await);
    assert!(ben.session.leave("done", WAIT).await);
    server.shutdown("the test is over").await;
}

/// A database that an older Hearth wrote, whose engine of the built-in
/// world saved places in the `players` table: a player it has no game data
/// of enters where that row left them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_the_old_engine_saved_is_where_the_world_starts() {
    let server = serve("places").await;
    let name = common::unique("settler");
    Accounts::new(&server.web_url())
        .register(&name, PASSWORD)
        .await
        .unwrap();
    let saved = hearth_world::Pos::cell_centre(4, 10);
    let written = sqlx::query(
        "INSERT INTO players (account_id, zone, line, x, y, appearance, value0, value1, value2, value3, saved_at) \
         SELECT id, 'town', 1, $2, $3, 3, 90, 2, 7, 0, 0 FROM accounts WHERE name = $1",
    )
    .bind(&name)
    .bind(i64::from(saved.x))
    .bind(i64::from(saved.y))
    .execute(&server.storage.pool)
    .await
    .unwrap();
    assert_eq!(written.rows_affected(), 1);
    let mut player = Player::join(&format!("hearth://{}", server.game_tcp), &name).await;
    player
        .until("enters the town, where the old engine left them", |p| {
            p.heard("entered", 0, "town")
                && p.replica
                    .controlled()
                    .is_some_and(|me| p.replica.server_position(me).is_some())
        })
        .await;
    let me = player.replica.controlled().unwrap();
    assert_eq!(player.replica.server_position(me), Some(saved));
    // Its values came along: health 90, level 2, score 7.
    let values = &player.replica.actor(me).unwrap().values;
    let (_, kind) = player.replica.schema().kind("player").unwrap();
    for (prop, value) in [("health", 90), ("level", 2), ("score", 7)] {
        assert_eq!(
            values[kind.prop_index(prop).unwrap()],
            Value::Int(value),
            "{prop}"
        );
    }
    assert!(player.session.leave("done", WAIT).await);
    server.shutdown("the test is over").await;
}
