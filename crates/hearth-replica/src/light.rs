//! [`LightReplica`]: a client of any game that keeps the least a client
//! must to stay honest with the server, for load generators that play
//! thousands of players on one core (`hearth bot --light`). It reads every
//! reliable message (the kind of each actor in view, its own actor, the
//! zone's map and speeds), acknowledges every frame of its line after
//! reading only the frame's header, predicts and sends its own moves, and
//! reads a frame in full only when it says a move was refused. It keeps no
//! actor's properties: a game's UI needs [`crate::game_replica::GameReplica`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use hearth_codec::DecodeError;

use crate::actor::ActorId;
use crate::frame_acks::StateSender;
use crate::game_replica::MAX_REPLICA_ACTORS;
use crate::game_wire::{decode_frame, decode_reliable, frame_header, GameItem};
use crate::geometry::Pos;
use crate::schema::{Schema, Value};

/// Game messages a light replica keeps until polled.
pub const MAX_MESSAGES: usize = 256;

/// See the module's documentation.
#[derive(Debug)]
pub struct LightReplica {
    schema: Arc<Schema>,
    /// The kind of each actor in view: what reading the wire needs.
    kinds: HashMap<ActorId, u16>,
    /// The actor the player's moves steer.
    controlled: Option<ActorId>,
    /// Where the server has the controlled actor: its spawn, its moves the
    /// server took, or a correction.
    server_position: Option<Pos>,
    /// The line's `Joined`: tick rate, map, speeds, entry.
    tick_hz: Option<u32>,
    map: String,
    speeds: Vec<u32>,
    entry: u8,
    /// The acknowledgements and the moves not yet taken: what the client
    /// sends on the state channel.
    state: StateSender,
    /// The game's messages not yet polled.
    inbox: VecDeque<crate::game_replica::GameEvent>,
    /// Joined items seen: the player's entries into lines.
    pub joins: u32,
    /// Game messages received (the game's own, not Hearth's items).
    pub messages: u64,
    /// Frames acknowledged, and moves the server refused.
    pub frames: u64,
    pub corrections: u64,
}

