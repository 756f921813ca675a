//! The wire of a game declared by a [`Schema`]: what the server sends to
//! follow its actors and messages, and what a client sends back, on two
//! channels the server opens once a player enters: [`RELIABLE_CHANNEL`]
//! (reliable, ordered) and [`STATE_CHANNEL`] (unreliable, sequenced: the
//! frames and the client's acknowledgements and moves). Its type bytes
//! start at 0x31, apart from the older world wire's that came before it.
//!
//! Values are encoded by their types in the schema (see
//! [`crate::schema::ValueType`]); a property mask is a varint whose bit `i`
//! stands for the kind's property `i`, and the values of the set bits follow
//! in ascending order.
//!
//! Server -> client, reliable: `tick, count, item*`, items:
//! - `0x31 Joined`: schema version (string), tick rate, the zone's map
//!   (string, rows of cells as in `zones.toml`), view radius in cells, and
//!   per kind of the schema its speed in this zone (cells per second, 0 for
//!   a kind that does not move), and the entry (one byte, see below);
//! - `0x32 Spawn`: id, kind, owned (0/1), mask, values;
//! - `0x33 Despawn`: id;
//! - `0x34 Set`: id, mask, values (the reliable properties that changed);
//! - `0x35 Message`: message index, its fields;
//! - `0x39 Control`: the actor the player's moves steer (0: none).
//!
//! Server -> client, state channel: `0x36, tick, input ack, corrected (0/1),
//! entry, count, (id, mask, values)*`: the frame properties that changed
//! since what the client acknowledged; the input ack is the newest move the
//! server has taken (accepted or refused), `corrected` says one was refused
//! and the controlled actor is where the frame's position says.
//!
//! The entry counts the player's entries into lines (wrapping): `Joined`
//! and every frame of a line carry the same. Frames go unreliable and may
//! overtake the reliable `Joined` of the line the player just entered; a
//! client ignores (and does not acknowledge) a frame of another entry than
//! its last `Joined`'s, so it never reads one line's frame with another
//! line's actors.
//!
//! Client -> server: `0x37, message index, fields` on the reliable channel;
//! on the state channel `0x38, tick` (the newest frame applied completely),
//! or `0x3A, tick, count, (seq, x, y)*` (that acknowledgement and the moves
//! of the controlled actor not yet acknowledged, oldest first, at most
//! [`MAX_MOVES`]).

use std::collections::BTreeMap;

use hearth_codec::{DecodeError, Reader, Writer};

/// The reliable, ordered game channel.
pub const RELIABLE_CHANNEL: u16 = 10;
/// The unreliable, sequenced game channel.
pub const STATE_CHANNEL: u16 = 11;

use crate::actor::ActorId;
use crate::geometry::Pos;
use crate::schema::{Direction, KindSpec, Schema, Value, Visibility, MAX_PROPS};
use crate::zone::MAX_ZONE_SIDE;

mod code {
    pub const JOINED: u8 = 0x31;
    pub const SPAWN: u8 = 0x32;
    pub const DESPAWN: u8 = 0x33;
    pub const SET: u8 = 0x34;
    pub const MESSAGE: u8 = 0x35;
    pub const FRAME: u8 = 0x36;
    pub const CLIENT_MESSAGE: u8 = 0x37;
    pub const CLIENT_ACK: u8 = 0x38;
    pub const CONTROL: u8 = 0x39;
    pub const CLIENT_MOVES: u8 = 0x3A;
}

/// Longest schema version string.
const MAX_VERSION: usize = 64;
/// Longest map a `Joined` may carry: the largest zone, rows and newlines.
pub const MAX_MAP_BYTES: usize = MAX_ZONE_SIDE * (MAX_ZONE_SIDE + 1);
/// Moves one client message carries at most (a client resends its
/// unacknowledged moves until the server's frames acknowledge them).
pub const MAX_MOVES: usize = 16;

