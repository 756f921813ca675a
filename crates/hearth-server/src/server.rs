//! `hearth serve`: storage, secrets, the gates on the game port, the web port,
//! supervision of the gate task, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hearth_net::gate::{self, GateConfig, GateEnd, GateHandle};
use hearth_net::tls::ServerTls;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::account_sessions::AccountSessions;
use crate::accounts::Accounts;
use crate::cluster_node::{ClusterLink, ClusterNode};
use crate::config::{Config, TlsConfig};
use crate::game::{GameHandler, LoginCounters};
use crate::game_host::GameHostHandle;
use crate::listener::{self, WebPort, WebPortMetrics};
use crate::storage::{Storage, StorageError};
use crate::web::{self, GamePage, WebState};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretError),
    #[error("cannot listen on the game port {addr}: {source} (is another server running? pick another with --port)")]
    GamePort {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on the web port {addr}: {source} (is another server running? pick another with --web-port)")]
    WebPort {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS is half configured: give both a certificate and a key ([tls] cert and key in hearth.toml, HEARTH_TLS_CERT and HEARTH_TLS_KEY, or --tls-cert and --tls-key), or neither")]
    TlsHalfConfigured,
    #[error("cannot read the TLS {what} {path}: {source} (check [tls] {what} in hearth.toml or --tls-{what})")]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use the TLS certificate and key: {0}")]
    Tls(#[from] hearth_net::tls::TlsError),
    #[error(transparent)]
    World(#[from] crate::world::WorldStartError),
    #[error("the zones do not make the built-in game: {0} (check [world] zones in hearth.toml)")]
    WorldGame(hearth_world::game::WorldGameError),
    #[error("[game] impair_up or impair_down: {0}")]
    Impair(#[from] hearth_net::conditioner::ParseImpairmentError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster_node::ClusterStartError),
}

/// Why a server stopped without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("a gate shard panicked: {0} (the server has stopped; this is a bug in Hearth or in the game's handler: please report it with the log above)")]
    GatePanicked(String),
    #[error("the gate stopped on its own; the server has stopped")]
    GateStopped,
}

/// A started server.
pub struct Running {
    pub game_tcp: SocketAddr,
    pub game_udp: Option<SocketAddr>,
    pub web: SocketAddr,
    /// The web port speaks TLS (https://, wss://).
    pub tls: bool,
    /// Listening beyond loopback without TLS: passwords cross the network in
    /// the clear. Warned about on the console and the page.
    pub plaintext_public: bool,
    pub public_key: [u8; 32],
    pub gate: GateHandle,
    /// What players join: the game's lines (the built-in world's, or a
    /// studio's game's).
    pub game: GameHostHandle,
    pub storage: Storage,
    pub accounts: Accounts,
    pub web_metrics: Arc<WebPortMetrics>,
    /// This server's part in its cluster, when it is a node of one.
    pub cluster: Option<Arc<ClusterNode>>,
    web_stop: CancellationToken,
    web_task: JoinHandle<()>,
}

fn load_tls(config: &TlsConfig) -> Result<Option<ServerTls>, StartError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| StartError::TlsFile {
            what,
            path: path.to_owned(),
            source,
        })
    };
    match (&config.cert, &config.key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(ServerTls::from_pem(
            &read("cert", cert)?,
            &read("key", key)?,
        )?)),
        _ => Err(StartError::TlsHalfConfigured),
    }
}

/// The conditioner the config asks for on the game port, if any.
fn impairment(
    game: &crate::config::GameConfig,
) -> Result<Option<hearth_net::conditioner::LinkImpairment>, StartError> {
    if game.impair_up.is_none() && game.impair_down.is_none() {
        return Ok(None);
    }
    let parse = |spec: &Option<String>| spec.as_deref().unwrap_or("").parse();
    let link = hearth_net::conditioner::LinkImpairment {
        up: parse(&game.impair_up)?,
        down: parse(&game.impair_down)?,
        seed: game.impair_seed,
    };
    tracing::warn!(
        ?link,
        "the game port's UDP is impaired on purpose (network conditioner)"
    );
    Ok(Some(link))
}

