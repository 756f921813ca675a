//! A game on the game API inside `hearth serve`: its lines (each a
//! [`GameLine`]) stepped on a thread of their own at the game's tick rate,
//! fed with the joins, leaves and messages the gate's handler hands over
//! (never waiting: messages go through a bounded queue and are dropped and
//! counted when it is full), their outputs carried to the gate and the
//! database. Which line of which zone each player is in, and what crosses
//! lines (travel, line changes, messages by name and to a zone), is the
//! sans-IO [`GameLines`]' business; this host gives it the time and the
//! sessions' events and carries out what it asks.

pub mod admission;
mod forwarded;
mod line_keeper;
pub mod line_leases;
mod process_cpu;
mod relayed;
pub mod saves;
pub mod world_places;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hearth_cluster::relay::{Incoming, Outgoing, Relay};
use hearth_game::directory::LineKey;
use hearth_game::record::SCHEMA_CHANNEL;
use hearth_game::schema::Schema;
use hearth_game::{
    Game, GameLines, InputError, Joining, LinesOutput, LoginInfo, ObserverId, PreLogin,
};
use hearth_net::gate::GateHandle;
use hearth_proto::close_code;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::recordings::Recordings;
use crate::storage::Storage;

/// Counters of a game host, for /metrics and the dashboard.
#[derive(Debug, Default)]
pub struct GameHostCounters {
    pub joins: AtomicU64,
    pub leaves: AtomicU64,
    /// Client messages handed to a line.
    pub messages: AtomicU64,
    /// Client state messages (acknowledgements, moves) dropped because the
    /// host's queue was full, as their channel allows.
    pub messages_dropped: AtomicU64,
    /// Reliable client messages held back while the host's queue was full
    /// (their sessions' receiving paused until it had room), and sessions
    /// closed because they held more than their bound.
    pub messages_held: AtomicU64,
    pub held_overflows: AtomicU64,
    /// Client messages that did not decode (their sessions are closed).
    pub undecodable: AtomicU64,
    /// Client messages beyond their rate limit (dropped).
    pub rate_limited: AtomicU64,
    /// Sends to sessions that were already gone.
    pub send_failures: Arc<AtomicU64>,
    /// Saves of players' data written, and failed.
    pub saves: AtomicU64,
    pub save_failures: AtomicU64,
    /// Saves refused because the player's account now plays on another
    /// node of the cluster (this node's claim was taken over): the player
    /// is sent away here, and their data there is not overwritten.
    pub saves_taken_over: AtomicU64,
    /// Lines opened so far.
    pub lines: AtomicU64,
    /// Changes of line or zone made, and refused.
    pub transfers: AtomicU64,
    pub transfers_refused: AtomicU64,
    /// The smoothed cost of a step, in thousandths of the tick period.
    pub load_permille: AtomicU64,
    /// Seconds a newcomer is told to wait while the host is too busy to
    /// admit one; 0 while it admits ([`admission`]).
    pub refusing_for_s: AtomicU64,
    /// Times the host turned busy and began refusing newcomers.
    pub busy_spells: AtomicU64,
    /// The process's CPU use, in thousandths of the cores it may run on.
    pub cpu_permille: AtomicU64,
    /// The share of their byte budgets players are sent while the host
    /// sheds, in thousandths (1000: all of it).
    pub budget_permille: AtomicU64,
}

/// The game's lines, for administration: the built-in world's figures
/// (so the dashboard shows both alike) and the game line's counters.
#[derive(Debug, Clone, Serialize)]
pub struct GameLineStatus {
    /// The line's zone (the game's name, for a game without maps).
    pub zone: String,
    pub number: u32,
    pub players: usize,
    /// Places left in it (players it may still take).
    pub room: usize,
    /// A game has no NPCs of Hearth's; its own actors are in `actors`.
    pub npcs: usize,
    pub actors: usize,
    /// Over the last [`TICK_WINDOW`] ticks.
    pub tick_p50_us: u64,
    pub tick_p99_us: u64,
    pub bytes_out_per_player_s: u64,
    pub stats: hearth_game::GameStats,
    /// The line's own tick count.
    pub tick: u64,
    /// In a cluster: the line's lease (its name in the cluster, epoch,
    /// last save).
    pub lease: Option<line_leases::LineLeaseStatus>,
}

/// Ticks a line's figures are taken over.
pub const TICK_WINDOW: usize = 200;

