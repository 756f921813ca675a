//! This server as a node of a cluster (`[cluster]` in hearth.toml,
//! `--cluster`): it joins the cluster's list of nodes over NATS and keeps
//! its record there fresh (its addresses and its load: sessions, lines, the
//! slowest recent tick), and opens the cluster's lease table on the shared
//! PostgreSQL database. What runs on top of it (lines under leases, players
//! routed to the node that runs their line, line moves) is described in
//! docs/CLUSTER.md with what is built so far.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_cluster::address_budgets::AddressBudgets;
use hearth_cluster::drain::{self, DrainAnswer, DrainInbox};
use hearth_cluster::forward::{self, ForwardCounters, ForwardIn, Forwarder, LiveNodes};
use hearth_cluster::node::{LineLoad, ZoneRoom};
use hearth_cluster::relay::{self, Incoming, Relay, RelayCounters, RelaySettings};
use hearth_cluster::release::{self, Release};
use hearth_cluster::{
    connect_nats, ClaimError, Claims, ClusterError, ClusterName, Heartbeat, Leases, NodeId,
    NodeInfo, Presence,
};
use hearth_net::gate::GateHandle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::account_sessions::AccountSessions;
use crate::config::{ClusterConfig, Config};
use crate::game_host::GameHostHandle;

