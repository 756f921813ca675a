//! A client's copy of a schema-declared game: every actor it sees with the
//! values of the properties it may see, kept up to date from the server's
//! reliable messages and frames ([`crate::game_wire`]), and the events a
//! game client reacts to. Generic: any game's schema, no generated code
//! needed (generated bindings only add names and types on top).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use hearth_codec::DecodeError;

use crate::actor::ActorId;
use crate::game_wire::{
    decode_frame, decode_reliable, joined_version, GameClientMessage, GameItem,
};
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
}

/// Why the server's bytes could not be applied.
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
    /// The newest frame applied completely: what the client acknowledges.
    newest_frame: u64,
    /// `newest_frame` was not acknowledged yet.
    ack_due: bool,
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
            newest_frame: 0,
            ack_due: false,
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
        let (_, items) =
            decode_reliable(bytes, &self.schema, &|id| actors.get(&id).map(|a| a.kind))?;
        for item in items {
            self.apply_item(item)?;
        }
        Ok(())
    }

    fn apply_item(&mut self, item: GameItem) -> Result<(), GameReplicaError> {
        match item {
            GameItem::Joined { version, tick_hz } => {
                if version != self.schema.version() {
                    return Err(GameReplicaError::SchemaMismatch {
                        server: version,
                        client: self.schema.version().to_owned(),
                    });
                }
                self.tick_hz = Some(tick_hz);
                self.push(GameEvent::Joined { tick_hz });
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
        let actors = &self.actors;
        let kind_of = |id: ActorId| actors.get(&id).map(|a| a.kind);
        let (tick, updates, complete) = decode_frame(bytes, &self.schema, &kind_of)?;
        if tick <= self.newest_frame {
            return Ok(());
        }
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
            self.newest_frame = tick;
            self.ack_due = true;
        }
        Ok(())
    }

    /// The acknowledgement to send on the state channel, when a newer frame
    /// was applied since the last one.
    pub fn poll_ack(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.ack_due) {
            return None;
        }
        let mut out = Vec::new();
        GameClientMessage::Ack {
            tick: self.newest_frame,
        }
        .encode(&self.schema, &mut out);
        Some(out)
    }

    /// A message to the server, checked against the schema: for the
    /// reliable channel.
    pub fn message(
        &self,
        name: &str,
        values: Vec<Value>,
    ) -> Result<Vec<u8>, crate::schema::ValueError> {
        let (index, spec) = self
            .schema
            .message(name)
            .filter(|(_, m)| m.direction == crate::schema::Direction::ToServer)
            .ok_or_else(|| crate::schema::ValueError::Count {
                message: format!("{name} (not a message to the server)"),
                expected: 0,
                got: values.len(),
            })?;
        let mut body = Vec::new();
        spec.encode(&values, &mut body)?;
        let mut out = Vec::new();
        // Checked above: encoding cannot fail now.
        GameClientMessage::Message { index, values }.encode(&self.schema, &mut out);
        Ok(out)
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
