//! The world from the client's side: a local replica of the actors in view,
//! the player's own predicted movement, chat, lines and zones.
//!
//! ```no_run
//! # async fn demo(connection: hearth_client::Connection) {
//! use hearth_client::world::{WorldClient, Update};
//! let mut world = WorldClient::new(connection);
//! world.say_zone("hello").await;
//! while let Some(update) = world.next().await {
//!     if let Update::World(event) = update {
//!         println!("{event:?}");
//!     }
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use hearth_proto::Event;
use hearth_replica::record::Recorder;
pub use hearth_replica::replica::{ReplicaActor, WorldEvent};
use hearth_replica::wire::{ChatScope, Command, RELIABLE_CHANNEL, STATE_CHANNEL};
pub use hearth_replica::{ActorId, Pos, Replica, UNITS_PER_CELL};

use crate::Connection;

/// What [`WorldClient::next`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    World(WorldEvent),
    /// A session event (links, resume, close, messages on other channels).
    Session(Event),
    /// The server sent a world message that does not decode: a bug on one
    /// side or the other; the message is skipped.
    Malformed(String),
}

pub struct WorldClient {
    connection: Connection,
    replica: Replica,
    walking_to: Option<Pos>,
    ticker: tokio::time::Interval,
    queued: VecDeque<Update>,
    /// Commands given before the world's channels opened (before Entered):
    /// sent once the player is in.
    waiting: Vec<Command>,
    closed: bool,
    /// Where received world messages are recorded, and since when.
    recorder: Option<(
        Recorder<Box<dyn std::io::Write + Send + Sync>>,
        std::time::Instant,
    )>,
}

impl WorldClient {
    pub fn new(connection: Connection) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            connection,
            replica: Replica::default(),
            walking_to: None,
            ticker,
            queued: VecDeque::new(),
            waiting: Vec::new(),
            closed: false,
            recorder: None,
        }
    }

    /// Records every world message received from now on (for `hearth
    /// replay`). A write error stops the recording, not the session.
    pub fn record_to(&mut self, out: Box<dyn std::io::Write + Send + Sync>) -> std::io::Result<()> {
        self.recorder = Some((Recorder::new(out)?, std::time::Instant::now()));
        Ok(())
    }

    fn record(&mut self, channel: u16, payload: &[u8]) {
        if let Some((recorder, since)) = &mut self.recorder {
            let micros = since.elapsed().as_micros() as u64;
            if recorder
                .record(micros, channel, payload)
                .and_then(|()| recorder.flush())
                .is_err()
            {
                self.recorder = None;
            }
        }
    }

    /// The actors in view, the zone, and the own predicted position.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Walk towards `target` at the legal speed (predicted here, confirmed
    /// or corrected by the server).
    pub fn move_to(&mut self, target: Pos) {
        self.walking_to = Some(target);
    }

    /// Claims a position outright, skipping the local checks: what a
    /// cheating client would do. The server refuses and corrects it.
    pub async fn claim_position(&mut self, pos: Pos) {
        self.replica.moved_to(pos);
        self.send_state().await;
    }

    pub fn is_walking(&self) -> bool {
        self.walking_to.is_some()
    }

    pub async fn say_zone(&mut self, text: &str) {
        self.command(Command::Chat {
            scope: ChatScope::Zone,
            to: String::new(),
            text: text.to_owned(),
        })
        .await;
    }

    pub async fn say_line(&mut self, text: &str) {
        self.command(Command::Chat {
            scope: ChatScope::Line,
            to: String::new(),
            text: text.to_owned(),
        })
        .await;
    }

    pub async fn whisper(&mut self, to: &str, text: &str) {
        self.command(Command::Chat {
            scope: ChatScope::Whisper,
            to: to.to_owned(),
            text: text.to_owned(),
        })
        .await;
    }

    pub async fn switch_line(&mut self, line: u32) {
        self.command(Command::SwitchLine { line }).await;
    }

    pub async fn travel(&mut self, zone: &str) {
        self.command(Command::Travel {
            zone: zone.to_owned(),
        })
        .await;
    }

    async fn command(&mut self, command: Command) {
        if self.replica.entered.is_none() {
            // The world's channels open just before Entered: until then a
            // command waits here instead of failing.
            if self.waiting.len() < 64 {
                self.waiting.push(command);
            }
            return;
        }
        let _ = self
            .connection
            .send(RELIABLE_CHANNEL, &command.to_vec())
            .await;
    }

    async fn send_state(&self) {
        let state = self.replica.state_message();
        let _ = self.connection.send(STATE_CHANNEL, &state.to_vec()).await;
    }

    /// The next thing that happened; `None` once the session is over and
    /// everything has been reported. Keeps the walk going and acknowledges
    /// frames while it waits.
    pub async fn next(&mut self) -> Option<Update> {
        loop {
            if let Some(update) = self.queued.pop_front() {
                return Some(update);
            }
            if self.closed {
                return None;
            }
            tokio::select! {
                event = self.connection.next_event() => match event {
                    Some(Event::Message { channel: RELIABLE_CHANNEL, payload }) => {
                        self.record(RELIABLE_CHANNEL, &payload);
                        match self.replica.apply_reliable(&payload) {
                            Ok(events) => {
                                self.queued.extend(events.into_iter().map(Update::World));
                                for command in std::mem::take(&mut self.waiting) {
                                    let _ = self.connection.send(RELIABLE_CHANNEL, &command.to_vec()).await;
                                }
                            }
                            Err(error) => self.queued.push_back(Update::Malformed(error.to_string())),
                        }
                    }
                    Some(Event::Message { channel: STATE_CHANNEL, payload }) => {
                        self.record(STATE_CHANNEL, &payload);
                        match self.replica.apply_frame(&payload) {
                            Ok(events) => {
                                self.queued.extend(events.into_iter().map(Update::World));
                                if self.replica.entered.is_some() {
                                    self.send_state().await;
                                }
                            }
                            Err(error) => self.queued.push_back(Update::Malformed(error.to_string())),
                        }
                    }
                    Some(event) => {
                        if matches!(event, Event::Closed(_)) {
                            self.closed = true;
                        }
                        self.queued.push_back(Update::Session(event));
                    }
                    None => self.closed = true,
                },
                _ = self.ticker.tick() => {
                    if let Some(target) = self.walking_to.filter(|_| self.replica.is_ready()) {
                        if self.replica.step_towards(target).is_some() {
                            self.send_state().await;
                        } else {
                            self.walking_to = None;
                        }
                    }
                }
            }
        }
    }

    /// Runs until `done` holds for an update (returned) or `within` passes.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&Update, &Replica) -> bool,
    ) -> Option<Update> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let update = tokio::time::timeout_at(deadline, self.next())
                .await
                .ok()??;
            if done(&update, &self.replica) {
                return Some(update);
            }
        }
    }

    /// Keeps the world running for `duration`, returning what happened.
    pub async fn run_for(&mut self, duration: Duration) -> Vec<Update> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut updates = Vec::new();
        while let Ok(Some(update)) = tokio::time::timeout_at(deadline, self.next()).await {
            updates.push(update);
        }
        updates
    }

    pub async fn close(&self, code: u16, reason: &str) {
        self.connection.close(code, reason).await;
    }

    pub fn into_connection(self) -> Connection {
        self.connection
    }
}
