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

use hearth_cluster::{Lease, LeaseClock, LeaseError, LeaseState, LineSaves};
use hearth_game::directory::LineKey;
use hearth_game::{Game, GameLines};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// What the server gives the host for its lines' leases.
pub struct LineLeaseParts {
    pub saves: LineSaves,
    /// `[cluster] line_save_ms`.
    pub save_every: Duration,
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
}

/// The host's request to the keeper. A line is named by its serial
/// (`GameLines::line_serial`): a number is reused when a line reopens, a
/// serial never is.
enum ToKeeper {
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
    /// Save the line's state and release its lease, keeping the save: the
    /// host stops, and another node restarts the line from it.
    HandOver {
        serial: u64,
        zone: String,
        state: Vec<u8>,
    },
    /// A lease taken for a restart the host did not carry out; `skip`: its
    /// save cannot be restarted here (not looked at again).
    Release { lease: Lease, skip: bool },
    /// The host stops: answered once every hand-over is written.
    Stop(oneshot::Sender<()>),
}

/// The keeper's news for the host.
enum FromKeeper {
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
    /// A line whose node died, with its lease taken for this node.
    Restart { lease: Lease, state: Vec<u8> },
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
    last_save: Instant,
    pub counters: Arc<LineLeaseCounters>,
}

/// Saved lines a node remembers it cannot restart, at most.
const MAX_UNRESTORABLE: usize = 1024;

/// What a player of a line this node lost is told.
const LOST: &str = "your line now runs on another server of the cluster: log in again to play on";

impl LineLeases {
    /// Starts the keeper (on the current runtime) for the zones this host
    /// runs.
    pub(super) fn start(parts: LineLeaseParts, zones: Vec<String>) -> Self {
        let (to_keeper, requests) = mpsc::unbounded_channel();
        let (events, from_keeper) = mpsc::unbounded_channel();
        tokio::spawn(keep(parts.saves, zones, requests, events));
        Self {
            to_keeper,
            from_keeper,
            lines: BTreeMap::new(),
            save_every: parts.save_every,
            last_save: Instant::now(),
            counters: Arc::default(),
        }
    }

    /// Before the lines tick: the keeper's news, new and closed lines, the
    /// lease clocks (a line whose lease may be lapsing is paused), and the
    /// saves that are due. `draining`: this node takes in no restart.
    pub(super) fn before_step<G: Game>(&mut self, lines: &mut GameLines<G>, now: Instant) {
        while let Ok(event) = self.from_keeper.try_recv() {
            self.carry_out(event, lines);
        }
        self.follow_lines(lines);
        for held in self.lines.values_mut() {
            let Some((_, _, clock)) = &held.lease else {
                continue;
            };
            let stop = clock.state(now) == LeaseState::MustStop;
            if stop != held.paused {
                if stop {
                    self.counters.pauses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(line = ?held.lease.as_ref().map(|l| &l.0), "the line's lease could not be renewed in time: paused until it is");
                }
                held.paused = stop;
                lines.set_paused(held.key, stop);
            }
        }
        if now.duration_since(self.last_save) >= self.save_every {
            self.last_save = now;
            for (serial, held) in self.lines.iter_mut() {
                if held.lease.is_none() || held.paused || held.saving.is_some() {
                    continue;
                }
                let Some(state) = lines.snapshot_line(held.key) else {
                    continue;
                };
                held.saving = lines.line(held.key).map(|line| line.tick_count());
                let _ = self.to_keeper.send(ToKeeper::Save {
                    serial: *serial,
                    zone: held.zone.clone(),
                    state,
                });
            }
        }
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
            FromKeeper::Restart { lease, state } => {
                if lines.is_draining() {
                    let _ = self
                        .to_keeper
                        .send(ToKeeper::Release { lease, skip: false });
                    return;
                }
                match lines.restart_line(&state) {
                    Ok(key) => {
                        self.counters.restarted.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(line = %lease.line, epoch = lease.epoch, "restarted a line from its last save");
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
                        let _ = self.to_keeper.send(ToKeeper::Release { lease, skip: true });
                    }
                }
            }
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
    pub(super) async fn hand_over<G: Game>(&mut self, lines: &GameLines<G>) {
        for (serial, held) in &self.lines {
            if held.lease.is_none() || held.paused {
                continue;
            }
            if let Some(state) = lines.snapshot_line(held.key) {
                let _ = self.to_keeper.send(ToKeeper::HandOver {
                    serial: *serial,
                    zone: held.zone.clone(),
                    state,
                });
            }
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
        }
    }
}

/// The keeper: takes, renews, saves, closes and releases the host's lines'
/// leases, and looks for lines to restart. One request at a time, in
/// order.
async fn keep(
    saves: LineSaves,
    zones: Vec<String>,
    mut requests: mpsc::UnboundedReceiver<ToKeeper>,
    events: mpsc::UnboundedSender<FromKeeper>,
) {
    let lease = saves.leases().lease();
    let mut held: BTreeMap<u64, Lease> = BTreeMap::new();
    // Lines whose lease could not be taken yet (the database did not
    // answer, or other nodes took every free name first): tried again.
    let mut wanting: BTreeMap<u64, String> = BTreeMap::new();
    // Saved lines this node cannot restart: left to the others.
    let mut unrestorable: std::collections::HashSet<String> = Default::default();
    let mut renewals = tokio::time::interval(lease / 6);
    renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut looks = tokio::time::interval(lease / 2);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else { return };
                match request {
                    ToKeeper::Open { serial, zone } => {
                        if !take(&saves, serial, &zone, &mut held, &events).await {
                            wanting.insert(serial, zone);
                        }
                    }
                    ToKeeper::Adopted { serial, lease } => {
                        held.insert(serial, lease);
                    }
                    ToKeeper::Close { serial } => {
                        wanting.remove(&serial);
                        if let Some(lease) = held.remove(&serial) {
                            if let Err(error) = saves.close(&lease).await {
                                tracing::warn!(line = %lease.line, %error, "closing a line's lease");
                            }
                        }
                    }
                    ToKeeper::Save { serial, zone, state } => {
                        let Some(lease) = held.get(&serial) else {
                            let _ = events.send(FromKeeper::Saved { serial, written: false });
                            continue;
                        };
                        let outcome = saves.store(lease, &zone, &state).await;
                        let written = outcome.is_ok();
                        if let Err(error) = outcome {
                            tracing::warn!(line = %lease.line, %error, "saving a line");
                            if matches!(error, LeaseError::Stale { .. }) {
                                held.remove(&serial);
                                let _ = events.send(FromKeeper::Lost { serial });
                            }
                        }
                        let _ = events.send(FromKeeper::Saved { serial, written });
                    }
                    ToKeeper::HandOver { serial, zone, state } => {
                        if let Some(lease) = held.remove(&serial) {
                            let outcome = match saves.store(&lease, &zone, &state).await {
                                Ok(()) => saves.leases().release(&lease).await,
                                Err(error) => Err(error),
                            };
                            if let Err(error) = outcome {
                                tracing::warn!(line = %lease.line, %error, "handing a line over");
                            }
                        }
                    }
                    ToKeeper::Release { lease, skip } => {
                        if skip && unrestorable.len() < MAX_UNRESTORABLE {
                            unrestorable.insert(lease.line.clone());
                        }
                        if let Err(error) = saves.leases().release(&lease).await {
                            tracing::warn!(line = %lease.line, %error, "releasing a line's lease");
                        }
                    }
                    ToKeeper::Stop(done) => {
                        // Lines not handed over (paused, or not saved) are
                        // let go of as they are: their last save stands.
                        for (_, lease) in std::mem::take(&mut held) {
                            let _ = saves.leases().release(&lease).await;
                        }
                        let _ = done.send(());
                        return;
                    }
                }
            }
            _ = renewals.tick() => {
                let now = Instant::now();
                let due = held
                    .values()
                    .any(|lease| lease.clock.state(now) != LeaseState::Held);
                if due {
                    renew(&saves, &mut held, &events).await;
                }
                for (serial, zone) in std::mem::take(&mut wanting) {
                    if !take(&saves, serial, &zone, &mut held, &events).await {
                        wanting.insert(serial, zone);
                    }
                }
            }
            _ = looks.tick() => {
                restart_orphans(&saves, &zones, &unrestorable, &events).await;
            }
        }
    }
}