/// What the login path asks of the game, type-erased.
trait LoginHook: Send + Sync {
    fn pre_login(&self, login: &LoginInfo<'_>) -> PreLogin;
}

struct GameLoginHook<G>(Arc<G>);

impl<G: Game> LoginHook for GameLoginHook<G> {
    fn pre_login(&self, login: &LoginInfo<'_>) -> PreLogin {
        self.0.pre_login(login)
    }
}

enum Lifecycle {
    Join {
        player: u64,
        /// The player's name, for the game (`Ctx::name`).
        name: String,
        account: Option<i64>,
        saved: Option<Vec<u8>>,
        /// The client's NetSpeed, if it named one.
        bytes_per_second: Option<u32>,
        /// In a cluster, the epoch of this node's claim on the account:
        /// the player's saves are written under it.
        claim: Option<i64>,
    },
    Leave(u64),
}

enum Request {
    Status(oneshot::Sender<Vec<GameLineStatus>>),
    /// Close the sessions of guests with this name; replies how many.
    KickGuests {
        name: String,
        reason: String,
        reply: oneshot::Sender<usize>,
    },
    /// To every line: `Game::on_announce`.
    Announce(String),
    /// Record what the player with this name receives, for `seconds`:
    /// replies with the file's name, or why not.
    Record {
        name: String,
        seconds: u64,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Record a whole line as an observer sees it.
    RecordLine {
        zone: String,
        line: u32,
        seconds: u64,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Every player leaves (their data is saved), then the host stops.
    Shutdown(oneshot::Sender<()>),
    /// Hand every player in the lines to other nodes and take no more
    /// (`hearth admin drain`), or stop: replies with the players in the
    /// lines.
    Drain {
        on: bool,
        reply: oneshot::Sender<usize>,
    },
    /// Replies once the account has no player here whose last save is
    /// still to be written (at once if it has none).
    Saved {
        account: i64,
        reply: oneshot::Sender<()>,
    },
}

/// Reaches the game host from the gate's handler (without waiting) and
/// from administration.
#[derive(Clone)]
pub struct GameHostHandle {
    lifecycle: mpsc::UnboundedSender<Lifecycle>,
    messages: mpsc::Sender<(u64, u16, Vec<u8>)>,
    requests: mpsc::Sender<Request>,
    login: Arc<dyn LoginHook>,
    /// The game's schema, served at /api/schema and checked at login.
    pub schema: Arc<Schema>,
    pub counters: Arc<GameHostCounters>,
    /// Server-side recordings of what players (or observers of lines)
    /// receive.
    pub recordings: Arc<Recordings>,
    /// The game is the built-in world: a player it has no data of starts
    /// from the place the built-in engine saved ([`world_places`]).
    pub reads_world_places: bool,
    /// In a cluster with pinned zones: the players of this node who play on
    /// another; their clients' messages go there at once.
    away: Option<Arc<forwarded::AwayPlayers>>,
    /// In a cluster: the counters of the lines' leases and saves.
    pub line_leases: Option<Arc<line_leases::LineLeaseCounters>>,
}

impl GameHostHandle {
    /// The game's name in its schema (also the key of its players' data).
    pub fn game(&self) -> &str {
        self.schema.game()
    }

    /// The largest message a client of this game has reason to send: the
    /// largest `to_server` message with its header, or an acknowledgement.
    pub fn max_client_message(&self) -> usize {
        let largest = self
            .schema
            .messages()
            .iter()
            .filter(|m| m.direction == hearth_game::schema::Direction::ToServer)
            .map(|m| m.max_len())
            .max()
            .unwrap_or(0);
        // Type byte and a varint index of at most 5 bytes; or the state
        // message with its moves.
        (largest + 6).max(hearth_game::game_wire::MAX_CLIENT_STATE_BYTES)
    }

    pub fn pre_login(&self, login: &LoginInfo<'_>) -> PreLogin {
        self.login.pre_login(login)
    }

    /// A player enters, with the data saved for them and their client's
    /// NetSpeed.
    pub fn join(
        &self,
        player: u64,
        name: String,
        account: Option<i64>,
        saved: Option<Vec<u8>>,
        bytes_per_second: Option<u32>,
        claim: Option<i64>,
    ) {
        self.counters.joins.fetch_add(1, Ordering::Relaxed);
        let _ = self.lifecycle.send(Lifecycle::Join {
            player,
            name,
            account,
            saved,
            bytes_per_second,
            claim,
        });
    }

    /// Waits until the account has no player here whose last save is still
    /// to be written (a released player's data is in the database).
    pub async fn saved(&self, account: i64) {
        let (reply, done) = oneshot::channel();
        if self
            .requests
            .send(Request::Saved { account, reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    pub fn leave(&self, player: u64) {
        self.counters.leaves.fetch_add(1, Ordering::Relaxed);
        let _ = self.lifecycle.send(Lifecycle::Leave(player));
    }

    /// A client's bytes on a game channel; false (dropped and counted) when
    /// the host is backlogged.
    /// Messages the host's queue has room for now.
    pub fn room(&self) -> usize {
        self.messages.capacity()
    }

    /// The host stopped: its queue takes nothing any more.
    pub fn is_gone(&self) -> bool {
        self.messages.is_closed()
    }

    /// Hands a client's message to the host's queue; gives it back when the
    /// queue is full (or the host is gone), for the caller to hold or drop.
    pub fn message(&self, player: u64, channel: u16, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        if let Some(forwarded) = self
            .away
            .as_ref()
            .and_then(|away| away.forward(player, channel, &bytes))
        {
            if !forwarded {
                return Err(bytes);
            }
            self.counters.messages.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.messages
            .try_send((player, channel, bytes))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full((_, _, bytes))
                | mpsc::error::TrySendError::Closed((_, _, bytes)) => bytes,
            })
    }

    /// `Some(seconds)` while the host is too busy to admit newcomers: a
    /// login is refused, telling the client to try again then.
    pub fn refusal(&self) -> Option<u64> {
        match self.counters.refusing_for_s.load(Ordering::Relaxed) {
            0 => None,
            seconds => Some(seconds),
        }
    }

    /// Drains this node's lines, or stops (see `GameLines::set_draining`):
    /// the players in them now, or `None` if the host has stopped.
    pub async fn drain(&self, on: bool) -> Option<usize> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Drain { on, reply })
            .await
            .ok()?;
        rx.await.ok()
    }

    pub async fn status(&self) -> Option<Vec<GameLineStatus>> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Closes the sessions of the game's guests (players without an
    /// account) named `name`; how many.
    pub async fn kick_guests(&self, name: &str, reason: &str) -> usize {
        let (reply, rx) = oneshot::channel();
        let request = Request::KickGuests {
            name: name.to_owned(),
            reason: reason.to_owned(),
            reply,
        };
        if self.requests.send(request).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// An administrator's announcement, to every line
    /// (`Game::on_announce`).
    pub async fn announce(&self, text: &str) -> bool {
        self.requests
            .send(Request::Announce(text.to_owned()))
            .await
            .is_ok()
    }

    /// Records what the player named `name` receives for `seconds`: their
    /// client is sent everything again, so the recording starts complete.
    /// The file's name, or why not.
    pub async fn record(&self, name: &str, seconds: u64) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        let request = Request::Record {
            name: name.to_owned(),
            seconds,
            reply,
        };
        self.ask(request, rx).await
    }

    /// Records line `line` of zone `zone` as an observer sees it (every
    /// actor, the line's messages) for `seconds`.
    pub async fn record_line(&self, zone: &str, line: u32, seconds: u64) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        let request = Request::RecordLine {
            zone: zone.to_owned(),
            line,
            seconds,
            reply,
        };
        self.ask(request, rx).await
    }

    async fn ask(
        &self,
        request: Request,
        rx: oneshot::Receiver<Result<String, String>>,
    ) -> Result<String, String> {
        const GONE: &str = "the game has stopped";
        self.requests
            .send(request)
            .await
            .map_err(|_| GONE.to_owned())?;
        rx.await.map_err(|_| GONE.to_owned())?
    }

    /// Saves every player's data and stops; returns when it is written.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts `game`'s host on a thread of its own.
/// How the server has the game host run: from its settings, and what it
/// shares with the rest of the server.
pub struct HostSettings {
    /// `[world] input_queue`.
    pub input_queue: usize,
    /// `[accounts] single_session`.
    pub single_session: bool,
    /// `[world] save_period_ms`.
    pub save_period_ms: u64,
    pub recordings: Arc<Recordings>,
    /// In a cluster: the account claims that fence players' saves.
    pub cluster: Option<crate::cluster_node::ClusterAccounts>,
    /// In a cluster: players' messages to and from the other nodes (a
    /// zone's messages, messages by name, announcements).
    pub relay: Option<(Relay, mpsc::Receiver<Incoming>)>,
    /// In a cluster: players who play in lines other nodes run (zones
    /// pinned to a node, players placed by load), and the settings.
    pub forwarding: Option<crate::cluster_node::ForwardingParts>,
    /// In a cluster: the leases and saves of the lines.
    pub line_leases: Option<line_leases::LineLeaseParts>,
}

pub fn start<G: Game>(
    game: Arc<G>,
    gate: GateHandle,
    storage: Storage,
    settings: HostSettings,
) -> std::io::Result<GameHostHandle> {
    let HostSettings {
        input_queue,
        single_session,
        save_period_ms,
        recordings,
        cluster,
        relay,
        forwarding,
        line_leases,
    } = settings;
    let (relay, relayed) = relay.unzip();
    let schema = Arc::new(game.schema());
    let (lifecycle_tx, lifecycle) = mpsc::unbounded_channel();
    let (messages_tx, messages) = mpsc::channel(input_queue.max(1));
    let (requests_tx, requests) = mpsc::channel(16);
    let counters = Arc::new(GameHostCounters::default());
    let seed = u64::from_le_bytes(hearth_proto::os_seed()[..8].try_into().expect("8 bytes"));
    let tick = Duration::from_micros(1_000_000 / u64::from(game.tick_hz().clamp(1, 1000)));
    let host = Host {
        tick,
        admission: admission::Admission::new(tick.as_micros() as u64),
        process_cpu: process_cpu::ProcessCpu::new(),
        game: game.clone(),
        lines: {
            let lines = GameLines::new(game.clone(), seed).with_save_period({
                // `[world] save_period_ms` in ticks: at least one when on.
                let hz = u64::from(game.tick_hz().max(1));
                (save_period_ms * hz / 1000)
                    .clamp(u64::from(save_period_ms > 0), u64::from(u32::MAX))
                    as u32
            });
            let lines = match relay.is_some() {
                true => lines.with_other_nodes(),
                false => lines,
            };
            match &forwarding {
                Some(parts) => {
                    let me = hearth_cluster::NodeId::parse(parts.forwarder.me())
                        .map(|id| id.name().to_owned())
                        .unwrap_or_default();
                    let elsewhere = forwarded::Forwarding::zones_elsewhere(&parts.pins, &me);
                    let here = parts
                        .pins
                        .iter()
                        .filter(|(_, node)| **node == me)
                        .map(|(zone, _)| zone.as_str());
                    let lines = lines
                        .with_zones_elsewhere(elsewhere.iter().map(String::as_str))
                        .with_zones_pinned_here(here);
                    match parts.placement {
                        crate::config::Placement::LeastLoaded => lines.with_placement(),
                        crate::config::Placement::Local => lines,
                    }
                }
                None => lines,
            }
        },
        recent_ticks: HashMap::new(),
        started: std::time::Instant::now(),
        accounts: HashMap::new(),
        present: HashMap::new(),
        held: HashMap::new(),
        recent: HashMap::new(),
        recent_order: Default::default(),
        single_session,
        replaced: Vec::new(),
        remembered: 0,
        gate,
        storage,
        game_name: schema.game().to_owned(),
        schema_json: serde_json::to_vec(&*schema).expect("a schema serializes"),
        counters: counters.clone(),
        recordings: recordings.clone(),
        observers: HashMap::new(),
        cluster,
        claims: HashMap::new(),
        waiting_saves: HashMap::new(),
        relay,
        relay_names: HashMap::new(),
        forwarding: None,
        forward_carried: Default::default(),
        line_leases: None,
    };
    let mut host = host;
    let mut forwarded_in = None;
    host.forwarding = forwarding.map(|parts| {
        let crate::cluster_node::ForwardingParts {
            forwarder,
            incoming,
            pins,
            ..
        } = parts;
        forwarded_in = Some(incoming);
        let fallback = host
            .lines
            .zone_names()
            .iter()
            .find(|zone| !host.lines.is_elsewhere(zone))
            .cloned()
            .unwrap_or_default();
        forwarded::Forwarding::new(forwarder, pins, fallback)
    });
    host.line_leases = line_leases.map(|parts| {
        let zones: Vec<String> = host
            .lines
            .zone_names()
            .iter()
            .filter(|zone| !host.lines.is_elsewhere(zone))
            .cloned()
            .collect();
        line_leases::LineLeases::start(parts, zones)
    });
    // With lines under leases, a drain moves whole lines.
    host.lines.set_whole_line_drains(host.line_leases.is_some());
    let line_lease_counters = host.line_leases.as_ref().map(|l| l.counters.clone());
    let away = host.forwarding.as_ref().map(|f| f.away.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("hearth-game-{}", schema.game()))
        .spawn(move || {
            runtime.block_on(host.run(lifecycle, messages, requests, relayed, forwarded_in))
        })?;
    Ok(GameHostHandle {
        lifecycle: lifecycle_tx,
        messages: messages_tx,
        requests: requests_tx,
        login: Arc::new(GameLoginHook(game)),
        schema,
        counters,
        recordings,
        reads_world_places: false,
        away,
        line_leases: line_lease_counters,
    })
}

/// The next message of `receiver`, if there is one (never, if none).
async fn recv_if_any<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Messages from other nodes of the cluster handled per tick at most.
const RELAYED_PER_TICK: usize = 256;

/// Accounts whose last saved data the host remembers (see `Host::recent`).
const RECENT_DATA: usize = 4096;

/// The host's task.
struct Host<G: Game> {
    game: Arc<G>,
    /// Time between ticks.
    tick: Duration,
    /// Whether newcomers are admitted, from what the steps cost.
    admission: admission::Admission,
    /// The process's CPU use, sampled for the admission.
    process_cpu: process_cpu::ProcessCpu,
    /// Every line of the game, and who is where.
    lines: GameLines<G>,
    /// Per line, the last ticks' durations (µs) and the line's running
    /// total of bytes sent, at most [`TICK_WINDOW`], for the dashboard.
    recent_ticks: HashMap<LineKey, std::collections::VecDeque<(u64, u64)>>,
    /// The lines' clock starts here.
    started: std::time::Instant,
    /// Each player's account, kept until their last save is written.
    accounts: HashMap<u64, i64>,
    /// The session of each account that is in a line or leaving one (until
    /// its last save): a new login of the account waits for it.
    present: HashMap<i64, u64>,
    /// A login's join held until the account's previous session has left
    /// and its data is saved (a quick reconnect must not start from data
    /// read before that save).
    held: HashMap<i64, Lifecycle>,
    /// The last data saved of accounts that left, newest last, at most
    /// [`RECENT_DATA`]: a login that read the database before that save was
    /// written starts from this instead.
    /// In a cluster, with the claim epoch it was saved under: it is used
    /// only by a login under the same claim (the account may have played
    /// on another node since, and its data there is newer).
    recent: HashMap<i64, (u64, Vec<u8>, Option<i64>)>,
    /// (account, stamp) in the order they were remembered; an entry whose
    /// stamp no longer matches was replaced or used.
    recent_order: std::collections::VecDeque<(i64, u64)>,
    /// `[accounts] single_session`: a new login replaces the account's
    /// session (its join waits for the old one's save); off, an account may
    /// play in several sessions at once.
    single_session: bool,
    /// Sessions whose held join a newer login of the same account
    /// displaced: closed at the next step, telling them why.
    replaced: Vec<u64>,
    /// Stamps `recent`'s entries.
    remembered: u64,
    gate: GateHandle,
    storage: Storage,
    /// The game's name in its schema: the key of its players' saved data.
    game_name: String,
    /// The schema as JSON: the first record of every recording.
    schema_json: Vec<u8>,
    counters: Arc<GameHostCounters>,
    recordings: Arc<Recordings>,
    /// The observers of lines that recordings are running for, and the key
    /// each records under.
    observers: HashMap<(LineKey, ObserverId), u64>,
    /// In a cluster: the account claims that fence players' saves.
    cluster: Option<crate::cluster_node::ClusterAccounts>,
    /// Each player's claim epoch on its account (in a cluster), kept until
    /// its last save is written.
    claims: HashMap<u64, i64>,
    /// Who waits for an account's last save here (another node asked this
    /// one to let go of it).
    waiting_saves: HashMap<i64, Vec<oneshot::Sender<()>>>,
    /// In a cluster: carries the lines' messages for other nodes' lines and
    /// players, and which players' names are here.
    relay: Option<Relay>,
    /// The name of each player the relay was told is here (until their
    /// last save: then it is told they left).
    relay_names: HashMap<u64, String>,
    /// In a cluster with zones pinned to nodes: players who play in a zone
    /// another node runs (their session here), and players of other nodes
    /// who play in this node's lines.
    forwarding: Option<forwarded::Forwarding>,
    /// What other nodes sent about this node's sessions since the last
    /// step (their data to store, closes), carried with its outputs.
    forward_carried: forwarded::Carried,
    /// In a cluster: every line under a lease, saved under its epoch,
    /// paused when the lease may be lapsing; lines of dead nodes restarted.
    line_leases: Option<line_leases::LineLeases>,
}

impl<G: Game> Host<G> {
    async fn run(
        mut self,
        mut lifecycle: mpsc::UnboundedReceiver<Lifecycle>,
        mut messages: mpsc::Receiver<(u64, u16, Vec<u8>)>,
        mut requests: mpsc::Receiver<Request>,
        mut relayed: Option<mpsc::Receiver<Incoming>>,
        mut forwarded_in: Option<mpsc::Receiver<hearth_cluster::forward::ForwardIn>>,
    ) {
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let began = std::time::Instant::now();
                    // Joins first, then what arrived during the last tick (at
                    // most one queue's worth), then leaves: a client's last
                    // messages before it closed reach the game before its
                    // leave does.
                    let mut leaves = Vec::new();
                    while let Ok(event) = lifecycle.try_recv() {
                        match event {
                            Lifecycle::Leave(_) => leaves.push(event),
                            join => self.lifecycle(join),
                        }
                    }
                    for _ in 0..messages.max_capacity() {
                        let Ok((player, channel, bytes)) = messages.try_recv() else { break };
                        self.message(player, channel, &bytes).await;
                    }
                    // What other nodes sent: at most RELAYED_PER_TICK (a
                    // flood from other nodes costs the tick a bounded amount;
                    // the rest waits in the relay's bounded queue).
                    if let Some(relayed) = relayed.as_mut() {
                        for _ in 0..RELAYED_PER_TICK {
                            let Ok(incoming) = relayed.try_recv() else { break };
                            self.relayed(incoming);
                        }
                    }
                    for leave in leaves {
                        self.lifecycle(leave);
                    }
                    self.step().await;
                    self.admit(began.elapsed(), messages.len(), messages.max_capacity());
                }
                // About players who play across nodes: at once, not at the
                // tick (bytes for a session here go to the gate now).
                Some(message) = recv_if_any(&mut forwarded_in) => {
                    self.forwarded_in(message);
                    let sends = std::mem::take(&mut self.forward_carried.sends);
                    if !sends.is_empty() {
                        self.recordings.tee(&sends);
                        crate::gate_sends::deliver(&self.gate, sends, &self.counters.send_failures).await;
                    }
                }
                Some(request) = requests.recv() => match request {
                    Request::Status(reply) => {
                        let _ = reply.send(self.status());
                    }
                    Request::Drain { on, reply } => {
                        self.lines.set_draining(on);
                        let _ = reply.send(self.lines.directory().player_count());
                    }
                    Request::KickGuests {
                        name,
                        reason,
                        reply,
                    } => {
                        let _ = reply.send(self.kick_guests(&name, &reason).await);
                    }
                    Request::Announce(text) => {
                        self.lines.announce(&text);
                        if let Some(relay) = &self.relay {
                            relay.send(Outgoing::Announce { text });
                        }
                    }
                    Request::Record {
                        name,
                        seconds,
                        reply,
                    } => {
                        let _ = reply.send(self.record(&name, seconds));
                    }
                    Request::RecordLine {
                        zone,
                        line,
                        seconds,
                        reply,
                    } => {
                        let _ = reply.send(self.record_line(&zone, line, seconds));
                    }
                    // Answered after the next step: a join of the account
                    // may still wait in the lifecycle queue, drained at the
                    // tick (answering now would let another node claim the
                    // account before this one has even seen the player).
                    Request::Saved { account, reply } => {
                        self.waiting_saves.entry(account).or_default().push(reply);
                    }
                    Request::Shutdown(done) => {
                        if let Some(leases) = self.line_leases.as_mut() {
                            leases.stop_pausing(&mut self.lines);
                        }
                        let mut players: Vec<u64> = self.lines.players().collect();
                        players.extend(self.away_players());
                        for player in players {
                            self.lifecycle(Lifecycle::Leave(player));
                        }
                        // Players on other nodes: their last saves come back
                        // from there (at most 10 s, as when a session ends;
                        // then what was saved last stands).
                        for _ in 0..200 {
                            if self.away_players().is_empty() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if let Some(incoming) = forwarded_in.as_mut() {
                                while let Ok(message) = incoming.try_recv() {
                                    self.forwarded_in(message);
                                }
                            }
                            self.step().await;
                        }
                        // A player on the way between lines is let go by the
                        // old line at this step (the directory then forgets
                        // them): their last save is written before the reply.
                        self.step().await;
                        // Its lines go on elsewhere, from a save made now.
                        if let Some(mut leases) = self.line_leases.take() {
                            let forwarding = &self.forwarding;
                            let node_id =
                                |name: &str| forwarding.as_ref()?.forwarder.node_named(name);
                            leases.hand_over(&mut self.lines, &node_id).await;
                        }
                        let _ = done.send(());
                        return;
                    }
                },
            }
        }
    }

