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
//!   within [`NAMED_WAIT`] (or that only "not here" answered within
//!   [`NOT_HERE_GRACE`]) comes back to the sender's line as undelivered.
//! - Messages by name are published in the order the game sent them (the
//!   answers are matched to them by a number in the reply subject), so two
//!   whispers to a player on another node arrive in order.
//!
//! Three tasks, so that NATS being slow or away never stalls what does not
//! need it: the relay's own loop (decodes, hands over, matches answers,
//! times out), a publisher (the only one that waits on NATS to send; its
//! queue is bounded and what does not fit is dropped and counted), and the
//! keeper of the player subscriptions, which brings them to the set of
//! names the game host says are here (a set, not a queue of changes: a
//! change is never lost, however busy NATS is).
//!
//! Everything received is decoded as untrusted input ([`relay_wire`]) and
//! every queue is bounded in entries and, through the size of each entry,
//! in bytes: what does not decode, was encoded for another version of the
//! game, came on the wrong subject, or finds its queue full is dropped and
//! counted in [`RelayCounters`]; nothing here waits on the game host.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Message, StatusCode, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::relay_wire::{self, Envelope, Relayed, DELIVERED, MAX_RELAY_MESSAGE, NOT_HERE};
use crate::{ClusterError, ClusterName, NodeId};

/// How long a message by name waits for the node that has the player to
/// take it; then the sender hears it was not delivered.
pub const NAMED_WAIT: Duration = Duration::from_secs(2);
/// After a node answered "not here" (it listened for the name but the
/// player had just left), how long another node still may answer
/// "delivered" (the player's new node) before the message is undelivered.
pub const NOT_HERE_GRACE: Duration = Duration::from_millis(200);
/// Messages by name waiting for their answer at once; beyond, a new one is
/// refused as undelivered at once.
pub const MAX_PENDING_NAMED: usize = 4096;
/// What the game host sends out, what other nodes sent in, and what waits
/// to be published, each (entries; each at most
/// [`relay_wire::MAX_RELAY_MESSAGE`] bytes).
pub const RELAY_QUEUE: usize = 1024;
/// How long the keeper of the subscriptions waits for NATS to take one
/// before it tries again later.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// Counters of a node's relay, for `/metrics` and `/admin`.
#[derive(Debug, Default, Serialize)]
pub struct RelayCounters {
    /// Messages published to other nodes.
    pub sent: AtomicU64,
    /// Messages from other nodes handed to the game host.
    pub received: AtomicU64,
    /// Messages from other nodes that did not decode, came on the wrong
    /// subject, or were refused by the game's checks: dropped.
    pub malformed: AtomicU64,
    /// Messages from nodes running another version of the game: dropped.
    pub foreign: AtomicU64,
    /// Messages dropped for want of room in a queue (either way), or too
    /// large to relay.
    pub dropped: AtomicU64,
    /// Messages by name no node took (the player is not online, or did not
    /// answer in time).
    pub undelivered: AtomicU64,
    /// Player names this node listens for now (a gauge).
    pub listening: AtomicU64,
}

/// What the game host asks the relay to send.
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
    publisher: mpsc::Sender<Publish>,
}

impl NamedAnswer {
    /// Whether the player was here and was given the message.
    pub fn answer(self, delivered: bool) {
        if let Some(reply) = self.reply {
            let answer = if delivered { DELIVERED } else { NOT_HERE };
            // Bounded like everything published; a lost answer is a
            // timeout on the other side.
            let _ = self.publisher.try_send(Publish {
                subject: reply,
                reply: None,
                payload: Bytes::from(vec![answer]),
            });
        }
    }
}

/// The player names a node has, as the game host keeps them: how many
/// players here have each (a name is listened for while the count is above
/// zero), and the names changed since the keeper last looked.
#[derive(Default)]
struct Names {
    wanted: HashMap<String, usize>,
    changed: HashSet<String>,
}

/// The game host's side of the relay. The relay stops when this is
/// dropped.
pub struct Relay {
    outgoing: mpsc::Sender<Outgoing>,
    /// Player subjects wanted here, by the host; read by the keeper.
    names: Arc<Mutex<Names>>,
    /// Wakes the keeper of the subscriptions.
    names_changed: Arc<Notify>,
    cluster: ClusterName,
    fold: fn(&str) -> String,
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

