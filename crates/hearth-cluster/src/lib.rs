//! Hearth on many machines.
//!
//! A cluster is Hearth nodes (each a whole `hearth serve`: gates, web port,
//! lines) sharing one PostgreSQL database for what must last and one NATS
//! server (with JetStream) for what moves. This crate holds the parts every
//! node uses to take part:
//!
//! - [`node`]: a node's id (name and incarnation) and the record it
//!   publishes about itself;
//! - [`presence`]: the list of live nodes, in a JetStream key-value bucket
//!   whose records lapse when a node stops writing them;
//! - [`leases`]: which node runs which line, as leases in PostgreSQL taken
//!   by compare-and-swap, each with a fencing epoch that every write made
//!   as the line's owner is checked against in the same transaction;
//! - [`lease_clock`]: when a holder renews and when it must stop, sans-IO.
//!
//! The design, and what happens on each failure, is in docs/CLUSTER.md.

pub mod lease_clock;
pub mod leases;
pub mod node;
pub mod presence;
pub mod test_servers;

pub use lease_clock::{LeaseClock, LeaseState};
pub use leases::{Fence, Lease, LeaseError, Leases};
pub use node::{NodeId, NodeInfo};
pub use presence::{nodes_bucket, Heartbeat, Presence};

/// A cluster's name: the nodes that share it are one cluster (its NATS
/// bucket names start with it). Letters, digits and '-', 1 to 32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn new(name: &str) -> Result<Self, ClusterError> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        match valid {
            true => Ok(Self(name.to_owned())),
            false => Err(ClusterError::BadName(name.chars().take(64).collect())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a node could not take part in its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the cluster's NATS server at {url}: {reason} (check --cluster, the server's address, and its credentials)")]
    Connect { url: String, reason: String },
    #[error("the cluster name {0:?} must be 1 to 32 letters, digits or '-' (set it with [cluster] name)")]
    BadName(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// Connects to the cluster's NATS server. The URL may carry a user and
/// password (`nats://user:pass@host:4222`); where the server needs TLS,
/// `tls://`.
pub async fn connect_nats(url: &str, node: &NodeId) -> Result<async_nats::Client, ClusterError> {
    let (address, credentials) = split_credentials(url);
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("hearth {node}"))
        .connection_timeout(std::time::Duration::from_secs(5))
        // A node that cannot reach its cluster at start says so and stops;
        // once connected, it reconnects for as long as it runs (its leases
        // lapse meanwhile, and it stops ticking those lines).
        .max_reconnects(None);
    if let Some((user, password)) = credentials {
        options = options.user_and_password(user, password);
    }
    options
        .connect(address.as_str())
        .await
        .map_err(|e| ClusterError::Connect {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// `scheme://user:pass@host` as (`scheme://host`, (user, pass)).
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            (
                format!("{}{host}", &url[..scheme_end + 3]),
                Some((user.to_owned(), password.to_owned())),
            )
        }
        None => (url.to_owned(), None),
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
