//! The keeper of a node's line leases: the database's half of
//! [`super::line_leases`]. It owns the leases this node holds and renews
//! them all in one statement when any is due; everything slower (taking a
//! name for a new line, saves, hand-overs, looking for lines to restart)
//! runs in tasks of its own that report back, so a slow save or a restart
//! of a big line never holds a renewal up.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use hearth_cluster::line_moves::{self, LineHanded, LineInbox, LineTaken};
use hearth_cluster::{ClusterName, Lease, LeaseError, LeaseState, LineSaves, NodeId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::line_leases::{FromKeeper, ToKeeper};

/// Saved lines a node remembers it cannot restart, at most.
const MAX_UNRESTORABLE: usize = 1024;

/// Lines a node restarts per look at most: a node's death spreads its
/// lines over the survivors' looks instead of onto the first to look.
const RESTARTS_PER_LOOK: usize = 4;

/// How long a node waits for the node it handed a line to to take it up.
const MOVE_WAIT: Duration = Duration::from_secs(2);

/// Lines handed to this node that it takes up at once, at most: more
/// requests are refused (they cost the database; a flood of forged ones
/// must not starve the renewals of the lines this node runs).
const ADOPTIONS_AT_ONCE: usize = 4;

/// What the keeper's tasks report.
enum Finished {
    /// A name for a new line, or none yet (`None`: tried again later).
    Taken {
        serial: u64,
        zone: String,
        lease: Option<Lease>,
    },
    /// A save finished: written, or refused as stale (the epoch it was
    /// made under).
    Stored {
        serial: u64,
        epoch: i64,
        outcome: Result<(), Box<LeaseError>>,
    },
    /// A line handed to node `node` (by name) at the next epoch, which was
    /// told; or why it was not handed.
    HandedTo {
        serial: u64,
        lease: Lease,
        outcome: Result<(String, bool), Box<LeaseError>>,
    },
    /// No lease can be taken for this new line (its name is too long).
    Unleasable { serial: u64 },
    /// A line another node handed this one could not be taken up.
    Adopted { line: String },
    /// A line taken for a restart, with its save.
    Orphan(Box<Orphan>),
    /// A look for lines to restart ended.
    LookEnded,
}

/// A line taken for a restart, with its save; `request`: a node handed it
/// over, and waits for the answer.
struct Orphan {
    lease: Lease,
    zone: String,
    state: Vec<u8>,
    request: Option<line_moves::LineRequest>,
}

/// What the keeper is given at its start.
pub(super) struct Keeper {
    pub(super) saves: LineSaves,
    /// The zones this node runs: only their lines are restarted here.
    pub(super) zones: Vec<String>,
    /// Lines other nodes hand to this one.
    pub(super) moves: LineInbox,
    pub(super) client: hearth_cluster::async_nats::Client,
    pub(super) cluster: ClusterName,
}

/// The keeper's state while it runs.
struct Keeping {
    saves: LineSaves,
    /// The zones this node runs.
    zones: Vec<String>,
    client: hearth_cluster::async_nats::Client,
    cluster: ClusterName,
    events: mpsc::UnboundedSender<FromKeeper>,
    done: mpsc::UnboundedSender<Finished>,
    /// The leases this node holds, by line serial: renewed together.
    held: BTreeMap<u64, Lease>,
    /// New lines whose name is being taken, and those of them closed
    /// meanwhile (their lease is let go as soon as it comes).
    taking: BTreeSet<u64>,
    closed_while_taking: BTreeSet<u64>,
    /// New lines still without a name (tried again at each renewal).
    wanting: BTreeMap<u64, String>,
    /// Saved lines this node cannot restart.
    unrestorable: HashSet<String>,
    /// Draining or stopping: no line is restarted here.
    draining: bool,
    stopping: bool,
    /// A look for lines to restart is under way.
    looking: bool,
    /// Hand-overs of a stopping node, awaited before it answers `Stop`.
    handing_over: Vec<JoinHandle<()>>,
    /// Lines handed to this node being taken up now (at most
    /// [`ADOPTIONS_AT_ONCE`]): a request for one of them, or for a line
    /// this node holds, is refused (a replayed request must not start a
    /// second copy).
    adopting: HashSet<String>,
}

impl Keeper {
    /// Runs until the host stops (its requests end, or `Stop`).
    pub(super) async fn keep(
        self,
        mut requests: mpsc::UnboundedReceiver<ToKeeper>,
        events: mpsc::UnboundedSender<FromKeeper>,
    ) {
        let lease = self.saves.leases().lease();
        let (done, mut finished) = mpsc::unbounded_channel();
        let Keeper {
            saves,
            zones,
            mut moves,
            client,
            cluster,
        } = self;
        let mut keeping = Keeping {
            saves,
            zones,
            client,
            cluster,
            events,
            done,
            held: BTreeMap::new(),
            taking: BTreeSet::new(),
            closed_while_taking: BTreeSet::new(),
            wanting: BTreeMap::new(),
            unrestorable: HashSet::new(),
            draining: false,
            stopping: false,
            looking: false,
            handing_over: Vec::new(),
            adopting: HashSet::new(),
        };
        let mut renewals = tokio::time::interval(lease / 6);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut looks = tokio::time::interval(lease / 2);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    if let Some(stopped) = keeping.request(request).await {
                        let _ = stopped.send(());
                        return;
                    }
                }
                Some(finished) = finished.recv() => keeping.finished(finished),
                Some(handed) = moves.requests.recv() => keeping.line_handed(handed),
                _ = renewals.tick() => keeping.renew().await,
                _ = looks.tick() => keeping.look(),
            }
        }
    }
}