/// Largest state message a client sends: type, ack, the mask of earlier
/// frames, count, and the moves (sequence number and two coordinates,
/// varints).
pub const MAX_CLIENT_STATE_BYTES: usize = 1 + 10 + 5 + 1 + MAX_MOVES * (5 + 3 + 3);

/// A move of the controlled actor: where the client put it, numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GameMove {
    /// Increases by one per move; the server takes each once.
    pub seq: u32,
    pub pos: Pos,
}

/// One item of a reliable server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameItem {
    /// First item a player gets: which schema the server runs.
    Joined {
        version: String,
        tick_hz: u32,
        /// The zone's map (rows of cells; empty for a game without one).
        map: String,
        /// How far a player sees moving actors, in cells.
        view_radius: u32,
        /// Per kind of the schema: its speed in this zone, cells per second
        /// (0: it does not move). A zone may be slower than the schema says
        /// (`Game::movement_in`): a client predicts moves at this speed.
        speeds: Vec<u32>,
        /// This entry of the player into a line: frames carry it too.
        entry: u8,
    },
    Spawn {
        id: ActorId,
        kind: u16,
        /// The receiving player owns it (and sees its owner-only properties).
        owned: bool,
        mask: u64,
        values: Vec<Value>,
    },
    Despawn {
        id: ActorId,
    },
    Set {
        id: ActorId,
        mask: u64,
        values: Vec<Value>,
    },
    Message {
        index: u16,
        values: Vec<Value>,
    },
    /// The actor the player's moves steer from now on (`None`: none).
    Control {
        id: Option<ActorId>,
    },
}

/// One actor's changed frame properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameUpdate {
    pub id: ActorId,
    pub mask: u64,
    pub values: Vec<Value>,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameClientMessage {
    /// A message the schema declares `to_server`.
    Message { index: u16, values: Vec<Value> },
    /// The newest frame the client applied completely, and which frames
    /// of the ticks before it it applied too (bit `i`: tick `tick - 1 - i`;
    /// see [`crate::frame_acks`]).
    Ack { tick: u64, earlier: u32 },
    /// The acknowledgement, and the controlled actor's moves not yet
    /// acknowledged (oldest first).
    Moves {
        ack: u64,
        earlier: u32,
        moves: Vec<GameMove>,
    },
}

/// A frame's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub tick: u64,
    /// The newest move the server took (0: none yet).
    pub input_ack: u32,
    /// A move was refused: the controlled actor is where the server says.
    pub corrected: bool,
    /// The player's entry into the line that sent it (as its `Joined`).
    pub entry: u8,
}

/// Writes a reliable message's header; `count` items follow.
pub fn put_reliable_header(out: &mut Vec<u8>, tick: u64, count: usize) {
    out.put_varint(tick);
    out.put_varint(count as u64);
}

/// Writes a frame's header; `count` updates follow (see [`put_update`]).
pub fn put_frame_header(out: &mut Vec<u8>, header: FrameHeader, count: usize) {
    out.put_u8(code::FRAME);
    out.put_varint(header.tick);
    out.put_varint(u64::from(header.input_ack));
    out.put_u8(u8::from(header.corrected));
    out.put_u8(header.entry);
    out.put_varint(count as u64);
}

/// Bytes [`put_frame_header`] writes at most.
pub const FRAME_HEADER_MAX: usize = 1 + 10 + 5 + 1 + 1 + 10;

/// The entry a frame carries (see the module's documentation), read
/// before anything else: `None` if it is not a frame.
pub fn frame_entry(bytes: &[u8]) -> Option<u8> {
    let mut r = Reader::new(bytes);
    if r.u8("frame type").ok()? != code::FRAME {
        return None;
    }
    r.varint("tick").ok()?;
    r.varint("input ack").ok()?;
    r.u8("corrected").ok()?;
    r.u8("entry").ok()
}

