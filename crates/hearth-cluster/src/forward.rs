//! Players who play in a zone another node runs: their home node (which
//! holds their session) and the zone's node talk over NATS, one subject per
//! node (`NAME.node.NODE_ID.players`), in [`forward_wire`] messages. One
//! connection publishes everything a node sends, so what one node sends
//! another arrives in the order it was sent (a player's messages, and
//! their arrival before their input).
//!
//! As in [`crate::relay`], only a publisher task waits on NATS; every queue
//! is bounded (entries, each at most [`MAX_FORWARD_MESSAGE`] bytes); what
//! does not decode, comes from another version of the game or finds its
//! queue full is dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::forward_wire::{self, Envelope, Forwarded, MAX_FORWARD_MESSAGE};
use crate::{ClusterError, ClusterName, NodeId, NodeInfo};

/// Messages waiting each way (and to be published), each at most
/// [`MAX_FORWARD_MESSAGE`] bytes.
pub const FORWARD_QUEUE: usize = 1024;

/// Counters of a node's forwarding, for `/metrics` and `/admin`.
#[derive(Debug, Default, Serialize)]
pub struct ForwardCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    /// From a node running another version of the game.
    pub foreign: AtomicU64,
    /// For want of room in a queue, too large, or for a node not known.
    pub dropped: AtomicU64,
}

/// A forwarded message from another node, for the game host.
#[derive(Debug)]
pub struct ForwardIn {
    /// The sending node's id.
    pub from: String,
    /// The home node's id for the player.
    pub player: u64,
    pub forwarded: Forwarded,
}

/// The game host's side of forwarding (clones share it). Stops when the
/// last is dropped.
#[derive(Clone)]
pub struct Forwarder {
    outgoing: mpsc::Sender<(String, Bytes)>,
    me: String,
    schema: String,
    cluster: ClusterName,
    /// The live nodes, refreshed by the server from the list of nodes
    /// ([`set_nodes`]).
    nodes: Arc<RwLock<LiveNodes>>,
    pub counters: Arc<ForwardCounters>,
}

/// The live nodes as the list of nodes last showed them.
#[derive(Debug, Default)]
pub struct LiveNodes {
    /// Every live node's id (this one's too) by node name: where a player
    /// handed to a node by name goes.
    pub ids: HashMap<String, String>,
    /// The other nodes' records (their load, the room in their lines), for
    /// placement.
    pub others: Vec<NodeInfo>,
    /// Counts the refreshes: a reader that kept the last one it used can
    /// tell a new list without comparing it.
    pub generation: u64,
}