impl Keeping {
    fn saves(&self) -> LineSaves {
        self.saves.clone()
    }

    /// Carries out one request of the host's; `Some` when it was `Stop`
    /// (answer it).
    async fn request(&mut self, request: ToKeeper) -> Option<tokio::sync::oneshot::Sender<()>> {
        match request {
            ToKeeper::Open { serial, zone } => self.take(serial, zone),
            ToKeeper::Adopted { serial, lease } => {
                self.adopting.remove(&lease.line);
                self.held.insert(serial, lease);
            }
            ToKeeper::Close { serial } => {
                self.wanting.remove(&serial);
                if self.taking.contains(&serial) {
                    self.closed_while_taking.insert(serial);
                }
                if let Some(lease) = self.held.remove(&serial) {
                    let saves = self.saves();
                    tokio::spawn(async move {
                        if let Err(error) = saves.close(&lease).await {
                            tracing::warn!(line = %lease.line, %error, "closing a line's lease");
                        }
                    });
                }
            }
            ToKeeper::Save {
                serial,
                zone,
                state,
            } => {
                let Some(lease) = self.held.get(&serial).cloned() else {
                    let _ = self.events.send(FromKeeper::Saved {
                        serial,
                        written: false,
                    });
                    return None;
                };
                let (saves, done) = (self.saves(), self.done.clone());
                tokio::spawn(async move {
                    let outcome = saves.store(&lease, &zone, &state).await.map_err(Box::new);
                    let _ = done.send(Finished::Stored {
                        serial,
                        epoch: lease.epoch,
                        outcome,
                    });
                });
            }
            ToKeeper::MoveTo {
                serial,
                zone,
                state,
                to,
            } => {
                // Not renewed while it is handed over: if the hand-over
                // fails otherwise than stale, it comes back.
                let Some(lease) = self.held.remove(&serial) else {
                    let _ = self.events.send(FromKeeper::MoveFailed { serial });
                    return None;
                };
                let (saves, done) = (self.saves(), self.done.clone());
                let (client, cluster) = (self.client.clone(), self.cluster.clone());
                tokio::spawn(async move {
                    let outcome =
                        hand_over_to(&saves, &client, &cluster, &lease, &zone, &state, &to)
                            .await
                            .map_err(Box::new);
                    let _ = done.send(Finished::HandedTo {
                        serial,
                        lease,
                        outcome,
                    });
                });
            }
            ToKeeper::Answer { request, taken } => {
                tokio::spawn((*request).answer(taken));
            }
            ToKeeper::Draining(on) => self.draining = on,
            ToKeeper::HandOver {
                serial,
                zone,
                state,
                to,
            } => {
                self.stopping = true;
                if let Some(lease) = self.held.remove(&serial) {
                    let saves = self.saves();
                    let (client, cluster) = (self.client.clone(), self.cluster.clone());
                    self.handing_over.push(tokio::spawn(async move {
                        let outcome = match to {
                            Some(to) => {
                                hand_over_to(&saves, &client, &cluster, &lease, &zone, &state, &to)
                                    .await
                                    .map(drop)
                            }
                            None => match saves.store(&lease, &zone, &state).await {
                                Ok(()) => saves.leases().release(&lease).await,
                                Err(error) => Err(error),
                            },
                        };
                        if let Err(error) = outcome {
                            tracing::warn!(line = %lease.line, %error, "handing a line over");
                        }
                    }));
                }
            }
            ToKeeper::Release { lease, skip } => {
                self.adopting.remove(&lease.line);
                if skip && self.unrestorable.len() < MAX_UNRESTORABLE {
                    self.unrestorable.insert(lease.line.clone());
                }
                let saves = self.saves();
                tokio::spawn(async move {
                    if let Err(error) = saves.leases().release(&lease).await {
                        tracing::warn!(line = %lease.line, %error, "releasing a line's lease");
                    }
                });
            }
            ToKeeper::Stop(stopped) => {
                self.stopping = true;
                for task in std::mem::take(&mut self.handing_over) {
                    let _ = task.await;
                }
                // Lines not handed over (paused, or never saved) are let go
                // of as they are: their last save stands.
                for (_, lease) in std::mem::take(&mut self.held) {
                    let _ = self.saves.leases().release(&lease).await;
                }
                return Some(stopped);
            }
        }
        None
    }