/// Writes one actor's update of a frame from its whole state (`state`: the
/// value of every property of the kind, by index).
pub fn put_update(out: &mut Vec<u8>, kind: &KindSpec, id: ActorId, mask: u64, state: &[Value]) {
    out.put_varint(u64::from(id.0));
    put_masked_state(out, kind, mask, state);
}

/// Appends a `Spawn` item from the actor's whole state.
pub fn put_spawn(
    out: &mut Vec<u8>,
    schema: &Schema,
    kind: u16,
    id: ActorId,
    owned: bool,
    mask: u64,
    state: &[Value],
) {
    out.put_u8(code::SPAWN);
    out.put_varint(u64::from(id.0));
    out.put_varint(u64::from(kind));
    out.put_u8(u8::from(owned));
    put_masked_state(out, &schema.kinds()[usize::from(kind)], mask, state);
}

/// Appends a `Set` item from the actor's whole state.
pub fn put_set(out: &mut Vec<u8>, kind: &KindSpec, id: ActorId, mask: u64, state: &[Value]) {
    out.put_u8(code::SET);
    put_update(out, kind, id, mask, state);
}

/// Appends a `Message` item (`values`: one per field, admitted by their
/// types: see [`crate::schema::MessageSpec::encode`], which checks).
pub fn put_message(out: &mut Vec<u8>, index: u16, body: &[u8]) {
    out.put_u8(code::MESSAGE);
    out.put_varint(u64::from(index));
    out.extend_from_slice(body);
}

/// The mask, then the values of its set bits taken from `state` by index.
/// Appends the mask, then the masked properties of `state` (an update's
/// body after the actor's id).
pub fn put_masked_state(out: &mut Vec<u8>, kind: &KindSpec, mask: u64, state: &[Value]) {
    out.put_varint(mask);
    for (index, prop) in kind.props.iter().enumerate() {
        if mask & (1 << index) != 0 {
            prop.ty.encode(&state[index], out);
        }
    }
}

/// The mask, then `values`: one per set bit, in ascending order (the
/// decoded form).
fn put_masked_values(out: &mut Vec<u8>, kind: &KindSpec, mask: u64, values: &[Value]) {
    out.put_varint(mask);
    let props = kind
        .props
        .iter()
        .enumerate()
        .filter(|(index, _)| mask & (1 << index) != 0);
    for ((_, prop), value) in props.zip(values) {
        prop.ty.encode(value, out);
    }
}

/// Bytes [`put_update`] writes after the id, from the whole state.
pub fn masked_state_len(kind: &KindSpec, mask: u64, state: &[Value]) -> usize {
    hearth_codec::varint_len(mask)
        + kind
            .props
            .iter()
            .enumerate()
            .filter(|(index, _)| mask & (1 << index) != 0)
            .map(|(index, prop)| prop.ty.encoded_len(&state[index]))
            .sum::<usize>()
}

impl GameItem {
    /// Appends the item as decoded (masked values only); `kind_of` as for
    /// [`GameItem::decode`]. The server writes from whole actor states
    /// with [`put_spawn`], [`put_set`] and [`put_message`] instead.
    pub fn encode(
        &self,
        schema: &Schema,
        kind_of: &dyn Fn(ActorId) -> Option<u16>,
        out: &mut Vec<u8>,
    ) {
        match self {
            GameItem::Joined {
                version,
                tick_hz,
                map,
                view_radius,
                speeds,
                entry,
            } => {
                out.put_u8(code::JOINED);
                out.put_str(version);
                out.put_varint(u64::from(*tick_hz));
                out.put_str(map);
                out.put_varint(u64::from(*view_radius));
                out.put_varint(speeds.len() as u64);
                for speed in speeds {
                    out.put_varint(u64::from(*speed));
                }
                out.put_u8(*entry);
            }
            GameItem::Control { id } => {
                out.put_u8(code::CONTROL);
                out.put_varint(u64::from(id.map_or(0, |id| id.0)));
            }
            GameItem::Spawn {
                id,
                kind,
                owned,
                mask,
                values,
            } => {
                out.put_u8(code::SPAWN);
                out.put_varint(u64::from(id.0));
                out.put_varint(u64::from(*kind));
                out.put_u8(u8::from(*owned));
                put_masked_values(out, &schema.kinds()[usize::from(*kind)], *mask, values);
            }
            GameItem::Despawn { id } => {
                out.put_u8(code::DESPAWN);
                out.put_varint(u64::from(id.0));
            }
            GameItem::Set { id, mask, values } => {
                let kind = kind_of(*id).expect("a Set's actor is known");
                out.put_u8(code::SET);
                out.put_varint(u64::from(id.0));
                put_masked_values(out, &schema.kinds()[usize::from(kind)], *mask, values);
            }
            GameItem::Message { index, values } => {
                let mut body = Vec::new();
                schema.messages()[usize::from(*index)]
                    .encode(values, &mut body)
                    .expect("decoded values are admitted");
                put_message(out, *index, &body);
            }
        }
    }