#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error("cluster mode needs PostgreSQL shared by every node: pass --database-url postgres://USER@HOST/DB (or [cluster] nats = \"\" to run alone)")]
    NeedsPostgres,
    #[error("the node name: {0} (set it with --node or [cluster] node)")]
    NodeName(#[from] hearth_cluster::node::NodeNameError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// What the game host needs to play players on other nodes' lines.
pub struct ForwardingParts {
    /// Sends messages about players to other nodes.
    pub forwarder: Forwarder,
    /// What other nodes send about players.
    pub incoming: mpsc::Receiver<ForwardIn>,
    /// `[cluster] zones`: zones pinned to one node, by the node's name.
    pub pins: BTreeMap<String, String>,
    /// `[cluster] placement`: how a player whose node's lines of a zone are
    /// full is placed.
    pub placement: crate::config::Placement,
}

/// A connection to the cluster, made before the server binds its ports
/// (a node that cannot reach its cluster stops before it serves anyone).
pub struct ClusterLink {
    /// `[cluster] advertise`: the address in this node's record.
    advertise: Option<std::net::IpAddr>,
    id: NodeId,
    cluster: ClusterName,
    presence: Presence,
    leases: Leases,
    accounts: ClusterAccounts,
    releases: release::ReleaseInbox,
    /// Requests to drain this node (`hearth admin drain`).
    drains: DrainInbox,
    /// `[cluster] placement = "least-loaded"`: this node places players by
    /// load, takes those other nodes place, and can drain.
    places: bool,
    /// Players' messages to and from other nodes, until the game host
    /// takes it ([`ClusterLink::take_relay`]).
    relay: Option<(Relay, mpsc::Receiver<Incoming>)>,
    /// The relay's counters, for `/admin` and `/metrics`.
    relay_counters: Arc<RelayCounters>,
    /// Per-address rate limits shared by every node.
    budgets: AddressBudgets,
    /// Players who play on other nodes, until the game host takes it
    /// ([`ClusterLink::take_forwarding`]).
    forwarding: Option<ForwardingParts>,
    /// The live nodes, for the forwarding: refreshed every heartbeat from
    /// the list of nodes.
    forwarding_nodes: Arc<RwLock<LiveNodes>>,
    /// The forwarding's counters, for `/admin`.
    forward_counters: Arc<ForwardCounters>,
    /// The leases and saves of the game's lines, until the game host takes
    /// them ([`ClusterLink::take_line_leases`]).
    line_leases: Option<crate::game_host::line_leases::LineLeaseParts>,
}

impl ClusterLink {
    /// Connects to the cluster `config` names; `None` when it names none.
    /// `schema_version`: the game's; players' messages are relayed only
    /// between nodes running the same.
    pub async fn connect(
        config: &Config,
        game: &str,
        schema_version: &str,
    ) -> Result<Option<Self>, ClusterStartError> {
        let settings = &config.cluster;
        if !settings.enabled() {
            return Ok(None);
        }
        let url = &config.database_url;
        if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
            return Err(ClusterStartError::NeedsPostgres);
        }
        let id = NodeId::new(&node_name(settings))?;
        let cluster = ClusterName::new(&settings.name)?;
        let client = connect_nats(&settings.nats, &id).await?;
        let period = Duration::from_millis(settings.heartbeat_ms.clamp(100, 60_000));
        let presence = Presence::open(&client, &cluster, period).await?;
        let lease = Duration::from_millis(settings.lease_ms.clamp(300, 600_000));
        let leases = Leases::connect(url, id.clone(), lease)
            .await
            .map_err(ClusterError::from)?;
        let accounts = ClusterAccounts {
            claims: Claims::new(leases.pool().clone(), id.clone()),
            client: client.clone(),
            cluster: cluster.clone(),
            me: id.clone(),
        };
        let releases = release::listen(&client, &cluster, &id).await?;
        let drains = drain::listen(&client, &cluster, &id).await?;
        let relay_settings = RelaySettings {
            schema: schema_version.to_owned(),
            fold: hearth_world::names::name_key,
        };
        let (relay, incoming) = relay::start(&client, &cluster, &id, relay_settings).await?;
        let relay_counters = relay.counters.clone();
        let (forwarder, forwarded) = forward::start(&client, &cluster, &id, schema_version).await?;
        let forwarding_nodes = forwarder.nodes();
        let forward_counters = forwarder.counters.clone();
        let budgets = AddressBudgets::open(leases.pool().clone())
            .await
            .map_err(|e| ClusterError::from(hearth_cluster::LeaseError::from(e)))?;
        let line_saves = hearth_cluster::LineSaves::open(leases.clone(), cluster.as_str(), game)
            .await
            .map_err(ClusterError::from)?;
        let line_moves = hearth_cluster::line_moves::listen(&client, &cluster, &id).await?;
        let line_cluster = cluster.clone();
        tracing::info!(node = %id, cluster = cluster.as_str(), "joined the cluster");
        if settings.advertise.is_none() && config.bind.is_unspecified() {
            tracing::warn!(
                bind = %config.bind,
                "this node binds every address and advertises none: its record shows {} to the other nodes; set [cluster] advertise (HEARTH_CLUSTER_ADVERTISE) to the address they reach it at",
                config.bind
            );
        }
        Ok(Some(Self {
            advertise: settings.advertise,
            id,
            cluster,
            presence,
            leases,
            accounts,
            releases,
            drains,
            places: settings.placement == crate::config::Placement::LeastLoaded,
            relay: Some((relay, incoming)),
            relay_counters,
            budgets,
            forwarding: Some(ForwardingParts {
                forwarder,
                incoming: forwarded,
                pins: settings.zones.clone(),
                placement: settings.placement,
            }),
            forwarding_nodes,
            forward_counters,
            line_leases: Some(crate::game_host::line_leases::LineLeaseParts {
                saves: line_saves,
                save_every: Duration::from_millis(settings.line_save_ms.clamp(100, 3_600_000)),
                moves: line_moves,
                client: client.clone(),
                cluster: line_cluster,
            }),
        }))
    }

    /// The leases and saves of the game's lines, for the game host (once).
    pub fn take_line_leases(&mut self) -> Option<crate::game_host::line_leases::LineLeaseParts> {
        self.line_leases.take()
    }

    /// The forwarding of players to lines other nodes run, for the game
    /// host (once).
    pub fn take_forwarding(&mut self) -> Option<ForwardingParts> {
        self.forwarding.take()
    }

    /// The per-address rate limits every node shares, for the accounts.
    pub fn address_budgets(&self) -> AddressBudgets {
        self.budgets.clone()
    }

    /// The relay, for the game host (once).
    pub fn take_relay(&mut self) -> Option<(Relay, mpsc::Receiver<Incoming>)> {
        self.relay.take()
    }

    /// What logins and the game host need of the cluster.
    pub fn accounts(&self) -> ClusterAccounts {
        self.accounts.clone()
    }

    /// Starts publishing this node's record, with its load read from the
    /// gate and the game host every heartbeat.
    pub fn start(
        self,
        game_addr: SocketAddr,
        web_addr: SocketAddr,
        gate: GateHandle,
        game: GameHostHandle,
        sessions: AccountSessions,
    ) -> Arc<ClusterNode> {
        let releases = tokio::spawn(let_go(self.releases, sessions, game.clone()));
        let draining = Arc::new(AtomicBool::new(false));
        let drains = tokio::spawn(carry_out_drains(
            self.drains,
            game.clone(),
            draining.clone(),
            self.places,
        ));
        let pruning = tokio::spawn(prune_budgets(self.budgets.clone()));
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let shown = |addr: SocketAddr| match self.advertise {
            Some(ip) => SocketAddr::new(ip, addr.port()),
            None => addr,
        };
        let record = NodeInfo {
            id: self.id.clone(),
            game_addr: shown(game_addr).to_string(),
            web_addr: shown(web_addr).to_string(),
            started_ms,
            sessions: 0,
            lines: 0,
            tick_p99_us: 0,
            line_list: Vec::new(),
            players: 0,
            room: Vec::new(),
            draining: false,
            placement: self.places,
        };
        let (info, watcher) = watch::channel(record);
        let heartbeat = self.presence.heartbeat(watcher);
        let period = self.presence.period();
        let presence = self.presence.clone();
        let nodes = self.forwarding_nodes.clone();
        let live = self.forwarding_nodes.clone();
        let me = self.id.clone();
        let drained = draining.clone();
        let load = tokio::spawn(async move {
            let mut every = tokio::time::interval(period);
            loop {
                every.tick().await;
                // Who is alive and how loaded: where players go.
                if let Ok(members) = presence.members().await {
                    forward::set_nodes(&nodes, &me, members);
                }
                let lines = game.status().await.unwrap_or_default();
                let sessions = gate.session_count() as u64;
                let mut busiest: Vec<LineLoad> = lines
                    .iter()
                    .map(|line| LineLoad {
                        zone: line.zone.chars().take(32).collect(),
                        number: line.number,
                        players: line.players as u64,
                    })
                    .collect();
                busiest.sort_by_key(|line| std::cmp::Reverse(line.players));
                busiest.truncate(hearth_cluster::node::MAX_LINES_LISTED);
                let mut room: BTreeMap<String, u64> = BTreeMap::new();
                for line in &lines {
                    *room
                        .entry(line.zone.chars().take(32).collect())
                        .or_default() += line.room as u64;
                }
                let room: Vec<ZoneRoom> = room
                    .into_iter()
                    .map(|(zone, room)| ZoneRoom { zone, room })
                    .take(hearth_cluster::node::MAX_ZONES_LISTED)
                    .collect();
                let players = lines.iter().map(|line| line.players as u64).sum();
                info.send_modify(|record| {
                    record.draining = drained.load(Ordering::Relaxed);
                    record.players = players;
                    record.room = room;
                    record.sessions = sessions;
                    record.lines = lines.len() as u64;
                    record.tick_p99_us = lines.iter().map(|l| l.tick_p99_us).max().unwrap_or(0);
                    record.line_list = busiest;
                });
            }
        });
        Arc::new(ClusterNode {
            id: self.id,
            cluster: self.cluster,
            presence: self.presence,
            leases: self.leases,
            heartbeat,
            load,
            releases,
            drains,
            draining,
            pruning,
            relay: self.relay_counters,
            forward: self.forward_counters,
            live,
        })
    }
}