    /// Line `serial` is held under `lease` now: renewed from here on, and
    /// the host told its name, epoch and clock.
    fn hold(&mut self, serial: u64, lease: Lease) {
        let _ = self.events.send(FromKeeper::Held {
            serial,
            name: lease.line.clone(),
            epoch: lease.epoch,
            clock: lease.clock,
        });
        self.held.insert(serial, lease);
    }

    /// Takes a name for new line `serial` of `zone`, in a task.
    fn take(&mut self, serial: u64, zone: String) {
        if !self.taking.insert(serial) {
            return;
        }
        let (saves, done) = (self.saves(), self.done.clone());
        tokio::spawn(async move {
            let lease = match saves.take_new(&zone).await {
                Ok(lease) => lease,
                Err(LeaseError::BadLine(name)) => {
                    tracing::warn!(%name, "a line name too long for a lease: the line runs without one");
                    let _ = done.send(Finished::Unleasable { serial });
                    return;
                }
                Err(error) => {
                    tracing::warn!(zone, %error, "taking a lease for a new line (tried again)");
                    None
                }
            };
            let _ = done.send(Finished::Taken {
                serial,
                zone,
                lease,
            });
        });
    }

    fn finished(&mut self, finished: Finished) {
        match finished {
            Finished::Taken {
                serial,
                zone,
                lease,
            } => {
                self.taking.remove(&serial);
                let closed = self.closed_while_taking.remove(&serial);
                match lease {
                    Some(lease) if closed => {
                        let saves = self.saves();
                        tokio::spawn(async move {
                            let _ = saves.close(&lease).await;
                        });
                    }
                    Some(lease) => self.hold(serial, lease),
                    None if closed => {}
                    None => {
                        self.wanting.insert(serial, zone);
                    }
                }
            }
            Finished::Stored {
                serial,
                epoch,
                outcome,
            } => {
                let written = outcome.is_ok();
                if let Err(error) = outcome {
                    tracing::warn!(serial, %error, "saving a line");
                    let still = self.held.get(&serial).is_some_and(|l| l.epoch == epoch);
                    if still && matches!(*error, LeaseError::Stale { .. }) {
                        self.held.remove(&serial);
                        let _ = self.events.send(FromKeeper::Lost { serial });
                    }
                }
                let _ = self.events.send(FromKeeper::Saved { serial, written });
            }
            Finished::Unleasable { serial } => {
                self.taking.remove(&serial);
                self.closed_while_taking.remove(&serial);
                let _ = self.events.send(FromKeeper::Unleasable { serial });
            }
            Finished::Adopted { line } => {
                self.adopting.remove(&line);
            }
            Finished::HandedTo {
                serial,
                lease,
                outcome,
            } => match outcome {
                Ok((node, taken)) => {
                    let _ = self.events.send(FromKeeper::Moved {
                        serial,
                        node,
                        line: lease.line,
                        taken,
                    });
                }
                Err(error) if matches!(*error, LeaseError::Stale { .. }) => {
                    let _ = self.events.send(FromKeeper::Lost { serial });
                }
                Err(error) => {
                    tracing::warn!(line = %lease.line, %error, "moving a line to another node");
                    self.held.insert(serial, lease);
                    let _ = self.events.send(FromKeeper::MoveFailed { serial });
                }
            },
            Finished::Orphan(orphan) => {
                let Orphan {
                    lease,
                    zone,
                    state,
                    request,
                } = *orphan;
                let _ = self.events.send(FromKeeper::Restart {
                    lease,
                    zone,
                    state,
                    request: request.map(Box::new),
                });
            }
            Finished::LookEnded => self.looking = false,
        }
    }

