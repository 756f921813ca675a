//! The built-in world (a game on the game API, `hearth serve`) from a
//! client's side: the session, the game's generic replica
//! with the world's typed bindings ([`generated`], from
//! `hearth_world::world_schema()`), a walk to a target at the zone's speed
//! (predicted here, checked by the server), chat, line changes and travel.
//!
//! ```no_run
//! # async fn demo(connection: hearth_client::Connection) {
//! use hearth_client::world::{WorldClient, WorldUpdate};
//! let mut world = WorldClient::new(connection);
//! while let Some(update) = world.next().await {
//!     if let WorldUpdate::Message(message) = update {
//!         println!("{message:?}");
//!     }
//! }
//! # }
//! ```

/// The world's typed bindings, written by `hearth codegen --lang rust`
/// (regenerate: `HEARTH_BLESS=1 cargo test -p hearth-world --test generated`).
#[allow(dead_code)]
pub mod generated;
pub mod light;

pub use light::LightWorldClient;

use std::collections::VecDeque;
use std::time::Duration;

use hearth_proto::Event;
use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::geometry::{Pos, UNITS_PER_CELL};
use hearth_replica::record::{Recorder, SCHEMA_CHANNEL};
use hearth_replica::zone::Zone;

use crate::Connection;
use generated::{Message, Player, SayScope};

/// What [`WorldClient::next`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WorldUpdate {
    /// The player entered a line (the first, or another after a travel or
    /// a line change): the replica started afresh.
    Entered,
    /// An actor came into view.
    Spawned(ActorId),
    /// An actor is gone from view.
    Despawned(ActorId),
    /// An actor's position changed (as the server has it).
    Moved(ActorId),
    /// One of the world's messages (chat, refusals, the zone entered).
    Message(Message),
    /// The server refused a move: the player is back where it has them.
    Corrected,
    /// A session event (links, resume, close).
    Session(Event),
    /// The server sent a game message that does not apply: a bug on one
    /// side or the other; the client stops applying (as a page closes).
    Malformed(String),
}

/// See the module's documentation.
pub struct WorldClient {
    connection: Connection,
    replica: GameReplica,
    /// The zone the player is in (its map, for walks), from the replica's
    /// Joined.
    zone: Option<Zone>,
    walking_to: Option<Pos>,
    ticker: tokio::time::Interval,
    queued: VecDeque<WorldUpdate>,
    closed: bool,
    /// Where every game message received goes, with when it came
    /// ([`WorldClient::record_to`]).
    recorder: Option<(
        Recorder<Box<dyn std::io::Write + Send + Sync>>,
        std::time::Instant,
    )>,
}