/// Starts the server with the built-in world.
pub async fn start(config: Config) -> Result<Running, StartError> {
    start_with(config, crate::world::Hooks::default()).await
}

/// Starts with the built-in world (a game on the game API,
/// `hearth_world::WorldGame`, with its page at `/`) and its hooks (a chat
/// filter, ...).
pub async fn start_with(config: Config, hooks: crate::world::Hooks) -> Result<Running, StartError> {
    let zones = crate::world::load_zones(config.world.zones.as_deref())?;
    let mut game = hearth_world::WorldGame::new(zones).map_err(StartError::WorldGame)?;
    if let Some(chat) = hooks.chat {
        game = game.with_chat_hook(chat);
    }
    let starter = GameStarter {
        reads_world_places: true,
        ..GameStarter::new(game)
    };
    serve(config, Box::new(starter), Some(web::WORLD_PAGE)).await
}

/// Starts the server with `game`, a game on the game API, in place of the
/// built-in world: accounts, the gate on every transport, the web API and
/// pages as always; players who join enter the game's lines.
///
/// ```no_run
/// # async fn run(game: impl hearth_game::Game) -> Result<(), Box<dyn std::error::Error>> {
/// let config = hearth_server::Config::load(None)?;
/// let running = hearth_server::start_game(config, game).await?;
/// running.run_until(async { tokio::signal::ctrl_c().await.ok(); "stopping".to_owned() }).await?;
/// # Ok(()) }
/// ```
pub async fn start_game<G: hearth_game::Game>(
    config: Config,
    game: G,
) -> Result<Running, StartError> {
    serve(config, Box::new(GameStarter::new(game)), None).await
}

/// Like [`start_game`], and the web port serves the game's own page: at `/`
/// (in place of the built-in world's page, which does not play another
/// game), with its script at `/game-page.js` and its stylesheet, if it has
/// one, at `/game-page.css`. Everything else on the web port is as with
/// [`start_game`]; see [`GamePage`] for what a page may do.
///
/// ```no_run
/// # async fn run(game: impl hearth_game::Game) -> Result<(), Box<dyn std::error::Error>> {
/// // The page's files, built by the game's web build (e.g. esbuild), committed
/// // and embedded: include_str!("../web/page.html") and so on.
/// # const HTML: &str = "<!doctype html><script src=\"/game-page.js\"></script>";
/// # const SCRIPT: &str = "";
/// const PAGE: hearth_server::GamePage = hearth_server::GamePage::new(HTML, SCRIPT);
/// let config = hearth_server::Config::load(None)?;
/// let running = hearth_server::start_game_with_page(config, game, PAGE).await?;
/// running.run_until(async { tokio::signal::ctrl_c().await.ok(); "stopping".to_owned() }).await?;
/// # Ok(()) }
/// ```
pub async fn start_game_with_page<G: hearth_game::Game>(
    config: Config,
    game: G,
    page: GamePage,
) -> Result<Running, StartError> {
    serve(config, Box::new(GameStarter::new(game)), Some(page)).await
}

/// Starts a game's host once the gate is up (type-erased over the game).
trait StartGame: Send {
    /// The game's schema version: nodes of a cluster relay players'
    /// messages only between nodes running the same one.
    fn schema_version(&self) -> String;

    /// The game's name in its schema.
    fn game_name(&self) -> String;

    fn start(
        &self,
        gate: GateHandle,
        storage: Storage,
        settings: crate::game_host::HostSettings,
    ) -> std::io::Result<crate::game_host::GameHostHandle>;
}

struct GameStarter<G> {
    game: Arc<G>,
    /// The game is the built-in world (`GameHostHandle::reads_world_places`).
    reads_world_places: bool,
}

impl<G> GameStarter<G> {
    fn new(game: G) -> Self {
        Self {
            game: Arc::new(game),
            reads_world_places: false,
        }
    }
}

impl<G: hearth_game::Game> StartGame for GameStarter<G> {
    fn schema_version(&self) -> String {
        self.game.schema().version().to_owned()
    }

