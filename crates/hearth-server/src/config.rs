//! Configuration: defaults, then `hearth.toml`, then `HEARTH_*` environment
//! variables, then command-line flags (applied by the binary).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every listener binds; loopback unless configured otherwise.
    pub bind: IpAddr,
    /// Game port, TCP and UDP (7777, like Unreal's dedicated server).
    pub port: u16,
    /// Web port: API, pages, metrics, WebSocket.
    pub web_port: u16,
    /// Where the database, secrets and logs live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means SQLite in the data directory.
    pub database_url: String,
    /// Apply the per-address limits to loopback clients too: the game
    /// port's (logins in progress, key agreements, streams), the accounts'
    /// (login and registration rates) and the web port's (connections). Off:
    /// bots and load tests on this machine connect hundreds of clients from
    /// one address, and whoever sends from loopback is on the machine
    /// already. Behind a reverse proxy on the same host every client is
    /// loopback: turn it on there. Totals (connections, sessions, the hash
    /// queue) hold for loopback either way.
    pub limit_loopback: bool,
    pub accounts: AccountsConfig,
    pub game: GameConfig,
    pub tls: TlsConfig,
    pub web: WebConfig,
    pub world: WorldConfig,
    pub cluster: ClusterConfig,
}

/// Many machines: set `nats` and this server is a node of a cluster (with
/// PostgreSQL as its database, shared by every node). Unset (the default),
/// it runs alone on its own database, and needs no NATS.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's NATS server (JetStream on), with its credentials:
    /// `nats://USER:PASSWORD@HOST:4222` (`tls://` where it needs TLS).
    pub nats: String,
    /// This node's name: a-z, 0-9 and '-', up to 32 (default: the host's
    /// name, made to fit).
    pub node: String,
    /// The cluster's name: nodes with the same NATS server and name are one
    /// cluster (several may share a NATS server).
    pub name: String,
    /// How long a node holds a line's lease without renewing it, in
    /// milliseconds (300 to 600,000): a node that dies is replaced after at
    /// most this long.
    pub lease_ms: u64,
    /// How often a node rewrites its record (address, load) for the others,
    /// in milliseconds (100 to 60,000); a record not rewritten for three
    /// periods lapses.
    pub heartbeat_ms: u64,
    /// How often each line's whole state is saved under its lease, in
    /// milliseconds (100 to 3,600,000): when a node dies, its lines restart
    /// on the others from their last save, so this is the most of a line's
    /// life a death can lose.
    pub line_save_ms: u64,
    /// The address other nodes and clients reach this node at, where it is
    /// not the one it binds (`bind = "0.0.0.0"`): its record lists its
    /// ports at this address.
    pub advertise: Option<IpAddr>,
    /// Zones pinned to one node, by the node's name (`zones = { caves =
    /// "n2" }`): only that node runs their lines, and a player of any node
    /// who goes there plays on it, their session staying on their own
    /// node. The same on every node. Zones not named run on every node.
    pub zones: std::collections::BTreeMap<String, String>,
    /// Where a player goes whose own node's lines of a zone are full:
    /// `"least-loaded"` (the default) to a line of another node with room,
    /// else to a new line on the node with the fewest players; `"local"`
    /// to a new line on their own node (every node then runs lines of its
    /// own players only, but for pinned zones).
    pub placement: Placement,
}

/// `[cluster] placement`: see [`ClusterConfig::placement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    #[default]
    LeastLoaded,
    Local,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats: String::new(),
            node: String::new(),
            name: "hearth".to_owned(),
            lease_ms: 6_000,
            heartbeat_ms: 1_000,
            line_save_ms: 5_000,
            advertise: None,
            zones: Default::default(),
            placement: Placement::default(),
        }
    }
}

/// Without the NATS URL's credentials: a config printed to a log must not
/// carry them.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("nats", &hearth_cluster::redact(&self.nats))
            .field("node", &self.node)
            .field("name", &self.name)
            .field("lease_ms", &self.lease_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("line_save_ms", &self.line_save_ms)
            .field("advertise", &self.advertise)
            .field("zones", &self.zones)
            .field("placement", &self.placement)
            .finish()
    }
}

impl ClusterConfig {
    /// Whether this server is a node of a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }
}

/// The live world.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    /// A zone file (TOML, see crates/hearth-world/zones/default.toml);
    /// empty: the default game's zones.
    pub zones: Option<PathBuf>,
    /// Each changed player is saved at least this often: after a crash (or
    /// SIGKILL) at most this much play is lost. Logouts, line and zone
    /// changes and graceful shutdowns save at once.
    pub save_period_ms: u64,
    /// Game messages waiting for the game's lines (moves, acknowledgements,
    /// the game's own messages) beyond which new ones are dropped and
    /// counted, so a flood cannot grow memory or stall the gate. Each is at
    /// most the game's largest message (a larger one closes the session).
    pub input_queue: usize,
    /// Gone: the world always runs on the game API (`engine`), on the game
    /// host's thread (`threads`). Still read, so that an older hearth.toml
    /// starts, with a warning that says to remove them.
    pub engine: Option<toml::Value>,
    pub threads: Option<toml::Value>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            zones: None,
            save_period_ms: 10_000,
            input_queue: 16_384,
            engine: None,
            threads: None,
        }
    }
}

