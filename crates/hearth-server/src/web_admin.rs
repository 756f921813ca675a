//! The administrator's JSON API behind /admin: live figures, and the
//! actions an operator needs (kick, announce, lock an account). Every
//! endpoint requires an access token of an account with the admin role:
//! none or a bad one gets 401, a player's gets 403 (after the checks every
//! JSON body passes, see `json_body`).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_proto::LinkKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{Account, AccountError, Role};
use crate::api_error::{refuse, ApiError};
use crate::json_body::JsonBody;
use crate::web::WebState;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/admin/overview", get(overview))
        .route("/api/admin/cluster", get(cluster))
        .route("/api/admin/kick", post(kick))
        .route("/api/admin/announce", post(announce))
        .route("/api/admin/lock", post(lock))
        .route("/api/admin/impair", post(impair))
        .route("/api/admin/record", post(record))
        .route("/api/admin/recordings", get(recordings))
        .route(
            "/api/admin/recordings/{file}",
            get(recording_file).delete(delete_recording),
        )
}

/// The caller's account, if its bearer token is an administrator's.
async fn admin(state: &WebState, headers: &HeaderMap) -> Result<Account, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            state.api_errors.add("admin_unauthenticated");
            refuse(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send an administrator's access token as 'Authorization: Bearer TOKEN'",
            )
        })?;
    match state.accounts.verify_access(token).await {
        Ok(account) if account.role == Role::Admin => Ok(account),
        Ok(account) => {
            state.api_errors.add("admin_forbidden");
            tracing::warn!(account = account.id, "a player's token tried the admin API");
            Err(refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this account is not an administrator",
            ))
        }
        Err(AccountError::Storage(e)) => {
            tracing::error!("storage error in the admin API: {e}");
            Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the database is unreachable",
            ))
        }
        Err(e) => {
            state.api_errors.add("admin_unauthenticated");
            Err(refuse(StatusCode::UNAUTHORIZED, e.code(), e.to_string()))
        }
    }
}

/// Upper bounds of the round-trip histogram, in milliseconds.
const RTT_BUCKETS_MS: [u64; 8] = [5, 10, 25, 50, 100, 250, 500, 1000];

/// What the dashboard draws, from one walk over the live sessions.
#[derive(Serialize, Default)]
struct SessionFigures {
    live: usize,
    joined: usize,
    with_udp: usize,
    with_stream: usize,
    detached: usize,
    bytes_in: u64,
    bytes_out: u64,
    /// Counts per bucket of RTT_BUCKETS_MS, and one more for anything slower.
    rtt_histogram: Vec<u64>,
    /// The sessions that cost the gates most (datagrams and stream frames
    /// both ways since they began), heaviest first, at most
    /// [`HEAVIEST_SESSIONS`]: who the load comes from when the server is
    /// busy.
    heaviest: Vec<SessionLoad>,
}

/// Sessions the dashboard names as the heaviest.
const HEAVIEST_SESSIONS: usize = 10;

/// One session's traffic since it began.
#[derive(Serialize, Default, Clone)]
struct SessionLoad {
    /// The session's id in hex (as the logs show it; a JSON number would
    /// lose its low bits in a browser).
    session: String,
    packets_in: u64,
    packets_out: u64,
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    rtt_ms: Option<u64>,
}

impl SessionLoad {
    fn weight(&self) -> u64 {
        self.packets_in + self.packets_out
    }

    /// Keeps the heaviest of `sessions` (then the lowest id, so the list
    /// is the same from one look to the next).
    fn keep_heaviest(sessions: &mut Vec<SessionLoad>) {
        sessions
            .sort_unstable_by(|a, b| b.weight().cmp(&a.weight()).then(a.session.cmp(&b.session)));
        sessions.truncate(HEAVIEST_SESSIONS);
    }
}

impl SessionFigures {
    /// Adds another shard's figures.
    fn add(&mut self, other: &SessionFigures) {
        self.live += other.live;
        self.joined += other.joined;
        self.with_udp += other.with_udp;
        self.with_stream += other.with_stream;
        self.detached += other.detached;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        if self.rtt_histogram.len() < other.rtt_histogram.len() {
            self.rtt_histogram.resize(other.rtt_histogram.len(), 0);
        }
        for (total, count) in self.rtt_histogram.iter_mut().zip(&other.rtt_histogram) {
            *total += count;
        }
        self.heaviest.extend(other.heaviest.iter().cloned());
        SessionLoad::keep_heaviest(&mut self.heaviest);
    }
}

