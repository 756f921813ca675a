//! The game side of the gate: the pre-login hook checks credentials against
//! the accounts and loads the player's saved place, enforces one session per
//! account when configured, puts joined players into the world and hands it
//! their world messages (through its bounded queue: this runs in the gate's
//! task and never waits). Messages on other channels are echoed back, a
//! diagnostic service for tools and tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hearth_net::gate::{GateCtx, GateHandle, Handler};
use hearth_proto::control::parse_options;
use hearth_proto::{
    close_code, ChannelKind, ChannelSpec, Credentials, Delivery, Event, LoginRequest,
};
use hearth_world::directory::NEW_PLAYER_VALUES;
use hearth_world::wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_world::{Arrival, Join};

use crate::account_sessions::AccountSessions;
use crate::accounts::{Account, AccountError, Accounts};
use crate::game_host::GameHostHandle;
use crate::rate_limit::Action;
use crate::storage::Storage;
use crate::world::saves::{self, Restored};
use crate::world::WorldHandle;

/// What players join: the built-in world, or a game on the game API
/// (`hearth_server::start_game`).
#[derive(Clone)]
pub enum Realm {
    Builtin(WorldHandle),
    Game(GameHostHandle),
}

impl Realm {
    /// Server-side recordings of what players and observers of lines receive.
    pub fn recordings(&self) -> &Arc<crate::recordings::Recordings> {
        match self {
            Realm::Builtin(world) => &world.recordings,
            Realm::Game(host) => &host.recordings,
        }
    }

    /// Records what the player named `name` receives for `seconds`.
    pub async fn record(&self, name: &str, seconds: u64) -> Result<String, String> {
        match self {
            Realm::Builtin(world) => world.record(name, seconds).await,
            Realm::Game(host) => host.record(name, seconds).await,
        }
    }

    /// Records line `line` of zone `zone` as an observer sees it.
    pub async fn record_line(&self, zone: &str, line: u32, seconds: u64) -> Result<String, String> {
        match self {
            Realm::Builtin(world) => world.record_line(zone, line, seconds).await,
            Realm::Game(host) => host.record_line(zone, line, seconds).await,
        }
    }

    /// A joined player's message on a world channel.
    fn message(&self, player: u64, channel: u16, bytes: Vec<u8>) {
        match self {
            Realm::Builtin(world) => {
                world.message(player, channel, bytes);
            }
            Realm::Game(host) => {
                host.message(player, channel, bytes);
            }
        }
    }

    fn leave(&self, player: u64) {
        match self {
            Realm::Builtin(world) => world.leave(player),
            Realm::Game(host) => host.leave(player),
        }
    }

    /// The largest message a client has reason to send on a world channel.
    fn max_message(&self) -> usize {
        match self {
            Realm::Builtin(_) => MAX_WORLD_MESSAGE,
            Realm::Game(host) => host.max_client_message(),
        }
    }

