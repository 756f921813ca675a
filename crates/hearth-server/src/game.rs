//! The game side of the gate: the pre-login hook checks credentials against
//! the accounts, asks the game (PreLogin) and loads its data of the player,
//! enforces one session per account when configured, puts joined players
//! into the game's lines and hands the host their game messages (through
//! its bounded queue: this runs in the gate's task and never waits).
//! Messages on other channels are echoed back, a diagnostic service for
//! tools and tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_net::gate::{GateCtx, GateHandle, Handler};
use hearth_proto::address_limit::TokenBucket;
use hearth_proto::control::parse_options;
use hearth_proto::{
    close_code, ChannelKind, ChannelSpec, Credentials, Delivery, Event, LoginRequest,
};

use crate::account_sessions::AccountSessions;
use crate::accounts::{Account, AccountError, Accounts};
use crate::game_backpressure::{HeldMessages, HoldOutcome, Offer};
use crate::game_host::GameHostHandle;
use crate::rate_limit::Action;
use crate::storage::Storage;

/// Who a welcomed session is, kept from login until it joins the world.
struct PendingJoin {
    account: Option<Account>,
    name: String,
    /// The game's saved data of the player (the game API's `Player`).
    game_data: Option<Vec<u8>>,
    /// In a cluster, the epoch of this node's claim on the account.
    claim: Option<i64>,
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
    game: Arc<OnceLock<GameHostHandle>>,
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
    /// Reliable game messages the host had no room for yet, per session
    /// (whose receiving is paused until they are handed on).
    held: HeldMessages,
    /// In a cluster: a login claims its account for this node (after the
    /// node it played on let go of it) before its data is read.
    cluster: Option<crate::cluster_node::ClusterAccounts>,
}

impl GameHandler {
    pub fn new(
        accounts: Accounts,
        storage: Storage,
        gate: Arc<OnceLock<GateHandle>>,
        game: Arc<OnceLock<GameHostHandle>>,
        config: &crate::config::Config,
        logins: Arc<LoginCounters>,
        sessions: AccountSessions,
    ) -> Self {
        Self {
            accounts,
            storage,
            gate,
            game,
            pending: Arc::default(),
            world_rate: HashMap::new(),
            held: HeldMessages::default(),
            in_world: std::collections::HashSet::new(),
            map: config.game.map.clone(),
            allow_anonymous: config.accounts.allow_anonymous,
            single_session: config.accounts.single_session,
            sessions,
            logins,
            cluster: None,
        }
    }

