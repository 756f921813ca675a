//! Which nodes are in the cluster: each publishes its record ([`NodeInfo`])
//! to a JetStream key-value bucket about once a second, under its own id;
//! the bucket forgets a record three periods after it was last written, so
//! a node that died leaves the list by itself. Reading the bucket gives
//! every node the same picture (placement, `/admin`).
//!
//! Every record read is untrusted input: a record that does not decode, or
//! is filed under another node's key, is dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::node::{NodeId, NodeInfo};
use crate::{ClusterError, ClusterName};

/// The bucket the nodes of cluster `cluster` write their records to.
/// Several clusters (staging and production, parallel tests) may share one
/// NATS server under different names.
pub fn nodes_bucket(cluster: &str) -> String {
    format!("{cluster}_nodes")
}
/// Records a node reads at most when it lists the cluster (a bucket filled
/// by a misbehaving client of the same NATS account cannot make a node
/// read without end).
pub const MAX_NODES: usize = 1024;

/// The cluster's list of nodes, as one node reads and writes it.
#[derive(Clone)]
pub struct Presence {
    kv: kv::Store,
    period: Duration,
    /// Records dropped as malformed or forged, since this handle was made.
    dropped: Arc<AtomicU64>,
}

impl Presence {
    /// Opens the nodes bucket of `cluster` (creating it if this is the
    /// first node); records are forgotten `3 * period` after their last
    /// write (the first node's period decides, for the bucket's life).
    pub async fn open(
        client: &async_nats::Client,
        cluster: &ClusterName,
        period: Duration,
    ) -> Result<Self, ClusterError> {
        let js = jetstream::new(client.clone());
        let bucket = nodes_bucket(cluster.as_str());
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => {
                // The first node's period decides for the bucket's life.
                if let Ok(status) = kv.status().await {
                    if status.max_age() != period * 3 {
                        tracing::warn!(
                            "the cluster's nodes bucket forgets records after {:?}, and this node writes its record every {period:?}: set the same heartbeat_ms on every node",
                            status.max_age()
                        );
                    }
                }
                kv
            }
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket,
                    description: "Hearth: the nodes of this cluster, each record rewritten about once a second".to_owned(),
                    history: 1,
                    max_age: period * 3,
                    max_value_size: crate::node::MAX_NODE_RECORD as i32,
                    ..Default::default()
                })
                .await
                .map_err(|e| ClusterError::Nats(format!("cannot create the nodes bucket: {e}")))?,
        };
        Ok(Self {
            kv,
            period,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Writes this node's record.
    pub async fn publish(&self, info: &NodeInfo) -> Result<(), ClusterError> {
        self.kv
            .put(info.id.as_str(), info.to_bytes().into())
            .await
            .map_err(|e| ClusterError::Nats(format!("cannot publish this node's record: {e}")))?;
        Ok(())
    }

    /// Removes this node's record (a graceful stop): the others see it go
    /// at once instead of when the record lapses.
    pub async fn leave(&self, id: &NodeId) -> Result<(), ClusterError> {
        self.kv
            .purge(id.as_str())
            .await
            .map_err(|e| ClusterError::Nats(format!("cannot remove this node's record: {e}")))?;
        Ok(())
    }

    /// Every node whose record is current, sorted by id.
    pub async fn members(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let nats =
            |e: &dyn std::fmt::Display| ClusterError::Nats(format!("cannot list the nodes: {e}"));
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| nats(&e))?
            .take(MAX_NODES)
            .try_collect()
            .await
            .map_err(|e| nats(&e))?;
        let mut nodes = Vec::with_capacity(keys.len());
        for key in keys {
            if NodeId::parse(&key).is_none() {
                // Not a node's key: not even read.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(bytes) = self.kv.get(&key).await.map_err(|e| nats(&e))? else {
                continue; // Purged since it was listed.
            };
            match NodeInfo::from_bytes(&bytes) {
                Some(info) if info.id.as_str() == key => nodes.push(info),
                _ => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key = %key.escape_debug(), "a malformed or forged node record was dropped");
                }
            }
        }
        nodes.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(nodes)
    }

    /// Records dropped as malformed or forged by this handle's reads.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// How often a node rewrites its record.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Rewrites the latest record `info` holds every period until the
    /// returned [`Heartbeat`] is dropped or stopped. A failed write is
    /// logged and tried again next period (NATS reconnects by itself).
    pub fn heartbeat(&self, mut info: watch::Receiver<NodeInfo>) -> Heartbeat {
        let presence = self.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(presence.period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let record = info.borrow_and_update().clone();
                if let Err(e) = presence.publish(&record).await {
                    tracing::warn!("{e}");
                }
            }
        });
        Heartbeat { task }
    }
}

/// The task that keeps a node's record fresh; stops when dropped.
pub struct Heartbeat {
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Stops rewriting the record (before [`Presence::leave`], which would
    /// otherwise be undone by the next write).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