    /// A player with this name plays on this node now: messages for the
    /// name come here. Each `present` is matched by one [`Relay::absent`].
    /// Never lost and never waits: the keeper of the subscriptions catches
    /// up with the set of names.
    pub fn present(&self, name: &str) {
        self.change(name, true);
    }

    /// A player with this name left this node.
    pub fn absent(&self, name: &str) {
        self.change(name, false);
    }

    fn change(&self, name: &str, arrived: bool) {
        let subject = player_subject(&self.cluster, &(self.fold)(name));
        let mut names = self.names.lock().expect("never poisoned");
        let count = names.wanted.entry(subject.clone()).or_default();
        match arrived {
            true => *count += 1,
            false => *count = count.saturating_sub(1),
        }
        if *count == 0 {
            names.wanted.remove(&subject);
        }
        names.changed.insert(subject);
        drop(names);
        self.names_changed.notify_one();
    }
}

/// The relay's settings.
pub struct RelaySettings {
    /// The game's schema version (`Schema::version`): messages encoded for
    /// another one are dropped.
    pub schema: String,
    /// How the game compares players' names (`hearth_replica::names::
    /// name_key`: ASCII case ignored); names the same after it reach the
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
    let key = hearth_codec::to_hex(&digest[..16]);
    format!("{}.relay.player.{key}", cluster.as_str())
}

/// Starts `me`'s relay: its subscriptions are in place on the NATS server
/// before this returns.
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
    client.flush().await.map_err(|e| nats("anything", &e))?;
    let (outgoing_tx, outgoing) = mpsc::channel(RELAY_QUEUE);
    let (incoming, incoming_rx) = mpsc::channel(RELAY_QUEUE);
    let (publisher, publishing) = mpsc::channel(RELAY_QUEUE);
    let (named, named_rx) = mpsc::channel(RELAY_QUEUE);
    let counters = Arc::new(RelayCounters::default());
    let names = Arc::new(Mutex::new(Names::default()));
    let names_changed = Arc::new(Notify::new());
    let keeper = tokio::spawn(keep_subscriptions(
        client.clone(),
        names.clone(),
        names_changed.clone(),
        named,
        counters.clone(),
    ));
    let publishing = tokio::spawn(publish(client.clone(), publishing, counters.clone()));
    let fold = settings.fold;
    let task = RelayTask {
        cluster: cluster.clone(),
        me: me.as_str().to_owned(),
        settings,
        incoming,
        publisher,
        counters: counters.clone(),
        inbox,
        next_request: 0,
        pending: HashMap::new(),
        warned_foreign: false,
    };
    tokio::spawn(task.run(outgoing, all, replies, named_rx, [keeper, publishing]));
    Ok((
        Relay {
            outgoing: outgoing_tx,
            names,
            names_changed,
            cluster: cluster.clone(),
            fold,
            counters,
        },
        incoming_rx,
    ))
}

/// One message for the publisher.
#[derive(Debug)]
struct Publish {
    subject: Subject,
    reply: Option<Subject>,
    payload: Bytes,
}

