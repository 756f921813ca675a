//! [`LightWorldClient`]: the built-in world played with the least a client
//! keeps ([`hearth_replica::light::LightReplica`]): the session sealed as
//! always, every frame acknowledged, moves predicted and sent, the world's
//! messages read, but no actor's properties kept. For load generators
//! (`hearth bot --light`) that must play many players on one core; a game
//! or a correctness run wants [`super::WorldClient`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hearth_proto::Event;
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::geometry::Pos;
use hearth_replica::light::LightReplica;
use hearth_replica::schema::Value;
use hearth_replica::zone::Zone;

use super::generated::{self, Message, Player, SayScope};
use super::WorldUpdate;
use crate::Connection;

/// See the module's documentation.
pub struct LightWorldClient {
    connection: Connection,
    replica: LightReplica,
    /// The zone's walls, for walks, from the line's `Joined`.
    zone: Option<Zone>,
    walking_to: Option<Pos>,
    ticker: tokio::time::Interval,
    queued: VecDeque<WorldUpdate>,
    closed: bool,
}

impl LightWorldClient {
    /// Over a connection logged in with the world's schema version.
    pub fn new(connection: Connection) -> Self {
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            connection,
            replica: LightReplica::new(Arc::new(generated::schema())),
            zone: None,
            walking_to: None,
            ticker,
            queued: VecDeque::new(),
            closed: false,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn replica(&self) -> &LightReplica {
        &self.replica
    }

    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// Where the player's own actor is (predicted).
    pub fn position(&self) -> Option<Pos> {
        self.replica.position()
    }

    /// In a line and steering.
    pub fn is_ready(&self) -> bool {
        self.zone.is_some() && self.position().is_some()
    }

    /// Walk towards `target`, a tick's step at a time just under the zone's
    /// speed.
    pub fn move_to(&mut self, target: Pos) {
        self.walking_to = Some(target);
    }

    pub async fn say(&mut self, scope: SayScope, to: &str, text: &str) {
        let values = vec![
            Value::Int(scope as i64),
            Value::Str(to.into()),
            Value::Str(text.into()),
        ];
        if let Ok(bytes) = self.replica.message("say", values) {
            let _ = self.connection.send(RELIABLE_CHANNEL, &bytes).await;
        }
    }

    pub async fn travel(&mut self, zone: &str) {
        if let Ok(bytes) = self
            .replica
            .message("travel", vec![Value::Str(zone.into())])
        {
            let _ = self.connection.send(RELIABLE_CHANNEL, &bytes).await;
        }
    }

    async fn send_ack(&mut self) {
        if let Some(ack) = self.replica.poll_ack() {
            let _ = self.connection.send(STATE_CHANNEL, &ack).await;
        }
    }

    /// One tick of the walk, as `WorldClient` walks.
    async fn step(&mut self) {
        let (Some(target), Some(at), Some(zone)) = (self.walking_to, self.position(), &self.zone)
        else {
            return;
        };
        let speed = self.replica.speed(Player::KIND);
        let next = super::walk_step(at, target, zone, speed, self.replica.tick_hz());
        if !next.is_some_and(|next| self.replica.move_to(next)) {
            self.walking_to = None;
            return;
        }
        if next == Some(target) {
            self.walking_to = None;
        }
        self.send_ack().await;
    }

    /// The next thing that happened (an entry into a line, one of the
    /// world's messages, a correction, a session event); `None` once the
    /// session is over. Keeps the walk going and acknowledges frames.
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
                        let (joins, corrections) = (self.replica.joins, self.replica.corrections);
                        let applied = match channel {
                            RELIABLE_CHANNEL => self.replica.apply_reliable(&payload),
                            _ => self.replica.apply_frame(&payload),
                        };
                        if let Err(error) = applied {
                            self.queued.push_back(WorldUpdate::Malformed(error.to_string()));
                            self.closed = true;
                            continue;
                        }
                        if self.replica.joins != joins {
                            self.walking_to = None;
                            self.zone = Zone::from_map(self.replica.map()).ok();
                            self.queued.push_back(WorldUpdate::Entered);
                        }
                        if self.replica.corrections != corrections {
                            self.walking_to = None;
                            self.queued.push_back(WorldUpdate::Corrected);
                        }
                        while let Some(event) = self.replica.poll_message() {
                            if let Some(message) = Message::decode(&event) {
                                self.queued.push_back(WorldUpdate::Message(message));
                            }
                        }
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
}