impl LightReplica {
    pub fn new(schema: Arc<Schema>) -> Self {
        Self {
            schema,
            kinds: HashMap::new(),
            controlled: None,
            server_position: None,
            tick_hz: None,
            map: String::new(),
            speeds: Vec::new(),
            entry: 0,
            state: StateSender::default(),
            inbox: VecDeque::new(),
            joins: 0,
            messages: 0,
            frames: 0,
            corrections: 0,
        }
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The zone's map, from the line's `Joined`.
    pub fn map(&self) -> &str {
        &self.map
    }

    pub fn tick_hz(&self) -> Option<u32> {
        self.tick_hz
    }

    /// A kind's speed in this zone, cells a second.
    pub fn speed(&self, kind: u16) -> Option<u32> {
        self.speeds.get(usize::from(kind)).copied()
    }

    /// Actors in view.
    pub fn in_view(&self) -> usize {
        self.kinds.len()
    }

    /// Where the controlled actor is: its newest move, or where the server
    /// put it.
    pub fn position(&self) -> Option<Pos> {
        self.controlled?;
        self.state.newest_move().or(self.server_position)
    }

    /// Reads a message of the reliable channel.
    pub fn apply_reliable(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let kinds = &self.kinds;
        let (tick, items) = decode_reliable(bytes, &self.schema, &|id| kinds.get(&id).copied())?;
        // A spawn and the control of the same actor come in one message.
        let mut spawned_at: Vec<(ActorId, Pos)> = Vec::new();
        for item in items {
            match item {
                GameItem::Joined {
                    tick_hz,
                    map,
                    speeds,
                    entry,
                    ..
                } => {
                    self.kinds.clear();
                    self.controlled = None;
                    self.server_position = None;
                    self.state.forget_moves();
                    self.tick_hz = Some(tick_hz);
                    self.map = map;
                    self.speeds = speeds;
                    self.entry = entry;
                    self.state.acks.restart(tick.saturating_sub(1));
                    self.joins += 1;
                }
                GameItem::Spawn {
                    id,
                    kind,
                    mask,
                    values,
                    ..
                } => {
                    if self.kinds.len() >= MAX_REPLICA_ACTORS && !self.kinds.contains_key(&id) {
                        return Err(DecodeError::OutOfRange("actors in view"));
                    }
                    self.kinds.insert(id, kind);
                    if let Some(pos) = position_of(&self.schema, kind, mask, &values) {
                        spawned_at.push((id, pos));
                    }
                }
                GameItem::Despawn { id } => {
                    self.kinds.remove(&id);
                }
                GameItem::Control { id } => {
                    self.controlled = id;
                    self.state.forget_moves();
                    self.server_position = spawned_at
                        .iter()
                        .find(|(spawned, _)| Some(*spawned) == id)
                        .map(|(_, pos)| *pos);
                }
                GameItem::Message { index, values } => {
                    self.messages += 1;
                    if self.inbox.len() >= MAX_MESSAGES {
                        self.inbox.pop_front();
                    }
                    self.inbox
                        .push_back(crate::game_replica::GameEvent::Message { index, values });
                }
                GameItem::Set { .. } => {}
            }
        }
        Ok(())
    }

    /// Reads a frame of the state channel: its header, and its updates
    /// only when it says a move was refused.
    pub fn apply_frame(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let header = frame_header(bytes).ok_or(DecodeError::OutOfRange("frame"))?;
        if self.tick_hz.is_none()
            || header.entry != self.entry
            || header.tick <= self.state.acks.newest()
        {
            return Ok(());
        }
        self.state.acks.applied(header.tick);
        self.frames += 1;
        // The server took every move up to its input ack: where the last
        // of them went is where it has the actor (unless a refusal says
        // otherwise, below).
        if let Some(taken) = self.state.taken(header.input_ack) {
            self.server_position = Some(taken.pos);
        }
        if header.corrected {
            self.corrections += 1;
            self.state.forget_moves();
            let kinds = &self.kinds;
            let (_, updates, _) = decode_frame(bytes, &self.schema, &|id| kinds.get(&id).copied())?;
            if let Some(update) = updates.iter().find(|u| Some(u.id) == self.controlled) {
                let kind = self.kinds.get(&update.id).copied();
                if let Some(pos) =
                    kind.and_then(|k| position_of(&self.schema, k, update.mask, &update.values))
                {
                    self.server_position = Some(pos);
                }
            }
        }
        Ok(())
    }

    /// The game's message `name` to the server, checked against the schema:
    /// for the reliable channel.
    pub fn message(
        &self,
        name: &str,
        values: Vec<Value>,
    ) -> Result<Vec<u8>, crate::schema::ValueError> {
        crate::game_wire::to_server(&self.schema, name, values)
    }

    /// The next game message received (oldest first; at most
    /// [`MAX_MESSAGES`] wait, older ones are dropped).
    pub fn poll_message(&mut self) -> Option<crate::game_replica::GameEvent> {
        self.inbox.pop_front()
    }

    /// Moves the controlled actor to `to` (predicted here, checked by the
    /// server); false if it steers nothing yet.
    pub fn move_to(&mut self, to: Pos) -> bool {
        if self.controlled.is_none() {
            return false;
        }
        self.state.push_move(to);
        true
    }

    /// What to send on the state channel: the acknowledgement of the newest
    /// frame, with the moves not yet acknowledged.
    pub fn poll_ack(&mut self) -> Option<Vec<u8>> {
        self.state.poll(&self.schema)
    }
}

/// A moving kind's position among a spawn's or an update's values (its
/// first two properties, the first two values when the mask has both).
fn position_of(schema: &Schema, kind: u16, mask: u64, values: &[Value]) -> Option<Pos> {
    schema.kinds().get(usize::from(kind))?.movement?;
    if mask & 0b11 != 0b11 {
        return None;
    }
    match (values.first()?, values.get(1)?) {
        (Value::Int(x), Value::Int(y)) => Some(Pos::new(*x as i32, *y as i32)),
        _ => None,
    }
}