/// The cluster as this node sees it: every live node's record (address,
/// load), or `"cluster": null` for a server that runs alone.
async fn cluster(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    admin(&state, &headers).await?;
    let Some(node) = &state.cluster else {
        return Ok(Json(json!({ "cluster": null })).into_response());
    };
    let nodes = node.presence.members().await.map_err(|e| {
        tracing::warn!("listing the cluster's nodes: {e}");
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unreachable",
            "the cluster's NATS server does not answer: the list of nodes is unknown for now",
        )
    })?;
    Ok(Json(json!({
        "cluster": node.cluster.as_str(),
        "node": node.id,
        "nodes": nodes,
        "records_dropped": node.presence.dropped(),
        "relay": &*node.relay,
        "forward": &*node.forward,
    }))
    .into_response())
}

async fn overview(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, ApiError> {
    admin(&state, &headers).await?;
    let sessions = session_figures(&state).await?;
    let metrics = state.gate.metrics();
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    let host = &state.game;
    let world = json!({
        "game": host.game(),
        "schema_version": host.schema.version(),
        "lines": host.status().await,
    });
    let recording = host.recordings.cost();
    let accounts = state.accounts.count().await.ok();
    Ok(Json(json!({
        "uptime_s": state.started.elapsed().as_secs(),
        "accounts": accounts,
        "sessions": sessions,
        "rtt_buckets_ms": RTT_BUCKETS_MS,
        "transports": {
            "tcp_accepted": load(&metrics.tcp_accepted),
            "websocket_accepted": load(&metrics.ws_accepted),
            "streams_open": load(&metrics.streams_open),
            "udp_datagrams_in": load(&metrics.udp_datagrams_in),
            "udp_datagrams_out": load(&metrics.udp_datagrams_out),
            "udp_forwarded": load(&metrics.udp_forwarded),
            "udp_forward_dropped": load(&metrics.udp_forward_dropped),
        },
        "handler_queue": handler_queue(&metrics.handler_queue),
        "load": {
            "process_cpu_permille": load(&host.counters.cpu_permille),
            "game_step_permille": load(&host.counters.load_permille),
            "budget_permille": load(&host.counters.budget_permille),
            "refusing_newcomers_s": load(&host.counters.refusing_for_s),
        },
        "logins": state.logins.snapshot(),
        "recording": recording,
        "world": world,
    }))
    .into_response())
}

/// The offloaded handlers' queues: their depth now and what became of
/// their events (all zero while the game handler runs inline).
fn handler_queue(queues: &hearth_net::gate::HandlerQueueMetrics) -> serde_json::Value {
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    let (waiting_events, waiting_bytes) = queues.waiting();
    json!({
        "waiting_events": waiting_events,
        "waiting_bytes": waiting_bytes,
        "queued": load(&queues.queued),
        "deferred": load(&queues.deferred),
        "dropped_unreliable": load(&queues.unreliable_dropped),
        "sessions_shed": load(&queues.sessions_shed),
        "shed_events": load(&queues.shed_events),
    })
}

/// What a locked player is told, before the administrator's reason if any.
const LOCKED: &str = "this account has been locked by an administrator";

/// Longest reason an administrator may give for a kick or a lock: after
/// the longest prefix (`LOCKED` and ": ") it still fits whole in the
/// reason a close carries.
const MAX_REASON: usize = 200;
const _: () = assert!(LOCKED.len() + 2 + MAX_REASON <= hearth_proto::frame::MAX_CLOSE_REASON);

/// Text an administrator sends players (`what`: an announcement, a
/// reason), held to the chat's rules: no control characters (terminal
/// escapes), no direction overrides or invisible characters, at most `max`
/// bytes. Returns it trimmed.
fn players_may_read<'a>(
    state: &WebState,
    what: &str,
    text: &'a str,
    max: usize,
) -> Result<&'a str, ApiError> {
    let refused = |message: String| {
        state.api_errors.add("bad_text");
        refuse(StatusCode::BAD_REQUEST, "bad_text", message)
    };
    let text = hearth_world::chat::check_text(text)
        .map_err(|why| refused(format!("the {what} is refused: {why}")))?;
    if text.len() > max {
        return Err(refused(format!(
            "the {what} is {} bytes: at most {max} are allowed",
            text.len()
        )));
    }
    Ok(text)
}

/// `prefix`, with the administrator's reason after it when one is given.
fn with_reason(state: &WebState, prefix: &str, reason: &str) -> Result<String, ApiError> {
    if reason.trim().is_empty() {
        return Ok(prefix.to_owned());
    }
    let reason = players_may_read(state, "reason", reason, MAX_REASON)?;
    Ok(format!("{prefix}: {reason}"))
}

