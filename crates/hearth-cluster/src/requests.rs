//! A node's inbox of requests addressed to it over NATS (let go of an
//! account, drain): each decoded by its kind's own parser (untrusted input,
//! bounded), queued (bounded), and answered by the server. What does not
//! decode, or finds the queue full, is dropped and counted; the asker then
//! hears nothing and acts on its own timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ClusterError;

/// A request for the server to carry out, and where its answer goes.
pub struct Request<T> {
    /// What was asked, decoded.
    pub ask: T,
    reply: Option<async_nats::Subject>,
    client: async_nats::Client,
}

impl<T> Request<T> {
    /// Sends `answer` to the asker (nothing, if it asked for no answer).
    pub async fn answer_with(self, answer: Vec<u8>, what: &str) {
        if let Some(reply) = self.reply {
            if let Err(e) = self.client.publish(reply, answer.into()).await {
                tracing::warn!("answering a {what} request: {e}");
            }
        }
    }
}

/// The requests addressed to this node, decoded, and a count of those
/// dropped. Stops listening when dropped.
pub struct Inbox<T> {
    pub requests: mpsc::Receiver<Request<T>>,
    pub dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `subject`: each message decoded by `parse`, at most `queue`
/// waiting for the server. `what` names the kind in logs and errors.
pub async fn listen<T: Send + 'static>(
    client: &async_nats::Client,
    subject: String,
    queue: usize,
    what: &'static str,
    parse: fn(&[u8]) -> Option<T>,
) -> Result<Inbox<T>, ClusterError> {
    let mut subscription = client
        .subscribe(subject)
        .await
        .map_err(|e| ClusterError::Nats(format!("cannot listen for {what} requests: {e}")))?;
    let (tx, requests) = mpsc::channel(queue);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    let client = client.clone();
    let task = tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            let Some(ask) = parse(&message.payload) else {
                counted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("a malformed {what} request was dropped");
                continue;
            };
            let request = Request {
                ask,
                reply: message.reply,
                client: client.clone(),
            };
            match tx.try_send(request) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    });
    Ok(Inbox {
        requests,
        dropped,
        task,
    })
}

/// A refusal's reason as the asker shows it: control characters dropped,
/// at most 128 characters.
pub fn shown_reason(reason: Option<String>) -> Option<String> {
    reason.map(|reason| {
        reason
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect()
    })
}

/// Asks `node` (on `subject`) with `payload` and reads its answer with
/// `decode`: the answer, or why none came within `timeout`. `what` names
/// the kind in errors.
pub async fn ask<T>(
    client: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
    node: &crate::NodeId,
    what: &str,
    timeout: std::time::Duration,
    decode: fn(&[u8]) -> Option<T>,
) -> Result<T, ClusterError> {
    let request = client.request(subject, payload.into());
    let message = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| {
            ClusterError::Nats(format!(
                "node {node} did not answer the {what} request in {timeout:?}"
            ))
        })?
        .map_err(|e| {
            ClusterError::Nats(format!("node {node} did not take the {what} request: {e}"))
        })?;
    decode(&message.payload).ok_or_else(|| {
        ClusterError::Nats(format!(
            "node {node} answered the {what} request with something else"
        ))
    })
}
