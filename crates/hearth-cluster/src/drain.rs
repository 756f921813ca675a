//! Draining a node (`hearth admin drain NODE`): the operator's tool, or any
//! program with the cluster's NATS credentials, asks a node over NATS to
//! hand every player in its lines to the other nodes and to take no more
//! (it opens no line and takes no visitor until it is undrained or
//! restarts). The node answers at once with the players it has to move,
//! or why it will not drain (a node that does not place players by load);
//! the asker follows the drain in the node's record (its `players` fall to
//! 0).
//!
//! Requests are untrusted input: at most [`MAX_DRAIN_MESSAGE`] bytes of
//! JSON; anything else is dropped and counted. Who may send one is who may
//! publish on the cluster's subjects: NATS's credentials (per-node
//! permissions are in docs/CLUSTER.md's plan).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::requests::{self, Inbox, Request};
use crate::{ClusterError, ClusterName};

/// Largest drain request or answer a node reads.
pub const MAX_DRAIN_MESSAGE: usize = 256;
/// Requests waiting for the server; beyond, new ones are dropped (a drain
/// is idempotent: the asker asks again).
const QUEUE: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    /// Who asked, for the node's log (at most 64 characters shown).
    by: String,
    /// Stop draining instead.
    #[serde(default)]
    undo: bool,
}

/// A node's answer to a drain request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainAnswer {
    /// Players in its lines when it began (it hands them on over the next
    /// steps).
    pub players: u64,
    /// Why it will not drain, if it will not (at most 128 characters).
    #[serde(default)]
    pub refused: Option<String>,
}

/// A drain request as a node reads it: who asked (at most 64 characters,
/// control characters dropped) and whether to stop draining; `None` for
/// anything but a request of at most [`MAX_DRAIN_MESSAGE`] bytes.
pub fn decode_request(payload: &[u8]) -> Option<(String, bool)> {
    if payload.len() > MAX_DRAIN_MESSAGE {
        return None;
    }
    let Ask { by, undo } = serde_json::from_slice(payload).ok()?;
    let by = by.chars().filter(|c| !c.is_control()).take(64).collect();
    Some((by, undo))
}

/// A node's answer as the asker reads it (the reason, if any, at most 128
/// characters, control characters dropped).
pub fn decode_answer(payload: &[u8]) -> Option<DrainAnswer> {
    if payload.len() > MAX_DRAIN_MESSAGE {
        return None;
    }
    let mut answer: DrainAnswer = serde_json::from_slice(payload).ok()?;
    answer.refused = requests::shown_reason(answer.refused);
    Some(answer)
}

fn subject(cluster: &ClusterName, node: &NodeId) -> String {
    format!("{}.node.{}.drain", cluster.as_str(), node.as_str())
}

/// Asks `node` to drain (`undo`: to stop), saying `by` asked; its answer,
/// or why none came.
pub async fn ask(
    client: &async_nats::Client,
    cluster: &ClusterName,
    node: &NodeId,
    by: &str,
    undo: bool,
    timeout: Duration,
) -> Result<DrainAnswer, ClusterError> {
    let ask = serde_json::to_vec(&Ask {
        by: by.chars().take(64).collect(),
        undo,
    })
    .expect("serializes");
    requests::ask(
        client,
        subject(cluster, node),
        ask,
        node,
        "drain",
        timeout,
        decode_answer,
    )
    .await
}

/// A drain request for the server to carry out: who asked (as they said,
/// for the log only) and whether to stop draining; answer it with
/// [`DrainRequest::answer`].
pub type DrainRequest = Request<(String, bool)>;

/// The drain requests addressed to this node, decoded, and a count of
/// those dropped.
pub type DrainInbox = Inbox<(String, bool)>;

impl DrainRequest {
    pub async fn answer(self, answer: DrainAnswer) {
        let bytes = serde_json::to_vec(&answer).expect("serializes");
        self.answer_with(bytes, "drain").await;
    }
}

/// Listens for drain requests addressed to `me`.
pub async fn listen(
    client: &async_nats::Client,
    cluster: &ClusterName,
    me: &NodeId,
) -> Result<DrainInbox, ClusterError> {
    requests::listen(client, subject(cluster, me), QUEUE, "drain", decode_request).await
}