/// The only task that waits on NATS to send: while NATS is slow or away,
/// its queue fills and what does not fit is dropped (counted), and nothing
/// else stalls.
async fn publish(
    client: async_nats::Client,
    mut queue: mpsc::Receiver<Publish>,
    counters: Arc<RelayCounters>,
) {
    while let Some(Publish {
        subject,
        reply,
        payload,
    }) = queue.recv().await
    {
        let published = match reply {
            Some(reply) => client.publish_with_reply(subject, reply, payload).await,
            None => client.publish(subject, payload).await,
        };
        match published {
            Ok(()) => counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Brings the player subscriptions to the set of names the game host says
/// are here, whenever it changes: one subscription per wanted name, whose
/// messages (each within the relay's size bound) go to the relay's loop.
async fn keep_subscriptions(
    client: async_nats::Client,
    names: Arc<Mutex<Names>>,
    changed: Arc<Notify>,
    named: mpsc::Sender<Message>,
    counters: Arc<RelayCounters>,
) {
    let mut listening: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        changed.notified().await;
        let (wanted, changes) = {
            let mut names = names.lock().expect("never poisoned");
            let changes = std::mem::take(&mut names.changed);
            let wanted: HashSet<String> = changes
                .iter()
                .filter(|subject| names.wanted.contains_key(*subject))
                .cloned()
                .collect();
            (wanted, changes)
        };
        let mut retry = Vec::new();
        for subject in changes {
            let want = wanted.contains(&subject);
            match (want, listening.contains_key(&subject)) {
                (true, false) => {
                    let subscribed =
                        tokio::time::timeout(SUBSCRIBE_WAIT, client.subscribe(subject.clone()))
                            .await;
                    let Ok(Ok(subscription)) = subscribed else {
                        retry.push(subject);
                        continue;
                    };
                    let forwarding =
                        tokio::spawn(forward(subscription, named.clone(), counters.clone()));
                    listening.insert(subject, forwarding);
                }
                (false, true) => {
                    // Dropping the subscription (with its task) unsubscribes.
                    if let Some(forwarding) = listening.remove(&subject) {
                        forwarding.abort();
                    }
                }
                _ => {}
            }
        }
        // The new subscriptions are on the server before a player could be
        // told they are in (or at least right after).
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, client.flush()).await;
        counters
            .listening
            .store(listening.len() as u64, Ordering::Relaxed);
        if !retry.is_empty() {
            tracing::warn!(
                names = retry.len(),
                "NATS did not take subscriptions for players' names in time; trying again"
            );
            names.lock().expect("never poisoned").changed.extend(retry);
            let changed = changed.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                changed.notify_one();
            });
        }
        if named.is_closed() {
            break;
        }
    }
    for (_, forwarding) in listening {
        forwarding.abort();
    }
}