/// How long a login waits for the node the account played on to let go of
/// it before passing over that node (dead, frozen or cut off: its later
/// saves are refused). Longer than that node waits for the last save.
const RELEASE_WAIT: Duration = Duration::from_secs(7);
/// How long a node waits for a released player's last save before it
/// answers anyway (a save waits at most `claims::DATABASE_WAIT` for each
/// step).
const SAVE_WAIT: Duration = Duration::from_secs(6);
/// Claims a login tries before it gives up (other nodes claimed the account
/// each time in between).
const CLAIM_TRIES: usize = 3;
/// Release requests carried out at once; the rest wait in the inbox
/// (bounded there).
const RELEASES_AT_ONCE: usize = 16;

/// Carries out other nodes' requests to let go of an account: ends its
/// sessions here ("logged in from another place"), waits for the last
/// save, answers.
async fn let_go(mut inbox: release::ReleaseInbox, sessions: AccountSessions, game: GameHostHandle) {
    let at_once = Arc::new(tokio::sync::Semaphore::new(RELEASES_AT_ONCE));
    while let Some(request) = inbox.requests.recv().await {
        let Ok(permit) = at_once.clone().acquire_owned().await else {
            return;
        };
        let (sessions, game) = (sessions.clone(), game.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let account = request.ask.account;
            let ended = sessions.replace_all(account).await;
            if ended > 0 {
                let saved = tokio::time::timeout(SAVE_WAIT, game.saved(account)).await;
                if saved.is_err() {
                    tracing::warn!(
                        account,
                        "a released player's last save took too long; answering anyway"
                    );
                }
            }
            request.answer(ended > 0).await;
        });
    }
}

/// Carries out requests to drain this node: the game host hands its
/// players on, and the node's record says it drains from the next
/// heartbeat.
async fn carry_out_drains(
    mut inbox: DrainInbox,
    game: GameHostHandle,
    draining: Arc<AtomicBool>,
    places: bool,
) {
    while let Some(request) = inbox.requests.recv().await {
        if !places {
            // Its lines would have nowhere to send anyone, and it would
            // refuse the visitors of its pinned zones.
            let refused = "this node does not place players by load ([cluster] placement = \"local\"): it cannot drain".to_owned();
            request
                .answer(DrainAnswer {
                    players: 0,
                    refused: Some(refused),
                })
                .await;
            continue;
        }
        let (by, undo) = request.ask.clone();
        let on = !undo;
        let Some(players) = game.drain(on).await else {
            return;
        };
        draining.store(on, Ordering::Relaxed);
        match on {
            true => {
                tracing::warn!(%by, players, "draining: handing every player in this node's lines to the other nodes")
            }
            false => tracing::warn!(%by, "no longer draining: this node takes players again"),
        }
        request
            .answer(DrainAnswer {
                players: players as u64,
                refused: None,
            })
            .await;
    }
}