impl WorldClient {
    /// Over a connection logged in with the world's schema version
    /// (`?schema=` + [`generated::VERSION`]; `game::GameSession::join`
    /// does it).
    pub fn new(connection: Connection) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            connection,
            replica: generated::replica(),
            zone: None,
            walking_to: None,
            ticker,
            queued: VecDeque::new(),
            closed: false,
            recorder: None,
        }
    }

    /// Records every game message received from now on, after the game's
    /// schema (so `hearth replay` needs nothing but the file). A write
    /// error stops the recording, not the session.
    pub fn record_to(&mut self, out: Box<dyn std::io::Write + Send + Sync>) -> std::io::Result<()> {
        let mut recorder = Recorder::new(out)?;
        let schema = serde_json::to_vec(self.replica.schema()).map_err(std::io::Error::other)?;
        recorder.record(0, SCHEMA_CHANNEL, &schema)?;
        recorder.flush()?;
        self.recorder = Some((recorder, std::time::Instant::now()));
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

    pub fn replica(&self) -> &GameReplica {
        &self.replica
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The zone the player is in, once entered.
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// Where the player's own actor is (predicted).
    pub fn position(&self) -> Option<Pos> {
        self.replica
            .controlled()
            .and_then(|me| self.replica.position(me))
    }

    /// In a line and steering.
    pub fn is_ready(&self) -> bool {
        self.zone.is_some() && self.position().is_some()
    }

    /// Walk towards `target`, a tick's step at a time just under the zone's
    /// speed (predicted here, confirmed or corrected by the server).
    pub fn move_to(&mut self, target: Pos) {
        self.walking_to = Some(target);
    }

    pub fn is_walking(&self) -> bool {
        self.walking_to.is_some()
    }

    pub async fn say(&mut self, scope: SayScope, to: &str, text: &str) {
        if let Ok(bytes) = generated::say(&self.replica, scope, to, text) {
            let _ = self.connection.send(RELIABLE_CHANNEL, &bytes).await;
        }
    }

    pub async fn switch_line(&mut self, line: u32) {
        if let Ok(bytes) = generated::switch_line(&self.replica, line) {
            let _ = self.connection.send(RELIABLE_CHANNEL, &bytes).await;
        }
    }

    pub async fn travel(&mut self, zone: &str) {
        if let Ok(bytes) = generated::travel(&self.replica, zone) {
            let _ = self.connection.send(RELIABLE_CHANNEL, &bytes).await;
        }
    }

    async fn send_ack(&mut self) {
        if let Some(ack) = self.replica.poll_ack() {
            let _ = self.connection.send(STATE_CHANNEL, &ack).await;
        }
    }

    /// One tick of the walk: a step towards the target if the way is clear.
    async fn step(&mut self) {
        let (Some(target), Some(at), Some(zone)) = (self.walking_to, self.position(), &self.zone)
        else {
            return;
        };
        let speed = self.replica.speed(Player::KIND);
        let next = walk_step(at, target, zone, speed, self.replica.tick_hz());
        if next.is_none_or(|next| self.replica.move_to(next).is_err()) {
            self.walking_to = None;
            return;
        }
        if next == Some(target) {
            self.walking_to = None;
        }
        self.send_ack().await;
    }

    /// The next thing that happened; `None` once the session is over and
    /// everything has been reported. Keeps the walk going and acknowledges
    /// frames while it waits.
    pub async fn next(&mut self) -> Option<WorldUpdate> {
        loop {
            if let Some(update) = self.queued.pop_front() {
                return Some(update);
            }
            if self.closed {
                return None;
            }
            tokio::select! {
                event = self.connection.next_event() => match event {
                    Some(Event::Message { channel, payload })
                        if channel == RELIABLE_CHANNEL || channel == STATE_CHANNEL =>
                    {
                        self.record(channel, &payload);
                        let applied = match channel {
                            RELIABLE_CHANNEL => self.replica.apply_reliable(&payload),
                            _ => self.replica.apply_frame(&payload),
                        };
                        if let Err(error) = applied {
                            self.queued.push_back(WorldUpdate::Malformed(error.to_string()));
                            self.closed = true;
                            continue;
                        }
                        self.take_events();
                        self.send_ack().await;
                    }
                    Some(event) => {
                        if matches!(event, Event::Closed(_)) {
                            self.closed = true;
                        }
                        self.queued.push_back(WorldUpdate::Session(event));
                    }
                    None => self.closed = true,
                },
                _ = self.ticker.tick() => self.step().await,
            }
        }
    }

    fn take_events(&mut self) {
        while let Some(event) = self.replica.poll_event() {
            match &event {
                GameEvent::Joined { .. } => {
                    self.walking_to = None;
                    self.zone = zone_of(self.replica.map());
                }
                GameEvent::Corrected { .. } => self.walking_to = None,
                _ => {}
            }
            if let Some(update) = update_of(&event) {
                self.queued.push_back(update);
            }
        }
    }

    /// Runs until `done` holds for an update (returned) or `within` passes.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&WorldUpdate, &Self) -> bool,
    ) -> Option<WorldUpdate> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let update = tokio::time::timeout_at(deadline, self.next())
                .await
                .ok()??;
            if done(&update, self) {
                return Some(update);
            }
        }
    }

    pub async fn close(&self, code: u16, reason: &str) {
        self.connection.close(code, reason).await;
    }
}

/// One tick's step of a walk from `at` towards `target`, just under the
/// zone's speed for the kind (rounding and timer jitter never make a step
/// too long); `None` when the walk cannot go on (arrived, or a wall in the
/// way). Both world clients walk with it.
pub(crate) fn walk_step(
    at: Pos,
    target: Pos,
    zone: &Zone,
    speed: Option<u32>,
    tick_hz: Option<u32>,
) -> Option<Pos> {
    let speed = i64::from(speed.unwrap_or(1));
    let hz = i64::from(tick_hz.unwrap_or(20).max(1));
    let step = (speed * i64::from(UNITS_PER_CELL) / hz - 2).max(1);
    let next = at.step_towards(target, step);
    (next != at && zone.path_clear(at, next)).then_some(next)
}

/// What a replica's event means in the world, if anything worth telling
/// (a replay of a recording reads events the same way).
pub fn update_of(event: &GameEvent) -> Option<WorldUpdate> {
    Some(match event {
        GameEvent::Joined { .. } => WorldUpdate::Entered,
        GameEvent::Spawned { id } => WorldUpdate::Spawned(*id),
        GameEvent::Despawned { id } => WorldUpdate::Despawned(*id),
        // The first two properties of a moving kind: its position.
        GameEvent::Changed { id, mask } if mask & 0b11 != 0 => WorldUpdate::Moved(*id),
        GameEvent::Corrected { .. } => WorldUpdate::Corrected,
        GameEvent::Message { .. } => WorldUpdate::Message(Message::decode(event)?),
        _ => return None,
    })
}

/// The zone a `Joined`'s map draws (its walls, for walks), if it reads.
fn zone_of(map: &str) -> Option<Zone> {
    Zone::from_map(map).ok()
}