    /// Logins claim their accounts in `cluster` (see [`Self::cluster`]).
    pub fn with_cluster(mut self, cluster: Option<crate::cluster_node::ClusterAccounts>) -> Self {
        self.cluster = cluster;
        self
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
        // `?world=off`: a player in a lobby, a menu or a matchmaking queue,
        // logged in (echo, heartbeats, resume) but not in the world.
        let stays_out = option("world").is_some_and(|v| v.eq_ignore_ascii_case("off"));
        let wanted_schema = option("schema");
        let player_name = request.player_name.clone();
        let game = self.game.clone();
        let cluster = self.cluster.clone();
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
            let host = game.get().cloned();
            // The gate takes logins a moment before the game is set at
            // start: such a login would skip the game's PreLogin and start
            // from no saved data, so it is refused instead.
            let starting = host.is_none();
            // The game decides on the login (PreLogin) and its saved data of
            // the player is found. A database error starts the player
            // afresh rather than refusing the login.
            let mut game_data = None;
            let mut refusal = None;
            let mut claim = None;
            if let (Some(host), Ok(account)) = (&host, &verdict) {
                refusal = game_refusal(
                    host,
                    account.as_ref().map(|a| a.id),
                    &name,
                    &options,
                    wanted_schema.as_deref(),
                );
                // In a cluster, the node the account played on lets go of
                // it (its last save is written) before its data is read
                // here; with several sessions allowed per account, each
                // node keeps its own.
                if let (None, Some(account), Some(cluster), true) =
                    (&refusal, account, &cluster, single_session)
                {
                    match cluster.take(account.id).await {
                        Ok(epoch) => claim = Some(epoch),
                        Err(error) => {
                            tracing::error!(%error, account = account.id, "cannot claim the account for this node");
                            refusal = Some((
                                "cluster_unavailable",
                                "the cluster's database is unreachable: try again in a moment"
                                    .to_owned(),
                            ));
                        }
                    }
                }
                if let (None, Some(account)) = (&refusal, account) {
                    // Unreadable data refuses the login: starting the player
                    // afresh would save the empty start over their real data.
                    game_data = match crate::game_host::saves::load(
                        &storage,
                        account.id,
                        host.game(),
                    )
                    .await
                    {
                        Ok(data) => data,
                        Err(error) => {
                            tracing::error!(%error, account = account.id, "cannot read the player's game data");
                            refusal = Some((
                                "storage_unavailable",
                                "the server cannot read your saved game right now: try again in a moment".to_owned(),
                            ));
                            None
                        }
                    };
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
                        if !ctx.accept_login(session, Some(&map)) {
                            sessions.end(session);
                            return;
                        }
                        logins.add("accepted");
                        if let Some(old) = newest_before.filter(|old| *old != session) {
                            // The game host holds the new session's join
                            // until the old one's last save is written.
                            if single_session {
                                close_replaced(ctx, &replacer, old);
                                logins.add("replaced");
                            }
                        }
                        if stays_out {
                            logins.add("lobby");
                            return;
                        }
                        pending.lock().expect("not poisoned").insert(
                            session,
                            PendingJoin {
                                account,
                                name,
                                game_data,
                                claim,
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

/// What a session ended by a newer login of its account is told.
pub const REPLACED_REASON: &str = "logged in from another place";

/// Ends the session a new login of the same account replaced: here if it
/// is on this shard, else by a command to its own shard.
fn close_replaced(ctx: &mut GateCtx<'_>, gate: &GateHandle, old: u64) {
    const REASON: &str = REPLACED_REASON;
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
        accounts.throttle(Action::Login, address.ip()).await?;
    }
    accounts.authenticate(name, password).await
}

impl GameHandler {
    /// The session finished Join: open the world's channels and enter.
    fn enter_world(&mut self, gate: &mut GateCtx<'_>, session: u64) {
        let Some(pending) = self.pending.lock().expect("not poisoned").remove(&session) else {
            return;
        };
        let Some(host) = self.game.get() else {
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
        host.join(
            session,
            pending.name,
            pending.account.as_ref().map(|a| a.id),
            pending.game_data,
            gate.session(session).and_then(|s| s.net_speed()),
            pending.claim,
        );
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

/// Why paused sessions are closed when the game host is gone.
pub const HOST_GONE: &str = "the game stopped: log in again";

/// Why a session is closed that sent more reliable game messages than it
/// may have held while the game host's queue was full.
pub const HOST_OVERLOADED: &str =
    "server overloaded: the game could not take your messages; log in again";

/// World messages a player may send: a burst, then a steady rate. A client
/// acknowledges at most each frame (20 a second) and moves at most as often;
/// a flood beyond that is dropped here, in the gate, before it can fill the
/// world's queue that every player shares.
#[derive(Clone)]
struct InputBucket(TokenBucket);

const WORLD_INPUT_BURST: u32 = 200;
const WORLD_INPUTS_PER_SECOND: f64 = 100.0;

impl InputBucket {
    fn new(now: Instant) -> Self {
        Self(TokenBucket::full(WORLD_INPUT_BURST, now))
    }

    /// Tokens at hand now.
    fn available(&mut self, now: Instant) -> u32 {
        self.0
            .available(now, WORLD_INPUT_BURST, WORLD_INPUTS_PER_SECOND)
    }

    /// A token taken for a message the host then had no room for.
    fn refund(&mut self) {
        self.0.refund(WORLD_INPUT_BURST);
    }

    fn take(&mut self, now: Instant) -> bool {
        self.0
            .take(now, WORLD_INPUT_BURST, WORLD_INPUTS_PER_SECOND)
            .is_ok()
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

impl GameHandler {
    /// Hands a game message to the host, within the session's rate. A state
    /// message (acknowledgement, moves) past the rate or finding the host's
    /// queue full is dropped, as its channel allows. A reliable one is
    /// held, in order behind any of its session held before, and the
    /// session's receiving paused
    /// until the host has room and the rate allows (see
    /// `game_backpressure`): its sender waits instead of losing it.
    fn hand_on(&mut self, gate: &mut GateCtx<'_>, session: u64, channel: u16, payload: Vec<u8>) {
        let Some(host) = self.game.get() else {
            return;
        };
        let now = gate.now();
        if channel == RELIABLE_CHANNEL && self.held.is_holding(session) {
            self.hold(gate, session, payload);
            return;
        }
        let bucket = self
            .world_rate
            .entry(session)
            .or_insert_with(|| InputBucket::new(now));
        if !bucket.take(now) {
            host.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            if channel == RELIABLE_CHANNEL {
                self.hold(gate, session, payload);
            }
            return;
        }
        if let Err(payload) = host.message(session, channel, payload) {
            bucket.refund();
            if channel == RELIABLE_CHANNEL {
                self.hold(gate, session, payload);
            } else {
                host.counters
                    .messages_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn hold(&mut self, gate: &mut GateCtx<'_>, session: u64, payload: Vec<u8>) {
        let Some(host) = self.game.get() else {
            return;
        };
        match self.held.hold(gate.now(), session, payload) {
            HoldOutcome::Paused => {
                host.counters.messages_held.fetch_add(1, Ordering::Relaxed);
                gate.pause_receive(session);
            }
            HoldOutcome::Queued => {
                host.counters.messages_held.fetch_add(1, Ordering::Relaxed);
            }
            HoldOutcome::Overflow => {
                host.counters.held_overflows.fetch_add(1, Ordering::Relaxed);
                gate.close(session, close_code::OVERLOADED, HOST_OVERLOADED);
            }
        }
    }
}

impl Handler for GameHandler {
    fn wake_at(&self) -> Option<Instant> {
        self.held.retry_at()
    }

    fn on_wake(&mut self, gate: &mut GateCtx<'_>) {
        let Some(host) = self.game.get() else {
            return;
        };
        if host.is_gone() {
            // Nothing will ever take what they hold: say so.
            for session in self.held.take_all() {
                gate.close(session, close_code::OVERLOADED, HOST_GONE);
            }
            return;
        }
        let now = gate.now();
        let world_rate = &mut self.world_rate;
        // Offered first, then resumed (below) as far as the host has room
        // and each session's rate allows.
        let mut resume = Vec::new();
        self.held.retry(
            now,
            |session, payload| {
                let bucket = world_rate
                    .entry(session)
                    .or_insert_with(|| InputBucket::new(now));
                if !bucket.take(now) {
                    return Offer::NotYet(payload);
                }
                match host.message(session, RELIABLE_CHANNEL, payload) {
                    Ok(()) => Offer::Taken,
                    Err(payload) => {
                        bucket.refund();
                        Offer::Full(payload)
                    }
                }
            },
            |session| {
                resume.push(session);
                // Receiving resumes in full only if the session holds no
                // more than what may go now; the handler learns which
                // below, and keeps the rest paused.
                false
            },
        );
        for session in resume {
            let allowed = self
                .world_rate
                .get_mut(&session)
                .map_or(0, |bucket| bucket.available(now) as usize);
            let room = host.room().min(allowed);
            if room > 0 && gate.resume_receive(session, room) {
                self.held.forget(session);
            }
        }
    }

    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(request) => {
                // Newcomers are shed first when the game cannot keep up:
                // refused here, before the password is hashed, so shedding
                // costs next to nothing, and told when to come back.
                match self.game.get().and_then(|host| host.refusal()) {
                    Some(wait) => {
                        self.logins.add("server_busy");
                        let reason = format!("the server is busy: try again in {wait} s");
                        gate.refuse_login(session, &reason);
                    }
                    None => self.check_login(session, request),
                }
            }
            Event::Joined => self.enter_world(gate, session),
            Event::Message { channel, payload }
                if channel == RELIABLE_CHANNEL || channel == STATE_CHANNEL =>
            {
                let Some(host) = self.game.get() else {
                    return;
                };
                // Anything longer than the game's largest message is abuse,
                // refused before it can take room in the host's queue.
                let most = host.max_client_message();
                if payload.len() > most {
                    host.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                    let reason = format!(
                        "a world message of {} bytes is larger than any valid one ({most})",
                        payload.len()
                    );
                    gate.close(session, close_code::PROTOCOL_ERROR, &reason);
                    return;
                }
                self.hand_on(gate, session, channel, payload);
            }
            Event::Message { channel, payload } => {
                let _ = gate.send(session, channel, &payload);
            }
            Event::Closed(_) => {
                self.held.forget(session);
                self.sessions.end(session);
                self.pending.lock().expect("not poisoned").remove(&session);
                self.world_rate.remove(&session);
                if self.in_world.remove(&session) {
                    if let Some(host) = self.game.get() {
                        host.leave(session);
                    }
                }
            }
            _ => {}
        }
    }
}