    /// Reads an item; `kind_of` tells the kind of an actor the client
    /// already knows (a Set for an unknown actor is an error: reliable items
    /// arrive in order, so its Spawn came first).
    pub fn decode(
        r: &mut Reader<'_>,
        schema: &Schema,
        kind_of: &dyn Fn(ActorId) -> Option<u16>,
    ) -> Result<Self, DecodeError> {
        Ok(match r.u8("game item type")? {
            code::JOINED => GameItem::Joined {
                version: r.string(MAX_VERSION, "schema version")?,
                tick_hz: varint_u32(r, "tick rate")?,
                map: r.string(MAX_MAP_BYTES, "map")?,
                view_radius: varint_u32(r, "view radius")?,
                speeds: {
                    let kinds = schema.kinds();
                    if r.varint("kind count")? != kinds.len() as u64 {
                        return Err(DecodeError::OutOfRange("kind count"));
                    }
                    let mut speeds = Vec::with_capacity(kinds.len());
                    for kind in kinds {
                        let speed = varint_u32(r, "speed")?;
                        let legal = match kind.movement {
                            Some(_) => (1..=crate::schema::MAX_SPEED).contains(&speed),
                            None => speed == 0,
                        };
                        if !legal {
                            return Err(DecodeError::OutOfRange("speed"));
                        }
                        speeds.push(speed);
                    }
                    speeds
                },
                entry: r.u8("entry")?,
            },
            code::CONTROL => GameItem::Control {
                id: match varint_u32(r, "actor id")? {
                    0 => None,
                    id => Some(ActorId(id)),
                },
            },
            code::SPAWN => {
                let id = ActorId(varint_u32(r, "actor id")?);
                let kind = varint_u32(r, "actor kind")?;
                let spec = schema
                    .kinds()
                    .get(kind as usize)
                    .ok_or(DecodeError::OutOfRange("actor kind"))?;
                let owned = match r.u8("owned")? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::OutOfRange("owned")),
                };
                let (mask, values) = get_masked(r, spec, owned)?;
                GameItem::Spawn {
                    id,
                    kind: kind as u16,
                    owned,
                    mask,
                    values,
                }
            }
            code::DESPAWN => GameItem::Despawn {
                id: ActorId(varint_u32(r, "actor id")?),
            },
            code::SET => {
                let id = ActorId(varint_u32(r, "actor id")?);
                let kind = kind_of(id).ok_or(DecodeError::OutOfRange("actor id"))?;
                let spec = &schema.kinds()[usize::from(kind)];
                // Ownership is checked by the replica, which knows it.
                let (mask, values) = get_masked(r, spec, true)?;
                GameItem::Set { id, mask, values }
            }
            code::MESSAGE => {
                let index = varint_u32(r, "message index")?;
                let spec = schema
                    .messages()
                    .get(index as usize)
                    .filter(|m| m.direction == Direction::ToClient)
                    .ok_or(DecodeError::OutOfRange("message index"))?;
                let values = spec
                    .fields
                    .iter()
                    .map(|field| field.ty.decode(r))
                    .collect::<Result<Vec<_>, _>>()?;
                GameItem::Message {
                    index: index as u16,
                    values,
                }
            }
            value => {
                return Err(DecodeError::UnknownType {
                    what: "game item",
                    value,
                })
            }
        })
    }
}