    fn game_name(&self) -> String {
        self.game.schema().game().to_owned()
    }

    fn start(
        &self,
        gate: GateHandle,
        storage: Storage,
        settings: crate::game_host::HostSettings,
    ) -> std::io::Result<crate::game_host::GameHostHandle> {
        let mut host = crate::game_host::start(self.game.clone(), gate, storage, settings)?;
        host.reads_world_places = self.reads_world_places;
        Ok(host)
    }
}

async fn serve(
    config: Config,
    game: Box<dyn StartGame>,
    game_page: Option<GamePage>,
) -> Result<Running, StartError> {
    // Checked first: a bad certificate path should not leave a fresh database behind.
    let tls = load_tls(&config.tls)?;
    // Then the cluster: a node that cannot reach it stops before serving.
    let mut cluster_link =
        ClusterLink::connect(&config, &game.game_name(), &game.schema_version()).await?;
    let storage = Storage::open(&config.database_url, &config.data_dir).await?;
    let (identity, created) = crate::secrets::server_identity(&config.data_dir)?;
    if created {
        tracing::info!(dir = %config.data_dir.display(), "generated a new server key");
    }
    let accounts = Accounts::new(
        storage.clone(),
        config.accounts.clone(),
        config.limit_loopback,
    )
    .with_shared_limits(cluster_link.as_ref().map(ClusterLink::address_budgets));
    let logins = Arc::new(LoginCounters::default());
    let gate_cell = Arc::new(OnceLock::new());
    let world_cell = Arc::new(OnceLock::new());
    let account_sessions = AccountSessions::new(gate_cell.clone());
    let handler = GameHandler::new(
        accounts.clone(),
        storage.clone(),
        gate_cell.clone(),
        world_cell.clone(),
        &config,
        logins.clone(),
        account_sessions.clone(),
    )
    .with_cluster(cluster_link.as_ref().map(ClusterLink::accounts));
    let game_addr = SocketAddr::new(config.bind, config.port);
    let mut gate_config = GateConfig {
        udp: config.game.udp.then_some(game_addr),
        tcp: Some(game_addr),
        ..GateConfig::default()
    };
    gate_config.protocol.default_map = config.game.map.clone();
    gate_config.protocol.session.require_join = config.game.require_join;
    gate_config.protocol.max_logging_in_per_address = config.game.max_logging_in_per_address;
    gate_config.protocol.key_agreement_burst = config.game.key_agreement_burst;
    gate_config.protocol.key_agreements_per_second = config.game.key_agreements_per_second;
    gate_config.protocol.limit_loopback = config.limit_loopback;
    gate_config.impair = impairment(&config.game)?;
    gate_config.shards = config.game.shards;
    let max_ws_message = gate_config.max_frame();
    let gate = gate::start(gate_config, identity, handler)
        .await
        .map_err(|source| StartError::GamePort {
            addr: game_addr,
            source,
        })?;
    let _ = gate_cell.set(gate.clone());
    let game = game
        .start(
            gate.clone(),
            storage.clone(),
            crate::game_host::HostSettings {
                input_queue: config.world.input_queue,
                single_session: config.accounts.single_session,
                save_period_ms: config.world.save_period_ms,
                recordings: Arc::new(crate::recordings::Recordings::new(
                    config.data_dir.join("recordings"),
                )),
                cluster: cluster_link.as_ref().map(ClusterLink::accounts),
                relay: cluster_link.as_mut().and_then(ClusterLink::take_relay),
                forwarding: cluster_link.as_mut().and_then(ClusterLink::take_forwarding),
                line_leases: cluster_link
                    .as_mut()
                    .and_then(ClusterLink::take_line_leases),
            },
        )
        .map_err(crate::world::WorldStartError::Runtime)?;
    let _ = world_cell.set(game.clone());

    let web_addr = SocketAddr::new(config.bind, config.web_port);
    let listener = tokio::net::TcpListener::bind(web_addr)
        .await
        .map_err(|source| StartError::WebPort {
            addr: web_addr,
            source,
        })?;
    let web = listener
        .local_addr()
        .map_err(|source| StartError::WebPort {
            addr: web_addr,
            source,
        })?;
    let plaintext_public = tls.is_none() && !config.bind.is_loopback();
    if plaintext_public {
        tracing::warn!(
            bind = %config.bind,
            "the web port is open beyond this machine WITHOUT TLS: passwords sent to the web API \
             cross the network unprotected. Configure a certificate ([tls] cert and key, or \
             --tls-cert and --tls-key) or bind to 127.0.0.1 behind a TLS proxy"
        );
    }
    let cluster = cluster_link.map(|link| {
        let game_addr = gate.tcp_addr.expect("TCP is always served");
        link.start(
            game_addr,
            web,
            gate.clone(),
            game.clone(),
            account_sessions.clone(),
        )
    });
    let web_metrics = Arc::new(WebPortMetrics::default());
    let state = WebState {
        accounts: accounts.clone(),
        storage: storage.clone(),
        gate: gate.clone(),
        game: game.clone(),
        account_sessions,
        logins,
        api_errors: Arc::default(),
        started: Instant::now(),
        max_ws_message,
        ws_deflate: config.web.websocket_deflate,
        web_port: web_metrics.clone(),
        plaintext_public,
        game_page,
        admin_figures: Default::default(),
        cluster: cluster.clone(),
    };
    let router = listener::limit_bodies(
        web::router(state),
        config.web.max_body_bytes,
        std::time::Duration::from_millis(config.web.request_timeout_ms),
        web_metrics.clone(),
    );
    let tls_on = tls.is_some();
    let port = WebPort {
        listener,
        router,
        tls,
        limits: config.web.clone(),
        limit_loopback: config.limit_loopback,
        metrics: web_metrics.clone(),
    };
    let web_stop = CancellationToken::new();
    let web_task = tokio::spawn(port.serve(web_stop.clone()));
    let running = Running {
        game_tcp: gate.tcp_addr.expect("TCP is always served"),
        game_udp: gate.udp_addr,
        web,
        tls: tls_on,
        plaintext_public,
        public_key: gate.public_key,
        gate,
        game,
        storage,
        accounts,
        web_metrics,
        cluster,
        web_stop,
        web_task,
    };
    tracing::info!(
        game_tcp = %running.game_tcp,
        game_udp = ?running.game_udp,
        web = %running.web_url(),
        "hearth is serving"
    );
    Ok(running)
}

