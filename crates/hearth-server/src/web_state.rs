//! What every web handler and the metrics page share.

use std::sync::Arc;
use std::time::Instant;

use hearth_net::gate::GateHandle;

use crate::accounts::Accounts;
use crate::game::LoginCounters;
use crate::storage::Storage;

#[derive(Clone)]
pub struct WebState {
    pub accounts: Accounts,
    pub storage: Storage,
    pub gate: GateHandle,
    /// What players join: the built-in world or a game on the game API.
    pub game: crate::game_host::GameHostHandle,
    /// Every logged-in session by account: a lock, a deletion or a kick
    /// ends them all, in the world or not.
    pub account_sessions: crate::account_sessions::AccountSessions,
    pub logins: Arc<LoginCounters>,
    pub api_errors: Arc<LoginCounters>,
    pub started: Instant,
    pub max_ws_message: usize,
    /// `[web] websocket_deflate`: accept permessage-deflate on `/ws`.
    pub ws_deflate: bool,
    pub web_port: Arc<crate::listener::WebPortMetrics>,
    /// Served beyond loopback without TLS: the page warns about it.
    pub plaintext_public: bool,
    /// The game's own page, served at `/` in place of the built-in world's
    /// ([`crate::start_game_with_page`]).
    pub game_page: Option<crate::web::GamePage>,
    /// The admin overview's walk over every session, kept for a second so
    /// that any number of open dashboards cost the gate one walk a second.
    pub admin_figures: Arc<std::sync::Mutex<Option<(Instant, serde_json::Value)>>>,
    /// This server's part in its cluster, when it is a node of one.
    pub cluster: Option<Arc<crate::cluster_node::ClusterNode>>,
}