/// The schema version a reliable message announces, when its first item
/// is `Joined`: read before anything else, so that a client built for
/// another schema is told so instead of failing on the first item it
/// cannot read.
pub fn joined_version(bytes: &[u8]) -> Option<String> {
    let mut r = Reader::new(bytes);
    r.varint("tick").ok()?;
    if r.varint("item count").ok()? == 0 || r.u8("game item type").ok()? != code::JOINED {
        return None;
    }
    r.string(MAX_VERSION, "schema version").ok()
}

/// A reliable server message, decoded.
pub fn decode_reliable(
    bytes: &[u8],
    schema: &Schema,
    kind_of: &dyn Fn(ActorId) -> Option<u16>,
) -> Result<(u64, Vec<GameItem>), DecodeError> {
    let mut r = Reader::new(bytes);
    let tick = r.varint("tick")?;
    let count = r.varint("item count")?;
    // Every item is at least two bytes.
    if count > (r.remaining() / 2) as u64 {
        return Err(DecodeError::OutOfRange("item count"));
    }
    let mut items = Vec::with_capacity(count as usize);
    // What this message's earlier items did to the actors, ahead of what
    // the receiver knew before it: a Spawn makes the id known with its kind,
    // a Despawn makes it unknown. Without this, a Set after a Despawn and a
    // Spawn of the same id would be read with the old kind's types.
    let mut changed: BTreeMap<ActorId, Option<u16>> = BTreeMap::new();
    // After a Joined (the player entered another line), nothing the
    // receiver knew stays: only this message's own spawns are known.
    let mut rejoined = false;
    for _ in 0..count {
        let item = {
            let known = |id: ActorId| match changed.get(&id) {
                Some(now) => *now,
                None if rejoined => None,
                None => kind_of(id),
            };
            let item = GameItem::decode(&mut r, schema, &known)?;
            if let GameItem::Spawn { id, .. } = &item {
                if known(*id).is_some() {
                    return Err(DecodeError::OutOfRange("spawn of a live actor"));
                }
            }
            item
        };
        match &item {
            GameItem::Spawn { id, kind, .. } => {
                changed.insert(*id, Some(*kind));
            }
            GameItem::Despawn { id } => {
                changed.insert(*id, None);
            }
            GameItem::Joined { .. } => {
                rejoined = true;
                changed.clear();
            }
            _ => {}
        }
        items.push(item);
    }
    r.finish()?;
    Ok((tick, items))
}

/// A frame, decoded. An update for an actor `kind_of` does not know is
/// returned with `None` values: the caller cannot apply it, and must not
/// acknowledge the frame (its Spawn is still on its way).
pub fn decode_frame(
    bytes: &[u8],
    schema: &Schema,
    kind_of: &dyn Fn(ActorId) -> Option<u16>,
) -> Result<(FrameHeader, Vec<GameUpdate>, bool), DecodeError> {
    let mut r = Reader::new(bytes);
    if r.u8("frame type")? != code::FRAME {
        return Err(DecodeError::OutOfRange("frame type"));
    }
    let header = FrameHeader {
        tick: r.varint("tick")?,
        input_ack: varint_u32(&mut r, "input ack")?,
        corrected: match r.u8("corrected")? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::OutOfRange("corrected")),
        },
        entry: r.u8("entry")?,
    };
    let count = r.varint("update count")?;
    if count > (r.remaining() / 2) as u64 {
        return Err(DecodeError::OutOfRange("update count"));
    }
    let mut updates = Vec::with_capacity(count as usize);
    let mut complete = true;
    for _ in 0..count {
        let id = ActorId(varint_u32(&mut r, "actor id")?);
        let Some(kind) = kind_of(id) else {
            // The rest cannot be read without the kind: stop here.
            complete = false;
            break;
        };
        let (mask, values) = get_masked(&mut r, &schema.kinds()[usize::from(kind)], true)?;
        updates.push(GameUpdate { id, mask, values });
    }
    if complete {
        r.finish()?;
    }
    Ok((header, updates, complete))
}