/// What logins and the game host need of the cluster: one node at a time
/// per account, and saves only from that node.
#[derive(Clone)]
pub struct ClusterAccounts {
    pub claims: Claims,
    client: hearth_cluster::async_nats::Client,
    cluster: ClusterName,
    me: NodeId,
}

impl ClusterAccounts {
    /// Makes this node the one `account` plays on: asks the node it played
    /// on, if another, to end its session and save it (passing over a node
    /// that does not answer), then claims it. The claim's epoch fences the
    /// player's saves.
    pub async fn take(&self, account: i64) -> Result<i64, ClaimError> {
        // The claim moves only from the epoch read: a login on a third node
        // in between is asked to let go in its turn.
        for _ in 0..CLAIM_TRIES {
            let seen = self.claims.holder(account).await?;
            if let Some((holder, epoch)) = &seen {
                if holder == self.me.as_str() {
                    // Already this node's: its game host orders a new
                    // session of the account after the old one's last save,
                    // which is made under this same epoch.
                    return Ok(*epoch);
                }
                if let Some(holder) = NodeId::parse(holder) {
                    let outcome =
                        release::ask(&self.client, &self.cluster, &holder, account, RELEASE_WAIT)
                            .await;
                    if outcome == Release::NoAnswer {
                        tracing::warn!(account, node = %holder, "the node this account played on did not let go in time: passed over");
                    }
                }
            }
            if let Some(epoch) = self.claims.claim(account, seen.map(|(_, e)| e)).await? {
                return Ok(epoch);
            }
        }
        Err(ClaimError::Contended(account))
    }
}

/// This server's part in its cluster.
pub struct ClusterNode {
    /// Who this node is (its name and this run's incarnation).
    pub id: NodeId,
    /// Which cluster it is in.
    pub cluster: ClusterName,
    /// The list of nodes, for `/admin` and placement.
    pub presence: Presence,
    /// The cluster's lease table, as this node.
    pub leases: Leases,
    /// Players' messages to and from other nodes, counted.
    pub relay: Arc<RelayCounters>,
    /// Messages about players who play in zones other nodes run, counted.
    pub forward: Arc<ForwardCounters>,
    /// The live nodes, as of the last heartbeat.
    live: Arc<RwLock<LiveNodes>>,
    /// Rewrites this node's record every period while it lives.
    heartbeat: Heartbeat,
    /// Reads this node's load into its record every period.
    load: JoinHandle<()>,
    /// Carries out other nodes' requests to let go of an account.
    releases: JoinHandle<()>,
    /// Carries out requests to drain this node.
    drains: JoinHandle<()>,
    /// This node is draining: its record says so (placement passes it by).
    draining: Arc<AtomicBool>,
    /// Forgets the shared per-address budgets that are full again.
    pruning: JoinHandle<()>,
}

impl ClusterNode {
    /// The id of the live node named `name`, as this node last saw the
    /// list of nodes (where it sends players of a zone pinned to it).
    pub fn node_id(&self, name: &str) -> Option<String> {
        self.live
            .read()
            .expect("never poisoned")
            .ids
            .get(name)
            .cloned()
    }

    /// Whether this node was asked to drain.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Leaves the list of nodes (a graceful stop): the others see it go
    /// at once.
    pub async fn leave(&self) {
        self.heartbeat.stop();
        self.load.abort();
        self.releases.abort();
        self.drains.abort();
        self.pruning.abort();
        if let Err(e) = self.presence.leave(&self.id).await {
            tracing::warn!("leaving the cluster: {e}");
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.load.abort();
        self.releases.abort();
        self.drains.abort();
        self.pruning.abort();
    }
}

/// Every node prunes the shared budgets now and then (it is one statement;
/// which node does it does not matter).
async fn prune_budgets(budgets: AddressBudgets) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(error) = budgets.prune().await {
            tracing::warn!(%error, "pruning the cluster's shared rate limits");
        }
    }
}

/// The node's name: the configured one, or the host's made to fit.
fn node_name(config: &ClusterConfig) -> String {
    if !config.node.is_empty() {
        return config.node.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .take(hearth_cluster::node::MAX_NODE_NAME)
        .collect();
    match name.is_empty() {
        true => "node".to_owned(),
        false => name,
    }
}