    fn lifecycle(&mut self, event: Lifecycle) {
        match event {
            Lifecycle::Join {
                player,
                name,
                account,
                mut saved,
                bytes_per_second,
                claim,
            } => {
                if let Some(account) = account {
                    let earlier = self.present.get(&account).copied().filter(|p| *p != player);
                    // Held while the earlier session leaves (it is leaving, or
                    // the gate is closing it because a new login replaces it);
                    // released when its last save is in. With single_session
                    // off, sessions of one account play side by side instead.
                    let hold = earlier.is_some_and(|earlier| {
                        // (in the game: here, or playing on another node)
                        let playing = self.lines.contains(earlier) || self.is_away(earlier);
                        self.single_session || !playing
                    });
                    if hold {
                        let join = Lifecycle::Join {
                            player,
                            name,
                            account: Some(account),
                            saved,
                            bytes_per_second,
                            claim,
                        };
                        if let Some(Lifecycle::Join {
                            player: displaced, ..
                        }) = self.held.insert(account, join)
                        {
                            // A newer login of the account took its place.
                            self.replaced.push(displaced);
                        }
                        return;
                    }
                    if let Some((_, newer, epoch)) = self.recent.remove(&account) {
                        if epoch == claim {
                            saved = Some(newer);
                        }
                    }
                    self.present.insert(account, player);
                }
                let relay_name = self.relay.is_some().then(|| name.clone());
                if !self.lines.enter(Joining {
                    player,
                    name,
                    saved,
                    bytes_per_second,
                }) {
                    return;
                }
                if let Some(name) = relay_name {
                    self.relay_present(player, name);
                }
                if let Some(account) = account {
                    self.accounts.insert(player, account);
                }
                if let Some(claim) = claim {
                    self.claims.insert(player, claim);
                }
            }
            Lifecycle::Leave(player) => {
                // A held join whose session ended before it was released.
                self.held.retain(
                    |_, join| !matches!(join, Lifecycle::Join { player: p, .. } if *p == player),
                );
                if !self.forward_leave(player) {
                    self.lines.leave(player);
                }
            }
        }
    }