/// A frame's header alone, without reading its updates: what a client that
/// keeps no actors' state needs to acknowledge it (`None`: not a frame).
pub fn frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    let mut r = Reader::new(bytes);
    if r.u8("frame type").ok()? != code::FRAME {
        return None;
    }
    Some(FrameHeader {
        tick: r.varint("tick").ok()?,
        input_ack: varint_u32(&mut r, "input ack").ok()?,
        corrected: match r.u8("corrected").ok()? {
            0 => false,
            1 => true,
            _ => return None,
        },
        entry: r.u8("entry").ok()?,
    })
}

/// The mask and values of a Spawn, Set or update: only bits of properties
/// the kind has and the client may see.
fn get_masked(
    r: &mut Reader<'_>,
    kind: &KindSpec,
    owned: bool,
) -> Result<(u64, Vec<Value>), DecodeError> {
    let mask = r.varint("property mask")?;
    let allowed = visible_mask(kind, owned);
    if mask & !allowed != 0 {
        return Err(DecodeError::OutOfRange("property mask"));
    }
    let mut values = Vec::with_capacity(mask.count_ones() as usize);
    for (index, prop) in kind.props.iter().enumerate() {
        if mask & (1 << index) != 0 {
            values.push(prop.ty.decode(r)?);
        }
    }
    Ok((mask, values))
}

/// The properties of `kind` a client sees: everyone's, and the owner's
/// too when it owns the actor.
pub fn visible_mask(kind: &KindSpec, owned: bool) -> u64 {
    debug_assert!(kind.props.len() <= MAX_PROPS);
    kind.props
        .iter()
        .enumerate()
        .filter(|(_, prop)| match prop.visibility {
            Visibility::Everyone => true,
            Visibility::Owner => owned,
            Visibility::Server => false,
        })
        .fold(0, |mask, (index, _)| mask | (1 << index))
}

/// The game's message `name` to the server with `values`, checked against
/// the schema, as a client sends it on the reliable channel.
pub fn to_server(
    schema: &Schema,
    name: &str,
    values: Vec<Value>,
) -> Result<Vec<u8>, crate::schema::ValueError> {
    let (index, spec) = schema
        .message(name)
        .filter(|(_, m)| m.direction == Direction::ToServer)
        .ok_or_else(|| crate::schema::ValueError::Count {
            message: format!("{name} (not a message to the server)"),
            expected: 0,
            got: values.len(),
        })?;
    let mut body = Vec::new();
    spec.encode(&values, &mut body)?;
    let mut out = Vec::new();
    // Checked above: encoding cannot fail now.
    GameClientMessage::Message { index, values }.encode(schema, &mut out);
    Ok(out)
}

impl GameClientMessage {
    /// Appends the message; its values must be admitted by their fields'
    /// types ([`crate::schema::MessageSpec::encode`] checks, and is what a
    /// client should call first).
    pub fn encode(&self, schema: &Schema, out: &mut Vec<u8>) {
        match self {
            GameClientMessage::Message { index, values } => {
                out.put_u8(code::CLIENT_MESSAGE);
                out.put_varint(u64::from(*index));
                schema.messages()[usize::from(*index)]
                    .encode(values, out)
                    .expect("values admitted by the message's fields");
            }
            GameClientMessage::Ack { tick, earlier } => {
                out.put_u8(code::CLIENT_ACK);
                out.put_varint(*tick);
                out.put_varint(u64::from(*earlier));
            }
            GameClientMessage::Moves {
                ack,
                earlier,
                moves,
            } => {
                out.put_u8(code::CLIENT_MOVES);
                out.put_varint(*ack);
                out.put_varint(u64::from(*earlier));
                out.put_u8(moves.len().min(MAX_MOVES) as u8);
                for m in moves.iter().take(MAX_MOVES) {
                    out.put_varint(u64::from(m.seq));
                    out.put_varint(u64::from(m.pos.x.max(0) as u32));
                    out.put_varint(u64::from(m.pos.y.max(0) as u32));
                }
            }
        }
    }