#[derive(Deserialize)]
struct KickRequest {
    name: String,
    #[serde(default)]
    reason: String,
}

/// Ends every session of the named account, in the world or not; a guest
/// (who has no account) is found by name in the world.
async fn kick(
    State(state): State<WebState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<KickRequest>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    let reason = with_reason(&state, "kicked by an administrator", &request.reason)?;
    let account = state
        .accounts
        .id_of(&request.name)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    let sessions = match account {
        Some(id) => state.account_sessions.end_all(id, &reason).await,
        None => state.game.kick_guests(&request.name, &reason).await,
    };
    if sessions == 0 {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "not_online",
            format!("{:?} is not online", request.name),
        ));
    }
    tracing::info!(admin = %by.name, player = %request.name, sessions, %reason, "player kicked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct AnnounceRequest {
    text: String,
}

async fn announce(
    State(state): State<WebState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<AnnounceRequest>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    let text = players_may_read(
        &state,
        "announcement",
        &request.text,
        hearth_world::game::MAX_CHAT,
    )?;
    tracing::info!(admin = %by.name, text, "announcement");
    // Every line's `Game::on_announce`: the game shows it as it likes.
    state.game.announce(text).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct LockRequest {
    name: String,
    locked: bool,
    /// Told to the locked player after `LOCKED`.
    #[serde(default)]
    reason: String,
}

/// Locks (revoking every token, ending every session) or unlocks the
/// named account; never the administrator's own.
async fn lock(
    State(state): State<WebState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<LockRequest>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    let reason = with_reason(&state, LOCKED, &request.reason)?;
    let unknown = || {
        refuse(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account is named {:?}", request.name),
        )
    };
    let id = state
        .accounts
        .id_of(&request.name)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?
        .ok_or_else(unknown)?;
    // The account the lock would reach, not the name asked for: no
    // spelling of a name can make these two differ.
    if request.locked && id == by.id {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "self_lock",
            "an administrator cannot lock their own account",
        ));
    }
    match state.accounts.set_disabled(id, request.locked).await {
        Ok(()) => {}
        Err(AccountError::WrongCredentials) => return Err(unknown()),
        Err(e) => return Err(ApiError::from_account(&state, e)),
    }
    let sessions = if request.locked {
        state.account_sessions.end_all(id, &reason).await
    } else {
        0
    };
    tracing::info!(admin = %by.name, account = id, locked = request.locked, sessions, "account lock changed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The walk over every session, at most once a second whatever the number
/// of dashboards open.
async fn session_figures(state: &WebState) -> Result<serde_json::Value, ApiError> {
    let cached = state.admin_figures.lock().expect("not poisoned").clone();
    if let Some((at, figures)) = cached {
        if at.elapsed() < Duration::from_secs(1) {
            return Ok(figures);
        }
    }
    let each_shard = state
        .gate
        .query_each(|ctx| {
            let mut figures = SessionFigures {
                rtt_histogram: vec![0; RTT_BUCKETS_MS.len() + 1],
                ..Default::default()
            };
            for id in ctx.session_ids() {
                let Some(session) = ctx.session(id) else {
                    continue;
                };
                figures.live += 1;
                figures.joined += usize::from(session.is_joined());
                figures.with_udp += usize::from(session.has_link(LinkKind::Datagram));
                figures.with_stream += usize::from(session.has_link(LinkKind::Stream));
                figures.detached += usize::from(session.is_detached());
                let stats = session.stats();
                figures.bytes_in += stats.bytes_in;
                figures.bytes_out += stats.bytes_out;
                figures.heaviest.push(SessionLoad {
                    session: format!("{id:016x}"),
                    packets_in: stats.packets_in,
                    packets_out: stats.packets_out,
                    messages_in: stats.messages_in,
                    messages_out: stats.messages_out,
                    bytes_in: stats.bytes_in,
                    bytes_out: stats.bytes_out,
                    rtt_ms: stats.rtt.smoothed.map(|rtt| rtt.as_millis() as u64),
                });
                if figures.heaviest.len() >= 4 * HEAVIEST_SESSIONS {
                    SessionLoad::keep_heaviest(&mut figures.heaviest);
                }
                if let Some(rtt) = stats.rtt.smoothed {
                    let ms = rtt.as_millis() as u64;
                    let bucket = RTT_BUCKETS_MS
                        .iter()
                        .position(|&b| ms <= b)
                        .unwrap_or(RTT_BUCKETS_MS.len());
                    figures.rtt_histogram[bucket] += 1;
                }
            }
            SessionLoad::keep_heaviest(&mut figures.heaviest);
            figures
        })
        .await;
    let each_shard = each_shard.map_err(|_| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "gate_stopped",
            "the gate has stopped",
        )
    })?;
    let mut sessions = SessionFigures::default();
    for shard in &each_shard {
        sessions.add(shard);
    }
    let figures = serde_json::to_value(sessions).expect("plain numbers");
    *state.admin_figures.lock().expect("not poisoned") =
        Some((std::time::Instant::now(), figures.clone()));
    Ok(figures)
}