    fn count_malformed(&self) {
        let counter = match self {
            Realm::Builtin(world) => &world.counters.malformed,
            Realm::Game(host) => &host.counters.undecodable,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_over_rate(&self) {
        let counter = match self {
            Realm::Builtin(world) => &world.counters.inputs_over_rate,
            Realm::Game(host) => &host.counters.rate_limited,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Who a welcomed session is, kept from login until it joins the world.
struct PendingJoin {
    account: Option<Account>,
    name: String,
    restored: Option<Restored>,
    /// A game's saved data of the player (the game API's `Player`).
    game_data: Option<Vec<u8>>,
    zone: Option<String>,
    line: Option<u32>,
    /// The session of the same account this login replaced.
    after: Option<u64>,
}

/// Login outcomes by reason, for /metrics.
#[derive(Default)]
pub struct LoginCounters {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl LoginCounters {
    pub fn add(&self, outcome: &'static str) {
        *self
            .counts
            .lock()
            .expect("not poisoned")
            .entry(outcome)
            .or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().expect("not poisoned").clone()
    }
}

/// One clone per gate shard: the per-session maps hold that shard's
/// sessions; what spans sessions of different shards is behind an `Arc`.
#[derive(Clone)]
pub struct GameHandler {
    accounts: Accounts,
    storage: Storage,
    gate: Arc<OnceLock<GateHandle>>,
    world: Arc<OnceLock<Realm>>,
    /// Welcomed sessions not yet joined (bounded by the gate's session cap).
    pending: Arc<Mutex<HashMap<u64, PendingJoin>>>,
    /// World messages each joined session may still send (one entry per
    /// session, removed on close).
    world_rate: HashMap<u64, InputBucket>,
    /// Sessions that entered the world: only their ends are told to it, so
    /// the world's (unbounded, session-sized) lifecycle queue never carries
    /// the closes of handshakes and failed logins.
    in_world: std::collections::HashSet<u64>,
    map: String,
    allow_anonymous: bool,
    single_session: bool,
    /// Every logged-in session by account, shared with the other shards
    /// and with administration (which ends an account's sessions by id).
    sessions: AccountSessions,
    logins: Arc<LoginCounters>,
}

impl GameHandler {
    pub fn new(
        accounts: Accounts,
        storage: Storage,
        gate: Arc<OnceLock<GateHandle>>,
        world: Arc<OnceLock<Realm>>,
        config: &crate::config::Config,
        logins: Arc<LoginCounters>,
        sessions: AccountSessions,
    ) -> Self {
        Self {
            accounts,
            storage,
            gate,
            world,
            pending: Arc::default(),
            world_rate: HashMap::new(),
            in_world: std::collections::HashSet::new(),
            map: config.game.map.clone(),
            allow_anonymous: config.accounts.allow_anonymous,
            single_session: config.accounts.single_session,
            sessions,
            logins,
        }
    }

    fn check_login(&self, session: u64, request: LoginRequest) {
        let Some(gate) = self.gate.get().cloned() else {
            return;
        };
        let accounts = self.accounts.clone();
        let allow_anonymous = self.allow_anonymous;
        let single_session = self.single_session;
        let sessions = self.sessions.clone();
        let logins = self.logins.clone();
        let map = self.map.clone();
        let storage = self.storage.clone();
        let pending = self.pending.clone();
        let options = parse_options(&request.options);
        let option = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let wanted_zone = option("zone");
        let wanted_line = option("line").and_then(|v| v.parse::<u32>().ok());
        // `?world=off`: a player in a lobby, a menu or a matchmaking queue,
        // logged in (echo, heartbeats, resume) but not in the world.
        let stays_out = option("world").is_some_and(|v| v.eq_ignore_ascii_case("off"));
        let wanted_schema = option("schema");
        let player_name = request.player_name.clone();
        let world = self.world.clone();
        // Password hashing and the database are slow; the gate task goes on
        // serving everyone else while this runs.
        tokio::spawn(async move {
            // Before the check: an end of the account's sessions from now
            // on may not have been seen by it (see AccountSessions).
            let checked_from = Instant::now();
            let verdict: Result<Option<Account>, AccountError> = match request.credentials {
                Credentials::Password { account, password } => {
                    password_login(&accounts, request.address, &account, &password)
                        .await
                        .map(Some)
                }
                Credentials::Token(token) => accounts.verify_access(&token).await.map(Some),
                Credentials::Anonymous => Ok(None),
            };
            let name = match &verdict {
                Ok(Some(account)) => account.name.clone(),
                _ => guest_name(&player_name, session),
            };
            let port = world.get().cloned();
            // The gate takes logins a moment before the realm is set at
            // start: such a login would skip the game's PreLogin and start
            // from no saved data, so it is refused instead.
            let starting = port.is_none();
            // A game decides on the login (PreLogin) and finds its saved
            // data; the built-in world finds the saved place. A database
            // error starts the player afresh rather than refusing the login.
            let mut game_data = None;
            let mut restored = None;
            let mut refusal = None;
            match (&port, &verdict) {
                (Some(Realm::Game(host)), Ok(account)) => {
                    refusal = game_refusal(
                        host,
                        account.as_ref().map(|a| a.id),
                        &name,
                        &options,
                        wanted_schema.as_deref(),
                    );
                    if let (None, Some(account)) = (&refusal, account) {
                        game_data = crate::game_host::saves::load(&storage, account.id, host.game())
                            .await
                            .unwrap_or_else(|error| {
                                tracing::error!(%error, account = account.id, "cannot read the player's game data");
                                None
                            });
                        if game_data.is_none() && host.reads_world_places {
                            game_data = crate::game_host::world_places::load(&storage, account.id)
                                .await
                                .unwrap_or_else(|error| {
                                    tracing::error!(%error, account = account.id, "cannot read the player's saved place");
                                    None
                                });
                        }
                    }
                }
                (Some(Realm::Builtin(_)), Ok(Some(account))) => {
                    restored = saves::load(&storage, account.id).await.unwrap_or_else(|error| {
                        tracing::error!(%error, account = account.id, "cannot read the player's saved place");
                        None
                    });
                }
                _ => {}
            }
            let replacer = gate.clone();
            let _ = gate
                .run_on(session, move |ctx: &mut GateCtx<'_>| match verdict {
                    Ok(None) if !allow_anonymous => {
                        logins.add("anonymous_refused");
                        ctx.refuse_login(session, "this server requires an account: log in with a name and password or a token");
                    }
                    Ok(_) if starting => {
                        logins.add("server_starting");
                        ctx.refuse_login(session, "the server is starting: try again in a moment");
                    }
                    Ok(_) if refusal.is_some() => {
                        let (outcome, reason) = refusal.expect("checked");
                        logins.add(outcome);
                        ctx.refuse_login(session, &reason);
                    }
                    Ok(account) => {
                        let zone = wanted_zone.or_else(|| restored.as_ref().map(|r| r.zone.clone()));
                        // The saved position belongs to the saved zone: asking
                        // for another zone starts at one of its spawn points
                        // (else a position could be carried into a walled-off
                        // room of another map).
                        let restored = restored.map(|mut r| {
                            if zone.as_deref() != Some(r.zone.as_str()) {
                                r.pos_valid = false;
                            }
                            r
                        });
                        let welcome_map = zone.clone().unwrap_or(map);
                        // Bound before it is accepted: from here on an end
                        // of the account's sessions finds this one too.
                        let newest_before = match &account {
                            Some(account) => match sessions.bind(ctx.now(), account.id, session, checked_from) {
                                Ok(newest) => newest,
                                Err(barred) => {
                                    logins.add("ended_while_deciding");
                                    ctx.refuse_login(session, barred.reason());
                                    return;
                                }
                            },
                            None => None,
                        };
                        if !ctx.accept_login(session, Some(&welcome_map)) {
                            sessions.end(session);
                            return;
                        }
                        logins.add("accepted");
                        let mut after = None;
                        if let Some(old) = newest_before.filter(|old| *old != session) {
                            if single_session {
                                close_replaced(ctx, &replacer, old);
                                logins.add("replaced");
                                after = Some(old);
                            }
                        }
                        if stays_out {
                            logins.add("lobby");
                            return;
                        }
                        pending.lock().expect("not poisoned").insert(
                            session,
                            PendingJoin {
                                line: wanted_line.or(restored.as_ref().map(|r| r.line)),
                                account,
                                name,
                                restored,
                                game_data,
                                zone,
                                after,
                            },
                        );
                    }
                    Err(error) => {
                        logins.add(error.code());
                        ctx.refuse_login(session, &error.to_string());
                    }
                })
                .await;
        });
    }
}

/// Ends the session a new login of the same account replaced: here if it
/// is on this shard, else by a command to its own shard.
fn close_replaced(ctx: &mut GateCtx<'_>, gate: &GateHandle, old: u64) {
    const REASON: &str = "logged in from another place";
    if gate.shard_of(old) == ctx.shard() {
        ctx.close(old, close_code::REPLACED, REASON);
    } else {
        let gate = gate.clone();
        tokio::spawn(async move {
            let _ = gate
                .run_on(old, move |ctx| ctx.close(old, close_code::REPLACED, REASON))
                .await;
        });
    }
}

/// Charges the login to its address when the link reports one (links that
/// do not are limited by the gate's per-address connection limits alone),
/// then checks the password.
async fn password_login(
    accounts: &Accounts,
    address: Option<SocketAddr>,
    name: &str,
    password: &str,
) -> Result<Account, AccountError> {
    if let Some(address) = address {
        accounts.throttle(Action::Login, address.ip())?;
    }
    accounts.authenticate(name, password).await
}

impl GameHandler {
    /// The session finished Join: open the world's channels and enter.
    fn enter_world(&mut self, gate: &mut GateCtx<'_>, session: u64) {
        let Some(pending) = self.pending.lock().expect("not poisoned").remove(&session) else {
            return;
        };
        let Some(port) = self.world.get() else {
            return;
        };
        let reliable = ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered);
        let state = ChannelSpec::new(ChannelKind::Game, Delivery::UnreliableSequenced);
        if gate
            .open_channel(session, RELIABLE_CHANNEL, reliable)
            .is_err()
            || gate.open_channel(session, STATE_CHANNEL, state).is_err()
        {
            return;
        }
        self.in_world.insert(session);
        let world = match port {
            Realm::Game(host) => {
                host.join(
                    session,
                    pending.name.clone(),
                    pending.account.as_ref().map(|a| a.id),
                    pending.game_data,
                    gate.session(session).and_then(|s| s.net_speed()),
                );
                return;
            }
            Realm::Builtin(world) => world,
        };
        let bytes_per_second = gate
            .session(session)
            .and_then(|s| s.net_speed())
            .unwrap_or(hearth_world::line::MIN_BUDGET as u32 * 20);
        let restored = pending.restored;
        world.join(Join {
            arrival: Arrival {
                player: session,
                account: pending.account.as_ref().map(|a| a.id),
                name: pending.name,
                at: restored.as_ref().filter(|r| r.pos_valid).map(|r| r.pos),
                appearance: restored
                    .as_ref()
                    .map_or((session % 8) as u32, |r| r.appearance),
                values: restored.as_ref().map_or(NEW_PLAYER_VALUES, |r| r.values),
                bytes_per_second,
                epoch: 1,
                allowances: hearth_world::Allowances::default(),
            },
            zone: pending
                .zone
                .filter(|zone| world.zone_names().contains(zone)),
            line: pending.line,
            after: pending.after,
        });
    }
}

/// A game's refusal of a login, as (the outcome counted, the reason shown):
/// a client built for another schema (when it says which, with
/// `?schema=VERSION`), or the game's own PreLogin decision.
fn game_refusal(
    host: &GameHostHandle,
    account: Option<i64>,
    name: &str,
    options: &[(String, String)],
    wanted_schema: Option<&str>,
) -> Option<(&'static str, String)> {
    if wanted_schema.is_some_and(|v| v != host.schema.version()) {
        return Some((
            "schema_mismatch",
            format!(
                "this server runs {} with schema version {}, your client was built for another: update the client or regenerate its bindings (hearth codegen)",
                host.game(),
                host.schema.version(),
            ),
        ));
    }
    match host.pre_login(&hearth_game::LoginInfo {
        account,
        name,
        options,
    }) {
        hearth_game::PreLogin::Accept => None,
        hearth_game::PreLogin::Refuse(reason) => Some(("refused_by_game", reason)),
    }
}

/// World messages a player may send: a burst, then a steady rate. A client
/// acknowledges at most each frame (20 a second) and moves at most as often;
/// a flood beyond that is dropped here, in the gate, before it can fill the
/// world's queue that every player shares.
#[derive(Clone)]
struct InputBucket {
    tokens: u32,
    last: Instant,
}

const WORLD_INPUT_BURST: u32 = 200;
const WORLD_INPUTS_PER_SECOND: u64 = 100;

impl InputBucket {
    fn new(now: Instant) -> Self {
        Self {
            tokens: WORLD_INPUT_BURST,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.last).as_micros() as u64
            * WORLD_INPUTS_PER_SECOND
            / 1_000_000;
        if earned > 0 {
            self.tokens =
                (u64::from(self.tokens) + earned).min(u64::from(WORLD_INPUT_BURST)) as u32;
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// A guest's name: `guest-` (a prefix accounts cannot take), the chosen
/// name reduced to ASCII letters, digits, - and _, and the session's number,
/// so two guests never share a name (nor pose as each other or an account).
fn guest_name(chosen: &str, session: u64) -> String {
    let chosen: String = chosen
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(12)
        .collect();
    let number = format!("{:08x}", session as u32);
    if chosen.is_empty() {
        format!("guest-{number}")
    } else {
        format!("guest-{chosen}-{number}")
    }
}

/// Largest world message a client has reason to send (a chat command is at
/// most 294 bytes, a state message 127): anything longer is abuse, refused
/// before it can take room in the world's queue.
const MAX_WORLD_MESSAGE: usize = 512;

impl Handler for GameHandler {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(request) => self.check_login(session, request),
            Event::Joined => self.enter_world(gate, session),
            Event::Message { channel, payload }
                if channel == RELIABLE_CHANNEL || channel == STATE_CHANNEL =>
            {
                let Some(world) = self.world.get() else {
                    return;
                };
                let most = world.max_message();
                if payload.len() > most {
                    world.count_malformed();
                    let reason = format!(
                        "a world message of {} bytes is larger than any valid one ({most})",
                        payload.len()
                    );
                    gate.close(session, close_code::PROTOCOL_ERROR, &reason);
                    return;
                }
                let now = gate.now();
                let bucket = self
                    .world_rate
                    .entry(session)
                    .or_insert_with(|| InputBucket::new(now));
                if bucket.take(now) {
                    world.message(session, channel, payload);
                } else {
                    world.count_over_rate();
                }
            }
            Event::Message { channel, payload } => {
                let _ = gate.send(session, channel, &payload);
            }
            Event::Closed(_) => {
                self.sessions.end(session);
                self.pending.lock().expect("not poisoned").remove(&session);
                self.world_rate.remove(&session);
                if self.in_world.remove(&session) {
                    if let Some(world) = self.world.get() {
                        world.leave(session);
                    }
                }
            }
            _ => {}
        }
    }
}
