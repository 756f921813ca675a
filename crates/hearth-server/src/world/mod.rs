//! The live world in the server: the directory on a task of its own, each
//! line on a task of the world's own runtime (threads apart from the gate's,
//! so a slow tick never delays packet processing), the gate feeding them
//! through bounded queues, and a writer saving players to the database.

mod lines;
pub mod saves;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_net::gate::GateHandle;
use hearth_proto::close_code;
use hearth_world::directory::LineConfigDebug;
use hearth_world::{
    decode_client, Action, Directory, DirectoryConfig, Join, LineInput, LineKey, LineOutput,
    PlayerId, Pos, Zone,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use lines::LineStatus;
use lines::{LineMessage, LineTask, Statuses};

use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum WorldStartError {
    #[error("cannot read the zone file {path}: {source} (check [world] zones in hearth.toml)")]
    ZoneFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the zone file {path} is not valid: {source}")]
    Zones {
        path: String,
        source: hearth_world::zone::ZoneError,
    },
    #[error("cannot start the world's threads: {0}")]
    Runtime(std::io::Error),
}

/// Counters for /metrics and administration.
#[derive(Debug, Default)]
pub struct WorldCounters {
    /// Client world messages dropped because the world's queue was full.
    pub inputs_dropped: AtomicU64,
    /// Client world messages dropped because their player sent too many.
    pub inputs_over_rate: AtomicU64,
    /// Client world messages that did not decode (their sessions are closed).
    pub malformed: AtomicU64,
    /// Messages for players the gate refused (session gone or backlogged).
    pub send_failures: Arc<AtomicU64>,
    pub joins: AtomicU64,
    pub saves: AtomicU64,
    /// Inputs a backlogged line had no room for.
    pub line_queue_full: AtomicU64,
}

/// Zones, lines and players, for administration.
#[derive(Debug, Clone, Serialize)]
pub struct WorldStatus {
    pub players: usize,
    pub lines: Vec<LineStatus>,
}

enum Lifecycle {
    Join(Box<Join>),
    Leave(PlayerId),
}

enum Command {
    Message {
        player: PlayerId,
        channel: u16,
        bytes: Vec<u8>,
    },
    Announce(String),
    SendToZone {
        name: String,
        zone: String,
        at: Option<Pos>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Find {
        name: String,
        reply: oneshot::Sender<Option<PlayerId>>,
    },
    Kick {
        name: String,
        reason: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Status(oneshot::Sender<WorldStatus>),
    /// Answered with where the line's answer will come.
    RecordLine {
        zone: String,
        line: u32,
        seconds: u64,
        reply: oneshot::Sender<oneshot::Receiver<Result<String, String>>>,
    },
    /// Answered with where the line's answer will come.
    Record {
        name: String,
        seconds: u64,
        reply: oneshot::Sender<oneshot::Receiver<Result<String, String>>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Reaches the world from the gate's handler (without ever waiting) and
/// from administration.
#[derive(Clone)]
pub struct WorldHandle {
    lifecycle: mpsc::UnboundedSender<Lifecycle>,
    commands: mpsc::Sender<Command>,
    pub counters: Arc<WorldCounters>,
    runtime: Arc<RuntimeHolder>,
    zones: Arc<Vec<String>>,
    /// Server-side recordings of what players receive.
    pub recordings: Arc<crate::recordings::Recordings>,
}

/// Owns the world's runtime and lets it go without blocking, whichever
/// context drops it last.
struct RuntimeHolder(Mutex<Option<tokio::runtime::Runtime>>);

impl Drop for RuntimeHolder {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.lock().expect("not poisoned").take() {
            runtime.shutdown_background();
        }
    }
}

impl WorldHandle {
    /// A player enters (after Join). Never waits: joins and leaves are as
    /// many as sessions, which the gate bounds.
    pub fn join(&self, join: Join) {
        self.counters.joins.fetch_add(1, Ordering::Relaxed);
        let _ = self.lifecycle.send(Lifecycle::Join(Box::new(join)));
    }

    pub fn leave(&self, player: PlayerId) {
        let _ = self.lifecycle.send(Lifecycle::Leave(player));
    }

    /// A message on a world channel; dropped and counted when the world is
    /// backlogged (moves repeat, so a dropped one is made up by the next).
    pub fn message(&self, player: PlayerId, channel: u16, bytes: Vec<u8>) -> bool {
        let sent = self
            .commands
            .try_send(Command::Message {
                player,
                channel,
                bytes,
            })
            .is_ok();
        if !sent {
            self.counters.inputs_dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// The zones' names, in the order of the zone file.
    pub fn zone_names(&self) -> &[String] {
        &self.zones
    }

    /// A system message to every player.
    pub async fn announce(&self, text: &str) {
        let _ = self.commands.send(Command::Announce(text.to_owned())).await;
    }

    /// Sends the player named `name` to `zone` (at `at`, or a spawn point).
    pub async fn move_player(&self, name: &str, zone: &str, at: Option<Pos>) -> Result<(), String> {
        let (name, zone) = (name.to_owned(), zone.to_owned());
        self.ask(|reply| Command::SendToZone {
            name,
            zone,
            at,
            reply,
        })
        .await?
    }

    /// Sends `command` to the directory and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        let stopped = |_| "the world has stopped".to_owned();
        self.commands.send(command(reply)).await.map_err(stopped)?;
        answer.await.map_err(|_| "the world has stopped".to_owned())
    }

    /// Closes the session of the player named `name` in the world; the
    /// client is told `reason`. For guests, who have no account: an
    /// account's sessions, in the world or not, are ended by its id
    /// through `AccountSessions::end_all`.
    pub async fn kick(&self, name: &str, reason: &str) -> Result<(), String> {
        let (name, reason) = (name.to_owned(), reason.to_owned());
        self.ask(|reply| Command::Kick {
            name,
            reason,
            reply,
        })
        .await?
    }

    /// The session of the player named `name`, if online.
    pub async fn find(&self, name: &str) -> Option<PlayerId> {
        let name = name.to_owned();
        self.ask(|reply| Command::Find { name, reply }).await.ok()?
    }

    /// Records on the server what the player named `name` receives, for
    /// `seconds`; returns the recording's file name.
    pub async fn record(&self, name: &str, seconds: u64) -> Result<String, String> {
        let name = name.to_owned();
        let answer = self
            .ask(|reply| Command::Record {
                name,
                seconds,
                reply,
            })
            .await?;
        match answer.await {
            Ok(result) => result,
            Err(_) => Err("the player's line stopped".to_owned()),
        }
    }

    /// Records a whole line (as an observer sees it: every actor, its chat)
    /// for `seconds`; returns the recording's file name.
    pub async fn record_line(&self, zone: &str, line: u32, seconds: u64) -> Result<String, String> {
        let zone = zone.to_owned();
        let answer = self
            .ask(|reply| Command::RecordLine {
                zone,
                line,
                seconds,
                reply,
            })
            .await?;
        answer
            .await
            .unwrap_or_else(|_| Err("the line stopped".to_owned()))
    }

    pub async fn status(&self) -> Option<WorldStatus> {
        self.ask(Command::Status).await.ok()
    }

    /// Stops every line and writes every player's state; returns when the
    /// database has it.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
        if let Some(runtime) = self.runtime.0.lock().expect("not poisoned").take() {
            runtime.shutdown_background();
        }
    }
}

/// Reads the zones named by the config (or the default game's).
pub fn load_zones(path: Option<&std::path::Path>) -> Result<Vec<Zone>, WorldStartError> {
    match path {
        None => hearth_world::parse_zone_file(hearth_world::DEFAULT_ZONES).map_err(|source| {
            WorldStartError::Zones {
                path: "(built in)".into(),
                source,
            }
        }),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| WorldStartError::ZoneFile {
                    path: path.to_owned(),
                    source,
                })?;
            hearth_world::parse_zone_file(&text).map_err(|source| WorldStartError::Zones {
                path: path.display().to_string(),
                source,
            })
        }
    }
}

/// The game's hooks into the world.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Filters or refuses chat messages (after Hearth's own checks).
    pub chat: Option<Arc<dyn hearth_world::ChatHook>>,
}

pub fn start(
    zones: Vec<Zone>,
    config: &crate::config::WorldConfig,
    data_dir: &std::path::Path,
    gate: GateHandle,
    storage: Storage,
    hooks: Hooks,
) -> Result<WorldHandle, WorldStartError> {
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("hearth-world")
        .enable_all()
        .build()
        .map_err(WorldStartError::Runtime)?;
    let zone_names = zones.iter().map(|z| z.spec.name.clone()).collect();
    let (directory, opening) = Directory::new(
        zones,
        DirectoryConfig {
            save_period_ms: config.save_period_ms,
            seed: u64::from_le_bytes(hearth_proto::os_seed()[..8].try_into().expect("8 bytes")),
        },
    );
    let (lifecycle_tx, lifecycle) = mpsc::unbounded_channel();
    let (commands_tx, commands) = mpsc::channel(config.input_queue.max(1));
    let (from_lines_tx, from_lines) = mpsc::unbounded_channel();
    let (saves, writer) = saves::spawn_writer(storage);
    let counters = Arc::new(WorldCounters::default());
    let recordings = Arc::new(crate::recordings::Recordings::new(
        data_dir.join("recordings"),
    ));
    let host = Host {
        directory,
        lines: HashMap::new(),
        runtime: runtime.handle().clone(),
        gate,
        statuses: Statuses::default(),
        from_lines_tx,
        saves,
        counters: counters.clone(),
        started: Instant::now(),
        hooks,
        recordings: recordings.clone(),
    };
    tokio::spawn(host.run(opening, lifecycle, commands, from_lines, writer));
    Ok(WorldHandle {
        lifecycle: lifecycle_tx,
        commands: commands_tx,
        counters,
        runtime: Arc::new(RuntimeHolder(Mutex::new(Some(runtime)))),
        zones: Arc::new(zone_names),
        recordings,
    })
}

/// The directory's task and what it drives.
struct Host {
    directory: Directory,
    lines: HashMap<LineKey, mpsc::Sender<LineMessage>>,
    runtime: tokio::runtime::Handle,
    gate: GateHandle,
    statuses: Statuses,
    from_lines_tx: mpsc::UnboundedSender<(LineKey, Vec<LineOutput>)>,
    saves: Arc<saves::SaveBuffer>,
    counters: Arc<WorldCounters>,
    started: Instant,
    hooks: Hooks,
    recordings: Arc<crate::recordings::Recordings>,
}

impl Host {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        opening: Vec<Action>,
        mut lifecycle: mpsc::UnboundedReceiver<Lifecycle>,
        mut commands: mpsc::Receiver<Command>,
        mut from_lines: mpsc::UnboundedReceiver<(LineKey, Vec<LineOutput>)>,
        writer: tokio::task::JoinHandle<()>,
    ) {
        self.carry_out(opening).await;
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                biased;
                Some(event) = lifecycle.recv() => {
                    let actions = match event {
                        Lifecycle::Join(join) => {
                            let player = join.arrival.player;
                            match self.directory.join(self.now_ms(), *join) {
                                Ok((_, actions)) => actions,
                                Err(error) => {
                                    tracing::warn!(player, %error, "a player could not enter the world");
                                    Vec::new()
                                }
                            }
                        }
                        Lifecycle::Leave(player) => self.directory.leave(player),
                    };
                    self.carry_out(actions).await;
                }
                Some((key, outputs)) = from_lines.recv() => {
                    let now = self.now_ms();
                    for output in outputs {
                        let actions = self.directory.on_output(now, key, output);
                        self.carry_out(actions).await;
                    }
                }
                Some(command) = commands.recv() => {
                    if let Some(done) = self.command(command).await {
                        self.stop(done, writer).await;
                        return;
                    }
                }
                _ = housekeeping.tick() => {
                    self.recordings.sweep();
                    let actions = self.directory.tick(self.now_ms());
                    self.carry_out(actions).await;
                }
            }
        }
    }

    /// Handles one command; returns the reply channel of a shutdown.
    async fn command(&mut self, command: Command) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Message {
                player,
                channel,
                bytes,
            } => match decode_client(channel, &bytes) {
                Ok(message) => {
                    if let Some(action) = self.directory.route(player, message.into_input(player)) {
                        self.carry_out(vec![action]).await;
                    }
                }
                Err(error) => {
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    let reason = error.to_string();
                    let _ = self
                        .gate
                        .run_on(player, move |ctx| {
                            ctx.close(player, close_code::PROTOCOL_ERROR, &reason)
                        })
                        .await;
                }
            },
            Command::Announce(text) => {
                let actions = self.directory.announce(&text);
                self.carry_out(actions).await;
            }
            Command::SendToZone {
                name,
                zone,
                at,
                reply,
            } => {
                let result = match self.directory.find(&name) {
                    None => Err(format!("{name} is not online")),
                    Some(player) => self.directory.send_to_zone(player, &zone, at),
                };
                let result = match result {
                    Ok(actions) => {
                        self.carry_out(actions).await;
                        Ok(())
                    }
                    Err(why) => Err(why),
                };
                let _ = reply.send(result);
            }
            Command::Kick {
                name,
                reason,
                reply,
            } => {
                let result = match self.directory.find(&name) {
                    None => Err(format!("{name} is not online")),
                    Some(player) => {
                        let _ = self
                            .gate
                            .run_on(player, move |ctx| {
                                ctx.close(player, close_code::KICKED, &reason)
                            })
                            .await;
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Command::Find { name, reply } => {
                let _ = reply.send(self.directory.find(&name));
            }
            Command::RecordLine {
                zone,
                line,
                seconds,
                reply,
            } => {
                let (line_reply, answer) = oneshot::channel();
                let key = self
                    .directory
                    .zone_index(&zone)
                    .map(|zone| LineKey { zone, number: line });
                match key.and_then(|key| self.lines.get(&key)) {
                    Some(task) => {
                        let message = LineMessage::RecordLine {
                            seconds,
                            reply: line_reply,
                        };
                        if task.try_send(message).is_err() {
                            let _ = reply.send(oneshot_error("the line is too busy: try again"));
                        } else {
                            let _ = reply.send(answer);
                        }
                    }
                    None => {
                        let _ = reply.send(oneshot_error(&format!("{zone} has no line {line}")));
                    }
                }
            }
            Command::Record {
                name,
                seconds,
                reply,
            } => {
                // The player's line starts it between two ticks.
                let (line_reply, answer) = oneshot::channel();
                let line = self.directory.find(&name).and_then(|player| {
                    Some((player, self.lines.get(&self.directory.line_of(player)?)?))
                });
                match line {
                    Some((player, line)) => {
                        let message = LineMessage::Record {
                            player,
                            name,
                            seconds,
                            reply: line_reply,
                        };
                        if line.try_send(message).is_err() {
                            let _ = reply
                                .send(oneshot_error("the player's line is too busy: try again"));
                        } else {
                            let _ = reply.send(answer);
                        }
                    }
                    None => {
                        let _ = reply.send(oneshot_error(&format!("{name} is not online")));
                    }
                }
            }
            Command::Status(reply) => {
                let statuses = self.statuses.lock().expect("not poisoned").clone();
                let lines = self
                    .directory
                    .lines()
                    .into_iter()
                    .map(|summary| {
                        let key = LineKey {
                            zone: self
                                .directory
                                .zone_index(&summary.zone)
                                .expect("listed zone"),
                            number: summary.number,
                        };
                        let mut status = statuses.get(&key).cloned().unwrap_or_default();
                        status.zone = summary.zone;
                        status.number = summary.number;
                        // The directory's count is current; the line's is up
                        // to a second old.
                        status.players = summary.players as usize;
                        status
                    })
                    .collect();
                let _ = reply.send(WorldStatus {
                    players: self.directory.player_count(),
                    lines,
                });
            }
            Command::Shutdown(done) => return Some(done),
        }
        None
    }

    async fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Open(key, config) => self.open(key, *config),
                Action::Close(key) => {
                    if let Some(line) = self.lines.remove(&key) {
                        let (reply, _) = oneshot::channel();
                        let _ = line.send(LineMessage::Stop(reply)).await;
                    }
                    self.statuses.lock().expect("not poisoned").remove(&key);
                }
                Action::ToLine(key, input) => {
                    let Some(line) = self.lines.get(&key) else {
                        continue;
                    };
                    // A line that cannot keep up loses the inputs it has no
                    // room for (counted); it never holds up the directory
                    // and with it every other line. Leaves, arrivals and
                    // transfers are few and always get through.
                    let must_arrive =
                        matches!(input, LineInput::Enter(_) | LineInput::Release { .. });
                    if must_arrive {
                        let _ = line.send(LineMessage::Input(input)).await;
                    } else if line.try_send(LineMessage::Input(input)).is_err() {
                        self.counters
                            .line_queue_full
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                Action::Gone(saved) | Action::Save(saved) => {
                    if saved.account.is_some() {
                        self.counters.saves.fetch_add(1, Ordering::Relaxed);
                        self.saves.push(saved);
                    }
                }
            }
        }
    }

    fn open(&mut self, key: LineKey, config: LineConfigDebug) {
        let (tx, inbox) = mpsc::channel(lines::LINE_QUEUE);
        let mut line = hearth_world::Line::new(config.0);
        if let Some(hook) = &self.hooks.chat {
            line.set_chat_hook(hook.clone());
        }
        let task = LineTask {
            line,
            key,
            inbox,
            to_directory: self.from_lines_tx.clone(),
            gate: self.gate.clone(),
            statuses: self.statuses.clone(),
            send_failures: self.counters.send_failures.clone(),
            recordings: self.recordings.clone(),
            observers: Vec::new(),
        };
        self.runtime.spawn(task.run());
        self.lines.insert(key, tx);
    }

    /// Stops every line, saves every player, waits for the database.
    async fn stop(mut self, done: oneshot::Sender<()>, writer: tokio::task::JoinHandle<()>) {
        let mut replies = Vec::new();
        for (_, line) in self.lines.drain() {
            let (reply, answer) = oneshot::channel();
            if line.send(LineMessage::Stop(reply)).await.is_ok() {
                replies.push(answer);
            }
        }
        for answer in replies {
            if let Ok(players) = answer.await {
                for saved in players {
                    self.saves.push(saved);
                }
            }
        }
        self.saves.close();
        let _ = writer.await;
        let _ = done.send(());
    }
}

/// An answer that is already there: an error.
fn oneshot_error(why: &str) -> oneshot::Receiver<Result<String, String>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(why.to_owned()));
    rx
}
