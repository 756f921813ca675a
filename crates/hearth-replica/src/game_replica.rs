//! A client's copy of a schema-declared game: every actor it sees with the
//! values of the properties it may see, kept up to date from the server's
//! reliable messages and frames ([`crate::game_wire`]), and the events a
//! game client reacts to. Generic: any game's schema, no generated code
//! needed (generated bindings only add names and types on top).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use hearth_codec::DecodeError;

use crate::actor::ActorId;
use crate::frame_acks::StateSender;
use crate::game_wire::{decode_frame, decode_reliable, joined_version, GameItem};
use crate::geometry::Pos;
use crate::schema::{Schema, Value};

/// Actors a replica holds at most: a server that spawns more is refused
/// rather than allowed to fill the client's memory.
pub const MAX_REPLICA_ACTORS: usize = 65_536;
/// Events waiting to be read at most; older ones are dropped (and counted)
/// beyond it.
const MAX_EVENTS: usize = 4096;

/// One actor as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameActor {
    pub kind: u16,
    /// This client's player owns it.
    pub owned: bool,
    /// Every property's value by index; those the client does not see keep
    /// their type's default.
    pub values: Vec<Value>,
}

/// What changed, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameEvent {
    Joined {
        tick_hz: u32,
    },
    Spawned {
        id: ActorId,
    },
    /// Properties in `mask` changed (reliably, or by a frame).
    Changed {
        id: ActorId,
        mask: u64,
    },
    Despawned {
        id: ActorId,
    },
    Message {
        index: u16,
        values: Vec<Value>,
    },
    /// The player's moves steer this actor from now on (`None`: nothing).
    Controlling {
        id: Option<ActorId>,
    },
    /// The server refused a move: the controlled actor is back where the
    /// server has it, and the moves after it were dropped.
    Corrected {
        at: Pos,
    },
}

