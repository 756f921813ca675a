//! Asking the node an account plays on to let go of it: a login on another
//! node sends it a request over NATS; that node ends the account's
//! session, waits until its last save is written, and answers. The new
//! node then claims the account ([`crate::claims`]) and reads the player's
//! data, which is the data the old node saved. A node that does not answer
//! in time (dead, frozen, cut off) is passed over: its claim is taken, and
//! whatever it writes later is refused.
//!
//! Requests are untrusted input: at most [`MAX_RELEASE_MESSAGE`] bytes of
//! JSON naming one account; anything else is dropped and counted.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::requests::{self, Inbox, Request};
use crate::{ClusterError, ClusterName};

/// Largest release request or answer a node reads.
pub const MAX_RELEASE_MESSAGE: usize = 256;
/// Requests waiting for the server to handle them; beyond, new ones are
/// dropped (the asking node then passes over this one after its timeout).
const QUEUE: usize = 1024;

/// What a release request asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The account to let go of.
    pub account: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    released: bool,
}

/// What came of asking a node to let go of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// It ended the account's session and saved it.
    Released,
    /// It had no session of the account.
    NotThere,
    /// No answer in time, or no such node listening: passed over.
    NoAnswer,
}

fn subject(cluster: &ClusterName, node: &NodeId) -> String {
    format!("{}.node.{}.release", cluster.as_str(), node.as_str())
}

/// Asks `holder` to let go of `account`, waiting at most `timeout`.
pub async fn ask(
    client: &async_nats::Client,
    cluster: &ClusterName,
    holder: &NodeId,
    account: i64,
    timeout: Duration,
) -> Release {
    let ask = serde_json::to_vec(&Ask { account }).expect("serializes");
    let request = client.request(subject(cluster, holder), ask.into());
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(message)) if message.payload.len() <= MAX_RELEASE_MESSAGE => {
            match serde_json::from_slice::<Answer>(&message.payload) {
                Ok(Answer { released: true }) => Release::Released,
                Ok(Answer { released: false }) => Release::NotThere,
                Err(_) => Release::NoAnswer,
            }
        }
        _ => Release::NoAnswer,
    }
}

/// A request to let go of an account, for the server to carry out; answer
/// it with [`ReleaseRequest::answer`] (dropping it unanswered leaves the
/// asking node to pass over this one).
pub type ReleaseRequest = Request<Ask>;

/// The requests other nodes send this one, decoded; and a count of those
/// dropped as malformed or for want of room.
pub type ReleaseInbox = Inbox<Ask>;

impl ReleaseRequest {
    pub async fn answer(self, released: bool) {
        let answer = serde_json::to_vec(&Answer { released }).expect("serializes");
        self.answer_with(answer, "release").await;
    }
}

/// A release request as a node reads it: at most [`MAX_RELEASE_MESSAGE`]
/// bytes of JSON naming one account.
fn parse(payload: &[u8]) -> Option<Ask> {
    (payload.len() <= MAX_RELEASE_MESSAGE)
        .then(|| serde_json::from_slice(payload).ok())
        .flatten()
}

/// Listens for release requests addressed to `me`.
pub async fn listen(
    client: &async_nats::Client,
    cluster: &ClusterName,
    me: &NodeId,
) -> Result<ReleaseInbox, ClusterError> {
    requests::listen(client, subject(cluster, me), QUEUE, "release", parse).await
}
