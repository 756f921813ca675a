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
//! - [`line_saves`]: lines held under leases with cluster-wide names, their
//!   state saved under the lease's epoch and restarted from it elsewhere
//!   when their node dies;
//! - [`lease_clock`]: when a holder renews and when it must stop, sans-IO;
//! - [`claims`] and [`release`]: which node each account plays on (one at
//!   a time, cluster-wide), with an epoch that fences the player's saves,
//!   and the request that asks the old node to let go;
//! - [`address_budgets`]: per-address rate limits that hold across nodes;
//! - [`forward`] and [`forward_wire`]: players who play in a zone
//!   another node runs (their session stays home);
//! - [`relay`] and [`relay_wire`]: players' messages across nodes (a
//!   zone's messages, messages by name, announcements).
//!
//! The design, and what happens on each failure, is in docs/CLUSTER.md.

pub mod address_budgets;
pub mod claims;
pub mod drain;
pub mod forward;
pub mod forward_wire;
pub mod lease_clock;
pub mod leases;
pub mod line_moves;
pub mod line_saves;
pub mod node;
pub mod presence;
pub mod relay;
pub mod relay_wire;
pub mod release;
pub mod requests;
pub mod test_servers;
pub mod wire;

/// The NATS client the cluster is reached with.
pub use async_nats;
pub use claims::{ClaimError, Claims};
pub use lease_clock::{LeaseClock, LeaseState};
pub use leases::{Fence, Lease, LeaseError, Leases};
pub use line_saves::{LineSaves, SavedLine};
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

/// Connects to the cluster's NATS server. The URL names its scheme
/// (`nats://`, or `tls://` where the server needs TLS) and may carry a user
/// and password (`nats://user:pass@host:4222`) or a token
/// (`nats://TOKEN@host:4222`).
pub async fn connect_nats(url: &str, node: &NodeId) -> Result<async_nats::Client, ClusterError> {
    let refuse = |reason: String| ClusterError::Connect {
        url: redact(url),
        reason,
    };
    let (address, credentials) = split_credentials(url)
        .ok_or_else(|| refuse("the URL must start with nats:// or tls://".to_owned()))?;
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("hearth {node}"))
        .connection_timeout(std::time::Duration::from_secs(5))
        // A node that cannot reach its cluster at start says so and stops;
        // once connected, it reconnects for as long as it runs (its leases
        // lapse meanwhile, and it stops ticking those lines).
        .max_reconnects(None);
    options = match credentials {
        Some((user, Some(password))) => options.user_and_password(user, password),
        Some((token, None)) => options.token(token),
        None => options,
    };
    options
        .connect(address.as_str())
        .await
        .map_err(|e| refuse(e.to_string()))
}

/// How a node proves itself to NATS: a user and password, or a token
/// (`None` for the password).
type Credentials = (String, Option<String>);

/// `scheme://user:pass@host` as (`scheme://host`, (user, pass)), or
/// `scheme://token@host` as (`scheme://host`, (token, None)); `None` for
/// a URL without a scheme.
fn split_credentials(url: &str) -> Option<(String, Option<Credentials>)> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !matches!(scheme, "nats" | "tls") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    Some(match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let credentials = match credentials.split_once(':') {
                Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
                None => (credentials.to_owned(), None),
            };
            (format!("{scheme}://{host}"), Some(credentials))
        }
        None => (url.to_owned(), None),
    })
}

/// `url` with whatever comes before its `@` (a user and password, a token)
/// hidden, for messages.
pub fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.find("://").map_or("", |at| &before[..at + 3]);
            format!("{scheme}***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_url_and_never_shown() {
        assert_eq!(
            split_credentials("nats://u:p@h:4222"),
            Some((
                "nats://h:4222".to_owned(),
                Some(("u".to_owned(), Some("p".to_owned())))
            ))
        );
        assert_eq!(
            split_credentials("tls://secret@h:4222"),
            Some(("tls://h:4222".to_owned(), Some(("secret".to_owned(), None))))
        );
        assert_eq!(split_credentials("u:p@h:4222"), None, "no scheme");
        assert_eq!(split_credentials("http://u:p@h"), None);
        assert_eq!(redact("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact("nats://secret@h"), "nats://***@h");
        assert_eq!(redact("u:secret@h:4222"), "***@h:4222");
        assert_eq!(redact("nats://a@b:c@h"), "nats://***@h");
        assert_eq!(redact("nats://h:4222"), "nats://h:4222");
    }
}
