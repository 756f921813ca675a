//! The administrator's JSON API behind /admin: live figures, and the
//! actions an operator needs (kick, announce, lock an account). Every
//! endpoint requires an access token of an account with the admin role:
//! none or a bad one gets 401, a player's gets 403.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_proto::LinkKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{Account, AccountError, Role};
use crate::web::WebState;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/api/admin/overview", get(overview))
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

/// Why an admin request was refused: a status, a stable code, a sentence.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        (self.status, body).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

/// The caller's account, if its bearer token is an administrator's.
async fn admin(state: &WebState, headers: &HeaderMap) -> Result<Account, Refusal> {
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
    }
}

async fn overview(State(state): State<WebState>, headers: HeaderMap) -> Result<Response, Refusal> {
    admin(&state, &headers).await?;
    let sessions = session_figures(&state).await?;
    let metrics = state.gate.metrics();
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    let world = state.world.status().await;
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
        "logins": state.logins.snapshot(),
        "recording": state.world.recordings.cost(),
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

fn parse<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct KickRequest {
    name: String,
    #[serde(default)]
    reason: String,
}

async fn kick(
    State(state): State<WebState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    let request: KickRequest = parse(&bytes)?;
    let reason = if request.reason.trim().is_empty() {
        "kicked by an administrator".to_owned()
    } else {
        format!("kicked by an administrator: {}", request.reason.trim())
    };
    match state.world.kick(&request.name, &reason).await {
        Ok(()) => {
            tracing::info!(admin = %by.name, player = %request.name, %reason, "player kicked");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(why) => Err(refuse(StatusCode::NOT_FOUND, "not_online", why)),
    }
}

#[derive(Deserialize)]
struct AnnounceRequest {
    text: String,
}

async fn announce(
    State(state): State<WebState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    let request: AnnounceRequest = parse(&bytes)?;
    let text = request.text.trim();
    if text.is_empty() || text.len() > hearth_world::wire::MAX_CHAT {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_text",
            format!(
                "an announcement is 1 to {} bytes",
                hearth_world::wire::MAX_CHAT
            ),
        ));
    }
    tracing::info!(admin = %by.name, text, "announcement");
    state.world.announce(text).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct LockRequest {
    name: String,
    locked: bool,
}

async fn lock(
    State(state): State<WebState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    let request: LockRequest = parse(&bytes)?;
    if request.locked && request.name.eq_ignore_ascii_case(&by.name) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "self_lock",
            "an administrator cannot lock their own account",
        ));
    }
    match state
        .accounts
        .set_disabled(&request.name, request.locked)
        .await
    {
        Ok(id) => {
            tracing::info!(admin = %by.name, account = id, locked = request.locked, "account lock changed");
            if request.locked {
                // Tokens are revoked; the session in play ends too.
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    state.world.kick(
                        &request.name,
                        "this account has been locked by an administrator",
                    ),
                )
                .await;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(AccountError::WrongCredentials) => Err(refuse(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account is named {:?}", request.name),
        )),
        Err(e) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            e.to_string(),
        )),
    }
}

/// The walk over every session, at most once a second whatever the number
/// of dashboards open.
async fn session_figures(state: &WebState) -> Result<serde_json::Value, Refusal> {
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
                if let Some(rtt) = stats.rtt.smoothed {
                    let ms = rtt.as_millis() as u64;
                    let bucket = RTT_BUCKETS_MS
                        .iter()
                        .position(|&b| ms <= b)
                        .unwrap_or(RTT_BUCKETS_MS.len());
                    figures.rtt_histogram[bucket] += 1;
                }
            }
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
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    let request: ImpairRequest = parse(&bytes)?;
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
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    let request: RecordRequest = parse(&bytes)?;
    state
        .world
        .recordings
        .room()
        .map_err(|why| refuse(StatusCode::INSUFFICIENT_STORAGE, "recordings_full", why))?;
    let (what, started) = match (&request.name, &request.zone) {
        (Some(name), None) => (
            name.clone(),
            state.world.record(name, request.seconds).await,
        ),
        (None, Some(zone)) => {
            let line = request.line.unwrap_or(1);
            (
                format!("{zone} line {line}"),
                state.world.record_line(zone, line, request.seconds).await,
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
) -> Result<Response, Refusal> {
    admin(&state, &headers).await?;
    let files = state.world.recordings.list().map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("cannot list the recordings: {e}"),
        )
    })?;
    Ok(Json(json!({ "files": files, "cost": state.world.recordings.cost() })).into_response())
}

async fn recording_file(
    State(state): State<WebState>,
    headers: HeaderMap,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, Refusal> {
    admin(&state, &headers).await?;
    let path = state.world.recordings.path_of(&file).ok_or_else(|| {
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
) -> Result<Response, Refusal> {
    let by = admin(&state, &headers).await?;
    match state.world.recordings.delete(&file) {
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
