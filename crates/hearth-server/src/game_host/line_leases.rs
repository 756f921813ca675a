//! Lines under leases, in a cluster: every line the host opens is held
//! under a lease with a cluster-wide name (hearth-cluster's `line_saves`),
//! saved under the lease's epoch every `[cluster] line_save_ms`, paused
//! when the host cannot be sure it still holds the lease, and dropped when
//! another node holds it. Lines whose node died are restarted here from
//! their last save.
//!
//! Two halves that talk in typed messages: the host's [`LineLeases`]
//! (sans-IO apart from its channels: it decides at each step, on its own
//! clock, from the lease clocks it was sent) and the keeper task
//! ([`keep`]), which does the database's part. The host never waits for
//! the keeper: a keeper stuck on a database that stopped answering only
//! means the lease clocks stop being renewed, and the host pauses those
//! lines before their leases can lapse.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_cluster::line_moves::{LineInbox, LineRequest, LineTaken};
use hearth_cluster::line_saves::MAX_LINE_SAVE;
use hearth_cluster::{ClusterName, Lease, LeaseClock, LeaseState, LineSaves, NodeId};

use super::line_keeper::Keeper;
use hearth_game::directory::LineKey;
use hearth_game::{Game, GameLines};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// What the server gives the host for its lines' leases.
pub struct LineLeaseParts {
    pub saves: LineSaves,
    /// `[cluster] line_save_ms`.
    pub save_every: Duration,
    /// Lines other nodes hand to this one (their drains).
    pub moves: LineInbox,
    /// To tell another node a line is its.
    pub client: hearth_cluster::async_nats::Client,
    pub cluster: ClusterName,
}

/// The counters of lines under leases, for `/metrics` and the dashboard.
#[derive(Debug, Default, Serialize)]
pub struct LineLeaseCounters {
    /// Line saves written, and refused because the lease was no longer
    /// this node's (or failed otherwise).
    pub saves: AtomicU64,
    pub saves_failed: AtomicU64,
    /// Lines restarted here from another node's save, and saves that could
    /// not be restarted (another build of the game, say).
    pub restarted: AtomicU64,
    pub unrestorable: AtomicU64,
    /// Lines dropped here because another node holds their lease now.
    pub lost: AtomicU64,
    /// Times a line was paused because its lease might be lapsing.
    pub pauses: AtomicU64,
    /// Lines moved to another node (a drain), and moved here.
    pub moved_out: AtomicU64,
    pub moved_in: AtomicU64,
    /// Moves that failed before the line left (it runs on here).
    pub moves_failed: AtomicU64,
}

/// The host's request to the keeper. A line is named by its serial
/// (`GameLines::line_serial`): a number is reused when a line reopens, a
/// serial never is.
pub(super) enum ToKeeper {
    /// A line opened: take a lease for it.
    Open { serial: u64, zone: String },
    /// A line restarted here from a save, under `lease`: keep it renewed.
    Adopted { serial: u64, lease: Lease },
    /// A line closed normally: delete its save, release its lease.
    Close { serial: u64 },
    /// Save the line's state under its lease.
    Save {
        serial: u64,
        zone: String,
        state: Vec<u8>,
    },
    /// The node drains (it restarts no line then), or stops draining.
    Draining(bool),
    /// Save the line's state and release its lease, keeping the save: the
    /// host stops, and another node restarts the line from it.
    HandOver {
        serial: u64,
        zone: String,
        state: Vec<u8>,
        /// The node to hand it to, which restarts it at once.
        to: Option<NodeId>,
    },
    /// Move the line to node `to`: save its state and hand it the lease
    /// (one transaction), then tell it.
    MoveTo {
        serial: u64,
        zone: String,
        state: Vec<u8>,
        to: NodeId,
    },
    /// Answer a node that handed this one a line.
    Answer {
        request: Box<LineRequest>,
        taken: LineTaken,
    },
    /// A lease taken for a restart the host did not carry out; `skip`: its
    /// save cannot be restarted here (not looked at again).
    Release { lease: Lease, skip: bool },
    /// The host stops: answered once every hand-over is written.
    Stop(oneshot::Sender<()>),
}