    /// Reads what a client sent on `channel`: a declared `to_server`
    /// message on the reliable channel, an acknowledgement on the state
    /// channel. Anything else is an error (and closes the session).
    pub fn decode(channel: u16, bytes: &[u8], schema: &Schema) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let message = match (channel, r.u8("client message type")?) {
            (RELIABLE_CHANNEL, code::CLIENT_MESSAGE) => {
                let index = varint_u32(&mut r, "message index")?;
                let spec = schema
                    .messages()
                    .get(index as usize)
                    .filter(|m| m.direction == Direction::ToServer)
                    .ok_or(DecodeError::OutOfRange("message index"))?;
                let values = spec.decode(r.rest())?;
                return Ok(GameClientMessage::Message {
                    index: index as u16,
                    values,
                });
            }
            (STATE_CHANNEL, code::CLIENT_ACK) => GameClientMessage::Ack {
                tick: r.varint("ack tick")?,
                earlier: varint_u32(&mut r, "earlier frames")?,
            },
            (STATE_CHANNEL, code::CLIENT_MOVES) => {
                let ack = r.varint("ack tick")?;
                let earlier = varint_u32(&mut r, "earlier frames")?;
                let count = usize::from(r.u8("move count")?);
                if count > MAX_MOVES {
                    return Err(DecodeError::OutOfRange("move count"));
                }
                let mut moves = Vec::with_capacity(count);
                for _ in 0..count {
                    let seq = varint_u32(&mut r, "move seq")?;
                    let x = position(&mut r, "move x")?;
                    let y = position(&mut r, "move y")?;
                    moves.push(GameMove {
                        seq,
                        pos: Pos::new(x, y),
                    });
                }
                GameClientMessage::Moves {
                    ack,
                    earlier,
                    moves,
                }
            }
            (_, value) => {
                return Err(DecodeError::UnknownType {
                    what: "game client message",
                    value,
                })
            }
        };
        r.finish()?;
        Ok(message)
    }
}

/// A coordinate within the largest zone.
fn position(r: &mut Reader<'_>, what: &'static str) -> Result<i32, DecodeError> {
    let max = MAX_ZONE_SIDE as u64 * crate::geometry::UNITS_PER_CELL as u64;
    match r.varint(what)? {
        v if v <= max => Ok(v as i32),
        _ => Err(DecodeError::OutOfRange(what)),
    }
}

fn varint_u32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(r.varint(what)?).map_err(|_| DecodeError::OutOfRange(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::UNITS_PER_CELL;
    use crate::zone::MAX_ZONE_SIDE;

    #[test]
    fn the_largest_state_message_a_client_can_send_fits_the_bound() {
        let schema = Schema::new("bound", vec![], vec![]).unwrap();
        let far = (MAX_ZONE_SIDE as i32) * UNITS_PER_CELL - 1;
        let message = GameClientMessage::Moves {
            ack: u64::MAX,
            earlier: u32::MAX,
            moves: (0..MAX_MOVES)
                .map(|_| GameMove {
                    seq: u32::MAX,
                    pos: Pos::new(far, far),
                })
                .collect(),
        };
        let mut bytes = Vec::new();
        message.encode(&schema, &mut bytes);
        assert!(
            bytes.len() <= MAX_CLIENT_STATE_BYTES,
            "{} bytes, bound {MAX_CLIENT_STATE_BYTES}",
            bytes.len()
        );
        assert_eq!(
            GameClientMessage::decode(STATE_CHANNEL, &bytes, &schema).unwrap(),
            message
        );
    }
}