    /// Renews every lease held when any is due, in one statement. A lease
    /// refused as stale is taken again if nobody took it in between (the
    /// database was out of reach for longer than the lease: the line was
    /// paused, and goes on); else the line is lost.
    async fn renew(&mut self) {
        let now = Instant::now();
        if self
            .held
            .values()
            .any(|lease| lease.clock.state(now) != LeaseState::Held)
        {
            let serials: Vec<u64> = self.held.keys().copied().collect();
            let mut leases: Vec<Lease> = self.held.values().cloned().collect();
            match self.saves.leases().renew_many(&mut leases).await {
                Ok(stale) => {
                    let mut renewed = Vec::new();
                    for (serial, lease) in serials.into_iter().zip(leases) {
                        if !stale.contains(&(lease.line.clone(), lease.epoch)) {
                            renewed.push((serial, lease.clock));
                            self.held.insert(serial, lease);
                            continue;
                        }
                        self.held.remove(&serial);
                        match self.saves.leases().take(&lease.line).await {
                            Ok(Some(again)) if again.epoch == lease.epoch + 1 => {
                                tracing::warn!(line = %lease.line, "a line's lease lapsed without anyone taking it: taken again");
                                self.hold(serial, again);
                            }
                            Ok(Some(other)) => {
                                // Another node held it in between: what it
                                // saved stands; this line is not it.
                                let _ = self.saves.leases().release(&other).await;
                                let _ = self.events.send(FromKeeper::Lost { serial });
                            }
                            _ => {
                                let _ = self.events.send(FromKeeper::Lost { serial });
                            }
                        }
                    }
                    let _ = self.events.send(FromKeeper::Renewed(renewed));
                }
                Err(error) => {
                    tracing::warn!(%error, "renewing the lines' leases (tried again)");
                }
            }
        }
        for (serial, zone) in std::mem::take(&mut self.wanting) {
            self.take(serial, zone);
        }
    }

    /// Looks for lines of this node's zones to restart, in a task.
    fn look(&mut self) {
        if self.looking || self.draining || self.stopping {
            return;
        }
        self.looking = true;
        let (saves, done) = (self.saves(), self.done.clone());
        let zones = self.zones.clone();
        // Lines this node holds itself (a lease that lapsed while this node
        // was frozen) are not restarted here beside themselves.
        let mut skip: Vec<String> = self.unrestorable.iter().cloned().collect();
        skip.extend(self.held.values().map(|lease| lease.line.clone()));
        tokio::spawn(async move {
            restart_orphans(&saves, &zones, &skip, &done).await;
            let _ = done.send(Finished::LookEnded);
        });
    }