/// The keeper's news for the host.
pub(super) enum FromKeeper {
    Held {
        serial: u64,
        name: String,
        epoch: i64,
        clock: LeaseClock,
    },
    /// Renewals that succeeded: the leases' clocks now.
    Renewed(Vec<(u64, LeaseClock)>),
    /// Another node holds the line's lease now: drop the line.
    Lost { serial: u64 },
    /// A save of the line finished (`true`: written).
    Saved { serial: u64, written: bool },
    /// A line whose node died, with its lease taken for this node; or a
    /// line another node handed this one (`request`: to answer).
    Restart {
        lease: Lease,
        zone: String,
        state: Vec<u8>,
        request: Option<Box<LineRequest>>,
    },
    /// The line is another node's now (named `node`; the line is `line` in
    /// the cluster): its players follow it.
    Moved {
        serial: u64,
        node: String,
        line: String,
        /// The node took the line up (else it refused or did not answer:
        /// the players go where placement sends them).
        taken: bool,
    },
    /// The line could not be handed over: it is still this node's.
    MoveFailed { serial: u64 },
    /// No lease can be taken for the line (its name is too long): it runs
    /// without one, and cannot move whole.
    Unleasable { serial: u64 },
}

/// A line of the host's, as its lease goes.
struct Held {
    key: LineKey,
    zone: String,
    /// The lease, once taken: its cluster-wide name, epoch and clock.
    lease: Option<(String, i64, LeaseClock)>,
    /// Paused by this module (its lease clock said stop).
    paused: bool,
    /// A save is on its way (one at a time per line).
    saving: Option<u64>,
    /// The line's tick at its last save written.
    saved_tick: Option<u64>,
    /// Restarted here from another node's save.
    restarted: bool,
    /// Being moved to another node (paused meanwhile), with the snapshot
    /// handed over: its players leave from it.
    moving: Option<Vec<u8>>,
    /// Cannot move whole (its state is over what a save may hold): a drain
    /// hands its players on one by one.
    unmovable: bool,
}

/// What the dashboard and `/api/world` show of a line's lease.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineLeaseStatus {
    /// The line's name in the cluster (`CLUSTER/GAME/ZONE/NUMBER`), once
    /// its lease is taken.
    pub name: Option<String>,
    pub epoch: Option<i64>,
    /// Not ticking: the lease may be lapsing.
    pub paused: bool,
    /// The line's tick at its last save.
    pub saved_tick: Option<u64>,
    /// Restarted here from another node's save.
    pub restarted: bool,
}

/// The host's half.
pub(super) struct LineLeases {
    to_keeper: mpsc::UnboundedSender<ToKeeper>,
    from_keeper: mpsc::UnboundedReceiver<FromKeeper>,
    /// Every open line, by serial.
    lines: BTreeMap<u64, Held>,
    save_every: Duration,
    /// When the current round of saves began; the lines saved in it.
    round_began: Instant,
    saved_in_round: std::collections::BTreeSet<u64>,
    /// What the keeper was last told of the drain.
    draining: bool,
    /// The host stops ([`LineLeases::stop_pausing`]).
    stopping: bool,
    pub counters: Arc<LineLeaseCounters>,
}

/// Lines of a draining node on their way to other nodes at once, at most.
const MOVES_AT_ONCE: usize = 4;

/// Lines snapshotted for a save in one step, at most: a host with many
/// lines spreads its saves over steps.
const SAVES_PER_STEP: usize = 4;

/// What a player on the way into a line that moved is told.
const MOVED: &str = "your line moved to another server of the cluster: log in again to play on";

/// What a player of a line this node lost is told.
const LOST: &str = "your line now runs on another server of the cluster: log in again to play on";

impl LineLeases {
    /// Starts the keeper (on the current runtime) for the zones this host
    /// runs.
    pub(super) fn start(parts: LineLeaseParts, zones: Vec<String>) -> Self {
        let (to_keeper, requests) = mpsc::unbounded_channel();
        let (events, from_keeper) = mpsc::unbounded_channel();
        let keeper = Keeper {
            saves: parts.saves,
            zones,
            moves: parts.moves,
            client: parts.client,
            cluster: parts.cluster,
        };
        tokio::spawn(keeper.keep(requests, events));
        Self {
            to_keeper,
            from_keeper,
            lines: BTreeMap::new(),
            save_every: parts.save_every,
            round_began: Instant::now(),
            saved_in_round: Default::default(),
            draining: false,
            stopping: false,
            counters: Arc::default(),
        }
    }

