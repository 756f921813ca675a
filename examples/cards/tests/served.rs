//! The card game served by `hearth_server::start_game` over real sockets:
//! two players through the Rust SDK (one over TCP, one over WebSocket)
//! play a round to a winner; what the second player's client received
//! (its capture of the decrypted wire) never holds the first player's
//! hand; the win is in the database at the next login; the game's PreLogin
//! refuses guests and a client built for another schema is refused at
//! login; a malformed game message closes the session and is counted.

mod capture;
use std::sync::Arc;
use std::time::Duration;

use cards::Cards;
use hearth_client::{connect, Accounts, CloseReason, Event, Options};
use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::schema::{Schema, Value};
use hearth_server::{Config, Running};
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse";

fn schema() -> Arc<Schema> {
    Arc::new(cards::schema())
}

async fn serve(label: &str, configure: impl FnOnce(&mut Config)) -> Running {
    let dir = std::env::temp_dir().join(format!("hearth-cards-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        ..Config::default()
    };
    if let Ok(url) = std::env::var("HEARTH_TEST_DATABASE_URL") {
        config.database_url = url;
    }
    configure(&mut config);
    hearth_server::start_game(config, Cards)
        .await
        .expect("the card game serves")
}

fn unique(name: &str) -> String {
    let seed = hearth_proto::os_seed();
    format!("{name}_{:02x}{:02x}{:02x}", seed[0], seed[1], seed[2])
}

/// A player at the table: its connection, replica and everything received.
struct Player {
    connection: hearth_client::Connection,
    replica: GameReplica,
    received: Vec<(u16, Vec<u8>)>,
    /// The situation it last acted in, and when: it acts again when the
    /// table changed, or after a second (a move over the rate limit is
    /// dropped by the server, and a client tries again).
    acted_at: Option<((i64, i64, usize), Instant)>,
    won: Vec<i64>,
}

impl Player {
    async fn sit(url: &str, name: &str) -> Self {
        let mut connection = connect(url, Options::password(name, PASSWORD))
            .await
            .unwrap();
        timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
            .await
            .expect("joined in time")
            .expect("joined");
        Self {
            connection,
            replica: GameReplica::new(schema()),
            received: Vec::new(),
            acted_at: None,
            won: Vec::new(),
        }
    }

    /// Applies what arrived within `wait`.
    async fn receive(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Ok(Some(event)) =
            timeout(deadline - Instant::now(), self.connection.next_event()).await
        {
            match event {
                Event::Message { channel, payload } if channel == RELIABLE_CHANNEL => {
                    self.replica.apply_reliable(&payload).unwrap();
                    self.received.push((channel, payload));
                }
                Event::Message { channel, payload } if channel == STATE_CHANNEL => {
                    self.replica.apply_frame(&payload).unwrap();
                    self.received.push((channel, payload));
                }
                Event::Closed(reason) => panic!("closed: {reason}"),
                _ => {}
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        while let Some(event) = self.replica.poll_event() {
            if let GameEvent::Message { index, values } = event {
                if self.replica.schema().messages()[usize::from(index)].name == "won" {
                    self.won.push(int(&values[0]));
                }
            }
        }
        if let Some(ack) = self.replica.poll_ack() {
            self.connection.send(STATE_CHANNEL, &ack).await.unwrap();
        }
    }

    fn find(&self, kind: &str, pick: impl Fn(ActorId) -> bool) -> Option<ActorId> {
        let kinds = self.replica.schema().kinds();
        self.replica
            .actors()
            .find(|(id, a)| kinds[usize::from(a.kind)].name == kind && pick(*id))
            .map(|(id, _)| id)
    }

    fn seats(&self) -> usize {
        let kinds = self.replica.schema().kinds();
        self.replica
            .actors()
            .filter(|(_, a)| kinds[usize::from(a.kind)].name == "seat")
            .count()
    }

    /// Plays its turn if it is one: the lowest card that beats the top, else pass.
    async fn play(&mut self) {
        let (Some(table), Some(seat)) = (
            self.find("table", |_| true),
            self.replica
                .actors()
                .find(|(_, a)| a.owned)
                .map(|(id, _)| id),
        ) else {
            return;
        };
        let value = |id, prop| int(self.replica.value(id, prop).unwrap());
        if value(table, "phase") != 1 || value(table, "turn") != value(seat, "number") {
            return;
        }
        let top = value(table, "top");
        let hand = match self.replica.value(seat, "hand").unwrap() {
            Value::List(cards) => cards.to_vec(),
            _ => unreachable!(),
        };
        let situation = (value(table, "turn"), top, hand.len());
        if self
            .acted_at
            .is_some_and(|(then, at)| then == situation && at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.acted_at = Some((situation, Instant::now()));
        let card = cards::player::choose(&hand, top);
        let message = match card {
            Some(card) => self
                .replica
                .message("play", vec![Value::Int(card)])
                .unwrap(),
            None => self.replica.message("pass", vec![]).unwrap(),
        };
        self.connection
            .send(RELIABLE_CHANNEL, &message)
            .await
            .unwrap();
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(v) => *v,
        other => panic!("not an int: {other:?}"),
    }
}

async fn refused(url: &str, options: Options) -> String {
    let mut connection = connect(url, options).await.unwrap();
    loop {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("in time")
        {
            Some(Event::Closed(reason)) => return reason.to_string(),
            Some(Event::Joined) => panic!("should have been refused"),
            Some(_) => {}
            None => panic!("stopped without a reason"),
        }
    }
}

#[tokio::test]
async fn two_players_play_a_round_over_real_sockets_and_hands_stay_private() {
    let server = serve("round", |_| {}).await;
    let api = Accounts::new(&format!("http://{}", server.web));
    let (alice, bob) = (unique("alice"), unique("bob"));
    api.register(&alice, PASSWORD).await.unwrap();
    api.register(&bob, PASSWORD).await.unwrap();
    let tcp = format!("tcp://{}", server.game_tcp);
    let ws = format!("ws://{}/ws", server.web);
    let mut players = [
        Player::sit(&tcp, &alice).await,
        Player::sit(&ws, &bob).await,
    ];

    let mut started = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while players[0].won.is_empty() || players[1].won.is_empty() {
        if Instant::now() >= deadline {
            for p in &players {
                let state: Vec<_> = p
                    .replica
                    .actors()
                    .map(|(id, a)| (id, a.owned, a.values.clone()))
                    .collect();
                eprintln!("{state:?} won {:?} received {}", p.won, p.received.len());
            }
            panic!("no winner within a minute");
        }
        for player in players.iter_mut() {
            player.receive(Duration::from_millis(20)).await;
            player.play().await;
        }
        if !started && players[0].seats() == 2 {
            let start = players[0].replica.message("start", vec![]).unwrap();
            players[0]
                .connection
                .send(RELIABLE_CHANNEL, &start)
                .await
                .unwrap();
            started = true;
        }
    }
    assert_eq!(players[0].won, players[1].won, "both saw the same winner");

    // Bob's capture: every spawn or change of Alice's seat lacks the hand.
    let seen = capture::seats_in_capture("Bob", &players[1].received);
    assert_eq!(seen.other_seats, 1);
    assert!(seen.own_hands > 0, "Bob got his own hand");

    // The winner's data is in the database: at the next login their seat shows the win.
    let winner_seat = players[0].won[0];
    let winner = players
        .iter()
        .position(|p| {
            let seat = p
                .replica
                .actors()
                .find(|(_, a)| a.owned)
                .map(|(id, _)| id)
                .unwrap();
            int(p.replica.value(seat, "number").unwrap()) == winner_seat
        })
        .unwrap();
    let winner_name = [&alice, &bob][winner].clone();
    let [first, second] = players;
    first.connection.close(0, "done").await;
    second.connection.close(0, "done").await;
    // At once: a login that read the database before the leave's save was
    // written still starts from the saved win (the host holds the join).
    let mut back = Player::sit(&tcp, &winner_name).await;
    back.receive(Duration::from_millis(500)).await;
    let seat = back
        .replica
        .actors()
        .find(|(_, a)| a.owned)
        .map(|(id, _)| id)
        .unwrap();
    assert_eq!(
        int(back.replica.value(seat, "wins").unwrap()),
        1,
        "the win came back"
    );
    back.connection.close(0, "done").await;
    let schema_json: serde_json::Value =
        serde_json::from_str(&http_get(&format!("http://{}/api/schema", server.web)).await)
            .unwrap();
    assert_eq!(schema_json["version"], cards::schema().version());
    server.shutdown("done").await;
}

#[tokio::test]
async fn guests_and_clients_of_another_schema_are_refused_at_login_and_garbage_closes() {
    let server = serve("refusals", |config| config.accounts.allow_anonymous = true).await;
    let api = Accounts::new(&format!("http://{}", server.web));
    let tcp = format!("tcp://{}", server.game_tcp);
    let guest = refused(&tcp, Options::anonymous()).await;
    assert!(guest.contains("sit down with an account"), "{guest}");

    let name = unique("carol");
    api.register(&name, PASSWORD).await.unwrap();
    let mut stale = Options::password(&name, PASSWORD);
    stale.options = "?schema=0123456789abcdef".to_owned();
    let reason = refused(&tcp, stale).await;
    assert!(reason.contains("schema version"), "{reason}");
    assert!(reason.contains("hearth codegen"), "{reason}");
    let mut current = Options::password(&name, PASSWORD);
    current.options = format!("?schema={}", cards::schema().version());
    let mut player = connect(&tcp, current).await.unwrap();
    timeout(WAIT, player.wait_for(|e| *e == Event::Joined))
        .await
        .unwrap()
        .unwrap();

    // A message the schema does not declare: the session is closed.
    player.send(RELIABLE_CHANNEL, &[0x37, 0x7f]).await.unwrap();
    let events = timeout(WAIT, player.wait_for(|e| matches!(e, Event::Closed(_))))
        .await
        .expect("closed in time")
        .expect("a close");
    match events.last() {
        Some(Event::Closed(CloseReason::ProtocolError(reason))) => {
            assert!(reason.contains("did not decode"), "{reason}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let metrics = http_get(&format!("http://{}/metrics", server.web)).await;
    assert!(
        metrics.contains("hearth_game_messages_refused_total{reason=\"undecodable\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_logins_total{outcome=\"refused_by_game\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearth_logins_total{outcome=\"schema_mismatch\"} 1"),
        "{metrics}"
    );
    server.shutdown("done").await;
}

/// A plain HTTP/1.1 GET over a socket; the body as text.
async fn http_get(url: &str) -> String {
    let stream = tokio::net::TcpStream::connect(
        url.trim_start_matches("http://").split('/').next().unwrap(),
    )
    .await
    .unwrap();
    let path = format!(
        "/{}",
        url.trim_start_matches("http://").split_once('/').unwrap().1
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = stream;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// With `single_session = false` an account may sit down twice; with the
/// default, the second login replaces the first and takes over its seat.
#[tokio::test]
async fn a_second_session_of_an_account_plays_or_replaces_the_first() {
    let server = serve("sessions", |config| config.accounts.single_session = false).await;
    let api = Accounts::new(&format!("http://{}", server.web));
    let name = unique("dave");
    api.register(&name, PASSWORD).await.unwrap();
    let tcp = format!("tcp://{}", server.game_tcp);
    let mut first = Player::sit(&tcp, &name).await;
    let mut second = Player::sit(&tcp, &name).await;
    for _ in 0..20 {
        first.receive(Duration::from_millis(50)).await;
        second.receive(Duration::from_millis(50)).await;
        if first.seats() == 2 && second.seats() == 2 {
            break;
        }
    }
    assert_eq!(
        (first.seats(), second.seats()),
        (2, 2),
        "both sessions sit at the table"
    );
    assert!(second.replica.actors().any(|(_, a)| a.owned));
    server.shutdown("done").await;

    let server = serve("replace", |_| {}).await;
    let api = Accounts::new(&format!("http://{}", server.web));
    let name = unique("erin");
    api.register(&name, PASSWORD).await.unwrap();
    let tcp = format!("tcp://{}", server.game_tcp);
    let mut first = Player::sit(&tcp, &name).await;
    first.receive(Duration::from_millis(200)).await;
    let mut second = Player::sit(&tcp, &name).await;
    let events = timeout(
        WAIT,
        first.connection.wait_for(|e| matches!(e, Event::Closed(_))),
    )
    .await
    .expect("the first session closed in time")
    .expect("a close");
    assert!(
        matches!(events.last(), Some(Event::Closed(_))),
        "{events:?}"
    );
    for _ in 0..20 {
        second.receive(Duration::from_millis(50)).await;
        if second.seats() == 1 {
            break;
        }
    }
    assert_eq!(second.seats(), 1, "the replacing session sits alone");
    assert!(second.replica.actors().any(|(_, a)| a.owned));
    server.shutdown("done").await;
}
