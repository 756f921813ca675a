//! Moving a line to another node (a drain): the node that held it saves
//! its state and hands its lease to the other in one transaction
//! ([`crate::LineSaves::hand_to`]), then tells that node over NATS which
//! line is now its, at which epoch; the other takes it up
//! ([`crate::LineSaves::adopt`]), restarts it from the save and answers.
//! Then the players follow, each handed over to that line.
//!
//! If the answer does not come (the other node died), the lease it was
//! handed lapses and any node restarts the line from the save; the players
//! handed to a dead node come back home, as for any hand-over.
//!
//! Requests are untrusted input: at most [`MAX_LINE_MESSAGE`] bytes of
//! JSON naming a line of this cluster's game; anything else is dropped and
//! counted. The lease itself is checked in the database: a request for a
//! line this node was not handed fails there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::NodeId;
use crate::requests::{self, Inbox, Request};
use crate::{ClusterError, ClusterName};

/// Largest line-move request or answer a node reads.
pub const MAX_LINE_MESSAGE: usize = 512;
/// Requests waiting for the server; beyond, new ones are dropped (the line
/// then lapses and restarts anywhere).
const QUEUE: usize = 64;

/// "Line `line` is yours, at `epoch`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineHanded {
    pub line: String,
    pub epoch: i64,
}

/// The answer: restarted there, or why not (at most 128 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineTaken {
    pub restarted: bool,
    #[serde(default)]
    pub refused: Option<String>,
}

/// A request as a node reads it; `None` for anything but a request of at
/// most [`MAX_LINE_MESSAGE`] bytes naming a line of at most
/// [`crate::leases::MAX_LINE_NAME`] bytes without control characters.
pub fn decode_request(payload: &[u8]) -> Option<LineHanded> {
    if payload.len() > MAX_LINE_MESSAGE {
        return None;
    }
    let handed: LineHanded = serde_json::from_slice(payload).ok()?;
    let sound = !handed.line.is_empty()
        && handed.line.len() <= crate::leases::MAX_LINE_NAME
        && !handed.line.chars().any(char::is_control)
        && handed.epoch > 0;
    sound.then_some(handed)
}

/// An answer as the asker reads it (the reason, if any, at most 128
/// characters, control characters dropped).
pub fn decode_answer(payload: &[u8]) -> Option<LineTaken> {
    if payload.len() > MAX_LINE_MESSAGE {
        return None;
    }
    let mut answer: LineTaken = serde_json::from_slice(payload).ok()?;
    answer.refused = requests::shown_reason(answer.refused);
    Some(answer)
}

fn subject(cluster: &ClusterName, node: &NodeId) -> String {
    format!("{}.node.{}.line", cluster.as_str(), node.as_str())
}

/// Tells `node` that line `handed.line` is its now; its answer, or why
/// none came within `timeout`.
pub async fn tell(
    client: &async_nats::Client,
    cluster: &ClusterName,
    node: &NodeId,
    handed: &LineHanded,
    timeout: Duration,
) -> Result<LineTaken, ClusterError> {
    let ask = serde_json::to_vec(handed).expect("serializes");
    requests::ask(
        client,
        subject(cluster, node),
        ask,
        node,
        "line",
        timeout,
        decode_answer,
    )
    .await
}

/// A line handed to this node, to take up; answer it with
/// [`LineRequest::answer`].
pub type LineRequest = Request<LineHanded>;

/// The lines handed to this node, decoded, and a count of those dropped.
pub type LineInbox = Inbox<LineHanded>;

impl LineRequest {
    pub async fn answer(self, answer: LineTaken) {
        let bytes = serde_json::to_vec(&answer).expect("serializes");
        self.answer_with(bytes, "line").await;
    }
}

/// Listens for lines handed to `me`.
pub async fn listen(
    client: &async_nats::Client,
    cluster: &ClusterName,
    me: &NodeId,
) -> Result<LineInbox, ClusterError> {
    requests::listen(client, subject(cluster, me), QUEUE, "line", decode_request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_and_junk_is_refused() {
        let handed = LineHanded {
            line: "c/world/meadow/3".into(),
            epoch: 7,
        };
        let bytes = serde_json::to_vec(&handed).unwrap();
        assert_eq!(decode_request(&bytes), Some(handed));
        for junk in [
            &b"{}"[..],
            br#"{"line":"","epoch":1}"#,
            br#"{"line":"a\u0007b","epoch":1}"#,
            br#"{"line":"a","epoch":0}"#,
            br#"{"line":"a","epoch":1,"more":1}"#,
        ] {
            assert_eq!(
                decode_request(junk),
                None,
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
        let long = format!(r#"{{"line":"{}","epoch":1}}"#, "x".repeat(200));
        assert_eq!(decode_request(long.as_bytes()), None);
        let answer = LineTaken {
            restarted: false,
            refused: Some(format!("draining\u{1b}[2J{}", "!".repeat(300))),
        };
        let read = decode_answer(&serde_json::to_vec(&answer).unwrap()).unwrap();
        let reason = read.refused.unwrap();
        assert!(!reason.contains('\u{1b}') && reason.chars().count() == 128);
    }
}