/// Takes a lease for a new line: false if it must be tried again.
async fn take(
    saves: &LineSaves,
    serial: u64,
    zone: &str,
    held: &mut BTreeMap<u64, Lease>,
    events: &mpsc::UnboundedSender<FromKeeper>,
) -> bool {
    match saves.take_new(zone).await {
        Ok(Some(lease)) => {
            let _ = events.send(FromKeeper::Held {
                serial,
                name: lease.line.clone(),
                epoch: lease.epoch,
                clock: lease.clock,
            });
            held.insert(serial, lease);
            true
        }
        Ok(None) => false,
        Err(LeaseError::BadLine(name)) => {
            tracing::warn!(%name, "a line name too long for a lease: the line runs without one");
            true
        }
        Err(error) => {
            tracing::warn!(zone, %error, "taking a lease for a new line (tried again)");
            false
        }
    }
}

/// Renews every lease in one statement; the stale ones are lost.
async fn renew(
    saves: &LineSaves,
    held: &mut BTreeMap<u64, Lease>,
    events: &mpsc::UnboundedSender<FromKeeper>,
) {
    let serials: Vec<u64> = held.keys().copied().collect();
    let mut leases: Vec<Lease> = held.values().cloned().collect();
    match saves.leases().renew_many(&mut leases).await {
        Ok(stale) => {
            let mut renewed = Vec::new();
            for (serial, lease) in serials.into_iter().zip(leases) {
                if stale.contains(&lease.line) {
                    held.remove(&serial);
                    let _ = events.send(FromKeeper::Lost { serial });
                } else {
                    renewed.push((serial, lease.clock));
                    held.insert(serial, lease);
                }
            }
            let _ = events.send(FromKeeper::Renewed(renewed));
        }
        Err(error) => {
            tracing::warn!(%error, "renewing the lines' leases (tried again)");
        }
    }
}

/// Lines of these zones whose node stopped holding them with their state
/// saved: each one's lease is taken (one node wins it) and its save read,
/// for the host to restart.
async fn restart_orphans(
    saves: &LineSaves,
    zones: &[String],
    unrestorable: &std::collections::HashSet<String>,
    events: &mpsc::UnboundedSender<FromKeeper>,
) {
    let orphans = match saves.orphans(zones).await {
        Ok(orphans) => orphans,
        Err(error) => {
            tracing::warn!(%error, "looking for lines to restart");
            return;
        }
    };
    for (line, _) in orphans {
        if unrestorable.contains(&line) {
            continue;
        }
        let Ok(Some(lease)) = saves.leases().take(&line).await else {
            continue;
        };
        match saves.load(&lease).await {
            Ok(Some(saved)) => {
                let _ = events.send(FromKeeper::Restart {
                    lease,
                    state: saved.state,
                });
            }
            // Closed in the meantime, or unreadable: let it go again.
            _ => {
                let _ = saves.leases().release(&lease).await;
            }
        }
    }
}