/// Why a move could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("this player controls no actor (the game has not given it one)")]
    NoControl,
    #[error("the controlled actor is not in view yet")]
    NotSpawned,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GameReplicaError {
    #[error("the server runs the game's schema version {server}, this client was built for {client}: update the client or regenerate its bindings (hearth codegen)")]
    SchemaMismatch { server: String, client: String },
    #[error("the server sent a malformed game message: {0}")]
    Decode(#[from] DecodeError),
    #[error("the server spawned actor {0:?}, which already exists")]
    DuplicateSpawn(ActorId),
    #[error("the server sent more than {MAX_REPLICA_ACTORS} actors")]
    TooManyActors,
}

/// A client's replica of one game line.
#[derive(Debug, Clone)]
pub struct GameReplica {
    /// The schema the client was built for; the server's must match.
    schema: Arc<Schema>,
    actors: BTreeMap<ActorId, GameActor>,
    /// The server's tick rate, once joined.
    tick_hz: Option<u32>,
    /// The zone's map, view radius and each kind's speed in it (cells
    /// per second, 0 for kinds that do not move), from `Joined`.
    map: String,
    view_radius: u32,
    speeds: Vec<u32>,
    /// The player's entry into its line, from `Joined`: frames of another
    /// entry are another line's.
    entry: u8,
    /// The actor this player's moves steer.
    controlled: Option<ActorId>,
    /// The acknowledgements and the moves not yet taken: what the client
    /// sends on the state channel.
    state: StateSender,
    events: VecDeque<GameEvent>,
    /// Events dropped because nobody read them.
    pub events_dropped: u64,
}

impl GameReplica {
    pub fn new(schema: Arc<Schema>) -> Self {
        Self {
            schema,
            actors: BTreeMap::new(),
            tick_hz: None,
            map: String::new(),
            view_radius: 0,
            speeds: Vec::new(),
            entry: 0,
            controlled: None,
            state: StateSender::default(),
            events: VecDeque::new(),
            events_dropped: 0,
        }
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn actor(&self, id: ActorId) -> Option<&GameActor> {
        self.actors.get(&id)
    }

    pub fn actors(&self) -> impl Iterator<Item = (ActorId, &GameActor)> {
        self.actors.iter().map(|(id, actor)| (*id, actor))
    }

    /// The actor's value of the property named `prop`.
    pub fn value(&self, id: ActorId, prop: &str) -> Option<&Value> {
        let actor = self.actors.get(&id)?;
        let index = self.schema.kinds()[usize::from(actor.kind)].prop_index(prop)?;
        actor.values.get(index)
    }

    pub fn tick_hz(&self) -> Option<u32> {
        self.tick_hz
    }

    /// The zone's map, rows of cells as in `zones.toml` (empty before
    /// `Joined`, or for a game without one).
    pub fn map(&self) -> &str {
        &self.map
    }

    /// How far the player sees moving actors, in cells.
    pub fn view_radius(&self) -> u32 {
        self.view_radius
    }

    /// How fast actors of `kind` move in this zone, cells per second
    /// (`None`: before `Joined`, or a kind that does not move): the speed a
    /// client's moves keep to.
    pub fn speed(&self, kind: u16) -> Option<u32> {
        self.speeds
            .get(usize::from(kind))
            .copied()
            .filter(|s| *s > 0)
    }

    /// The actor this player's moves steer.
    pub fn controlled(&self) -> Option<ActorId> {
        self.controlled
    }

    /// Where an actor of a moving kind is: for the controlled actor, where
    /// this client's moves put it (predicted ahead of the server); for the
    /// others, as the server last said.
    pub fn position(&self, id: ActorId) -> Option<Pos> {
        if Some(id) == self.controlled {
            if let Some(newest) = self.state.newest_move() {
                return Some(newest);
            }
        }
        self.server_position(id)
    }

    /// Where the server last said an actor of a moving kind is.
    pub fn server_position(&self, id: ActorId) -> Option<Pos> {
        let actor = self.actors.get(&id)?;
        self.schema.kinds()[usize::from(actor.kind)].movement?;
        match (&actor.values[0], &actor.values[1]) {
            (Value::Int(x), Value::Int(y)) => Some(Pos::new(*x as i32, *y as i32)),
            _ => None,
        }
    }

    /// Moves the controlled actor to `to` at once (prediction) and queues
    /// the move for the server, which checks it against the kind's speed
    /// and the map's walls: a refused move comes back as
    /// [`GameEvent::Corrected`]. Send what [`GameReplica::poll_ack`] returns.
    pub fn move_to(&mut self, to: Pos) -> Result<(), MoveError> {
        let id = self.controlled.ok_or(MoveError::NoControl)?;
        if !self.actors.contains_key(&id) {
            return Err(MoveError::NotSpawned);
        }
        self.state.push_move(to);
        Ok(())
    }

    /// Moves made and not acknowledged by the server yet.
    pub fn pending_moves(&self) -> usize {
        self.state.pending_moves()
    }

    pub fn poll_event(&mut self) -> Option<GameEvent> {
        self.events.pop_front()
    }

    /// Applies a message of the reliable channel. An error leaves the
    /// replica as it was before the failing item; the caller should close
    /// the session (the server is broken or hostile).
    pub fn apply_reliable(&mut self, bytes: &[u8]) -> Result<(), GameReplicaError> {
        if let Some(version) = joined_version(bytes) {
            if version != self.schema.version() {
                return Err(GameReplicaError::SchemaMismatch {
                    server: version,
                    client: self.schema.version().to_owned(),
                });
            }
        }
        let actors = &self.actors;
        let (tick, items) =
            decode_reliable(bytes, &self.schema, &|id| actors.get(&id).map(|a| a.kind))?;
        for item in items {
            self.apply_item(tick, item)?;
        }
        Ok(())
    }

    /// `tick`: the reliable message's.
    fn apply_item(&mut self, tick: u64, item: GameItem) -> Result<(), GameReplicaError> {
        match item {
            GameItem::Joined {
                version,
                tick_hz,
                map,
                view_radius,
                speeds,
                entry,
            } => {
                if version != self.schema.version() {
                    return Err(GameReplicaError::SchemaMismatch {
                        server: version,
                        client: self.schema.version().to_owned(),
                    });
                }
                if self.tick_hz.is_some() {
                    // Another line (a travel, a line change): nothing of the
                    // last one stays. Its lines tick in step with this one,
                    // so its frames still on their way are older than this
                    // message and are ignored.
                    for id in std::mem::take(&mut self.actors).into_keys() {
                        self.push(GameEvent::Despawned { id });
                    }
                    self.controlled = None;
                    self.state.forget_moves();
                }
                self.state.acks.restart(tick.saturating_sub(1));
                self.tick_hz = Some(tick_hz);
                self.map = map;
                self.view_radius = view_radius;
                self.speeds = speeds;
                self.entry = entry;
                self.push(GameEvent::Joined { tick_hz });
            }
            GameItem::Control { id } => {
                if self.controlled != id {
                    self.controlled = id;
                    self.state.forget_moves();
                }
                self.push(GameEvent::Controlling { id });
            }
            GameItem::Spawn {
                id,
                kind,
                owned,
                mask,
                values,
            } => {
                if self.actors.contains_key(&id) {
                    return Err(GameReplicaError::DuplicateSpawn(id));
                }
                if self.actors.len() >= MAX_REPLICA_ACTORS {
                    return Err(GameReplicaError::TooManyActors);
                }
                let spec = &self.schema.kinds()[usize::from(kind)];
                let mut actor = GameActor {
                    kind,
                    owned,
                    values: spec.props.iter().map(|p| p.ty.default_value()).collect(),
                };
                assign(&mut actor.values, mask, values);
                self.actors.insert(id, actor);
                self.push(GameEvent::Spawned { id });
            }
            GameItem::Despawn { id } => {
                if self.actors.remove(&id).is_some() {
                    self.push(GameEvent::Despawned { id });
                }
            }
            GameItem::Set { id, mask, values } => {
                let Some(actor) = self.actors.get_mut(&id) else {
                    return Err(DecodeError::OutOfRange("actor id").into());
                };
                let spec = &self.schema.kinds()[usize::from(actor.kind)];
                if mask & !crate::game_wire::visible_mask(spec, actor.owned) != 0 {
                    return Err(DecodeError::OutOfRange("property mask").into());
                }
                assign(&mut actor.values, mask, values);
                self.push(GameEvent::Changed { id, mask });
            }
            GameItem::Message { index, values } => self.push(GameEvent::Message { index, values }),
        }
        Ok(())
    }

    /// Applies a frame of the state channel. Frames older than the newest
    /// applied are ignored (the state channel is sequenced); a frame naming
    /// an actor whose Spawn has not arrived yet is applied as far as it
    /// can be and not acknowledged, so the server sends its changes again.
    pub fn apply_frame(&mut self, bytes: &[u8]) -> Result<(), GameReplicaError> {
        // A frame of another line than the last Joined's (one of the line
        // just entered, overtaking its Joined): not read with these actors,
        // not acknowledged (the server sends what it carried again).
        if self.tick_hz.is_none() || crate::game_wire::frame_entry(bytes) != Some(self.entry) {
            if crate::game_wire::frame_entry(bytes).is_none() {
                return Err(DecodeError::OutOfRange("frame").into());
            }
            return Ok(());
        }
        let actors = &self.actors;
        let kind_of = |id: ActorId| actors.get(&id).map(|a| a.kind);
        let (header, updates, complete) = decode_frame(bytes, &self.schema, &kind_of)?;
        let tick = header.tick;
        if tick <= self.state.acks.newest() {
            return Ok(());
        }
        // The server took every move up to its input ack: drop them. After
        // a refusal, it took the rest of that batch as refused too.
        let had_pending = self.state.pending_moves() > 0;
        self.state.taken(header.input_ack);
        for update in updates {
            let actor = self.actors.get_mut(&update.id).expect("kind was known");
            let spec = &self.schema.kinds()[usize::from(actor.kind)];
            if update.mask & !crate::game_wire::visible_mask(spec, actor.owned) != 0 {
                return Err(DecodeError::OutOfRange("property mask").into());
            }
            assign(&mut actor.values, update.mask, update.values);
            self.push(GameEvent::Changed {
                id: update.id,
                mask: update.mask,
            });
        }
        if complete {
            self.state.acks.applied(tick);
        }
        if header.corrected && had_pending {
            if let Some(at) = self.controlled.and_then(|id| self.server_position(id)) {
                self.push(GameEvent::Corrected { at });
            }
        }
        Ok(())
    }

    /// What to send on the state channel, when a move was made or enough
    /// frames were applied since the last call (see [`crate::frame_acks`]):
    /// the acknowledgement, with the moves the server has not acknowledged
    /// yet.
    pub fn poll_ack(&mut self) -> Option<Vec<u8>> {
        self.state.poll(&self.schema)
    }

    /// A message to the server, checked against the schema: for the
    /// reliable channel.
    pub fn message(
        &self,
        name: &str,
        values: Vec<Value>,
    ) -> Result<Vec<u8>, crate::schema::ValueError> {
        crate::game_wire::to_server(&self.schema, name, values)
    }

    fn push(&mut self, event: GameEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

/// Copies the masked values (one per set bit, ascending) into `state`.
fn assign(state: &mut [Value], mask: u64, values: Vec<Value>) {
    let indexes = (0..state.len()).filter(|index| mask & (1 << index) != 0);
    for (index, value) in indexes.zip(values) {
        state[index] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game_wire::{
        put_frame_header, put_reliable_header, put_update, FrameHeader, GameClientMessage,
    };
    use crate::schema::{KindSpec, PropSpec, ValueType};

    fn schema() -> Arc<Schema> {
        let counter =
            KindSpec::new("counter").prop(PropSpec::new("value", ValueType::int(0, 1000)));
        Arc::new(Schema::new("entries", vec![counter], vec![]).unwrap())
    }

    /// A line's first message to a player: Joined with `entry`, then a
    /// counter (id 1) at `value`.
    fn joined(schema: &Schema, tick: u64, entry: u8, value: i64) -> Vec<u8> {
        let items = [
            GameItem::Joined {
                version: schema.version().to_owned(),
                tick_hz: 20,
                map: String::new(),
                view_radius: 20,
                speeds: vec![0],
                entry,
            },
            GameItem::Spawn {
                id: ActorId(1),
                kind: 0,
                owned: false,
                mask: 1,
                values: vec![Value::Int(value)],
            },
        ];
        let mut out = Vec::new();
        put_reliable_header(&mut out, tick, items.len());
        for item in &items {
            item.encode(schema, &|_| Some(0), &mut out);
        }
        out
    }

    fn frame(schema: &Schema, tick: u64, entry: u8, value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let header = FrameHeader {
            tick,
            input_ack: 0,
            corrected: false,
            entry,
        };
        put_frame_header(&mut out, header, 1);
        put_update(
            &mut out,
            &schema.kinds()[0],
            ActorId(1),
            1,
            &[Value::Int(value)],
        );
        out
    }

    #[test]
    fn a_frame_of_the_next_line_that_overtakes_its_joined_is_not_read_with_this_lines_actors() {
        let schema = schema();
        let mut replica = GameReplica::new(schema.clone());
        replica.apply_reliable(&joined(&schema, 5, 1, 10)).unwrap();
        replica.apply_frame(&frame(&schema, 6, 1, 11)).unwrap();
        assert_eq!(replica.value(ActorId(1), "value"), Some(&Value::Int(11)));
        replica.apply_frame(&frame(&schema, 7, 1, 11)).unwrap();
        assert!(replica.poll_ack().is_none(), "two frames: not yet");
        replica.apply_frame(&frame(&schema, 8, 1, 11)).unwrap();
        let mut ack = Vec::new();
        GameClientMessage::Ack {
            tick: 8,
            earlier: 0b11,
        }
        .encode(&schema, &mut ack);
        assert_eq!(replica.poll_ack(), Some(ack), "the third, naming all three");
        // The next line (entry 2): its frame comes first. Id 1 there is
        // another actor: this one keeps its value, and nothing is acked.
        replica.apply_frame(&frame(&schema, 9, 2, 500)).unwrap();
        assert_eq!(replica.value(ActorId(1), "value"), Some(&Value::Int(11)));
        assert!(replica.poll_ack().is_none(), "not acknowledged: sent again");
        replica.apply_reliable(&joined(&schema, 8, 2, 400)).unwrap();
        assert_eq!(replica.value(ActorId(1), "value"), Some(&Value::Int(400)));
        // The last line's late frame is ignored; the new line's is read.
        replica.apply_frame(&frame(&schema, 7, 1, 12)).unwrap();
        assert_eq!(replica.value(ActorId(1), "value"), Some(&Value::Int(400)));
        replica.apply_frame(&frame(&schema, 9, 2, 500)).unwrap();
        assert_eq!(replica.value(ActorId(1), "value"), Some(&Value::Int(500)));
    }
}
