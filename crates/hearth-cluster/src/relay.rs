//! Players across nodes: a zone's messages reach the lines of the zone on
//! every node, a message for a player by name reaches the node they play
//! on, and an administrator's announcement reaches every line, over NATS.
//!
//! - Zone messages and announcements go to one subject every node listens
//!   on (`NAME.relay.all`); a node drops its own.
//! - A node listens on one subject per player name it has
//!   (`NAME.relay.player.KEY`, KEY a hash of the name as accounts compare
//!   names), so NATS itself routes a message by name to the node that has
//!   the player, and answers "no responders" at once when no node has them.
//!   The node that has them answers [`DELIVERED`]; a message nobody took
//!   within [`NAMED_WAIT`] comes back to the sender's line as undelivered.
//! - Messages by name are published in the order the game sent them (the
//!   answers are matched to them by a number in the reply subject), so two
//!   whispers to a player on another node arrive in order.
//!
//! Everything received is decoded as untrusted input ([`relay_wire`]) and
//! every queue is bounded: what does not decode, was encoded for another
//! version of the game, or finds its queue full is dropped and counted in
//! [`RelayCounters`]; nothing here waits on the game host.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Message, StatusCode, Subject};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::relay_wire::{self, Envelope, Relayed, DELIVERED, NOT_HERE};
use crate::{ClusterError, ClusterName, NodeId};

/// How long a message by name waits for the node that has the player to
/// take it; then the sender hears it was not delivered.
pub const NAMED_WAIT: Duration = Duration::from_secs(2);
/// Messages by name waiting for their answer at once; beyond, a new one is
/// refused as undelivered at once.
pub const MAX_PENDING_NAMED: usize = 4096;
/// What the game host sends out, and what other nodes sent in, waiting to
/// be carried out (each way).
pub const RELAY_QUEUE: usize = 4096;

/// Counters of a node's relay, for `/metrics` and `/admin`.
#[derive(Debug, Default, Serialize)]
pub struct RelayCounters {
    /// Messages published to other nodes.
    pub sent: AtomicU64,
    /// Messages from other nodes handed to the game host.
    pub received: AtomicU64,
    /// Messages from other nodes that did not decode, or came on the wrong
    /// subject: dropped.
    pub malformed: AtomicU64,
    /// Messages from nodes running another version of the game: dropped.
    pub foreign: AtomicU64,
    /// Messages dropped for want of room in a queue (either way), or too
    /// large to relay.
    pub dropped: AtomicU64,
    /// Messages by name no node took (the player is not online, or did not
    /// answer in time).
    pub undelivered: AtomicU64,
}

/// What the game host asks the relay to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A zone's message, for the zone's lines on the other nodes.
    Zone {
        zone: String,
        message: u16,
        body: Vec<u8>,
    },
    /// A message from `sender` for the player named `name` on another node.
    Named {
        sender: u64,
        name: String,
        message: u16,
        body: Vec<u8>,
    },
    /// An administrator's announcement, for every line on the other nodes.
    Announce { text: String },
    /// A player with this name plays on this node now: messages for the
    /// name come here. Counted: each `Present` is matched by an `Absent`.
    Present { name: String },
    /// A player with this name left this node.
    Absent { name: String },
}

/// What other nodes sent this one, for the game host.
#[derive(Debug)]
pub enum Incoming {
    /// A zone's message from another node's line.
    Zone {
        zone: String,
        message: u16,
        body: Vec<u8>,
    },
    /// A message for the player named `name`: give it to them and answer.
    Named {
        name: String,
        message: u16,
        body: Vec<u8>,
        answer: NamedAnswer,
    },
    /// An administrator's announcement made on another node.
    Announce { text: String },
    /// No node took `sender`'s message for the player named `name`.
    Undelivered { sender: u64, name: String },
}

/// The answer owed to the node that sent a message by name. Dropping it
/// unanswered leaves that node to time out ([`NAMED_WAIT`]).
#[derive(Debug)]
pub struct NamedAnswer {
    reply: Option<Subject>,
    answers: mpsc::Sender<(Subject, bool)>,
}

impl NamedAnswer {
    /// Whether the player was here and was given the message.
    pub fn answer(self, delivered: bool) {
        if let Some(reply) = self.reply {
            // Bounded like the incoming queue it came through.
            let _ = self.answers.try_send((reply, delivered));
        }
    }
}

/// The game host's side of the relay. The relay stops when this is
/// dropped.
pub struct Relay {
    outgoing: mpsc::Sender<Outgoing>,
    pub counters: Arc<RelayCounters>,
}

