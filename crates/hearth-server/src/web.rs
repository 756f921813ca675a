//! The web port: the JSON API, health and metrics, the WebSocket gate and
//! the static pages (the built-in world's, or a game's own [`GamePage`]).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api_error::ApiError;
use crate::json_body::JsonBody;
use crate::rate_limit::Action;
pub use crate::web_state::WebState;

/// The subprotocol Hearth's WebSocket clients offer.
pub const WS_PROTOCOL: &str = "hearth.v1";

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", any(websocket))
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/refresh", post(refresh))
        .route("/api/logout", post(logout))
        .route("/api/password", post(change_password))
        .route("/api/delete", post(delete_account))
        .route("/api/world", get(world_status))
        .route("/api/schema", get(schema))
        .route("/admin", get(admin_page))
        .route("/replay", get(replay_page))
        .route("/assets/{file}", get(asset))
        .route(GAME_PAGE_SCRIPT, get(game_page_script))
        .route(GAME_PAGE_STYLE, get(game_page_style))
        .merge(crate::web_admin::routes())
        .with_state(state)
}

#[derive(Deserialize)]
struct NamePassword {
    name: String,
    password: String,
}

/// Charges `action` to the caller's address before any work is done.
async fn throttle(state: &WebState, action: Action, peer: SocketAddr) -> Result<(), ApiError> {
    state
        .accounts
        .throttle(action, peer.ip())
        .await
        .map_err(|e| ApiError::from_account(state, e))
}

async fn register(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(request): JsonBody<NamePassword>,
) -> Result<Response, ApiError> {
    throttle(&state, Action::Register, peer).await?;
    let account = state
        .accounts
        .register(&request.name, &request.password)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    tracing::info!(account = account.id, name = %account.name, "account registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "account_id": account.id, "name": account.name })),
    )
        .into_response())
}

async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(request): JsonBody<NamePassword>,
) -> Result<Response, ApiError> {
    throttle(&state, Action::Login, peer).await?;
    let pair = state
        .accounts
        .login(&request.name, &request.password)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    Ok(Json(pair).into_response())
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<WebState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Response, ApiError> {
    let pair = state
        .accounts
        .refresh(&request.refresh_token)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    Ok(Json(pair).into_response())
}

#[derive(Deserialize)]
struct LogoutRequest {
    token: String,
}

async fn logout(
    State(state): State<WebState>,
    JsonBody(request): JsonBody<LogoutRequest>,
) -> Result<Response, ApiError> {
    state
        .accounts
        .revoke(&request.token)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct PasswordChange {
    name: String,
    old_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(request): JsonBody<PasswordChange>,
) -> Result<Response, ApiError> {
    // It checks the old password: a guess like any login.
    throttle(&state, Action::Login, peer).await?;
    state
        .accounts
        .change_password(&request.name, &request.old_password, &request.new_password)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The owner deletes their account (name and password), then every
/// session of it ends (a last save of its player finds no account and is
/// dropped).
async fn delete_account(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(request): JsonBody<NamePassword>,
) -> Result<Response, ApiError> {
    throttle(&state, Action::Login, peer).await?;
    let account = state
        .accounts
        .delete(&request.name, &request.password)
        .await
        .map_err(|e| ApiError::from_account(&state, e))?;
    state
        .account_sessions
        .end_all(account.id, "this account was deleted")
        .await;
    tracing::info!(account = account.id, name = %account.name, "account deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn healthz(State(state): State<WebState>) -> Response {
    // Without the gate no game can be played: say so, so a supervisor or load
    // balancer takes the process out instead of trusting the web port alone.
    if let Some(end) = state.gate.end() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{end}\n")).into_response();
    }
    if state.storage.healthy().await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response()
    }
}

/// Zones and lines with their occupancy and tick statistics: what a server
/// browser or a status page shows (nothing about who is playing).
async fn world_status(State(state): State<WebState>) -> Response {
    let host = &state.game;
    let status = host.status().await.map(|lines| {
        Json(serde_json::json!({ "game": host.game(), "lines": lines })).into_response()
    });
    status.unwrap_or_else(|| {
        (StatusCode::SERVICE_UNAVAILABLE, "the world has stopped\n").into_response()
    })
}

/// The game's schema (kinds of actor, properties, messages, version), for
/// clients and `hearth codegen --url`.
async fn schema(State(state): State<WebState>) -> Response {
    Json(state.game.schema.as_ref()).into_response()
}

async fn metrics(State(state): State<WebState>) -> Response {
    let text = crate::metrics::render(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn websocket(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let limits = hearth_net::ws::Limits {
        max_message: state.max_ws_message,
    };
    let deflate = hearth_net::ws::DeflateConfig {
        enabled: state.ws_deflate,
        ..Default::default()
    };
    match hearth_net::ws::upgrade_with_deflate(&mut request, &[WS_PROTOCOL], limits, deflate) {
        Ok(pending) => {
            let response = pending.response.clone().map(|()| Body::empty());
            let gate = state.gate.clone();
            tokio::spawn(async move {
                match pending.socket().await {
                    Ok(socket) => gate.accept_websocket(socket, peer),
                    Err(e) => tracing::debug!(%peer, "WebSocket upgrade did not complete: {e}"),
                }
            });
            response
        }
        Err(refused) => {
            state.api_errors.add("websocket_refused");
            refused.response().map(Body::from)
        }
    }
}

// The browser side, built by web/build.mjs and committed: a server needs no
// Node to serve it (the test suite checks web/dist matches its sources).
const ADMIN: &str = include_str!("../../../web/pages/admin.html");
const REPLAY: &str = include_str!("../../../web/pages/replay.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/dist/admin.js"),
    ),
    (
        "replay.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/dist/replay.js"),
    ),
    (
        "hearth-client.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/dist/hearth-client.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/pages/style.css"),
    ),
];
/// Where a game's page finds its script.
pub const GAME_PAGE_SCRIPT: &str = "/game-page.js";
/// Where a game's page finds its stylesheet, when it has one.
pub const GAME_PAGE_STYLE: &str = "/game-page.css";