/// Hands one player subscription's messages to the relay's loop: those
/// within the size bound, while it has room (the rest are dropped and
/// counted; the sender times out).
async fn forward(
    mut subscription: async_nats::Subscriber,
    named: mpsc::Sender<Message>,
    counters: Arc<RelayCounters>,
) {
    while let Some(message) = subscription.next().await {
        if message.payload.len() > MAX_RELAY_MESSAGE {
            counters.malformed.fetch_add(1, Ordering::Relaxed);
        } else if named.try_send(message).is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A message by name waiting for its answer.
struct Pending {
    sender: u64,
    name: String,
    deadline: Instant,
}

/// The relay's loop: hands what the host sends out to the publisher,
/// hands the host what other nodes sent, matches answers to messages by
/// name and times them out. It never waits on NATS.
struct RelayTask {
    cluster: ClusterName,
    /// This node's id: messages from it are its own and are dropped.
    me: String,
    settings: RelaySettings,
    /// To the game host.
    incoming: mpsc::Sender<Incoming>,
    /// To the publisher.
    publisher: mpsc::Sender<Publish>,
    counters: Arc<RelayCounters>,
    /// This node's reply subject prefix: `{inbox}.relay{number}` names each
    /// message by name sent.
    inbox: String,
    next_request: u64,
    /// Messages by name waiting for an answer, by number; at most
    /// [`MAX_PENDING_NAMED`].
    pending: HashMap<u64, Pending>,
    /// A node running another version of the game was warned about once.
    warned_foreign: bool,
}

/// The last token of the reply subjects of messages by name starts so.
const REPLY_TOKEN: &str = "relay";

impl RelayTask {
    async fn run(
        mut self,
        mut outgoing: mpsc::Receiver<Outgoing>,
        mut all: async_nats::Subscriber,
        mut replies: async_nats::Subscriber,
        mut named: mpsc::Receiver<Message>,
        helpers: [JoinHandle<()>; 2],
    ) {
        let mut sweep = tokio::time::interval(Duration::from_millis(50));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                what = outgoing.recv() => match what {
                    Some(what) => self.send(what),
                    None => break,
                },
                Some(message) = all.next() => self.received(message, false),
                Some(message) = named.recv() => self.received(message, true),
                Some(message) = replies.next() => self.answered(message),
                _ = sweep.tick() => self.expire(Instant::now()),
            }
        }
        for helper in helpers {
            helper.abort();
        }
    }

    fn envelope(&self, relayed: Relayed) -> Option<Bytes> {
        let envelope = Envelope {
            origin: self.me.clone(),
            schema: self.settings.schema.clone(),
            relayed,
        };
        match relay_wire::encode(&envelope) {
            Ok(bytes) => Some(bytes.into()),
            Err(error) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "a message was not relayed to the other nodes");
                None
            }
        }
    }

    /// Queues `payload` for the publisher; false (dropped and counted) when
    /// its queue is full.
    fn publish(&self, subject: String, reply: Option<String>, payload: Bytes) -> bool {
        let publish = Publish {
            subject: subject.into(),
            reply: reply.map(Subject::from),
            payload,
        };
        let queued = self.publisher.try_send(publish).is_ok();
        if !queued {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    fn send(&mut self, what: Outgoing) {
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
                if let Some(bytes) = self.envelope(relayed) {
                    self.publish(all_subject(&self.cluster), None, bytes);
                }
            }
            Outgoing::Announce { text } => {
                if let Some(bytes) = self.envelope(Relayed::Announce { text }) {
                    self.publish(all_subject(&self.cluster), None, bytes);
                }
            }
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
                let reply = format!("{}.{REPLY_TOKEN}{number}", self.inbox);
                if !self.publish(subject, Some(reply), bytes) {
                    self.undelivered(sender, name);
                    return;
                }
                self.pending.insert(
                    number,
                    Pending {
                        sender,
                        name,
                        deadline: Instant::now() + NAMED_WAIT,
                    },
                );
            }
        }
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
        let reply = message_reply(&message);
        if envelope.origin == self.me {
            // Its own: zone messages its lines had already; a message by
            // name that found this node still listening for a player who
            // has left (the sender should not wait out the timeout).
            if named {
                self.answer_not_here(reply);
            }
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
            // A message by name must have come on its name's subject.
            (
                Relayed::Named {
                    name,
                    message: id,
                    body,
                },
                true,
            ) if message.subject.as_str()
                == player_subject(&self.cluster, &(self.settings.fold)(&name)) =>
            {
                Incoming::Named {
                    name,
                    message: id,
                    body,
                    answer: NamedAnswer {
                        reply,
                        publisher: self.publisher.clone(),
                    },
                }
            }
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

    fn answer_not_here(&self, reply: Option<Subject>) {
        NamedAnswer {
            reply,
            publisher: self.publisher.clone(),
        }
        .answer(false);
    }

    /// An answer to a message by name this node sent (or NATS's "no
    /// responders": no node has the player). "Not here" waits a little for
    /// another node's "delivered" (the player may have just moved there).
    fn answered(&mut self, message: Message) {
        let number = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|token| token.strip_prefix(REPLY_TOKEN))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(number) = number else {
            return;
        };
        let delivered = message.status.is_none() && message.payload.as_ref() == [DELIVERED];
        let no_responders = message.status == Some(StatusCode::NO_RESPONDERS);
        if delivered || no_responders {
            if let Some(pending) = self.pending.remove(&number) {
                if no_responders {
                    self.undelivered(pending.sender, pending.name);
                }
            }
        } else if let Some(pending) = self.pending.get_mut(&number) {
            pending.deadline = pending.deadline.min(Instant::now() + NOT_HERE_GRACE);
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

/// Where a message by name wants its answer: only a relay's reply subject
/// (`_INBOX.ID.relayN`), so that no node can be made to answer anything
/// else (another node's release request, say).
fn message_reply(message: &Message) -> Option<Subject> {
    let reply = message.reply.as_ref()?;
    let mut tokens = reply.split('.');
    let shaped = tokens.next() == Some("_INBOX")
        && tokens.next().is_some_and(|id| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        && tokens.next().is_some_and(|last| {
            last.strip_prefix(REPLY_TOKEN).is_some_and(|n| {
                !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
            })
        })
        && tokens.next().is_none();
    shaped.then(|| reply.clone())
}