    /// A node handed this one a line: take it up, in a task. Refused
    /// while stopping (the lease it was handed is given back, so the line
    /// restarts at the next look anywhere), for a line this
    /// node holds or is taking up already, and beyond
    /// [`ADOPTIONS_AT_ONCE`].
    fn line_handed(&mut self, request: line_moves::LineRequest) {
        let LineHanded { line, epoch } = request.ask.clone();
        let refuse = |request: line_moves::LineRequest, why: &str| {
            tokio::spawn(request.answer(LineTaken {
                restarted: false,
                refused: Some(why.to_owned()),
            }));
        };
        if self.held.values().any(|lease| lease.line == line) || self.adopting.contains(&line) {
            return refuse(request, "this node runs that line already");
        }
        if self.adopting.len() >= ADOPTIONS_AT_ONCE {
            return refuse(request, "this node is taking up other lines: try another");
        }
        let (saves, done) = (self.saves(), self.done.clone());
        // (Whether it drains is the host's to say, as it restarts the
        // line: it knows at once, the keeper a step later.)
        if self.stopping {
            tokio::spawn(async move {
                let _ = saves.give_back(&line, epoch).await;
            });
            return refuse(request, "this node is stopping");
        }
        self.adopting.insert(line.clone());
        tokio::spawn(async move {
            let taken = async {
                let lease = saves.adopt(&line, epoch).await?;
                let saved = saves.load(&lease).await?;
                Ok::<_, LeaseError>((lease, saved))
            }
            .await;
            match taken {
                // Taken up by the host (`ToKeeper::Adopted`) or let go
                // (`ToKeeper::Release`): it stays in `adopting` until then.
                Ok((lease, Some(saved))) => {
                    let _ = done.send(Finished::Orphan(Box::new(Orphan {
                        lease,
                        zone: saved.zone,
                        state: saved.state,
                        request: Some(request),
                    })));
                    return;
                }
                // Handed without a save: nothing to take up (and the lease
                // lapses: a line with no save is a free name).
                Ok((_, None)) => {
                    request
                        .answer(LineTaken {
                            restarted: false,
                            refused: Some("the line has no save".into()),
                        })
                        .await;
                }
                Err(error) => {
                    request
                        .answer(LineTaken {
                            restarted: false,
                            refused: Some(error.to_string().chars().take(128).collect()),
                        })
                        .await;
                }
            }
            let _ = done.send(Finished::Adopted { line });
        });
    }
}

/// Saves `state` and hands `lease` to node `to` in one transaction, then
/// tells it: the name of the node it went to. Told or not (it did not
/// answer in time), the line is that node's now.
async fn hand_over_to(
    saves: &LineSaves,
    client: &hearth_cluster::async_nats::Client,
    cluster: &ClusterName,
    lease: &Lease,
    zone: &str,
    state: &[u8],
    to: &NodeId,
) -> Result<(String, bool), LeaseError> {
    let epoch = saves.hand_to(lease, zone, state, to).await?;
    let handed = LineHanded {
        line: lease.line.clone(),
        epoch,
    };
    let taken = match line_moves::tell(client, cluster, to, &handed, MOVE_WAIT).await {
        Ok(LineTaken {
            restarted: false,
            refused,
        }) => {
            tracing::warn!(line = %lease.line, node = %to, reason = ?refused, "the node a line was handed to did not take it up: it restarts wherever its lease lapses");
            false
        }
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(line = %lease.line, %error, "the node a line was handed to did not answer");
            false
        }
    };
    Ok((to.name().to_owned(), taken))
}

/// Lines of these zones whose node stopped holding them with their state
/// saved (but those in `skip`): each one's lease is taken (one node wins
/// it) and its save read, for the host to restart; at most
/// [`RESTARTS_PER_LOOK`].
async fn restart_orphans(
    saves: &LineSaves,
    zones: &[String],
    skip: &[String],
    done: &mpsc::UnboundedSender<Finished>,
) {
    let orphans = match saves.orphans(zones, skip).await {
        Ok(orphans) => orphans,
        Err(error) => {
            tracing::warn!(%error, "looking for lines to restart");
            return;
        }
    };
    let mut restarted = 0;
    for (line, _) in orphans {
        if restarted >= RESTARTS_PER_LOOK {
            return;
        }
        let Ok(Some(lease)) = saves.leases().take(&line).await else {
            continue;
        };
        match saves.load(&lease).await {
            Ok(Some(saved)) => {
                restarted += 1;
                let _ = done.send(Finished::Orphan(Box::new(Orphan {
                    lease,
                    zone: saved.zone,
                    state: saved.state,
                    request: None,
                })));
            }
            // Closed in the meantime, or unreadable: let it go again.
            _ => {
                let _ = saves.leases().release(&lease).await;
            }
        }
    }
}