/// TLS on the web port: HTTPS for the API and pages, `wss://` for `/ws`.
/// Both files or neither.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// Bounds on the web port.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// A connection must complete its TLS handshake and each request's
    /// headers within this many milliseconds (idle keep-alive included).
    pub header_timeout_ms: u64,
    /// HTTP connections open at once (upgraded WebSockets count in the gate).
    pub max_connections: usize,
    /// HTTP connections open at once from one address (IPv6: one /64).
    pub max_connections_per_address: usize,
    /// Largest request body the API reads, in bytes.
    pub max_body_bytes: usize,
    /// A request must be read and answered within this many milliseconds
    /// (a body trickled in a byte at a time is cut here).
    pub request_timeout_ms: u64,
    /// permessage-deflate on `/ws` for clients that offer it. Off by default:
    /// small binary game messages cost more CPU compressed than they save.
    pub websocket_deflate: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// Lifetime of an access token, in seconds.
    pub access_token_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    pub refresh_token_secs: u64,
    /// Wrong passwords in a row before the account is locked for a while.
    pub max_failed_logins: u32,
    /// The first lock, in seconds; each further lock without a successful
    /// login in between doubles, up to `max_lock_secs`. Short on purpose:
    /// anyone can lock anyone's account by guessing (see the README).
    pub lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
    /// Password hashes computed at once; 0 means one per core. Each takes
    /// 19 MiB while it runs.
    pub hash_workers: usize,
    /// Hashes that may wait for a worker; beyond, requests are refused with
    /// 503 and Retry-After.
    pub hash_queue: usize,
    /// Logins (web API, password changes and game logins with a password)
    /// one address may make at once, and how many more per minute (0: no limit).
    pub login_burst: u32,
    pub login_per_minute: u32,
    /// Registrations one address may make at once, and per minute (0: no limit).
    pub register_burst: u32,
    pub register_per_minute: u32,
    /// Addresses (IPv6: /64 prefixes) the rate limits remember at most.
    pub tracked_addresses: usize,
    /// A new login ends the account's previous session.
    pub single_session: bool,
    /// Let clients without credentials in (the pre-login hook still runs).
    pub allow_anonymous: bool,
    /// Removed: `admins = ["name"]` promoted whatever account held the
    /// name at each start, so anyone who registered a listed name first (or
    /// again, after the administrator deleted theirs) became an
    /// administrator. Kept only to refuse it with a clear error;
    /// administrators are made with `hearth admin create`, which binds the
    /// role to the account that exists at that moment.
    pub admins: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GameConfig {
    /// Map named in Welcome.
    pub map: String,
    /// Serve UDP on the game port (TCP is always served).
    pub udp: bool,
    /// Game channels only after the Join step, not merely after Welcome:
    /// traffic before it closes the session like traffic before login.
    pub require_join: bool,
    /// Sessions and connections from one address (IPv6: one /64) still in
    /// their handshake or login; beyond it new ones are refused.
    pub max_logging_in_per_address: u32,
    /// Key agreements (UDP handshakes, stream Hellos) one address (IPv6: one
    /// /64; a /48 gets eight times as much) may start: a burst, then a rate.
    pub key_agreement_burst: u32,
    pub key_agreements_per_second: u32,
    /// Moved to the top level (`limit_loopback`), where it covers the
    /// accounts' and the web port's per-address limits too. Kept only to
    /// refuse it with a clear error: read here it would leave those two
    /// unlimited for loopback clients behind a proxy that counted on it.
    pub limit_loopback: Option<serde::de::IgnoredAny>,
    /// The network conditioner on the UDP game port, for rehearsals:
    /// "loss=5,lag=40,jitter=10,dup=1,reorder=2,bandwidth=100000" for what
    /// clients send (`impair_up`) and what the server sends (`impair_down`).
    pub impair_up: Option<String>,
    pub impair_down: Option<String>,
    pub impair_seed: u64,
    /// Gate shards, each with its own sessions, UDP socket and task (spread
    /// over the runtime's threads); 0: one per core.
    pub shards: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 7777,
            web_port: 8080,
            data_dir: PathBuf::from("hearth-data"),
            database_url: String::new(),
            limit_loopback: false,
            accounts: AccountsConfig::default(),
            game: GameConfig::default(),
            tls: TlsConfig::default(),
            web: WebConfig::default(),
            world: WorldConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            max_connections: 4096,
            max_connections_per_address: 64,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 30_000,
            websocket_deflate: false,
        }
    }
}