impl Forwarder {
    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The id of the live node named `name` (a zone's pinned node), if the
    /// list of nodes has one.
    pub fn node_named(&self, name: &str) -> Option<String> {
        self.nodes
            .read()
            .expect("never poisoned")
            .ids
            .get(name)
            .cloned()
    }

    /// A handle to update the list of live nodes from.
    pub fn nodes(&self) -> Arc<RwLock<LiveNodes>> {
        self.nodes.clone()
    }

    /// The ids of the live nodes; `None` while the list is not known (it
    /// does not even hold this node yet).
    pub fn live_ids(&self) -> Option<std::collections::HashSet<String>> {
        let nodes = self.nodes.read().expect("never poisoned");
        let live: std::collections::HashSet<String> = nodes.ids.values().cloned().collect();
        live.contains(&self.me).then_some(live)
    }

    /// The other live nodes' records, if the list changed since
    /// `generation` (which is then moved on).
    pub fn others_since(&self, generation: &mut u64) -> Option<Vec<NodeInfo>> {
        let nodes = self.nodes.read().expect("never poisoned");
        (nodes.generation != *generation).then(|| {
            *generation = nodes.generation;
            nodes.others.clone()
        })
    }

    /// Sends `forwarded` about `player` to node `to` without waiting;
    /// false (dropped and counted) when it cannot be encoded or the queue
    /// is full.
    pub fn send(&self, to: &str, player: u64, forwarded: Forwarded) -> bool {
        // Clients' traffic leaves the last quarter of the queue to what
        // moves players and their data (arrivals, leaves, saves, closes,
        // departures): a flood of input cannot crowd out a last save. One
        // queue, so a player's messages stay in order.
        let traffic = matches!(forwarded, Forwarded::Input { .. } | Forwarded::Send { .. });
        if traffic && self.outgoing.capacity() < FORWARD_QUEUE / 4 {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let envelope = Envelope {
            origin: self.me.clone(),
            schema: self.schema.clone(),
            player,
            forwarded,
        };
        let queued = match forward_wire::encode(&envelope) {
            Ok(bytes) => self
                .outgoing
                .try_send((players_subject(&self.cluster, to, &self.me), bytes.into()))
                .is_ok(),
            Err(error) => {
                tracing::warn!(%error, "a player's message was not forwarded");
                false
            }
        };
        if !queued {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }
}

/// Replaces the list of live nodes with `members` (every live node's
/// record, `me`'s included).
pub fn set_nodes(nodes: &RwLock<LiveNodes>, me: &NodeId, members: Vec<NodeInfo>) {
    // A name held by two ids is a node restarted within three heartbeats:
    // its newest run is the live one (this node's own name is this run).
    let mut newest: HashMap<String, NodeInfo> = HashMap::new();
    for node in members {
        let name = node.id.name().to_owned();
        let newer = node.id == *me
            || newest
                .get(&name)
                .is_none_or(|kept| kept.id != *me && kept.started_ms <= node.started_ms);
        if newer {
            newest.insert(name, node);
        }
    }
    let ids = newest
        .iter()
        .map(|(name, node)| (name.clone(), node.id.to_string()))
        .collect();
    let others = newest
        .into_values()
        .filter(|node| node.id.name() != me.name())
        .collect();
    let mut nodes = nodes.write().expect("never poisoned");
    let generation = nodes.generation.wrapping_add(1);
    *nodes = LiveNodes {
        ids,
        others,
        generation,
    };
}

/// What was queued at once, as NATS messages: per destination, in the
/// order queued, runs of up to [`forward_wire::MAX_BATCH_MESSAGES`] in one
/// batch of at most [`forward_wire::MAX_FORWARD_BATCH`] bytes (a lone
/// message goes as it is), with how many messages each carries. A node's
/// messages to another stay in order; a step's worth for one node costs
/// NATS one message, not one per player and message.
fn batches(queued: &mut Vec<(String, Bytes)>) -> Vec<(String, Bytes, u64)> {
    let mut by_subject: Vec<(String, Vec<Bytes>)> = Vec::new();
    for (subject, payload) in queued.drain(..) {
        match by_subject.iter_mut().find(|(s, _)| *s == subject) {
            Some((_, list)) => list.push(payload),
            None => by_subject.push((subject, vec![payload])),
        }
    }
    let mut out = Vec::new();
    for (subject, list) in by_subject {
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_bytes = 2 + 3;
        let mut flush = |run: &mut Vec<Bytes>| match run.len() {
            0 => {}
            1 => out.push((subject.clone(), run.pop().expect("one"), 1)),
            n => {
                let batch = forward_wire::encode_batch(run.iter().map(|b| &b[..]));
                out.push((subject.clone(), batch.into(), n as u64));
                run.clear();
            }
        };
        for payload in list {
            let adds = forward_wire::batched_len(&payload);
            if run.len() == forward_wire::MAX_BATCH_MESSAGES
                || run_bytes + adds > forward_wire::MAX_FORWARD_BATCH
            {
                flush(&mut run);
                run_bytes = 2 + 3;
            }
            run_bytes += adds;
            run.push(payload);
        }
        flush(&mut run);
    }
    out
}

/// Messages about players for node `to`, from node `from`: the sender is
/// in the subject (where NATS permissions can hold a node to its own), and
/// must match the one the message names.
fn players_subject(cluster: &ClusterName, to: &str, from: &str) -> String {
    format!("{}.node.{to}.players.{from}", cluster.as_str())
}

/// How long the publisher gathers more messages after one arrives, unless
/// [`GATHER_ENOUGH`] are already waiting: it adds at most this to a
/// forwarded message's way, and saves a NATS message per client input.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// Messages waiting that make a batch without gathering more.
pub const GATHER_ENOUGH: usize = 64;

/// Starts `me`'s forwarding: its subscription is on the server before this
/// returns. `schema`: the game's schema version.
pub async fn start(
    client: &async_nats::Client,
    cluster: &ClusterName,
    me: &NodeId,
    schema: &str,
) -> Result<(Forwarder, mpsc::Receiver<ForwardIn>), ClusterError> {
    let mut subscription = client
        .subscribe(players_subject(cluster, me.as_str(), "*"))
        .await
        .map_err(|e| {
            ClusterError::Nats(format!("cannot listen for players from other nodes: {e}"))
        })?;
    client.flush().await.map_err(|e| {
        ClusterError::Nats(format!("cannot listen for players from other nodes: {e}"))
    })?;
    let counters = Arc::new(ForwardCounters::default());
    let (incoming_tx, incoming) = mpsc::channel(FORWARD_QUEUE);
    let (outgoing, mut publishing) = mpsc::channel::<(String, Bytes)>(FORWARD_QUEUE);
    let (me_id, schema_owned) = (me.as_str().to_owned(), schema.to_owned());
    let counted = counters.clone();
    let receiving = tokio::spawn(async move {
        let mut warned = false;
        while let Some(message) = subscription.next().await {
            let items = match forward_wire::split_batch(&message.payload) {
                Ok(items) => items,
                Err(error) => {
                    counted.malformed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, "a malformed batch of messages about players was dropped");
                    continue;
                }
            };
            for item in items {
                if item.len() > MAX_FORWARD_MESSAGE {
                    counted.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let envelope = match forward_wire::decode(item) {
                    Ok(envelope)
                        if message.subject.rsplit('.').next() == Some(envelope.origin.as_str()) =>
                    {
                        envelope
                    }
                    Ok(_) => {
                        counted.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                        "a message about a player named another sender than its subject: dropped"
                    );
                        continue;
                    }
                    Err(error) => {
                        counted.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%error, "a malformed message about a player was dropped");
                        continue;
                    }
                };
                if envelope.schema != schema_owned {
                    counted.foreign.fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(node = %envelope.origin, "a node of the cluster runs another version of the game: its players are not taken here");
                    }
                    continue;
                }
                let incoming = ForwardIn {
                    from: envelope.origin,
                    player: envelope.player,
                    forwarded: envelope.forwarded,
                };
                match incoming_tx.try_send(incoming) {
                    Ok(()) => counted.received.fetch_add(1, Ordering::Relaxed),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        counted.dropped.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                };
            }
        }
    });
    let (client, counted) = (client.clone(), counters.clone());
    tokio::spawn(async move {
        let mut queued = Vec::new();
        while publishing.recv_many(&mut queued, FORWARD_QUEUE).await > 0 {
            // A moment more for what follows: clients' inputs come one by
            // one, and a lone message costs NATS and both nodes as much as
            // a batch of them. (A step's frames come together anyway.)
            if queued.len() < GATHER_ENOUGH {
                tokio::time::sleep(GATHER).await;
                while queued.len() < FORWARD_QUEUE {
                    match publishing.try_recv() {
                        Ok(message) => queued.push(message),
                        Err(_) => break,
                    }
                }
            }
            for (subject, payload, count) in batches(&mut queued) {
                match client.publish(subject, payload).await {
                    Ok(()) => counted.sent.fetch_add(count, Ordering::Relaxed),
                    Err(_) => counted.dropped.fetch_add(count, Ordering::Relaxed),
                };
            }
        }
        // The host is gone: stop listening too.
        receiving.abort();
    });
    Ok((
        Forwarder {
            outgoing,
            me: me_id,
            schema: schema.to_owned(),
            cluster: cluster.clone(),
            nodes: Arc::new(RwLock::new(LiveNodes::default())),
            counters,
        },
        incoming,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &NodeId, started_ms: u64) -> NodeInfo {
        NodeInfo {
            id: id.clone(),
            game_addr: "127.0.0.1:7777".into(),
            web_addr: "127.0.0.1:8080".into(),
            started_ms,
            sessions: 0,
            lines: 0,
            tick_p99_us: 0,
            line_list: Vec::new(),
            players: 0,
            room: Vec::new(),
            draining: false,
            placement: true,
        }
    }

    #[test]
    fn what_is_queued_at_once_goes_in_batches_per_node_in_order() {
        let message = |n: u16| {
            let envelope = Envelope {
                origin: "a_0123456789ab".into(),
                schema: "s".into(),
                player: 1,
                forwarded: Forwarded::Input {
                    channel: n,
                    bytes: vec![1, 2, 3],
                },
            };
            Bytes::from(forward_wire::encode(&envelope).unwrap())
        };
        let mut queued = Vec::new();
        for n in 0..300 {
            queued.push(("to-b".to_owned(), message(n)));
            if n == 7 {
                queued.push(("to-c".to_owned(), message(1000)));
            }
        }
        let sent = batches(&mut queued);
        assert!(queued.is_empty());
        // b's 300 in order: a batch of 256, then one of 44; c's one alone.
        let counts: Vec<(&str, u64)> = sent.iter().map(|(s, _, n)| (s.as_str(), *n)).collect();
        assert_eq!(counts, [("to-b", 256), ("to-b", 44), ("to-c", 1)]);
        let mut channels = Vec::new();
        for (_, payload, _) in &sent[..2] {
            for item in forward_wire::split_batch(payload).unwrap() {
                match forward_wire::decode(item).unwrap().forwarded {
                    Forwarded::Input { channel, .. } => channels.push(channel),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(channels, (0..300).collect::<Vec<u16>>());
        assert_eq!(sent[2].1, message(1000), "a lone message goes as it is");
    }

    #[test]
    fn a_name_held_by_two_runs_is_its_newest_and_this_nodes_old_run_is_not_another_node() {
        let me = NodeId::new("a").unwrap();
        let my_last_run = NodeId::new("a").unwrap();
        let (b_old, b_new) = (NodeId::new("b").unwrap(), NodeId::new("b").unwrap());
        let nodes = RwLock::new(LiveNodes::default());
        set_nodes(
            &nodes,
            &me,
            vec![
                record(&my_last_run, 50),
                record(&me, 10),
                record(&b_new, 30),
                record(&b_old, 20),
            ],
        );
        let live = nodes.read().unwrap();
        assert_eq!(
            live.ids["a"],
            me.to_string(),
            "this run, whatever the clock says"
        );
        assert_eq!(live.ids["b"], b_new.to_string());
        let others: Vec<&NodeId> = live.others.iter().map(|n| &n.id).collect();
        assert_eq!(others, [&b_new]);
        assert_eq!(live.generation, 1);
    }
}