/// A game's own browser page, which a game server serves at `/` in place
/// of the built-in world's page ([`crate::start_game_with_page`]).
///
/// The page is static: its HTML at `/`, its script (one bundle, e.g. built
/// with esbuild from TypeScript over the game's generated bindings) at
/// [`GAME_PAGE_SCRIPT`], and optionally a stylesheet at [`GAME_PAGE_STYLE`];
/// embed them in the binary with `include_str!`, so the server needs no
/// files at run time. The HTML loads them with
/// `<script src="/game-page.js"></script>` and
/// `<link rel="stylesheet" href="/game-page.css">`; the built-in pages'
/// stylesheet stays at `/assets/style.css` and the client library at
/// `/assets/hearth-client.js`, for a page that wants them.
///
/// The page gets the headers the built-in pages get: a Content-Security-Policy
/// that allows only this server's own scripts and styles (no inline script or
/// style attribute, no other origin) and connections to this server's API and
/// WebSocket, no framing, no sniffing, no referrer. Put text from the server
/// into the page with `textContent`, never as HTML. A `<!--plaintext-warning-->`
/// comment in the HTML becomes the same warning the built-in page shows when
/// the server is reachable beyond loopback without TLS.
///
/// ```
/// const PAGE: hearth_server::GamePage = hearth_server::GamePage::new(
///     "<!doctype html><title>My game</title><script src=\"/game-page.js\"></script>",
///     "document.title = 'ready';",
/// )
/// .with_style("body { margin: 0; }");
/// # let _ = PAGE;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GamePage {
    html: &'static str,
    script: &'static str,
    style: Option<&'static str>,
}

impl GamePage {
    /// The page's HTML (served at `/`) and its script (at [`GAME_PAGE_SCRIPT`]).
    pub const fn new(html: &'static str, script: &'static str) -> Self {
        Self {
            html,
            script,
            style: None,
        }
    }

    /// Adds a stylesheet, served at [`GAME_PAGE_STYLE`].
    pub const fn with_style(mut self, css: &'static str) -> Self {
        self.style = Some(css);
        self
    }

    /// The HTML served at `/`.
    pub fn html(&self) -> &'static str {
        self.html
    }

    /// The script served at [`GAME_PAGE_SCRIPT`].
    pub fn script(&self) -> &'static str {
        self.script
    }

    /// The stylesheet served at [`GAME_PAGE_STYLE`], if any.
    pub fn style(&self) -> Option<&'static str> {
        self.style
    }
}

/// The built-in world's page, a game page like any other.
pub const WORLD_PAGE: GamePage = GamePage::new(
    include_str!("../../../web/pages/world.html"),
    include_str!("../../../web/dist/world.js"),
)
.with_style(include_str!("../../../web/pages/world.css"));

const PLAINTEXT_MARK: &str = "<!--plaintext-warning-->";
const PLAINTEXT_WARNING: &str = "<p class=\"warning\"><strong>Warning: this server is reachable \
from the network without TLS.</strong> Passwords sent to its web API cross the network \
unprotected. The operator should configure a certificate (<code>--tls-cert</code> and \
<code>--tls-key</code>) or serve through a TLS proxy.</p>";

/// The game's own page on a server that has one, else the built-in world's.
async fn index(State(state): State<WebState>) -> Response {
    match state.game_page {
        Some(page) => page_response(with_warning(&state, page.html)),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "this server runs the game {} without a page of its own: play it with its client\n",
                state.game.game()
            ),
        )
            .into_response(),
    }
}

async fn game_page_script(State(state): State<WebState>) -> Response {
    match state.game_page {
        Some(page) => static_response("text/javascript; charset=utf-8", page.script),
        None => (StatusCode::NOT_FOUND, "this server has no game page\n").into_response(),
    }
}

async fn game_page_style(State(state): State<WebState>) -> Response {
    match state.game_page.and_then(|page| page.style) {
        Some(css) => static_response("text/css; charset=utf-8", css),
        None => (
            StatusCode::NOT_FOUND,
            "this server's page has no stylesheet\n",
        )
            .into_response(),
    }
}

async fn admin_page(State(state): State<WebState>) -> Response {
    page_response(with_warning(&state, ADMIN))
}

async fn replay_page(State(state): State<WebState>) -> Response {
    page_response(with_warning(&state, REPLAY))
}

/// A page, with the plaintext warning when served beyond loopback without TLS.
fn with_warning(state: &WebState, page: &str) -> String {
    if state.plaintext_public {
        page.replace(PLAINTEXT_MARK, PLAINTEXT_WARNING)
    } else {
        page.to_owned()
    }
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => static_response(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// A script or stylesheet of a page: revalidated on every load (a new
/// server version brings its own) and never sniffed as another type.
fn static_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The pages load only their own scripts and styles and talk only to this
/// server (API and WebSocket), cannot be framed, and are never sniffed as
/// another type: a chat line or a player name can never become code.
fn page_response(page: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
        .into_response()
}
