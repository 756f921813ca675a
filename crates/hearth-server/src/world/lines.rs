//! One task per line: tick at the zone's rate, take the inputs that came in
//! meanwhile, hand the players' messages to the gate in one batch per tick
//! and everything else to the directory.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_net::gate::GateHandle;
use hearth_world::{Line, LineInput, LineKey, LineOutput, LineStats, SavedPlayer};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Inputs waiting for one line's next tick beyond which the directory
/// waits (and with it, new inputs are dropped at the gate).
pub const LINE_QUEUE: usize = 16_384;
/// Tick durations kept for the percentiles.
const TICK_HISTORY: usize = 512;

pub enum LineMessage {
    Input(LineInput),
    /// Stop ticking and hand back every player's state.
    Stop(oneshot::Sender<Vec<SavedPlayer>>),
    /// Record the whole line, as an observer sees it.
    RecordLine {
        seconds: u64,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Start a server-side recording of what `player` receives.
    Record {
        player: hearth_world::PlayerId,
        name: String,
        seconds: u64,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// A line as administration sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LineStatus {
    pub zone: String,
    pub number: u32,
    pub players: usize,
    pub npcs: usize,
    pub tick_hz: u32,
    pub tick_p50_us: u64,
    pub tick_p99_us: u64,
    /// World bytes per player per second over the last second.
    pub bytes_out_per_player_s: u64,
    pub stats: LineStats,
}

/// Statuses by line, published by each line about once a second.
pub type Statuses = Arc<Mutex<std::collections::BTreeMap<LineKey, LineStatus>>>;

pub struct LineTask {
    pub line: Line,
    pub key: LineKey,
    pub inbox: mpsc::Receiver<LineMessage>,
    pub to_directory: mpsc::UnboundedSender<(LineKey, Vec<LineOutput>)>,
    pub gate: GateHandle,
    pub statuses: Statuses,
    /// Messages the gate refused (session gone, or its queue full).
    pub send_failures: Arc<AtomicU64>,
    pub recordings: Arc<crate::recordings::Recordings>,
    /// This line's observers (line recordings), by their ids.
    pub observers: Vec<hearth_world::PlayerId>,
}

impl LineTask {
    pub async fn run(mut self) {
        let hz = self.line.zone().spec.tick_hz.max(1);
        let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(hz)));
        // A late tick is not made up with a burst: the world runs slower
        // instead, and the tick statistics show it.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut durations: VecDeque<u64> = VecDeque::with_capacity(TICK_HISTORY);
        let mut bytes_at_publish = 0u64;
        let mut last_publish = Instant::now();
        loop {
            interval.tick().await;
            loop {
                match self.inbox.try_recv() {
                    Ok(LineMessage::Input(input)) => self.line.input(input),
                    Ok(LineMessage::RecordLine { seconds, reply }) => {
                        let _ = reply.send(self.record_line(seconds));
                    }
                    Ok(LineMessage::Record {
                        player,
                        name,
                        seconds,
                        reply,
                    }) => {
                        let started = match self.line.snapshot_for(player) {
                            Some(snapshot) => self
                                .recordings
                                .start(
                                    player,
                                    &name,
                                    seconds,
                                    &[(hearth_world::wire::RELIABLE_CHANNEL, &snapshot)],
                                )
                                .map_err(|e| e.to_string()),
                            None => Err(format!("{name} left this line")),
                        };
                        let _ = reply.send(started);
                    }
                    Ok(LineMessage::Stop(reply)) => {
                        let _ = reply.send(self.line.save_all());
                        self.statuses
                            .lock()
                            .expect("not poisoned")
                            .remove(&self.key);
                        return;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.statuses
                            .lock()
                            .expect("not poisoned")
                            .remove(&self.key);
                        return;
                    }
                }
            }
            let started = Instant::now();
            self.line.tick();
            if durations.len() == TICK_HISTORY {
                durations.pop_front();
            }
            durations.push_back(started.elapsed().as_micros() as u64);
            self.dispatch().await;
            if last_publish.elapsed() >= Duration::from_secs(1) {
                let bytes = self.line.stats().bytes_out;
                let per_player = (bytes - bytes_at_publish) as f64
                    / last_publish.elapsed().as_secs_f64()
                    / self.line.player_count().max(1) as f64;
                bytes_at_publish = bytes;
                last_publish = Instant::now();
                self.publish(&durations, per_player as u64);
            }
        }
    }

    /// Starts an observer of this line and a recording of what it sees.
    fn record_line(&mut self, seconds: u64) -> Result<String, String> {
        // Observers are named from the top of the id space, where no session is.
        let observer = u64::MAX - self.recordings.next_observer_number();
        let snapshot = self.line.observe(observer);
        let name = format!("{}-line{}", self.line.zone().spec.name, self.line.number());
        match self.recordings.start(
            observer,
            &name,
            seconds,
            &[(hearth_world::wire::RELIABLE_CHANNEL, &snapshot)],
        ) {
            Ok(file) => {
                self.observers.push(observer);
                Ok(file)
            }
            Err(e) => {
                self.line.unobserve(observer);
                Err(e.to_string())
            }
        }
    }

    async fn dispatch(&mut self) {
        let mut sends = Vec::new();
        let mut others = Vec::new();
        let mut observed = Vec::new();
        // An observer whose recording ended stops observing.
        let recordings = &self.recordings;
        let line = &mut self.line;
        self.observers.retain(|&observer| {
            let running = recordings.is_recording(observer);
            if !running {
                line.unobserve(observer);
            }
            running
        });
        for output in self.line.drain_outputs() {
            match output {
                LineOutput::Observed {
                    observer,
                    channel,
                    bytes,
                } => observed.push((observer, channel, bytes)),
                LineOutput::Send {
                    player,
                    channel,
                    bytes,
                } => sends.push((player, channel, bytes)),
                other => others.push(other),
            }
        }
        if !others.is_empty() {
            let _ = self.to_directory.send((self.key, others));
        }
        if !observed.is_empty() {
            self.recordings.tee(&observed);
        }
        if sends.is_empty() {
            return;
        }
        self.recordings.tee(&sends);
        crate::gate_sends::deliver(&self.gate, sends, &self.send_failures).await;
    }

    fn publish(&self, durations: &VecDeque<u64>, bytes_per_player_s: u64) {
        let mut sorted: Vec<u64> = durations.iter().copied().collect();
        sorted.sort_unstable();
        let pct = |p: usize| {
            sorted
                .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let status = LineStatus {
            zone: self.line.zone().spec.name.clone(),
            number: self.line.number(),
            players: self.line.player_count(),
            npcs: self.line.npc_count(),
            tick_hz: self.line.zone().spec.tick_hz,
            tick_p50_us: pct(50),
            tick_p99_us: pct(99),
            bytes_out_per_player_s: bytes_per_player_s,
            stats: self.line.stats().clone(),
        };
        self.statuses
            .lock()
            .expect("not poisoned")
            .insert(self.key, status);
    }
}