impl Relay {
    /// Hands `what` to the relay without waiting; false (dropped and
    /// counted) when its queue is full.
    pub fn send(&self, what: Outgoing) -> bool {
        let sent = self.outgoing.try_send(what).is_ok();
        if !sent {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

/// The relay's settings.
pub struct RelaySettings {
    /// The game's schema version (`Schema::version`): messages encoded for
    /// another one are dropped.
    pub schema: String,
    /// How the game compares players' names (as accounts' names are
    /// compared: Unicode case folding); names the same after it reach the
    /// same player.
    pub fold: fn(&str) -> String,
}

fn all_subject(cluster: &ClusterName) -> String {
    format!("{}.relay.all", cluster.as_str())
}

/// The subject a player's messages by name go to: a hash of the folded
/// name, so that any name makes a valid subject token.
fn player_subject(cluster: &ClusterName, folded: &str) -> String {
    let digest = Sha256::digest(folded.as_bytes());
    let key: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}.relay.player.{key}", cluster.as_str())
}

/// Starts `me`'s relay: its subscriptions are made before this returns.
pub async fn start(
    client: &async_nats::Client,
    cluster: &ClusterName,
    me: &NodeId,
    settings: RelaySettings,
) -> Result<(Relay, mpsc::Receiver<Incoming>), ClusterError> {
    let nats = |what: &str, e: &dyn std::fmt::Display| {
        ClusterError::Nats(format!("cannot listen for {what} from other nodes: {e}"))
    };
    let all = client
        .subscribe(all_subject(cluster))
        .await
        .map_err(|e| nats("zone messages", &e))?;
    let inbox = client.new_inbox();
    let replies = client
        .subscribe(format!("{inbox}.*"))
        .await
        .map_err(|e| nats("answers", &e))?;
    let (outgoing_tx, outgoing) = mpsc::channel(RELAY_QUEUE);
    let (incoming, incoming_rx) = mpsc::channel(RELAY_QUEUE);
    let (answers, answers_rx) = mpsc::channel(RELAY_QUEUE);
    let (named, named_rx) = mpsc::channel(RELAY_QUEUE);
    let counters = Arc::new(RelayCounters::default());
    let task = RelayTask {
        client: client.clone(),
        cluster: cluster.clone(),
        me: me.as_str().to_owned(),
        settings,
        incoming,
        answers,
        named,
        counters: counters.clone(),
        inbox,
        next_request: 0,
        pending: HashMap::new(),
        players: HashMap::new(),
        warned_foreign: false,
    };
    tokio::spawn(task.run(outgoing, all, replies, answers_rx, named_rx));
    Ok((
        Relay {
            outgoing: outgoing_tx,
            counters,
        },
        incoming_rx,
    ))
}

/// A message by name waiting for its answer.
struct Pending {
    sender: u64,
    name: String,
    deadline: Instant,
}

/// The relay's task: publishes what the host sends out, hands the host
/// what other nodes sent, keeps one subscription per player name here.
struct RelayTask {
    client: async_nats::Client,
    cluster: ClusterName,
    /// This node's id: messages from it are its own and are dropped.
    me: String,
    settings: RelaySettings,
    /// To the game host.
    incoming: mpsc::Sender<Incoming>,
    /// The host's answers to messages by name, to publish.
    answers: mpsc::Sender<(Subject, bool)>,
    /// Messages by name from every player subscription, to decode here.
    named: mpsc::Sender<Message>,
    counters: Arc<RelayCounters>,
    /// This node's reply subject prefix: `{inbox}.{number}` names each
    /// message by name sent.
    inbox: String,
    next_request: u64,
    /// Messages by name waiting for an answer, by number; at most
    /// [`MAX_PENDING_NAMED`].
    pending: HashMap<u64, Pending>,
    /// Per player subject: how many players here have that name, and the
    /// task that forwards its messages (aborting it unsubscribes).
    players: HashMap<String, (usize, JoinHandle<()>)>,
    /// A node running another version of the game was warned about once.
    warned_foreign: bool,
}

impl RelayTask {
    async fn run(
        mut self,
        mut outgoing: mpsc::Receiver<Outgoing>,
        mut all: async_nats::Subscriber,
        mut replies: async_nats::Subscriber,
        mut answers: mpsc::Receiver<(Subject, bool)>,
        mut named: mpsc::Receiver<Message>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_millis(100));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                what = outgoing.recv() => match what {
                    Some(what) => self.send(what).await,
                    None => break,
                },
                Some(message) = all.next() => self.received(message, false),
                Some(message) = named.recv() => self.received(message, true),
                Some(message) = replies.next() => self.answered(message),
                Some((reply, delivered)) = answers.recv() => {
                    let answer = if delivered { DELIVERED } else { NOT_HERE };
                    let _ = self.client.publish(reply, vec![answer].into()).await;
                }
                _ = sweep.tick() => self.expire(Instant::now()),
            }
        }
        for (_, (_, forwarding)) in self.players.drain() {
            forwarding.abort();
        }
    }

    fn envelope(&self, relayed: Relayed) -> Option<Vec<u8>> {
        let envelope = Envelope {
            origin: self.me.clone(),
            schema: self.settings.schema.clone(),
            relayed,
        };
        match relay_wire::encode(&envelope) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "a message was not relayed to the other nodes");
                None
            }
        }
    }

    async fn send(&mut self, what: Outgoing) {
        match what {
            Outgoing::Zone {
                zone,
                message,
                body,
            } => {
                let relayed = Relayed::Zone {
                    zone,
                    message,
                    body,
                };
                self.publish_to_all(relayed).await;
            }
            Outgoing::Announce { text } => self.publish_to_all(Relayed::Announce { text }).await,
            Outgoing::Named {
                sender,
                name,
                message,
                body,
            } => {
                if self.pending.len() >= MAX_PENDING_NAMED {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    self.undelivered(sender, name);
                    return;
                }
                let subject = player_subject(&self.cluster, &(self.settings.fold)(&name));
                let relayed = Relayed::Named {
                    name: name.clone(),
                    message,
                    body,
                };
                let Some(bytes) = self.envelope(relayed) else {
                    self.undelivered(sender, name);
                    return;
                };
                self.next_request += 1;
                let number = self.next_request;
                let reply = format!("{}.{number}", self.inbox);
                match self
                    .client
                    .publish_with_reply(subject, reply, bytes.into())
                    .await
                {
                    Ok(()) => {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        let deadline = Instant::now() + NAMED_WAIT;
                        self.pending.insert(
                            number,
                            Pending {
                                sender,
                                name,
                                deadline,
                            },
                        );
                    }
                    Err(_) => self.undelivered(sender, name),
                }
            }
            Outgoing::Present { name } => {
                let subject = player_subject(&self.cluster, &(self.settings.fold)(&name));
                if let Some((count, _)) = self.players.get_mut(&subject) {
                    *count += 1;
                    return;
                }
                match self.client.subscribe(subject.clone()).await {
                    Ok(mut subscription) => {
                        let (named, counters) = (self.named.clone(), self.counters.clone());
                        let forwarding = tokio::spawn(async move {
                            while let Some(message) = subscription.next().await {
                                if named.try_send(message).is_err() {
                                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        });
                        self.players.insert(subject, (1, forwarding));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for messages to a player from other nodes")
                    }
                }
            }
            Outgoing::Absent { name } => {
                let subject = player_subject(&self.cluster, &(self.settings.fold)(&name));
                if let Some((count, _)) = self.players.get_mut(&subject) {
                    *count -= 1;
                    if *count == 0 {
                        if let Some((_, forwarding)) = self.players.remove(&subject) {
                            forwarding.abort();
                        }
                    }
                }
            }
        }
    }

    async fn publish_to_all(&mut self, relayed: Relayed) {
        let Some(bytes) = self.envelope(relayed) else {
            return;
        };
        match self
            .client
            .publish(all_subject(&self.cluster), bytes.into())
            .await
        {
            Ok(()) => self.counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A message from another node (`named`: on a player's subject).
    fn received(&mut self, message: Message, named: bool) {
        let envelope = match relay_wire::decode(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, "a malformed message from another node was dropped");
                return;
            }
        };
        if envelope.origin == self.me {
            return;
        }
        if envelope.schema != self.settings.schema {
            self.counters.foreign.fetch_add(1, Ordering::Relaxed);
            if !std::mem::replace(&mut self.warned_foreign, true) {
                tracing::warn!(
                    node = %envelope.origin,
                    theirs = %envelope.schema,
                    ours = %self.settings.schema,
                    "a node of the cluster runs another version of the game: its players' messages are dropped here"
                );
            }
            return;
        }
        let reply = message_reply(&message);
        let incoming = match (envelope.relayed, named) {
            (
                Relayed::Zone {
                    zone,
                    message,
                    body,
                },
                false,
            ) => Incoming::Zone {
                zone,
                message,
                body,
            },
            (Relayed::Announce { text }, false) => Incoming::Announce { text },
            (
                Relayed::Named {
                    name,
                    message,
                    body,
                },
                true,
            ) => Incoming::Named {
                name,
                message,
                body,
                answer: NamedAnswer {
                    reply,
                    answers: self.answers.clone(),
                },
            },
            _ => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        match self.incoming.try_send(incoming) {
            Ok(()) => self.counters.received.fetch_add(1, Ordering::Relaxed),
            Err(mpsc::error::TrySendError::Full(Incoming::Named { answer, .. })) => {
                answer.answer(false);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// An answer to a message by name this node sent (or NATS's "no
    /// responders": no node has the player).
    fn answered(&mut self, message: Message) {
        let number = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let Some(pending) = number.and_then(|n| self.pending.remove(&n)) else {
            // Late (already timed out), or a second node's answer.
            return;
        };
        let delivered = message.status != Some(StatusCode::NO_RESPONDERS)
            && message.payload.as_ref() == [DELIVERED];
        if !delivered {
            self.undelivered(pending.sender, pending.name);
        }
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for number in expired {
            if let Some(pending) = self.pending.remove(&number) {
                self.undelivered(pending.sender, pending.name);
            }
        }
    }

    fn undelivered(&self, sender: u64, name: String) {
        self.counters.undelivered.fetch_add(1, Ordering::Relaxed);
        if self
            .incoming
            .try_send(Incoming::Undelivered { sender, name })
            .is_err()
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a message by name wants its answer: only a subject in NATS's
/// inbox space (a node asks nothing else of another).
fn message_reply(message: &Message) -> Option<Subject> {
    message
        .reply
        .clone()
        .filter(|reply| reply.starts_with("_INBOX.") && reply.len() <= 128)
}