impl Running {
    /// `https://ADDR` or `http://ADDR`.
    pub fn web_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.web)
    }

    /// Serves until `stop` gives a reason (then shuts down gracefully with
    /// it) or the gate task ends on its own (then stops everything else too,
    /// so no half-alive process keeps answering on the web port).
    pub async fn run_until(self, stop: impl Future<Output = String>) -> Result<(), ServeError> {
        let gate = self.gate.clone();
        tokio::select! {
            reason = stop => {
                self.shutdown(&reason).await;
                Ok(())
            }
            end = gate.ended() => {
                let error = match end {
                    GateEnd::Panicked(message) => ServeError::GatePanicked(message),
                    GateEnd::Stopped => ServeError::GateStopped,
                };
                tracing::error!("{error}");
                self.shutdown("the gate task ended").await;
                Err(error)
            }
        }
    }

    /// Closes every session with `reason` (clients receive it), stops the web
    /// server, and flushes and closes the database.
    pub async fn shutdown(self, reason: &str) {
        // The world first: every player's state is in the database before
        // any session closes (while this node still answers other nodes'
        // requests to let go of an account, so that a login elsewhere
        // waits for these saves instead of passing them over).
        self.game.shutdown().await;
        // Then the other nodes stop counting on this one.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        self.gate.shutdown(reason).await;
        self.web_stop.cancel();
        // Open keep-alive connections get a moment to finish their request.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), self.web_task).await;
        self.storage.close().await;
        tracing::info!("hearth stopped: {reason}");
    }
}
