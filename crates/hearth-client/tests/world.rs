//! The live world (the built-in game on the game API, `hearth_world::WorldGame`)
//! through a real server over real sockets, played with the SDK's
//! `WorldClient` and the world's generated bindings: players on UDP, TCP
//! and WebSocket travel to town and see each other walk and chat, whispers
//! reach only their player and an announcement everyone; an illegal move
//! is corrected and counted, and an administrator's kick says why; places
//! survive a logout and a graceful restart (another zone starts at its
//! spawn points); a resumed link keeps a consistent view; a world flood is
//! dropped and counted without hurting others, memory bounded; a session
//! survives a UDP blackout and an address change; both drivers carry the
//! network conditioner; a lobby login stays out of the world; a line hopper
//! is cooled down and its chat stays within one allowance; and chat hiding
//! invisible or unassigned characters is refused.

mod common;
use common::arrival;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{config, data_dir, unique};
use hearth_client::world::generated::{self, ChatScope, Message, Player, RefusedAbout, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_client::{connect, Accounts, CloseReason, Connection, Event, Options};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{GameClientMessage, GameMove, RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_server::game_host::GameLineStatus;
use hearth_server::Running;
use hearth_world::Pos;

const PASSWORD: &str = "correct horse";
const WAIT: Duration = Duration::from_secs(20);

async fn register(server: &Running, name: &str) {
    Accounts::new(&server.web_url())
        .register(name, PASSWORD)
        .await
        .unwrap();
}

/// The login of an account.
fn login(name: &str) -> Options {
    Options::password(name, PASSWORD)
}

/// `options` for a client of the world's schema (`?schema=`, as
/// `GameSession::join` adds it).
fn for_the_world(mut options: Options) -> Options {
    options
        .options
        .push_str(&format!("?schema={}", generated::VERSION));
    options
}

/// Logs in over `url` with `options` (for the world's schema) and waits
/// until the player is in a line and steers its actor there: the client,
/// and the zone the game said it entered.
async fn join(url: &str, options: Options) -> (WorldClient, String) {
    let connection = connect(url, for_the_world(options)).await.unwrap();
    let mut world = WorldClient::new(connection);
    let zone = arrival(&mut world).await;
    (world, zone)
}

/// Asks to travel to `zone` and waits until there.
async fn travel(world: &mut WorldClient, zone: &str) {
    world.travel(zone).await;
    assert_eq!(arrival(world).await, zone);
}

fn urls(server: &Running) -> [String; 3] {
    [
        format!("udp://{}", server.game_udp.unwrap()),
        format!("tcp://{}", server.game_tcp),
        format!("ws://{}/ws", server.web),
    ]
}

/// Where `world`'s replica has the player named `name`, as the server last
/// said (its own actor too: confirmed, not predicted).
fn seen_at(world: &WorldClient, name: &str) -> Option<Pos> {
    let replica = world.replica();
    Player::all(replica)
        .find(|p| p.name() == name)
        .and_then(|p| replica.server_position(p.id()))
}

/// Where the server has this client's own actor.
fn own(world: &WorldClient) -> Option<Pos> {
    let replica = world.replica();
    replica
        .controlled()
        .and_then(|me| replica.server_position(me))
}

/// Runs `world` until `done` holds (checked at once, then after every
/// update) or [`WAIT`] passes; whether it held.
async fn holds(world: &mut WorldClient, done: impl Fn(&WorldClient) -> bool) -> bool {
    done(world) || world.until(WAIT, |_, client| done(client)).await.is_some()
}

/// Waits until `world`'s replica shows the player named `name` at `pos`.
async fn sees_at(world: &mut WorldClient, name: &str, pos: Pos) {
    let seen = holds(world, |w| seen_at(w, name) == Some(pos)).await;
    assert!(
        seen,
        "{name} never seen at {pos:?}; the replica has {:?}",
        seen_at(world, name)
    );
}

/// Walks `world` (the player named `name`) to `target` and waits until the
/// server has it there.
async fn walk(world: &mut WorldClient, name: &str, target: Pos) {
    world.move_to(target);
    sees_at(world, name, target).await;
}

fn chat_text(update: &WorldUpdate) -> Option<&str> {
    match update {
        WorldUpdate::Message(Message::Chat { text, .. }) => Some(text),
        _ => None,
    }
}

/// Waits until `world` hears chat saying `text`.
async fn hears(world: &mut WorldClient, text: &str) -> Option<WorldUpdate> {
    world.until(WAIT, |u, _| chat_text(u) == Some(text)).await
}

/// Waits until `world`'s session closes: how.
async fn closed(world: &mut WorldClient) -> Option<CloseReason> {
    match world
        .until(WAIT, |u, _| {
            matches!(u, WorldUpdate::Session(Event::Closed(_)))
        })
        .await
    {
        Some(WorldUpdate::Session(Event::Closed(reason))) => Some(reason),
        _ => None,
    }
}

/// The game's lines, as administration sees them.
async fn lines(server: &Running) -> Vec<GameLineStatus> {
    server.game.status().await.expect("the game runs")
}

/// Players in the game, every line.
async fn players(server: &Running) -> usize {
    lines(server).await.iter().map(|l| l.players).sum()
}

/// Polls the players in the game until there are `wanted` (or 5 s pass):
/// how many there were last.
async fn players_become(server: &Running, wanted: usize) -> usize {
    let mut now = players(server).await;
    for _ in 0..50 {
        if now == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = players(server).await;
    }
    now
}

/// An administrator's access token, for the admin API.
async fn admin_token(server: &Running) -> String {
    let keeper = unique("keeper");
    server
        .accounts
        .create_admin(&keeper, Some(PASSWORD), false)
        .await
        .unwrap();
    Accounts::new(&server.web_url())
        .login(&keeper, PASSWORD)
        .await
        .unwrap()
        .access_token
}

/// The town square, where the tests gather players.
const SQUARE: Pos = Pos::cell_centre(16, 10);
/// The town's spawn points (crates/hearth-world/zones/default.toml).
const TOWN_SPAWNS: [(i32, i32); 3] = [(4, 10), (16, 10), (27, 14)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_on_three_transports_see_each_other_move_and_chat() {
    let dir = data_dir("three");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let names = [unique("udp"), unique("tcp"), unique("ws")];
    for name in &names {
        register(&server, name).await;
    }
    let [udp_url, tcp_url, ws_url] = urls(&server);
    let mut worlds = Vec::new();
    for (url, name) in [&udp_url, &tcp_url, &ws_url].into_iter().zip(&names) {
        let (mut world, zone) = join(url, login(name)).await;
        // New players enter the first zone; `travel` takes them to town
        // (the old `?zone=town` login option is gone).
        assert_eq!(zone, "meadow", "a new player's first zone");
        travel(&mut world, "town").await;
        worlds.push(world);
    }

    // Gather them at the town square. The game API has no administrator's
    // move: each walks there from the spawn point the town gave it, and
    // the server confirms every step.
    let spot = |i: usize| Pos::new(SQUARE.x + 100 * i as i32, SQUARE.y);
    for (i, (world, name)) in worlds.iter_mut().zip(&names).enumerate() {
        walk(world, name, spot(i)).await;
    }
    for world in &mut worlds {
        for (i, name) in names.iter().enumerate() {
            sees_at(world, name, spot(i)).await;
        }
    }
    let [udp, tcp, ws] = &mut worlds[..] else {
        unreachable!()
    };

    // The UDP player walks two cells south; the others see it arrive.
    let target = Pos::new(SQUARE.x, SQUARE.y + 200);
    walk(udp, &names[0], target).await;
    sees_at(tcp, &names[0], target).await;
    sees_at(ws, &names[0], target).await;

    // Zone chat from the WebSocket player reaches both others; a whisper
    // from TCP reaches only UDP.
    ws.say(SayScope::Zone, "", "hello from the browser side")
        .await;
    for world in [&mut *udp, &mut *tcp] {
        assert!(hears(world, "hello from the browser side").await.is_some());
    }
    tcp.say(SayScope::Whisper, &names[0], "psst").await;
    let got = hears(udp, "psst").await;
    assert!(
        matches!(
            got,
            Some(WorldUpdate::Message(Message::Chat {
                scope: ChatScope::Whisper,
                ..
            }))
        ),
        "{got:?}"
    );
    // Zone chat the whisperer says after it reaches the third player after
    // anything that leaked would have: the whisper is not among it.
    tcp.say(SayScope::Zone, "", "after the whisper").await;
    let mut heard = Vec::new();
    let after = ws
        .until(WAIT, |u, _| {
            heard.extend(chat_text(u).map(str::to_owned));
            chat_text(u) == Some("after the whisper")
        })
        .await;
    assert!(after.is_some());
    assert!(
        !heard.iter().any(|t| t == "psst"),
        "a whisper reached a third player: {heard:?}"
    );

    // An announcement reaches everyone; a whisper to someone offline is refused.
    assert!(server.game.announce("maintenance at noon").await);
    for world in [&mut *udp, &mut *tcp, &mut *ws] {
        let got = hears(world, "maintenance at noon").await;
        assert!(
            matches!(
                got,
                Some(WorldUpdate::Message(Message::Chat {
                    scope: ChatScope::System,
                    ..
                }))
            ),
            "{got:?}"
        );
    }
    udp.say(SayScope::Whisper, "nobody-here", "hi").await;
    let refused = udp
        .until(WAIT, |u, _| {
            matches!(u, WorldUpdate::Message(Message::Refused { about: RefusedAbout::Chat, reason })
                if reason.contains("not online"))
        })
        .await;
    assert!(refused.is_some());

    // Status for administration: the town's line with three players.
    let status = lines(&server).await;
    let town = status
        .iter()
        .find(|l| l.zone == "town" && l.number == 1)
        .unwrap();
    assert_eq!(town.players, 3, "{status:?}");
    server.shutdown("test over").await;
}

/// What a hand-driven client heard.
#[derive(Debug)]
enum Heard {
    Game(GameEvent),
    Session(Event),
}

/// A cheating client: the world's replica driven by hand, its moves sent
/// as they are made (no walk at the zone's speed, as `WorldClient` keeps).
struct Cheat {
    connection: Connection,
    replica: GameReplica,
}

impl Cheat {
    async fn join(url: &str, options: Options) -> Cheat {
        let connection = connect(url, for_the_world(options)).await.unwrap();
        let mut cheat = Cheat {
            connection,
            replica: generated::replica(),
        };
        let entered = cheat
            .until(|heard, replica| {
                if let Heard::Session(Event::Closed(reason)) = heard {
                    panic!("closed before entering: {reason}");
                }
                replica
                    .controlled()
                    .is_some_and(|me| replica.server_position(me).is_some())
            })
            .await;
        assert!(entered.is_some(), "entered and steering");
        cheat
    }

    /// The next thing heard, acknowledging frames as a client does; `None`
    /// once the connection is over.
    async fn next(&mut self) -> Option<Heard> {
        loop {
            if let Some(event) = self.replica.poll_event() {
                return Some(Heard::Game(event));
            }
            match self.connection.next_event().await? {
                Event::Message { channel, payload } => {
                    match channel {
                        RELIABLE_CHANNEL => self.replica.apply_reliable(&payload).unwrap(),
                        STATE_CHANNEL => self.replica.apply_frame(&payload).unwrap(),
                        _ => continue,
                    }
                    self.send_ack().await;
                }
                event => return Some(Heard::Session(event)),
            }
        }
    }

    async fn send_ack(&mut self) {
        if let Some(ack) = self.replica.poll_ack() {
            let _ = self.connection.send(STATE_CHANNEL, &ack).await;
        }
    }

    async fn until(&mut self, mut done: impl FnMut(&Heard, &GameReplica) -> bool) -> Option<Heard> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let heard = tokio::time::timeout_at(deadline, self.next())
                .await
                .ok()??;
            if done(&heard, &self.replica) {
                return Some(heard);
            }
        }
    }
}

/// Moves the line refused, every line: out of the zone, too fast, through
/// a wall.
fn refused_moves(status: &[GameLineStatus]) -> u64 {
    status
        .iter()
        .map(|l| l.stats.moves_too_fast + l.stats.moves_out_of_bounds + l.stats.moves_blocked)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_move_is_corrected_and_a_kick_says_why() {
    let dir = data_dir("cheat");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let name = unique("cheat");
    register(&server, &name).await;
    let [udp_url, ..] = urls(&server);
    let mut cheat = Cheat::join(&udp_url, login(&name)).await;
    let me = cheat.replica.controlled().unwrap();
    let start = cheat.replica.server_position(me).unwrap();
    // Twenty cells in one move.
    cheat
        .replica
        .move_to(Pos::new(start.x + 2_000, start.y))
        .unwrap();
    cheat.send_ack().await;
    let corrected = cheat
        .until(|heard, _| matches!(heard, Heard::Game(GameEvent::Corrected { .. })))
        .await;
    assert!(
        matches!(corrected, Some(Heard::Game(GameEvent::Corrected { at })) if at == start),
        "{corrected:?}"
    );
    assert_eq!(cheat.replica.position(me), Some(start));
    assert_eq!(cheat.replica.pending_moves(), 0, "the refused move dropped");
    // Counted by the line (the game API's status is read live, not
    // published once a second; polled in case the refusal's tick is still
    // being counted).
    let mut rejected = refused_moves(&lines(&server).await);
    for _ in 0..20 {
        if rejected > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rejected = refused_moves(&lines(&server).await);
    }
    assert_eq!(rejected, 1);

    // The game host has no kick of account players: the administrator's
    // API kicks (every session of the account), and the reason it gives
    // the player starts with who kicked.
    let response = reqwest::Client::new()
        .post(format!("{}/api/admin/kick", server.web_url()))
        .bearer_auth(admin_token(&server).await)
        .header("content-type", "application/json")
        .body(format!(r#"{{"name":"{name}","reason":"cheating"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let closed = cheat
        .until(|heard, _| matches!(heard, Heard::Session(Event::Closed(_))))
        .await;
    assert!(
        matches!(
            &closed,
            Some(Heard::Session(Event::Closed(CloseReason::Kicked { reason })))
                if reason == "kicked by an administrator: cheating"
        ),
        "{closed:?}"
    );
    assert_eq!(
        players_become(&server, 0).await,
        0,
        "kicked out of the world"
    );
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_survive_a_logout_and_a_graceful_restart() {
    let dir = data_dir("persist");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let name = unique("keeper");
    register(&server, &name).await;
    let url = format!("tcp://{}", server.game_tcp);
    let (mut player, zone) = join(&url, login(&name)).await;
    assert_eq!(zone, "meadow");
    travel(&mut player, "caves").await;
    let start = own(&player).unwrap();
    let target = Pos::new(start.x, start.y + 150);
    walk(&mut player, &name, target).await;
    player.close(0, "bye").await;
    assert!(closed(&mut player).await.is_some(), "logged out");

    let (mut again, zone) = join(&url, login(&name)).await;
    assert_eq!(zone, "caves", "the saved zone");
    assert_eq!(own(&again), Some(target), "the saved position");
    let second = Pos::new(target.x, target.y - 100);
    walk(&mut again, &name, second).await;

    // A graceful restart while the player is online loses nothing.
    server.shutdown("restart").await;
    assert!(closed(&mut again).await.is_some(), "told of the restart");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let url = format!("tcp://{}", server.game_tcp);
    let (mut back, zone) = join(&url, login(&name)).await;
    assert_eq!(zone, "caves");
    assert_eq!(own(&back), Some(second));
    back.close(0, "bye").await;
    assert!(closed(&mut back).await.is_some());

    // Travelling to another zone starts at one of its spawn points: a
    // saved position never carries into another map. (The login option
    // `?zone=` is gone: the player enters where they left, then travels.)
    let (mut elsewhere, zone) = join(&url, login(&name)).await;
    assert_eq!(zone, "caves");
    travel(&mut elsewhere, "town").await;
    let spawns = TOWN_SPAWNS.map(|(x, y)| Pos::cell_centre(x, y));
    let at = own(&elsewhere).unwrap();
    assert!(spawns.contains(&at), "{at:?} is not a town spawn point");
    server.shutdown("test over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_link_keeps_a_consistent_world_view() {
    let dir = data_dir("resume");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let [walker_name, watcher_name] = [unique("walker"), unique("watcher")];
    register(&server, &walker_name).await;
    register(&server, &watcher_name).await;
    let url = format!("tcp://{}", server.game_tcp);
    let (mut walker, _) = join(&url, login(&walker_name)).await;
    let (mut watcher, _) = join(&url, login(&watcher_name)).await;
    travel(&mut walker, "town").await;
    travel(&mut watcher, "town").await;
    walk(&mut walker, &walker_name, SQUARE).await;
    walk(
        &mut watcher,
        &watcher_name,
        Pos::new(SQUARE.x + 300, SQUARE.y),
    )
    .await;
    sees_at(&mut watcher, &walker_name, SQUARE).await;

    // The watcher's link drops; meanwhile the walker moves.
    watcher.connection().drop_stream().await;
    let first = Pos::new(SQUARE.x, SQUARE.y + 200);
    walk(&mut walker, &walker_name, first).await;
    let resumed = watcher
        .until(WAIT, |u, _| {
            assert!(!matches!(u, WorldUpdate::Malformed(_)), "{u:?}");
            matches!(u, WorldUpdate::Session(Event::Resumed))
        })
        .await;
    assert!(resumed.is_some(), "the session resumed");
    sees_at(&mut watcher, &walker_name, first).await;
    let second = Pos::new(SQUARE.x - 200, SQUARE.y + 200);
    walk(&mut walker, &walker_name, second).await;
    sees_at(&mut watcher, &walker_name, second).await;
    // The view is whole: both players, once each, and the watcher still
    // steers its own actor where the server has it.
    let mut seen: Vec<&str> = Player::all(watcher.replica()).map(|p| p.name()).collect();
    seen.sort_unstable();
    let mut both = [walker_name.as_str(), watcher_name.as_str()];
    both.sort_unstable();
    assert_eq!(seen, both);
    assert_eq!(
        own(&watcher),
        Some(Pos::new(SQUARE.x + 300, SQUARE.y)),
        "the watcher's own actor"
    );
    server.shutdown("test over").await;
}

/// Resident set of this process (server and clients), from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Floods from several players at once — state messages claiming far
/// moves, maximal chat, an oversized message — while an honest player walks
/// and another watches: the flood is dropped and counted at the gate, the
/// cheats are refused, memory stays bounded, and the honest walk arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_flood_is_dropped_and_counted_without_hurting_other_players() {
    let dir = data_dir("flood");
    let mut settings = config(&dir);
    settings.accounts.register_burst = 20;
    let server = hearth_server::start(settings).await.unwrap();
    let [walker_name, watcher_name] = [unique("walker"), unique("watcher")];
    let flooders: Vec<String> = (0..4).map(|i| unique(&format!("flood{i}"))).collect();
    for name in flooders.iter().chain([&walker_name, &watcher_name]) {
        register(&server, name).await;
    }
    let [udp_url, tcp_url, ws_url] = urls(&server);
    let (mut walker, _) = join(&udp_url, login(&walker_name)).await;
    let (mut watcher, _) = join(&tcp_url, login(&watcher_name)).await;
    travel(&mut walker, "town").await;
    travel(&mut watcher, "town").await;
    walk(&mut walker, &walker_name, SQUARE).await;
    walk(
        &mut watcher,
        &watcher_name,
        Pos::new(SQUARE.x + 300, SQUARE.y),
    )
    .await;
    sees_at(&mut watcher, &walker_name, SQUARE).await;
    // The flooders in town too, at its spawn points: all within the
    // watcher's view, as is the place they claim.
    let mut floods = Vec::new();
    for (i, name) in flooders.iter().enumerate() {
        let url = [&udp_url, &tcp_url, &ws_url][i % 3];
        let (mut world, _) = join(url, login(name)).await;
        travel(&mut world, "town").await;
        floods.push(world);
    }
    let before = rss_kib();
    let far = Pos::cell_centre(30, 18);

    let flood = |world: WorldClient, i: usize| async move {
        let schema = generated::schema();
        let chat = generated::say(
            &generated::replica(),
            SayScope::Zone,
            "",
            &"x".repeat(hearth_world::game::MAX_CHAT),
        )
        .unwrap();
        let connection = world.connection();
        for n in 0..5_000u32 {
            // Acknowledges frames never sent, and claims eight moves to
            // the far place.
            let state = GameClientMessage::Moves {
                ack: u64::from(n),
                earlier: u32::MAX,
                moves: (0..8)
                    .map(|k| GameMove {
                        seq: n * 8 + k + 1,
                        pos: far,
                    })
                    .collect(),
            };
            let mut bytes = Vec::new();
            state.encode(&schema, &mut bytes);
            let _ = connection.send(STATE_CHANNEL, &bytes).await;
            if n % 4 == 0 {
                let _ = connection.send(RELIABLE_CHANNEL, &chat).await;
            }
        }
        if i == 0 {
            // Larger than any world message: the session is closed.
            let _ = connection.send(RELIABLE_CHANNEL, &[1u8; 600]).await;
        }
        world
    };
    let flooding: Vec<_> = floods
        .into_iter()
        .enumerate()
        .map(|(i, w)| tokio::spawn(flood(w, i)))
        .collect();

    // Meanwhile the honest walk arrives and is seen.
    let target = Pos::new(SQUARE.x, SQUARE.y + 300);
    walk(&mut walker, &walker_name, target).await;
    sees_at(&mut watcher, &walker_name, target).await;
    let mut floods = Vec::new();
    for handle in flooding {
        floods.push(handle.await.unwrap());
    }

    // Dropped at the gate (its input bucket) or the game's rate limits,
    // counted in the game host's counters (this server's own).
    let counters = &server.game.counters;
    let over_rate = counters.rate_limited.load(Ordering::Relaxed);
    assert!(
        over_rate > 10_000,
        "the flood was dropped at the gate ({over_rate})"
    );
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "memory grew by {grown} KiB during the flood"
    );
    // The oversized message closed its session with a protocol error, and
    // was counted.
    let reason = format!("{:?}", closed(&mut floods[0]).await.expect("in time"));
    assert!(reason.contains("larger than any valid one"), "{reason}");
    assert!(counters.undecodable.load(Ordering::Relaxed) >= 1);
    // No flooder got anywhere near its claimed place: the town refused
    // their moves as too fast, and the watcher sees each where it was.
    let status = lines(&server).await;
    let too_fast: u64 = status
        .iter()
        .filter(|l| l.zone == "town")
        .map(|l| l.stats.moves_too_fast)
        .sum();
    assert!(too_fast > 0, "{status:?}");
    assert!(
        holds(&mut watcher, |w| flooders[1..]
            .iter()
            .all(|name| seen_at(w, name).is_some()))
        .await,
        "the watcher sees the flooders"
    );
    for name in &flooders[1..] {
        assert_ne!(seen_at(&watcher, name), Some(far), "{name}");
    }
    for flooder in &floods[1..] {
        assert_ne!(own(flooder), Some(far));
    }
    server.shutdown("test over").await;
}

/// Rehearsal through the impairing relay: UDP blocked for two seconds, then
/// back from a new address (a NAT rebinding). The session survives: the
/// server proves and takes the new address, and the player goes on playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_udp_blackout_and_an_address_change() {
    use hearth_net::impair::{Relay, RelayConfig};

    let dir = data_dir("blackout");
    let server = hearth_server::start(config(&dir)).await.unwrap();
    let name = unique("rover");
    register(&server, &name).await;
    let relay = Relay::start(RelayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        server.game_udp.unwrap(),
    ))
    .await
    .unwrap();
    let (mut player, _) = join(&format!("udp://{}", relay.local_addr), login(&name)).await;
    // The address changes the server took, per session it holds: this
    // server's only session is the rover's.
    let migrations = |gate: hearth_net::gate::GateHandle| async move {
        let each = gate
            .query_each(|ctx| {
                ctx.session_ids()
                    .into_iter()
                    .filter_map(|id| ctx.session(id).map(|s| s.stats().migrations))
                    .collect::<Vec<u64>>()
            })
            .await
            .unwrap();
        let sessions: Vec<u64> = each.into_iter().flatten().collect();
        assert_eq!(sessions.len(), 1, "the rover's session lives");
        sessions[0]
    };
    let migrations_before = migrations(server.gate.clone()).await;

    relay.set_impairments("loss=100".parse().unwrap(), "loss=100".parse().unwrap());
    let mut during = Vec::new();
    let ended = player
        .until(Duration::from_secs(2), |u, _| {
            during.push(format!("{u:?}"));
            matches!(u, WorldUpdate::Session(Event::Closed(_)))
        })
        .await;
    assert!(
        ended.is_none(),
        "the session outlives a two-second blackout: {during:?}"
    );
    relay.set_impairments(Default::default(), Default::default());
    relay.change_addresses();
    player.say(SayScope::Zone, "", "still here").await;
    assert!(
        hears(&mut player, "still here").await.is_some(),
        "chat works after the blackout and the address change"
    );
    let moved = migrations(server.gate.clone()).await - migrations_before;
    assert_eq!(moved, 1, "the server took the new address once");
    let stats = relay.stop();
    assert!(
        stats.upstream.dropped > 0 && stats.downstream.dropped > 0,
        "{stats:?}"
    );
    server.shutdown("test over").await;
}

/// The conditioner built into both drivers: the server's game port impaired
/// from the config, the client's UDP from its options, and the server's
/// changed at run time; the player still enters, walks and chats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_drivers_carry_the_conditioner_and_play_goes_on() {
    use hearth_net::conditioner::LinkImpairment;

    let dir = data_dir("conditioned");
    let mut settings = config(&dir);
    settings.game.impair_up = Some("loss=5,lag=15,jitter=5".into());
    settings.game.impair_down = Some("loss=5,lag=15,reorder=5".into());
    let server = hearth_server::start(settings).await.unwrap();
    let name = unique("weathered");
    register(&server, &name).await;
    let mut options = login(&name);
    options.impair = Some(LinkImpairment {
        up: "loss=5,dup=5".parse().unwrap(),
        down: "loss=5,lag=10".parse().unwrap(),
        seed: 9,
    });
    let (mut player, _) = join(&format!("udp://{}", server.game_udp.unwrap()), options).await;
    let start = own(&player).unwrap();
    let target = Pos::new(start.x + 100, start.y);
    walk(&mut player, &name, target).await;
    // Worse at run time: the same session carries on.
    server
        .gate
        .set_impairment(Some(LinkImpairment {
            up: "loss=20,lag=30".parse().unwrap(),
            down: "loss=20,lag=30".parse().unwrap(),
            seed: 3,
        }))
        .await
        .unwrap();
    player.say(SayScope::Zone, "", "still talking").await;
    assert!(hears(&mut player, "still talking").await.is_some());
    server.shutdown("test over").await;
}

/// `?world=off`: a player in a lobby logs in and uses its session (the echo
/// channel here) while the world never hears of it: no world channel opens,
/// no actor spawns, the world's player count does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_login_stays_out_of_the_world() {
    let dir = data_dir("lobby");
    let mut settings = config(&dir);
    settings.accounts.allow_anonymous = true;
    let server = hearth_server::start(settings).await.unwrap();
    let [udp_url, tcp_url, _] = urls(&server);
    let mut options = Options::anonymous();
    options.options = "?world=off".into();
    let mut lobby = connect(&udp_url, for_the_world(options)).await.unwrap();
    tokio::time::timeout(WAIT, lobby.wait_for(|e| *e == Event::Joined))
        .await
        .expect("in time")
        .expect("joined");
    let echo = hearth_client::ChannelSpec::new(
        hearth_client::ChannelKind::Game,
        hearth_client::Delivery::ReliableOrdered,
    );
    lobby.open_channel(2, echo).await.unwrap();
    lobby.send(2, b"still here").await.unwrap();
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match lobby.next_event().await {
                Some(Event::Message {
                    channel: 2,
                    payload,
                }) => return payload,
                Some(Event::ChannelOpened { channel, .. }) => {
                    panic!("a lobby player was given world channel {channel}")
                }
                Some(Event::Message { channel, .. }) => {
                    panic!("a lobby player heard from world channel {channel}")
                }
                Some(Event::Closed(reason)) => panic!("closed: {reason}"),
                None => panic!("the connection ended"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("echoed in time");
    assert_eq!(answer, b"still here");

    // A player who does enter is counted; the lobby player never is, and
    // nothing of the world reaches it while it waits.
    let (_walker, zone) = join(&tcp_url, Options::anonymous()).await;
    assert_eq!(zone, "meadow", "the walker entered");
    assert_eq!(
        players_become(&server, 1).await,
        1,
        "only the walker is in the world"
    );
    let quiet = tokio::time::timeout(Duration::from_millis(1_500), async {
        loop {
            match lobby.next_event().await {
                Some(Event::Message { channel, .. })
                | Some(Event::ChannelOpened { channel, .. }) => return channel,
                None => return 0,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(
        quiet.is_err(),
        "the lobby player heard from channel {quiet:?}"
    );
    assert_eq!(players(&server).await, 1);
    server.shutdown("test over").await;
}

/// One small zone of one player a line whose extra lines stay open: one
/// player and a passer-by who leaves give two lines to hop between.
const HALL_OF_ONE: &str = r#"
[[zone]]
name = "hall"
line_capacity = 1
empty_line_grace_secs = 600
map = """
############
#S.........#
#..........#
############
"""
"#;

/// `hearth_game::directory::TRANSFER_COOLDOWN_MS` (hearth-game is not a
/// dependency of these tests): the time between two line changes. Were the
/// server's shorter, the bound on grants below would catch it.
const TRANSFER_COOLDOWN_MS: u64 = 3_000;

/// The attack of issue 25: switch line on every chance and chat on every
/// arrival (each arrival used to bring a fresh chat allowance, and line
/// switches had no cooldown). Switches are refused with the time to wait,
/// and the server delivers no more line chat than one allowance gives: the
/// burst plus one a second since the hopper entered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_hopper_is_cooled_down_and_its_chat_stays_within_one_allowance() {
    use hearth_world::chat::CHAT_BURST;
    use std::time::Instant;

    let dir = data_dir("hopper");
    std::fs::create_dir_all(&dir).unwrap();
    let zones = dir.join("zones.toml");
    std::fs::write(&zones, HALL_OF_ONE).unwrap();
    let mut settings = config(&dir);
    settings.world.zones = Some(zones);
    let server = hearth_server::start(settings).await.unwrap();
    let [hopper_name, passer_name] = [unique("hopper"), unique("passer")];
    for name in [&hopper_name, &passer_name] {
        register(&server, name).await;
    }
    let [udp_url, tcp_url, _] = urls(&server);
    let entered_at = Instant::now();
    let (mut hopper, _) = join(&udp_url, login(&hopper_name)).await;
    let (mut passer, _) = join(&tcp_url, login(&passer_name)).await;
    // The client is not told its line's number: administration's status is.
    let hall = |status: &[GameLineStatus], number: u32| {
        status
            .iter()
            .find(|l| l.zone == "hall" && l.number == number)
            .map(|l| l.players)
    };
    let status = lines(&server).await;
    assert_eq!(
        (hall(&status, 1), hall(&status, 2)),
        (Some(1), Some(1)),
        "the passer-by opened line 2: {status:?}"
    );
    passer.close(0, "bye").await;
    assert!(closed(&mut passer).await.is_some());
    drop(passer);
    assert_eq!(
        players_become(&server, 1).await,
        1,
        "the passer-by left line 2 empty"
    );

    // Every quarter second: ask for the other line and say three things.
    let flood_started = Instant::now();
    let mut here = 1;
    let (mut switches, mut cooled, mut other_line_refusals, mut heard) = (0u64, 0u64, 0u64, 0u64);
    let (mut asked, mut said) = (0u64, 0u64);
    let mut tally = |update: WorldUpdate, here: &mut u32| match update {
        WorldUpdate::Message(Message::Entered { .. }) => {
            switches += 1;
            *here = 3 - *here;
        }
        WorldUpdate::Message(Message::Refused {
            about: RefusedAbout::Line,
            reason,
        }) => {
            if reason.contains("wait") {
                cooled += 1;
            } else {
                other_line_refusals += 1;
            }
        }
        WorldUpdate::Message(Message::Chat {
            scope: ChatScope::Line,
            from,
            ..
        }) if from == hopper_name => heard += 1,
        WorldUpdate::Session(Event::Closed(reason)) => panic!("the hopper was closed: {reason}"),
        WorldUpdate::Malformed(why) => panic!("{why}"),
        _ => {}
    };
    let quarter = Duration::from_millis(250);
    while flood_started.elapsed() < Duration::from_secs(5) {
        hopper.switch_line(3 - here).await;
        asked += 1;
        for _ in 0..3 {
            hopper.say(SayScope::Line, "", &format!("hop {said}")).await;
            said += 1;
        }
        let until = tokio::time::Instant::now() + quarter;
        while let Ok(update) = tokio::time::timeout_at(until, hopper.next()).await {
            tally(update.expect("the session lasts"), &mut here);
        }
    }
    let flood_ms = flood_started.elapsed().as_millis() as u64;
    let since_entering = entered_at.elapsed();
    // What is still on its way.
    let until = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while let Ok(update) = tokio::time::timeout_at(until, hopper.next()).await {
        tally(update.expect("the session lasts"), &mut here);
    }

    // Grants are a cooldown apart; the first may come at once.
    assert!(
        (1..=1 + flood_ms / TRANSFER_COOLDOWN_MS).contains(&switches),
        "{switches} line switches in {flood_ms} ms"
    );
    assert!(cooled > 0, "no switch was refused for the cooldown");
    // Chat beyond the rate is dropped on the game API without a word to
    // the client (there is no "too fast" refusal any more): the server
    // counts it. More was dropped for its rate than all the line switches
    // that got no answer, so chat was.
    let rate_limited = server.game.counters.rate_limited.load(Ordering::Relaxed);
    let unanswered_switches = asked - switches - cooled - other_line_refusals;
    assert!(
        rate_limited > unanswered_switches,
        "no chat was dropped for its rate ({rate_limited} dropped, {unanswered_switches} switches unanswered)"
    );
    // The server's count: the hopper is alone in the hall, so every line
    // chat the server sent, it sent the hopper (reliably, in order).
    let schema = generated::schema();
    let rate = |message: &str| schema.message(message).unwrap().1.rate.unwrap();
    let (say, switch) = (rate("say"), rate("switch_line"));
    assert_eq!((say.burst, say.per_second), (CHAT_BURST, 1));
    let allowed = u64::from(CHAT_BURST) + since_entering.as_secs() + 1;
    assert!(
        heard <= allowed,
        "{heard} of {said} line-chat messages delivered in {since_entering:?}; one allowance gives {allowed}"
    );
    // And what the game took at all (chat and line switches, every line of
    // the hall), within their two allowances.
    let status = lines(&server).await;
    let taken: u64 = status.iter().map(|l| l.stats.messages_in).sum();
    let switch_allowed =
        u64::from(switch.burst) + u64::from(switch.per_second) * (since_entering.as_secs() + 1);
    assert!(
        taken >= heard && taken <= allowed + switch_allowed,
        "the game took {taken} messages (chat heard: {heard}); the allowances give {allowed} + {switch_allowed}"
    );
    server.shutdown("test over").await;
}

/// Each character issue 25 found delivered or missing from the old list,
/// hidden inside a word: refused over the wire, and heard by no one; a
/// message of ordinary letters and a family emoji still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_hiding_invisible_or_unassigned_characters_is_refused_over_the_wire() {
    use hearth_world::chat::CHAT_BURST;

    let dir = data_dir("hidden");
    let mut settings = config(&dir);
    settings.accounts.register_burst = 20;
    let server = hearth_server::start(settings).await.unwrap();
    let hidden = [
        '\u{061C}',  // ARABIC LETTER MARK (bidi)
        '\u{180E}',  // MONGOLIAN VOWEL SEPARATOR
        '\u{00AD}',  // SOFT HYPHEN
        '\u{E0001}', // LANGUAGE TAG
        '\u{E0041}', // TAG LATIN CAPITAL LETTER A
        '\u{E007F}', // CANCEL TAG
        '\u{3164}',  // HANGUL FILLER
        '\u{115F}',  // HANGUL CHOSEONG FILLER
        '\u{1160}',  // HANGUL JUNGSEONG FILLER
        '\u{FFA0}',  // HALFWIDTH HANGUL FILLER
        '\u{2800}',  // BRAILLE PATTERN BLANK
        '\u{180B}',  // MONGOLIAN FREE VARIATION SELECTOR ONE
        '\u{180F}',  // MONGOLIAN FREE VARIATION SELECTOR FOUR
        '\u{FE00}',  // VARIATION SELECTOR-1
        '\u{FE0F}',  // VARIATION SELECTOR-16, with no emoji before it
        '\u{E0100}', // VARIATION SELECTOR-17
        '\u{200D}',  // ZERO WIDTH JOINER, with no emoji beside it
        '\u{2028}',  // LINE SEPARATOR
        '\u{2029}',  // PARAGRAPH SEPARATOR
        '\u{E000}',  // private use
        '\u{0378}',  // unassigned
    ];
    let ordinary = "family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} 你好 مرحبا שלום café";
    let mut messages: Vec<String> = hidden.iter().map(|c| format!("hidden{c}word")).collect();
    messages.push(ordinary.to_owned());

    // The game API drops chat beyond its rate without an answer: each
    // speaker says one allowance's worth (the burst), one speaker after
    // another, over the three transports, so every message is answered.
    let urls = urls(&server);
    let listener_name = unique("listener");
    register(&server, &listener_name).await;
    let (mut listener, _) = join(&urls[2], login(&listener_name)).await;
    let mut delivered = Vec::new();
    let mut refused = Vec::new();
    let mut speakers = Vec::new();
    for (i, chunk) in messages.chunks(CHAT_BURST as usize).enumerate() {
        let name = unique(&format!("speaker{i}"));
        register(&server, &name).await;
        let (mut speaker, zone) = join(&urls[i % 3], login(&name)).await;
        assert_eq!(zone, "meadow", "in the listener's line");
        for text in chunk {
            speaker.say(SayScope::Line, "", text).await;
        }
        // The sender hears back about every message: its own line chat,
        // or a refusal.
        let mut answers = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while answers < chunk.len() {
            let update = tokio::time::timeout_at(deadline, speaker.next())
                .await
                .expect("an answer to every message in time")
                .expect("the session lasts");
            match update {
                WorldUpdate::Message(Message::Chat {
                    scope: ChatScope::Line,
                    from,
                    text,
                    ..
                }) if from == name => {
                    delivered.push(text);
                    answers += 1;
                }
                WorldUpdate::Message(Message::Refused {
                    about: RefusedAbout::Chat,
                    reason,
                }) => {
                    refused.push(reason);
                    answers += 1;
                }
                _ => {}
            }
        }
        speakers.push(speaker);
    }
    assert_eq!(delivered, [ordinary], "refused: {refused:?}");
    assert_eq!(refused.len(), hidden.len());
    assert!(
        refused.iter().all(|r| !r.contains("too fast")),
        "refused for the text, not the rate: {refused:?}"
    );
    assert_eq!(
        server.game.counters.rate_limited.load(Ordering::Relaxed),
        0,
        "nothing was dropped for its rate"
    );
    // Line chat arrives in order: whatever the listener heard of the
    // hidden words came before the ordinary message.
    let mut heard = Vec::new();
    let got = listener
        .until(WAIT, |u, _| {
            heard.extend(chat_text(u).map(str::to_owned));
            chat_text(u) == Some(ordinary)
        })
        .await;
    assert!(got.is_some(), "the ordinary message reached the listener");
    assert_eq!(heard, [ordinary]);
    server.shutdown("test over").await;
}