    /// Before the lines tick: the keeper's news, new and closed lines, the
    /// lease clocks (a line whose lease may be lapsing is paused), and the
    /// saves that are due; while the node drains, lines moved to others.
    /// `node_id`: a live node's id by its name.
    pub(super) fn before_step<G: Game>(
        &mut self,
        lines: &mut GameLines<G>,
        now: Instant,
        node_id: &dyn Fn(&str) -> Option<String>,
    ) {
        while let Ok(event) = self.from_keeper.try_recv() {
            self.carry_out(event, lines);
        }
        self.follow_lines(lines);
        if self.stopping {
            return;
        }
        if lines.is_draining() != self.draining {
            self.draining = lines.is_draining();
            let _ = self.to_keeper.send(ToKeeper::Draining(self.draining));
        }
        if self.draining {
            // Whole lines move when every line can; else the players are
            // handed on one by one (a line without a lease yet, or too big).
            let whole = self
                .lines
                .values()
                .all(|held| held.lease.is_some() && !held.unmovable);
            lines.set_whole_line_drains(whole);
            if whole {
                self.move_some(lines, node_id);
            }
        }
        for held in self.lines.values_mut() {
            let Some((_, _, clock)) = &held.lease else {
                continue;
            };
            let stop = clock.state(now) == LeaseState::MustStop || held.moving.is_some();
            if stop != held.paused {
                if stop && held.moving.is_none() {
                    self.counters.pauses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(line = ?held.lease.as_ref().map(|l| &l.0), "the line's lease could not be renewed in time: paused until it is");
                }
                held.paused = stop;
                lines.set_paused(held.key, stop);
            }
        }
    }

    /// Whether line `key` may tick now: not if its lease clock says stop
    /// (read again at the moment of the tick: the step's earlier work took
    /// time) or it is paused.
    pub(super) fn may_tick(&self, key: LineKey, now: Instant) -> bool {
        if self.stopping {
            return true;
        }
        self.lines
            .values()
            .find(|held| held.key == key)
            .is_none_or(|held| {
                !held.paused
                    && held
                        .lease
                        .as_ref()
                        .is_none_or(|(_, _, clock)| clock.state(now) != LeaseState::MustStop)
            })
    }

    /// After the lines ticked: the saves due, a few lines a step. Each line
    /// is saved once every `save_every`.
    pub(super) fn after_step<G: Game>(&mut self, lines: &GameLines<G>, now: Instant) {
        if self.stopping {
            return;
        }
        if now.duration_since(self.round_began) >= self.save_every {
            self.round_began = now;
            self.saved_in_round.clear();
        }
        let mut taken = 0;
        for (serial, held) in self.lines.iter_mut() {
            if taken >= SAVES_PER_STEP {
                return;
            }
            if self.saved_in_round.contains(serial)
                || held.lease.is_none()
                || held.paused
                || held.saving.is_some()
            {
                continue;
            }
            let Some(state) = lines.snapshot_line(held.key) else {
                continue;
            };
            taken += 1;
            self.saved_in_round.insert(*serial);
            if state.len() > MAX_LINE_SAVE {
                // Refused before it is queued: its last save stands (and
                // it is tried again next round).
                self.counters.saves_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(line = ?held.lease.as_ref().map(|l| &l.0), bytes = state.len(), "a line's state is too large to save");
                continue;
            }
            held.saving = lines.line(held.key).map(|line| line.tick_count());
            let _ = self.to_keeper.send(ToKeeper::Save {
                serial: *serial,
                zone: held.zone.clone(),
                state,
            });
        }
    }

    /// A draining node moves its lines whole, a few at a time: each to the
    /// node placement would send a new line to (pinned zones stay; so does
    /// everything while no other node takes players). The line is paused,
    /// its state saved and its lease handed over; its players follow once
    /// the other node has it running.
    fn move_some<G: Game>(
        &mut self,
        lines: &mut GameLines<G>,
        node_id: &dyn Fn(&str) -> Option<String>,
    ) {
        let mut moving = self.lines.values().filter(|h| h.moving.is_some()).count();
        let players: HashMap<LineKey, usize> = lines.directory().lines().collect();
        for (serial, held) in self.lines.iter_mut() {
            if moving >= MOVES_AT_ONCE {
                return;
            }
            let busy = held.moving.is_some() || held.paused || held.saving.is_some();
            if busy || held.lease.is_none() || lines.is_pinned_here(held.key.zone) {
                continue;
            }
            let Some(state) = lines.snapshot_line(held.key) else {
                continue;
            };
            if state.len() > MAX_LINE_SAVE {
                held.unmovable = true;
                continue;
            }
            let in_line = players.get(&held.key).copied().unwrap_or(0);
            let Some(to) = lines
                .place_line(held.key.zone, in_line)
                .and_then(|name| node_id(&name))
                .and_then(|id| NodeId::parse(&id))
            else {
                return;
            };
            held.paused = true;
            lines.set_paused(held.key, true);
            moving += 1;
            let _ = self.to_keeper.send(ToKeeper::MoveTo {
                serial: *serial,
                zone: held.zone.clone(),
                state: state.clone(),
                to,
            });
            held.moving = Some(state);
        }
    }