    async fn message(&mut self, player: u64, channel: u16, bytes: &[u8]) {
        match self.lines.input(player, channel, bytes) {
            Ok(()) => {
                self.counters.messages.fetch_add(1, Ordering::Relaxed);
            }
            Err(InputError::RateLimited) => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            // Joined this tick: its line has not seen it yet.
            Err(InputError::UnknownPlayer) => {}
            Err(InputError::Undecodable(error)) => {
                self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                let reason = format!("a game message did not decode: {error}");
                let _ = self
                    .gate
                    .run_on(player, move |ctx| {
                        ctx.close(player, close_code::PROTOCOL_ERROR, &reason)
                    })
                    .await;
            }
        }
    }

    /// Ticks every line and carries out what they produced.
    async fn step(&mut self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let mut carried = std::mem::take(&mut self.forward_carried);
        self.expire_away();
        self.drop_lost_nodes(&mut carried);
        self.refresh_placement();
        if let Some(leases) = self.line_leases.as_mut() {
            let forwarding = &self.forwarding;
            let node_id = |name: &str| forwarding.as_ref()?.forwarder.node_named(name);
            leases.before_step(&mut self.lines, std::time::Instant::now(), &node_id);
        }
        for key in self.lines.begin_step(now_ms) {
            let started = std::time::Instant::now();
            // Its lease read again at the moment of its tick.
            if let Some(leases) = &self.line_leases {
                if !leases.may_tick(key, started) {
                    continue;
                }
            }
            let Some(line) = self.lines.tick_line(key) else {
                continue;
            };
            let elapsed = started.elapsed().as_micros() as u64;
            let sent = line.stats().bytes_out;
            let recent = self.recent_ticks.entry(key).or_default();
            if recent.len() >= TICK_WINDOW {
                recent.pop_front();
            }
            recent.push_back((elapsed, sent));
        }
        if let Some(leases) = self.line_leases.as_mut() {
            leases.after_step(&self.lines, std::time::Instant::now());
        }
        let mut observed = Vec::new();
        let mut elsewhere = Vec::new();
        let mut departed = Vec::new();
        let outputs: Vec<LinesOutput> = self.lines.finish_step().collect();
        let forwarding = self.forwarding.is_some();
        for output in outputs {
            match output {
                // A remote player's (their session is on another node):
                // to their home.
                LinesOutput::Send {
                    player,
                    channel,
                    ref bytes,
                } if forwarding && self.remote_send(player, channel, bytes) => {}
                LinesOutput::Save {
                    player,
                    ref data,
                    last,
                } if forwarding && self.remote_save(player, data, last) => {}
                LinesOutput::Close { player, ref reason }
                    if forwarding && self.remote_close(player, reason) => {}
                LinesOutput::Send {
                    player,
                    channel,
                    bytes,
                } => carried.sends.push((player, channel, bytes)),
                LinesOutput::Save { player, data, last } => {
                    carried.saves.push((player, data, last))
                }
                LinesOutput::Close { player, reason } => carried.closes.push((player, reason)),
                LinesOutput::Departed(handoff) => departed.push(handoff),
                LinesOutput::Observed {
                    line,
                    observer,
                    channel,
                    bytes,
                } => {
                    if let Some(&key) = self.observers.get(&(line, observer)) {
                        observed.push((key, channel, bytes));
                    }
                }
                LinesOutput::ToZoneElsewhere { .. } | LinesOutput::ToNamedElsewhere { .. } => {
                    elsewhere.push(output)
                }
            }
        }
        for output in elsewhere {
            self.send_to_other_nodes(output);
        }
        for handoff in departed {
            self.departed(handoff, &mut carried);
        }
        let forwarded::Carried {
            sends,
            saves,
            closes,
        } = carried;
        self.recordings.tee(&observed);
        self.recordings.tee(&sends);
        self.recordings.sweep();
        // Observers whose recording ended (or whose line closed, even if a
        // line of the same number has opened since) stop.
        let (lines, recordings) = (&mut self.lines, &self.recordings);
        self.observers.retain(|&(line, observer), key| {
            let running = recordings.is_recording(*key)
                && lines
                    .line(line)
                    .is_some_and(|open| open.is_observing(observer));
            if !running {
                lines.stop_observing(line, observer);
            }
            running
        });
        let lines = &self.lines;
        self.recent_ticks
            .retain(|key, _| lines.line(*key).is_some());
        self.counters
            .lines
            .store(self.lines.opened(), Ordering::Relaxed);
        self.counters
            .transfers
            .store(self.lines.transfers(), Ordering::Relaxed);
        self.counters.transfers_refused.store(
            self.lines.directory().transfers_refused() + self.lines.transfers_refused_busy,
            Ordering::Relaxed,
        );
        crate::gate_sends::deliver(&self.gate, sends, &self.counters.send_failures).await;
        for player in std::mem::take(&mut self.replaced) {
            let _ = self
                .gate
                .run_on(player, move |ctx| {
                    ctx.close(player, close_code::REPLACED, "logged in from another place")
                })
                .await;
        }
        for (player, reason) in closes {
            let _ = self
                .gate
                .run_on(player, move |ctx| {
                    ctx.close(player, close_code::KICKED, &reason)
                })
                .await;
        }
        for (player, data, gone) in saves {
            if gone {
                self.relay_absent(player);
            }
            let Some(&account) = self.accounts.get(&player) else {
                continue;
            };
            let claim = match gone {
                true => self.claims.remove(&player),
                false => self.claims.get(&player).copied(),
            };
            if gone {
                // Its last save: the player has left. Data the database
                // refuses (too large) is not kept for the next login either.
                self.accounts.remove(&player);
                if data.len() <= saves::MAX_PLAYER_DATA {
                    self.remember(account, data.clone(), claim);
                }
            }
            let stored = match (&self.cluster, claim) {
                (Some(cluster), Some(epoch)) => {
                    saves::store_claimed(&cluster.claims, account, epoch, &self.game_name, data)
                        .await
                }
                _ => saves::store(&self.storage, account, &self.game_name, data).await,
            };
            match stored {
                Ok(()) => {
                    self.counters.saves.fetch_add(1, Ordering::Relaxed);
                }
                Err(saves::SaveError::TakenOver) => {
                    self.counters
                        .saves_taken_over
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(account, "the account plays on another node now: this node's save was refused, and its session here ends");
                    if !gone {
                        let _ = self
                            .gate
                            .run_on(player, move |ctx| {
                                ctx.close(
                                    player,
                                    close_code::REPLACED,
                                    crate::game::REPLACED_REASON,
                                )
                            })
                            .await;
                    }
                }
                Err(error) => {
                    self.counters.save_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, account, "cannot save a player's game data");
                }
            }
            if gone {
                if self.present.get(&account) == Some(&player) {
                    self.present.remove(&account);
                }
                if let Some(join) = self.held.remove(&account) {
                    self.lifecycle(join);
                }
            }
        }
        // Whoever waits for an account's last save here is answered once
        // the account has no player here and no join held.
        let (present, held) = (&self.present, &self.held);
        self.waiting_saves.retain(|account, waiting| {
            let busy = present.contains_key(account) || held.contains_key(account);
            if !busy {
                for reply in waiting.drain(..) {
                    let _ = reply.send(());
                }
            }
            busy
        });
    }

    /// A player who left the game without a last save to write (their
    /// node never sent it): forgotten here as after one.
    fn let_go_unsaved(&mut self, player: u64) {
        self.relay_absent(player);
        self.claims.remove(&player);
        if let Some(account) = self.accounts.remove(&player) {
            if self.present.get(&account) == Some(&player) {
                self.present.remove(&account);
            }
            if let Some(join) = self.held.remove(&account) {
                self.lifecycle(join);
            }
        }
    }

    /// Starts recording what the player named `name` receives: their
    /// client is sent everything again at the next tick, and every message
    /// of theirs from then on is teed into the file.
    fn record(&mut self, name: &str, seconds: u64) -> Result<String, String> {
        let Some((player, _)) = self.lines.directory().find(name) else {
            return Err(format!("{name} is not online"));
        };
        let file = self
            .recordings
            .start(
                player,
                name,
                seconds,
                &[(SCHEMA_CHANNEL, &self.schema_json)],
            )
            .map_err(|e| e.to_string())?;
        self.lines.resync(player);
        Ok(file)
    }

    /// Starts an observer of a line and a recording of what it is sent.
    fn record_line(&mut self, zone: &str, number: u32, seconds: u64) -> Result<String, String> {
        let Some(line) = self.lines.line_named(zone, number) else {
            return Err(format!("{zone} has no line {number}"));
        };
        let Some(observer) = self.lines.observe(line) else {
            return Err(format!(
                "{zone} line {number} is being recorded by {} observers already",
                hearth_game::MAX_OBSERVERS
            ));
        };
        // Observers are named from the top of the id space, where no session is.
        let key = u64::MAX - self.recordings.next_observer_number();
        let name = format!("{zone}-line{number}");
        match self
            .recordings
            .start(key, &name, seconds, &[(SCHEMA_CHANNEL, &self.schema_json)])
        {
            Ok(file) => {
                self.observers.insert((line, observer), key);
                Ok(file)
            }
            Err(e) => {
                self.lines.stop_observing(line, observer);
                Err(e.to_string())
            }
        }
    }

    /// What this step cost (taking the queued messages, the lines' ticks,
    /// sending what they produced), against the tick period, and how full
    /// the message queue still is: whether newcomers are admitted.
    fn admit(&mut self, cost: Duration, queued: usize, capacity: usize) {
        if let Some(cpu) = self.process_cpu.sample(std::time::Instant::now()) {
            self.admission.record_cpu(cpu);
        }
        self.admission
            .record(cost.as_micros() as u64, queued, capacity);
        let counters = &self.counters;
        counters
            .load_permille
            .store(self.admission.load_permille(), Ordering::Relaxed);
        let refusal = self.admission.refusal();
        self.lines.set_busy(refusal);
        let shedding = self.admission.shedding();
        self.lines.set_shedding(shedding);
        counters
            .cpu_permille
            .store(self.admission.cpu_permille(), Ordering::Relaxed);
        counters
            .budget_permille
            .store(u64::from(shedding.budget_permille), Ordering::Relaxed);
        counters
            .refusing_for_s
            .store(refusal.unwrap_or(0), Ordering::Relaxed);
        counters
            .busy_spells
            .store(self.admission.busy_spells, Ordering::Relaxed);
    }

    /// Keeps `data` as the account's newest, forgetting the oldest beyond
    /// [`RECENT_DATA`].
    fn remember(&mut self, account: i64, data: Vec<u8>, claim: Option<i64>) {
        self.remembered += 1;
        self.recent.insert(account, (self.remembered, data, claim));
        self.recent_order.push_back((account, self.remembered));
        while self.recent.len() > RECENT_DATA {
            let Some((oldest, stamp)) = self.recent_order.pop_front() else {
                break;
            };
            if self
                .recent
                .get(&oldest)
                .is_some_and(|(s, _, _)| *s == stamp)
            {
                self.recent.remove(&oldest);
            }
        }
        // Stale stamps (used or replaced entries) never outnumber the live
        // ones by much.
        if self.recent_order.len() > 2 * RECENT_DATA {
            let recent = &self.recent;
            self.recent_order
                .retain(|(account, stamp)| recent.get(account).is_some_and(|(s, _, _)| s == stamp));
        }
    }

    fn status(&self) -> Vec<GameLineStatus> {
        let tick_hz = u64::from(self.game.tick_hz().max(1));
        let players: HashMap<LineKey, usize> = self.lines.directory().lines().collect();
        self.lines
            .lines()
            .map(|(key, line)| {
                let in_line = players.get(&key).copied().unwrap_or(0);
                let recent = self.recent_ticks.get(&key);
                let mut durations: Vec<u64> = recent.into_iter().flatten().map(|t| t.0).collect();
                durations.sort_unstable();
                let pct = |p: usize| {
                    durations
                        .get((durations.len() * p / 100).min(durations.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0)
                };
                // Bytes sent over the window: the running total's growth.
                let (first, last) = recent
                    .map(|r| (r.front().map_or(0, |t| t.1), r.back().map_or(0, |t| t.1)))
                    .unwrap_or((0, 0));
                let ticks = recent.map_or(0, |r| r.len()).max(2) as u64 - 1;
                GameLineStatus {
                    zone: self.lines.zone_names()[usize::from(key.zone)].clone(),
                    number: key.number,
                    players: in_line,
                    room: self.lines.directory().room(key),
                    npcs: 0,
                    actors: line.actor_count(),
                    tick_p50_us: pct(50),
                    tick_p99_us: pct(99),
                    bytes_out_per_player_s: last.saturating_sub(first) * tick_hz
                        / ticks
                        / in_line.max(1) as u64,
                    stats: line.stats().clone(),
                    tick: line.tick_count(),
                    lease: self
                        .line_leases
                        .as_ref()
                        .and_then(|leases| leases.status(key)),
                }
            })
            .collect()
    }

    /// Closes the sessions of guests (players without an account) named
    /// `name` (compared as account names are); how many.
    async fn kick_guests(&mut self, name: &str, reason: &str) -> usize {
        let key = hearth_world::names::name_key(name);
        let guests: Vec<u64> = self
            .lines
            .players()
            .filter(|player| {
                !self.accounts.contains_key(player)
                    && self
                        .lines
                        .name(*player)
                        .is_some_and(|n| hearth_world::names::name_key(n) == key)
            })
            .collect();
        for &player in &guests {
            let reason = reason.to_owned();
            let _ = self
                .gate
                .run_on(player, move |ctx| {
                    ctx.close(player, close_code::KICKED, &reason)
                })
                .await;
        }
        guests.len()
    }
}
