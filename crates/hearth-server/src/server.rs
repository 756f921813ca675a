//! `hearth serve`: storage, secrets, the gates on the game port, the web port,
//! and graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hearth_net::gate::{self, GateConfig, GateHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::game::{GameHandler, LoginCounters};
use crate::storage::{Storage, StorageError};
use crate::web::{self, WebState};

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
}

/// A started server.
pub struct Running {
    pub game_tcp: SocketAddr,
    pub game_udp: Option<SocketAddr>,
    pub web: SocketAddr,
    pub public_key: [u8; 32],
    pub gate: GateHandle,
    pub storage: Storage,
    pub accounts: Accounts,
    web_stop: oneshot::Sender<()>,
    web_task: JoinHandle<()>,
}

pub async fn start(config: Config) -> Result<Running, StartError> {
    let storage = Storage::open(&config.database_url, &config.data_dir).await?;
    let (identity, created) = crate::secrets::server_identity(&config.data_dir)?;
    if created {
        tracing::info!(dir = %config.data_dir.display(), "generated a new server key");
    }
    let accounts = Accounts::new(storage.clone(), config.accounts.clone());
    let logins = Arc::new(LoginCounters::default());
    let gate_cell = Arc::new(OnceLock::new());
    let handler = GameHandler::new(accounts.clone(), gate_cell.clone(), &config, logins.clone());
    let game_addr = SocketAddr::new(config.bind, config.port);
    let mut gate_config = GateConfig {
        udp: config.game.udp.then_some(game_addr),
        tcp: Some(game_addr),
        ..GateConfig::default()
    };
    gate_config.protocol.default_map = config.game.map.clone();
    let max_ws_message = gate_config.max_frame();
    let gate = gate::start(gate_config, identity, handler)
        .await
        .map_err(|source| StartError::GamePort {
            addr: game_addr,
            source,
        })?;
    let _ = gate_cell.set(gate.clone());

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
    let state = WebState {
        accounts: accounts.clone(),
        storage: storage.clone(),
        gate: gate.clone(),
        logins,
        api_errors: Arc::default(),
        started: Instant::now(),
        max_ws_message,
    };
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (web_stop, stopped) = oneshot::channel::<()>();
    let web_task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("web server stopped: {e}");
        }
    });
    let running = Running {
        game_tcp: gate.tcp_addr.expect("TCP is always served"),
        game_udp: gate.udp_addr,
        web,
        public_key: gate.public_key,
        gate,
        storage,
        accounts,
        web_stop,
        web_task,
    };
    tracing::info!(
        game_tcp = %running.game_tcp,
        game_udp = ?running.game_udp,
        web = %running.web,
        "hearth is serving"
    );
    Ok(running)
}

impl Running {
    /// Closes every session with `reason` (clients receive it), stops the web
    /// server, and flushes and closes the database.
    pub async fn shutdown(self, reason: &str) {
        self.gate.shutdown(reason).await;
        let _ = self.web_stop.send(());
        // Open keep-alive connections get a moment to finish their request.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), self.web_task).await;
        self.storage.close().await;
        tracing::info!("hearth stopped: {reason}");
    }
}