#[derive(Deserialize)]
struct ImpairRequest {
    /// What clients send over UDP, e.g. "loss=5,lag=40" (empty: clean).
    #[serde(default)]
    up: String,
    /// What the server sends over UDP.
    #[serde(default)]
    down: String,
    #[serde(default)]
    seed: u64,
}

/// The network conditioner on the game port's UDP, at run time (both
/// empty: a clean link again). For rehearsals: never leave it on in play.
async fn impair(
    State(state): State<WebState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ImpairRequest>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    let parse_side = |spec: &str| {
        spec.parse::<hearth_net::conditioner::Impairment>()
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, "bad_impairment", e.to_string()))
    };
    let link = hearth_net::conditioner::LinkImpairment {
        up: parse_side(&request.up)?,
        down: parse_side(&request.down)?,
        seed: request.seed,
    };
    let clean = request.up.trim().is_empty() && request.down.trim().is_empty();
    state
        .gate
        .set_impairment((!clean).then_some(link))
        .await
        .map_err(|_| {
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "gate_stopped",
                "the gate has stopped",
            )
        })?;
    tracing::warn!(admin = %by.name, up = %request.up, down = %request.down, "the game port's UDP impairment changed");
    Ok(Json(
        json!({ "up": request.up, "down": request.down, "seed": request.seed, "clean": clean }),
    )
    .into_response())
}

#[derive(Deserialize)]
struct RecordRequest {
    /// A player: what their client receives.
    name: Option<String>,
    /// Or a whole line: `zone` and `line`, as an observer sees it.
    zone: Option<String>,
    line: Option<u32>,
    seconds: u64,
}

/// Records, on the server, what a player receives or a whole line, for a while.
async fn record(
    State(state): State<WebState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RecordRequest>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    state
        .game
        .recordings
        .room()
        .map_err(|why| refuse(StatusCode::INSUFFICIENT_STORAGE, "recordings_full", why))?;
    let (what, started) = match (&request.name, &request.zone) {
        (Some(name), None) => (name.clone(), state.game.record(name, request.seconds).await),
        (None, Some(zone)) => {
            let line = request.line.unwrap_or(1);
            (
                format!("{zone} line {line}"),
                state.game.record_line(zone, line, request.seconds).await,
            )
        }
        _ => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "name a player (name) or a line (zone and line), not both",
            ))
        }
    };
    let file = started.map_err(|why| {
        let status = if why.ends_with("is not online") || why.contains(" has no line ") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::CONFLICT
        };
        refuse(status, "cannot_record", why)
    })?;
    tracing::info!(admin = %by.name, %what, %file, "recording requested");
    Ok((StatusCode::CREATED, Json(json!({ "file": file }))).into_response())
}

async fn recordings(
    State(state): State<WebState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admin(&state, &headers).await?;
    let files = state.game.recordings.list().map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("cannot list the recordings: {e}"),
        )
    })?;
    Ok(Json(json!({ "files": files, "cost": state.game.recordings.cost() })).into_response())
}

async fn recording_file(
    State(state): State<WebState>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers).await?;
    let path = state.game.recordings.path_of(&file).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "no_recording",
            format!("no recording is named {file:?}"),
        )
    })?;
    let body = tokio::fs::read(&path).await.map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("cannot read the recording: {e}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

async fn delete_recording(
    State(state): State<WebState>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let by = admin(&state, &headers).await?;
    match state.game.recordings.delete(&file) {
        Ok(true) => {
            tracing::info!(admin = %by.name, %file, "recording deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Ok(false) => Err(refuse(
            StatusCode::NOT_FOUND,
            "no_recording",
            format!("no recording is named {file:?}"),
        )),
        Err(e) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("cannot delete the recording: {e}"),
        )),
    }
}
