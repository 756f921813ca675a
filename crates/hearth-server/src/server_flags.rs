//! The command-line flags every server shares (`hearth serve`, a game's own
//! `serve`, the crate `hearth new` writes): where the settings come from and
//! what the flags override, in one place.

use std::path::PathBuf;

use crate::config::{Config, ConfigError};

/// Flatten into a `serve` command (`#[command(flatten)]`); [`ServerFlags::load`]
/// gives the settings: defaults, then hearth.toml (or `--config`), then
/// `HEARTH_*` variables, then these flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerFlags {
    /// Config file (default: ./hearth.toml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Game port, TCP and UDP.
    #[arg(long)]
    pub port: Option<u16>,
    /// Web port: API, pages, WebSocket, /metrics.
    #[arg(long)]
    pub web_port: Option<u16>,
    /// Where the database and the server key live.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1; 0.0.0.0 to serve other machines).
    #[arg(long)]
    pub bind: Option<std::net::IpAddr>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default: SQLite in the data directory).
    #[arg(long)]
    pub database_url: Option<String>,
    /// PEM certificate chain for TLS on the web port (https://, wss://); needs --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Join a cluster through this NATS server (nats://USER:PASSWORD@HOST:4222);
    /// needs a postgres:// --database-url shared by every node. A flag is seen
    /// by every user of the machine (ps): prefer HEARTH_CLUSTER or hearth.toml
    /// when the URL carries a password.
    #[arg(long, value_name = "NATS_URL")]
    pub cluster: Option<String>,
    /// This node's name in the cluster (default: the host's name).
    #[arg(long)]
    pub node: Option<String>,
}

impl ServerFlags {
    /// The settings, with these flags over the file and the environment.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(port) = self.web_port {
            config.web_port = port;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(url) = &self.database_url {
            config.database_url = url.clone();
        }
        if let Some(cert) = &self.tls_cert {
            config.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &self.tls_key {
            config.tls.key = Some(key.clone());
        }
        if let Some(url) = &self.cluster {
            config.cluster.nats = url.clone();
        }
        if let Some(node) = &self.node {
            config.cluster.node = node.clone();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_defaults() {
        let flags = ServerFlags {
            port: Some(9001),
            web_port: Some(9002),
            data_dir: Some("/tmp/hearth-flags".into()),
            bind: Some("0.0.0.0".parse().unwrap()),
            database_url: Some("sqlite:///tmp/x.db".into()),
            ..ServerFlags::default()
        };
        let config = flags.load().unwrap();
        assert_eq!((config.port, config.web_port), (9001, 9002));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/hearth-flags"));
        assert_eq!(config.bind.to_string(), "0.0.0.0");
        assert_eq!(config.database_url, "sqlite:///tmp/x.db");
    }
}