    /// The line of this node named `name` in the cluster.
    pub(super) fn key_of(&self, name: &str) -> Option<LineKey> {
        self.lines
            .values()
            .find(|held| held.lease.as_ref().is_some_and(|lease| lease.0 == name))
            .map(|held| held.key)
    }

    /// Lines opened since the last step get a lease; lines closed give
    /// theirs back.
    fn follow_lines<G: Game>(&mut self, lines: &GameLines<G>) {
        let open: HashMap<u64, LineKey> = lines
            .lines()
            .filter_map(|(key, _)| Some((lines.line_serial(key)?, key)))
            .collect();
        let closed: Vec<u64> = self
            .lines
            .keys()
            .filter(|serial| !open.contains_key(serial))
            .copied()
            .collect();
        for serial in closed {
            self.lines.remove(&serial);
            let _ = self.to_keeper.send(ToKeeper::Close { serial });
        }
        for (serial, key) in open {
            if self.lines.contains_key(&serial) {
                continue;
            }
            let zone = lines.zone_names()[usize::from(key.zone)].clone();
            self.lines.insert(serial, Held::new(key, zone.clone()));
            let _ = self.to_keeper.send(ToKeeper::Open { serial, zone });
        }
    }

    fn carry_out<G: Game>(&mut self, event: FromKeeper, lines: &mut GameLines<G>) {
        match event {
            FromKeeper::Held {
                serial,
                name,
                epoch,
                clock,
            } => {
                if let Some(held) = self.lines.get_mut(&serial) {
                    held.lease = Some((name, epoch, clock));
                }
            }
            FromKeeper::Renewed(clocks) => {
                for (serial, renewed) in clocks {
                    if let Some((_, _, clock)) =
                        self.lines.get_mut(&serial).and_then(|h| h.lease.as_mut())
                    {
                        *clock = renewed;
                    }
                }
            }
            FromKeeper::Lost { serial } => {
                if let Some(held) = self.lines.remove(&serial) {
                    self.counters.lost.fetch_add(1, Ordering::Relaxed);
                    let players = lines.drop_line(held.key, LOST);
                    tracing::warn!(line = ?held.lease.map(|l| l.0), players = players.len(), "another node holds this line's lease now: dropped here");
                }
            }
            FromKeeper::Saved { serial, written } => {
                let counter = match written {
                    true => &self.counters.saves,
                    false => &self.counters.saves_failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = self.lines.get_mut(&serial) {
                    let tick = held.saving.take();
                    if written {
                        held.saved_tick = tick;
                    }
                }
            }
            FromKeeper::Moved {
                serial,
                node,
                line,
                taken,
            } => {
                if let Some(held) = self.lines.remove(&serial) {
                    self.counters.moved_out.fetch_add(1, Ordering::Relaxed);
                    if !taken {
                        lines.placement_refused(&node);
                    }
                    let state = held.moving.unwrap_or_default();
                    let to = taken.then_some(node.as_str());
                    let players = lines.hand_line_over(held.key, &state, to, &line, MOVED);
                    tracing::info!(%line, %node, taken, players = players.len(), "moved a line to another node");
                }
            }
            FromKeeper::MoveFailed { serial } => {
                self.counters.moves_failed.fetch_add(1, Ordering::Relaxed);
                match self.lines.get_mut(&serial) {
                    // Resumed at this step (unless its lease clock says
                    // otherwise).
                    Some(held) => held.moving = None,
                    // Closed meanwhile (it cannot, paused; but if it did):
                    // its lease, back with the keeper, is closed too.
                    None => {
                        let _ = self.to_keeper.send(ToKeeper::Close { serial });
                    }
                }
            }
            FromKeeper::Unleasable { serial } => {
                if let Some(held) = self.lines.get_mut(&serial) {
                    held.unmovable = true;
                }
            }
            FromKeeper::Restart {
                lease,
                zone,
                state,
                request,
            } => {
                let moved_in = request.is_some();
                let answer = |taken: LineTaken, to_keeper: &mpsc::UnboundedSender<ToKeeper>| {
                    if let Some(request) = request {
                        let _ = to_keeper.send(ToKeeper::Answer { request, taken });
                    }
                };
                if lines.is_draining() {
                    let _ = self
                        .to_keeper
                        .send(ToKeeper::Release { lease, skip: false });
                    answer(
                        LineTaken {
                            restarted: false,
                            refused: Some("this node drains".into()),
                        },
                        &self.to_keeper,
                    );
                    return;
                }
                match lines.restart_line(&state, &zone) {
                    Ok(key) => {
                        let counter = match moved_in {
                            true => &self.counters.moved_in,
                            false => &self.counters.restarted,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(line = %lease.line, epoch = lease.epoch, moved_in, "restarted a line from its last save");
                        answer(
                            LineTaken {
                                restarted: true,
                                refused: None,
                            },
                            &self.to_keeper,
                        );
                        let serial = lines.line_serial(key).expect("just opened");
                        let zone = lines.zone_names()[usize::from(key.zone)].clone();
                        let mut held = Held::new(key, zone);
                        held.lease = Some((lease.line.clone(), lease.epoch, lease.clock));
                        held.restarted = true;
                        self.lines.insert(serial, held);
                        let _ = self.to_keeper.send(ToKeeper::Adopted { serial, lease });
                    }
                    Err(error) => {
                        self.counters.unrestorable.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(line = %lease.line, %error, "a saved line could not be restarted here");
                        answer(
                            LineTaken {
                                restarted: false,
                                refused: Some(error.to_string().chars().take(128).collect()),
                            },
                            &self.to_keeper,
                        );
                        let _ = self.to_keeper.send(ToKeeper::Release { lease, skip: true });
                    }
                }
            }
        }
    }

    /// The host stops, and its players leave: every line runs its last
    /// ticks, paused or not (a line paused for a move, or while its lease
    /// may be lapsing, must still let its players go with their data, which
    /// their claims fence, not the line's lease). Nothing of the lines is
    /// saved or moved from now on but by [`LineLeases::hand_over`].
    pub(super) fn stop_pausing<G: Game>(&mut self, lines: &mut GameLines<G>) {
        self.stopping = true;
        for held in self.lines.values_mut() {
            held.paused = false;
            lines.set_paused(held.key, false);
        }
    }

    /// The lease of line `key`, for the status.
    pub(super) fn status(&self, key: LineKey) -> Option<LineLeaseStatus> {
        let held = self.lines.values().find(|held| held.key == key)?;
        Some(LineLeaseStatus {
            name: held.lease.as_ref().map(|l| l.0.clone()),
            epoch: held.lease.as_ref().map(|l| l.1),
            paused: held.paused,
            saved_tick: held.saved_tick,
            restarted: held.restarted,
        })
    }

    /// The host stops: every line it holds is saved once more and its
    /// lease released with the save kept, so that the others restart it
    /// at once. Returns when that is written (3 s at most).
    pub(super) async fn hand_over<G: Game>(
        &mut self,
        lines: &mut GameLines<G>,
        node_id: &dyn Fn(&str) -> Option<String>,
    ) {
        // Lines taken for restarts the host will not carry out now: let go.
        while let Ok(event) = self.from_keeper.try_recv() {
            if let FromKeeper::Restart { lease, .. } = event {
                let _ = self
                    .to_keeper
                    .send(ToKeeper::Release { lease, skip: false });
            }
        }
        for (serial, held) in &self.lines {
            // A line on its way to another node is that node's already.
            if held.lease.is_none() || held.moving.is_some() {
                continue;
            }
            let Some(state) = lines.snapshot_line(held.key) else {
                continue;
            };
            // To the node placement would choose, which restarts it at
            // once; else released with its save, for the others' looks.
            let to = match lines.is_pinned_here(held.key.zone) {
                true => None,
                false => lines
                    .place_line(held.key.zone, 0)
                    .and_then(|name| node_id(&name))
                    .and_then(|id| NodeId::parse(&id)),
            };
            let _ = self.to_keeper.send(ToKeeper::HandOver {
                serial: *serial,
                zone: held.zone.clone(),
                state,
                to,
            });
        }
        let (done, wait) = oneshot::channel();
        let _ = self.to_keeper.send(ToKeeper::Stop(done));
        let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
    }
}

impl Held {
    fn new(key: LineKey, zone: String) -> Self {
        Self {
            key,
            zone,
            lease: None,
            paused: false,
            saving: None,
            saved_tick: None,
            restarted: false,
            moving: None,
            unmovable: false,
        }
    }
}