impl WebConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            access_token_secs: 3600,
            refresh_token_secs: 30 * 24 * 3600,
            max_failed_logins: 5,
            lock_secs: 2,
            max_lock_secs: 300,
            hash_workers: 0,
            hash_queue: 64,
            login_burst: 20,
            login_per_minute: 30,
            register_burst: 5,
            register_per_minute: 10,
            tracked_addresses: 65_536,
            single_session: true,
            allow_anonymous: false,
            admins: None,
        }
    }
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            map: "Entry".to_owned(),
            udp: true,
            require_join: false,
            max_logging_in_per_address: 32,
            key_agreement_burst: 32,
            key_agreements_per_second: 16,
            limit_loopback: None,
            impair_up: None,
            impair_down: None,
            impair_seed: 1,
            shards: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: [accounts] admins is no longer read, since anyone could register a listed name before its owner: remove it and make administrators with `hearth admin create NAME` (or `hearth admin create NAME --promote` for an existing account)")]
    AdminsByName { path: PathBuf },
    #[error("config file {path}: [game] limit_loopback has moved: remove it, and to hold loopback clients to the per-address limits write `limit_loopback = true` at the top of the file (before any [section]), where it covers the accounts' and the web port's limits as well as the game port's")]
    LoopbackUnderGame { path: PathBuf },
    #[error("environment variable {name}={value:?} is not valid: {why}")]
    Env {
        name: String,
        value: String,
        why: String,
    },
}

impl Config {
    /// Defaults overlaid with `path` (if given, it must exist; if not given,
    /// `hearth.toml` in the working directory is used when present) and the
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new("hearth.toml").exists() => Self::from_file(Path::new("hearth.toml"))?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        for (key, set) in [
            ("engine", config.world.engine.is_some()),
            ("threads", config.world.threads.is_some()),
        ] {
            if set {
                tracing::warn!(
                    path = %path.display(),
                    "[world] {key} is no longer read: the world always runs on the game API, its lines on the game host's thread; remove it"
                );
            }
        }
        if config.accounts.admins.is_some() {
            return Err(ConfigError::AdminsByName {
                path: path.to_owned(),
            });
        }
        if config.game.limit_loopback.is_some() {
            return Err(ConfigError::LoopbackUnderGame {
                path: path.to_owned(),
            });
        }
        Ok(config)
    }

    /// `HEARTH_BIND`, `HEARTH_PORT`, `HEARTH_WEB_PORT`, `HEARTH_DATA_DIR`,
    /// `HEARTH_DATABASE_URL`, `HEARTH_SINGLE_SESSION`, `HEARTH_ALLOW_ANONYMOUS`,
    /// `HEARTH_TLS_CERT`, `HEARTH_TLS_KEY`, `HEARTH_WEBSOCKET_DEFLATE`, `HEARTH_SHARDS`,
    /// `HEARTH_LIMIT_LOOPBACK`, `HEARTH_CLUSTER` (the NATS URL), `HEARTH_NODE`,
    /// `HEARTH_CLUSTER_NAME`, `HEARTH_CLUSTER_ADVERTISE`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.to_owned(),
                value,
                why: e.to_string(),
            })
        }
        if var("HEARTH_WORLD_ENGINE").is_some() {
            tracing::warn!("HEARTH_WORLD_ENGINE is no longer read: the world always runs on the game API; unset it");
        }
        if let Some(v) = var("HEARTH_BIND") {
            self.bind = parse("HEARTH_BIND", v)?;
        }
        if let Some(v) = var("HEARTH_PORT") {
            self.port = parse("HEARTH_PORT", v)?;
        }
        if let Some(v) = var("HEARTH_WEB_PORT") {
            self.web_port = parse("HEARTH_WEB_PORT", v)?;
        }
        if let Some(v) = var("HEARTH_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("HEARTH_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("HEARTH_SINGLE_SESSION") {
            self.accounts.single_session = parse("HEARTH_SINGLE_SESSION", v)?;
        }
        if let Some(v) = var("HEARTH_ALLOW_ANONYMOUS") {
            self.accounts.allow_anonymous = parse("HEARTH_ALLOW_ANONYMOUS", v)?;
        }
        if let Some(v) = var("HEARTH_TLS_CERT") {
            self.tls.cert = Some(PathBuf::from(v));
        }
        if let Some(v) = var("HEARTH_TLS_KEY") {
            self.tls.key = Some(PathBuf::from(v));
        }
        if let Some(v) = var("HEARTH_WEBSOCKET_DEFLATE") {
            self.web.websocket_deflate = parse("HEARTH_WEBSOCKET_DEFLATE", v)?;
        }
        if let Some(v) = var("HEARTH_SHARDS") {
            self.game.shards = parse("HEARTH_SHARDS", v)?;
        }
        if let Some(v) = var("HEARTH_LIMIT_LOOPBACK") {
            self.limit_loopback = parse("HEARTH_LIMIT_LOOPBACK", v)?;
        }
        if let Some(v) = var("HEARTH_CLUSTER") {
            self.cluster.nats = v;
        }
        if let Some(v) = var("HEARTH_NODE") {
            self.cluster.node = v;
        }
        if let Some(v) = var("HEARTH_CLUSTER_NAME") {
            self.cluster.name = v;
        }
        if let Some(v) = var("HEARTH_CLUSTER_ADVERTISE") {
            self.cluster.advertise = Some(parse("HEARTH_CLUSTER_ADVERTISE", v)?);
        }
        Ok(())
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.accounts.access_token_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.accounts.refresh_token_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        let mut config: Config =
            toml::from_str("port = 9000\n[accounts]\nsingle_session = false\n").unwrap();
        assert_eq!((config.port, config.web_port), (9000, 8080));
        assert!(!config.accounts.single_session);
        config
            .apply_env(|name| (name == "HEARTH_WEB_PORT").then(|| "9100".to_owned()))
            .unwrap();
        assert_eq!(config.web_port, 9100);
        let bad = config.apply_env(|name| (name == "HEARTH_PORT").then(|| "seventy".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("HEARTH_PORT"));
        assert!(
            toml::from_str::<Config>("prot = 1").is_err(),
            "typos are errors"
        );
        assert_eq!(Config::default().bind.to_string(), "127.0.0.1");
    }

    #[test]
    fn tls_and_web_limits_come_from_the_file_and_tls_from_the_environment() {
        let mut config: Config = toml::from_str(
            "[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\n[web]\nheader_timeout_ms = 500\nmax_body_bytes = 1024\n",
        )
        .unwrap();
        assert_eq!(config.tls.cert.as_deref(), Some(Path::new("a.pem")));
        assert_eq!(config.web.header_timeout(), Duration::from_millis(500));
        assert_eq!(config.web.max_body_bytes, 1024);
        assert_eq!(config.web.max_connections, 4096, "default kept");
        config
            .apply_env(|name| (name == "HEARTH_TLS_KEY").then(|| "b.key".to_owned()))
            .unwrap();
        assert_eq!(config.tls.key.as_deref(), Some(Path::new("b.key")));
        assert!(toml::from_str::<Config>("[web]\nheader_timeout = 1").is_err());
    }

    #[test]
    fn websocket_deflate_is_off_unless_the_file_or_environment_says_so() {
        assert!(!Config::default().web.websocket_deflate);
        let mut config: Config = toml::from_str("[web]\nwebsocket_deflate = true\n").unwrap();
        assert!(config.web.websocket_deflate);
        config
            .apply_env(|name| (name == "HEARTH_WEBSOCKET_DEFLATE").then(|| "false".to_owned()))
            .unwrap();
        assert!(!config.web.websocket_deflate);
        let bad =
            config.apply_env(|name| (name == "HEARTH_WEBSOCKET_DEFLATE").then(|| "yes".to_owned()));
        assert!(bad.is_err());
    }

    #[test]
    fn loopback_is_exempt_unless_the_top_level_switch_and_the_old_place_is_refused() {
        assert!(!Config::default().limit_loopback);
        let mut config: Config = toml::from_str("limit_loopback = true\n").unwrap();
        assert!(config.limit_loopback);
        config
            .apply_env(|name| (name == "HEARTH_LIMIT_LOOPBACK").then(|| "false".to_owned()))
            .unwrap();
        assert!(!config.limit_loopback);
        let old = std::env::temp_dir().join(format!(
            "hearth-config-loopback-{}.toml",
            std::process::id()
        ));
        std::fs::write(&old, "[game]\nlimit_loopback = true\n").unwrap();
        let refused = Config::from_file(&old).unwrap_err().to_string();
        let _ = std::fs::remove_file(&old);
        assert!(
            refused.contains("has moved: remove it")
                && refused.contains("`limit_loopback = true` at the top"),
            "{refused}"
        );
    }

    #[test]
    fn an_older_config_naming_the_world_engine_still_starts() {
        let old =
            std::env::temp_dir().join(format!("hearth-config-engine-{}.toml", std::process::id()));
        std::fs::write(
            &old,
            "[world]\nengine = \"builtin\"\nthreads = 2\nsave_period_ms = 500\n",
        )
        .unwrap();
        let config = Config::from_file(&old);
        let _ = std::fs::remove_file(&old);
        let config = config.unwrap();
        assert_eq!(config.world.save_period_ms, 500);
    }
}
