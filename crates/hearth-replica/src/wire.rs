//! The world's messages on the wire, shared by the server and the clients.
//! docs/WORLD.md describes every byte.
//!
//! Two channels carry the world, both opened by the server once a player
//! enters: [`RELIABLE_CHANNEL`] (reliable, ordered: spawns, despawns, chat,
//! zone entry, refusals; the client's commands) and [`STATE_CHANNEL`]
//! (unreliable, sequenced: the server's per-tick frame of property updates,
//! the client's moves and acknowledgements). Integers are LEB128 varints,
//! signed ones zigzag-encoded first.

use hearth_codec::{DecodeError, Reader, Writer};

use crate::actor::{field, ActorId, ActorKind, Props, MAX_ACTOR_NAME, VALUES};
use crate::geometry::Pos;
use crate::zone::MAX_ZONE_SIDE;

/// Reliable, ordered world channel.
pub const RELIABLE_CHANNEL: u16 = 10;
/// Unreliable, sequenced world channel.
pub const STATE_CHANNEL: u16 = 11;

/// Longest chat text, in bytes of UTF-8.
pub const MAX_CHAT: usize = 256;
/// Longest zone name.
pub const MAX_ZONE_NAME: usize = 32;
/// Longest refusal reason.
pub const MAX_REASON: usize = 256;
/// Moves one client state message may carry (the newest unacknowledged ones,
/// repeated so a lost datagram loses no movement).
pub const MAX_MOVES: usize = 8;
/// Largest map text in an Entered item.
pub const MAX_MAP: usize = MAX_ZONE_SIDE * (MAX_ZONE_SIDE + 1);

/// Where a chat message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ChatScope {
    /// Every line of the sender's zone.
    Zone = 0,
    /// The sender's line.
    Line = 1,
    /// One player, by name.
    Whisper = 2,
    /// From the server (announcements).
    System = 3,
}

impl ChatScope {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::Zone,
            1 => Self::Line,
            2 => Self::Whisper,
            3 => Self::System,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "chat scope",
                    value,
                })
            }
        })
    }
}

/// What a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    Chat = 1,
    Line = 2,
    Travel = 3,
}

impl Refusal {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Chat,
            2 => Self::Line,
            3 => Self::Travel,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "refusal",
                    value,
                })
            }
        })
    }
}

/// A command from the client, on the reliable channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// `to` names the player for a whisper and is empty otherwise.
    Chat {
        scope: ChatScope,
        to: String,
        text: String,
    },
    /// Move to another line (1-based) of the same zone.
    SwitchLine { line: u32 },
    /// Go to another zone (the server may require a portal instead).
    Travel { zone: String },
}

mod command_type {
    pub const CHAT: u8 = 0x01;
    pub const SWITCH_LINE: u8 = 0x02;
    pub const TRAVEL: u8 = 0x03;
}

impl Command {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Chat { scope, to, text } => {
                out.put_u8(command_type::CHAT);
                out.put_u8(*scope as u8);
                out.put_str(to);
                out.put_str(text);
            }
            Command::SwitchLine { line } => {
                out.put_u8(command_type::SWITCH_LINE);
                out.put_varint(u64::from(*line));
            }
            Command::Travel { zone } => {
                out.put_u8(command_type::TRAVEL);
                out.put_str(zone);
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let command = match r.u8("command type")? {
            command_type::CHAT => {
                let scope = ChatScope::from_u8(r.u8("chat scope")?)?;
                if scope == ChatScope::System {
                    return Err(DecodeError::OutOfRange("chat scope"));
                }
                Command::Chat {
                    scope,
                    to: r.string(MAX_ACTOR_NAME, "whisper target")?,
                    text: r.string(MAX_CHAT, "chat text")?,
                }
            }
            command_type::SWITCH_LINE => Command::SwitchLine {
                line: varint_u32(&mut r, "line")?,
            },
            command_type::TRAVEL => Command::Travel {
                zone: r.string(MAX_ZONE_NAME, "zone")?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "world command",
                    value,
                })
            }
        };
        r.finish()?;
        Ok(command)
    }
}

/// One predicted move: "after input `seq` I am at `pos`".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Move {
    pub seq: u32,
    pub pos: Pos,
}

/// The client's state message, on the state channel.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ClientState {
    /// The epoch of the line the client is in (from its Entered item).
    pub epoch: u32,
    /// The newest server frame the client applied completely (0: none).
    pub ack_tick: u32,
    /// Unacknowledged moves, oldest first.
    pub moves: Vec<Move>,
}

const CLIENT_STATE: u8 = 0x10;

impl ClientState {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(CLIENT_STATE);
        out.put_varint(u64::from(self.epoch));
        out.put_varint(u64::from(self.ack_tick));
        out.put_u8(self.moves.len() as u8);
        for m in &self.moves {
            out.put_varint(u64::from(m.seq));
            put_pos(out, m.pos);
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8("state type")?;
        if kind != CLIENT_STATE {
            return Err(DecodeError::UnknownType {
                what: "client state",
                value: kind,
            });
        }
        let epoch = varint_u32(&mut r, "epoch")?;
        let ack_tick = varint_u32(&mut r, "ack tick")?;
        let count = r.u8("move count")? as usize;
        if count > MAX_MOVES {
            return Err(DecodeError::OutOfRange("move count"));
        }
        let mut moves = Vec::with_capacity(count);
        for _ in 0..count {
            moves.push(Move {
                seq: varint_u32(&mut r, "move seq")?,
                pos: get_pos(&mut r)?,
            });
        }
        r.finish()?;
        Ok(Self {
            epoch,
            ack_tick,
            moves,
        })
    }
}

/// What a player learns on entering a zone's line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entered {
    pub zone: String,
    /// 1-based line number.
    pub line: u32,
    /// The player's own actor.
    pub actor: ActorId,
    /// Frames and state messages of this stay carry it.
    pub epoch: u32,
    pub tick_hz: u32,
    /// Legal speed in cells per second and view radius in cells.
    pub speed: u32,
    pub view_radius: u32,
    /// The zone's map in the zone file's legend, rows separated by `\n`.
    pub map: String,
}

/// One item of a reliable server message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Item {
    Entered(Entered),
    Spawn {
        id: ActorId,
        kind: ActorKind,
        props: Props,
    },
    Despawn {
        id: ActorId,
    },
    /// `to` is the whisper's recipient (empty for other scopes).
    Chat {
        scope: ChatScope,
        from: String,
        to: String,
        text: String,
    },
    Refused {
        about: Refusal,
        reason: String,
    },
}

mod item_type {
    pub const ENTERED: u8 = 0x01;
    pub const SPAWN: u8 = 0x02;
    pub const DESPAWN: u8 = 0x03;
    pub const CHAT: u8 = 0x04;
    pub const REFUSED: u8 = 0x05;
}

impl Item {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Item::Entered(e) => {
                out.put_u8(item_type::ENTERED);
                out.put_str(&e.zone);
                out.put_varint(u64::from(e.line));
                out.put_varint(u64::from(e.actor.0));
                out.put_varint(u64::from(e.epoch));
                out.put_varint(u64::from(e.tick_hz));
                out.put_varint(u64::from(e.speed));
                out.put_varint(u64::from(e.view_radius));
                out.put_str(&e.map);
            }
            Item::Spawn { id, kind, props } => {
                out.put_u8(item_type::SPAWN);
                out.put_varint(u64::from(id.0));
                out.put_u8(*kind as u8);
                put_props(out, field::ALL, props);
            }
            Item::Despawn { id } => {
                out.put_u8(item_type::DESPAWN);
                out.put_varint(u64::from(id.0));
            }
            Item::Chat {
                scope,
                from,
                to,
                text,
            } => {
                out.put_u8(item_type::CHAT);
                out.put_u8(*scope as u8);
                out.put_str(from);
                out.put_str(to);
                out.put_str(text);
            }
            Item::Refused { about, reason } => {
                out.put_u8(item_type::REFUSED);
                out.put_u8(*about as u8);
                out.put_str(reason);
            }
        }
    }

    /// Bytes `encode` writes.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8("item type")? {
            item_type::ENTERED => Item::Entered(Entered {
                zone: r.string(MAX_ZONE_NAME, "zone")?,
                line: varint_u32(r, "line")?,
                actor: ActorId(varint_u32(r, "actor id")?),
                epoch: varint_u32(r, "epoch")?,
                tick_hz: varint_u32(r, "tick rate")?,
                speed: varint_u32(r, "speed")?,
                view_radius: varint_u32(r, "view radius")?,
                map: r.string(MAX_MAP, "map")?,
            }),
            item_type::SPAWN => {
                let id = ActorId(varint_u32(r, "actor id")?);
                let kind = r.u8("actor kind")?;
                let kind = ActorKind::from_u8(kind).ok_or(DecodeError::UnknownType {
                    what: "actor kind",
                    value: kind,
                })?;
                let mut props = Props::empty();
                get_props(r, field::ALL, &mut props)?;
                Item::Spawn { id, kind, props }
            }
            item_type::DESPAWN => Item::Despawn {
                id: ActorId(varint_u32(r, "actor id")?),
            },
            item_type::CHAT => Item::Chat {
                scope: ChatScope::from_u8(r.u8("chat scope")?)?,
                from: r.string(MAX_ACTOR_NAME, "chat sender")?,
                to: r.string(MAX_ACTOR_NAME, "chat recipient")?,
                text: r.string(MAX_CHAT, "chat text")?,
            },
            item_type::REFUSED => Item::Refused {
                about: Refusal::from_u8(r.u8("refusal")?)?,
                reason: r.string(MAX_REASON, "reason")?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "world item",
                    value,
                })
            }
        })
    }
}

/// A reliable server message: the items of one tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reliable {
    pub tick: u32,
    pub items: Vec<Item>,
}

impl Reliable {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_varint(u64::from(self.tick));
        out.put_varint(self.items.len() as u64);
        for item in &self.items {
            item.encode(out);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tick = varint_u32(&mut r, "tick")?;
        let count = r.varint("item count")?;
        // Every item is at least two bytes: refuse counts the bytes cannot
        // hold before reserving anything for them.
        if count > (r.remaining() / 2) as u64 {
            return Err(DecodeError::OutOfRange("item count"));
        }
        let mut items = Vec::with_capacity(count as usize);
        for _ in 0..count {
            items.push(Item::decode(&mut r)?);
        }
        r.finish()?;
        Ok(Self { tick, items })
    }
}

/// The changed properties of one actor in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub id: ActorId,
    pub mask: u8,
    /// Only the fields in `mask` are meaningful.
    pub props: Props,
}

impl Update {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_varint(u64::from(self.id.0));
        out.put_u8(self.mask);
        put_props(out, self.mask, &self.props);
    }
}

/// The server's per-tick message on the state channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The epoch of the player's stay in this line (see `Entered`).
    pub epoch: u32,
    pub tick: u32,
    /// The newest move of this client the server has processed.
    pub input_ack: u32,
    /// The client's own authoritative position after that move.
    pub own_pos: Pos,
    /// The server rejected a move since the last frame: snap to `own_pos`
    /// and replay the moves after `input_ack`.
    pub corrected: bool,
    pub updates: Vec<Update>,
}

const FRAME: u8 = 0x20;

impl Frame {
    /// Writes the frame's header; the updates follow with [`Update::encode`]
    /// after a count, which [`Frame::encode`] writes for a whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out, self.updates.len());
        for update in &self.updates {
            update.encode(out);
        }
    }

    pub fn encode_header(&self, out: &mut Vec<u8>, update_count: usize) {
        out.put_u8(FRAME);
        out.put_varint(u64::from(self.epoch));
        out.put_varint(u64::from(self.tick));
        out.put_varint(u64::from(self.input_ack));
        put_pos(out, self.own_pos);
        out.put_u8(u8::from(self.corrected));
        out.put_varint(update_count as u64);
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8("frame type")?;
        if kind != FRAME {
            return Err(DecodeError::UnknownType {
                what: "server frame",
                value: kind,
            });
        }
        let epoch = varint_u32(&mut r, "epoch")?;
        let tick = varint_u32(&mut r, "tick")?;
        let input_ack = varint_u32(&mut r, "input ack")?;
        let own_pos = get_pos(&mut r)?;
        let corrected = match r.u8("corrected")? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::OutOfRange("corrected")),
        };
        let count = r.varint("update count")?;
        if count > (r.remaining() / 2) as u64 {
            return Err(DecodeError::OutOfRange("update count"));
        }
        let mut updates = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let id = ActorId(varint_u32(&mut r, "actor id")?);
            let mask = r.u8("field mask")?;
            if mask == 0 {
                return Err(DecodeError::OutOfRange("field mask"));
            }
            let mut props = Props::empty();
            get_props(&mut r, mask, &mut props)?;
            updates.push(Update { id, mask, props });
        }
        r.finish()?;
        Ok(Self {
            epoch,
            tick,
            input_ack,
            own_pos,
            corrected,
            updates,
        })
    }
}

fn zigzag(value: i32) -> u64 {
    u64::from(((value << 1) ^ (value >> 31)) as u32)
}

fn unzigzag(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}

fn varint_u32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(r.varint(what)?).map_err(|_| DecodeError::OutOfRange(what))
}

fn get_i32(r: &mut Reader<'_>, what: &'static str) -> Result<i32, DecodeError> {
    Ok(unzigzag(varint_u32(r, what)?))
}

fn put_pos(out: &mut Vec<u8>, pos: Pos) {
    out.put_varint(zigzag(pos.x));
    out.put_varint(zigzag(pos.y));
}

fn get_pos(r: &mut Reader<'_>) -> Result<Pos, DecodeError> {
    Ok(Pos {
        x: get_i32(r, "x")?,
        y: get_i32(r, "y")?,
    })
}

/// Writes the fields of `props` named in `mask`, in bit order.
pub fn put_props(out: &mut Vec<u8>, mask: u8, props: &Props) {
    if mask & field::POS != 0 {
        put_pos(out, props.pos);
    }
    if mask & field::FACING != 0 {
        out.put_u8(props.facing);
    }
    if mask & field::NAME != 0 {
        out.put_str(&props.name);
    }
    if mask & field::APPEARANCE != 0 {
        out.put_varint(u64::from(props.appearance));
    }
    for (i, value) in props.values.iter().enumerate() {
        if mask & (field::VALUE0 << i) != 0 {
            out.put_varint(zigzag(*value));
        }
    }
}

/// Bytes `put_props` writes.
pub fn props_len(mask: u8, props: &Props) -> usize {
    use hearth_codec::varint_len;
    let mut len = 0;
    if mask & field::POS != 0 {
        len += varint_len(zigzag(props.pos.x)) + varint_len(zigzag(props.pos.y));
    }
    if mask & field::FACING != 0 {
        len += 1;
    }
    if mask & field::NAME != 0 {
        len += varint_len(props.name.len() as u64) + props.name.len();
    }
    if mask & field::APPEARANCE != 0 {
        len += varint_len(u64::from(props.appearance));
    }
    for (i, value) in props.values.iter().enumerate() {
        if mask & (field::VALUE0 << i) != 0 {
            len += varint_len(zigzag(*value));
        }
    }
    len
}

fn get_props(r: &mut Reader<'_>, mask: u8, props: &mut Props) -> Result<(), DecodeError> {
    if mask & field::POS != 0 {
        props.pos = get_pos(r)?;
    }
    if mask & field::FACING != 0 {
        props.facing = r.u8("facing")?;
    }
    if mask & field::NAME != 0 {
        props.name = r.string(MAX_ACTOR_NAME, "actor name")?.into();
    }
    if mask & field::APPEARANCE != 0 {
        props.appearance = varint_u32(r, "appearance")?;
    }
    for i in 0..VALUES {
        if mask & (field::VALUE0 << i) != 0 {
            props.values[i] = get_i32(r, "value")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Props {
        Props {
            pos: Pos::new(-250, 1_000_000),
            facing: 200,
            name: "alice".into(),
            appearance: 7,
            values: [100, -1, i32::MIN, i32::MAX],
        }
    }

    #[test]
    fn every_message_round_trips() {
        for command in [
            Command::Chat {
                scope: ChatScope::Whisper,
                to: "bob".into(),
                text: "hé".into(),
            },
            Command::SwitchLine { line: 3 },
            Command::Travel {
                zone: "caves".into(),
            },
        ] {
            assert_eq!(Command::decode(&command.to_vec()).unwrap(), command);
        }
        let state = ClientState {
            epoch: 3,
            ack_tick: 77,
            moves: vec![Move {
                seq: 5,
                pos: Pos::new(-3, 4),
            }],
        };
        assert_eq!(ClientState::decode(&state.to_vec()).unwrap(), state);
        let reliable = Reliable {
            tick: 9,
            items: vec![
                Item::Entered(Entered {
                    zone: "meadow".into(),
                    line: 2,
                    actor: ActorId(4),
                    epoch: 2,
                    tick_hz: 20,
                    speed: 5,
                    view_radius: 20,
                    map: "#S#\n".into(),
                }),
                Item::Spawn {
                    id: ActorId(1),
                    kind: ActorKind::Npc,
                    props: props(),
                },
                Item::Despawn { id: ActorId(2) },
                Item::Chat {
                    scope: ChatScope::System,
                    from: String::new(),
                    to: String::new(),
                    text: "hello".into(),
                },
                Item::Refused {
                    about: Refusal::Travel,
                    reason: "no".into(),
                },
            ],
        };
        let mut out = Vec::new();
        reliable.encode(&mut out);
        assert_eq!(Reliable::decode(&out).unwrap(), reliable);
        for item in &reliable.items {
            let mut one = Vec::new();
            item.encode(&mut one);
            assert_eq!(item.encoded_len(), one.len());
        }
        let frame = Frame {
            epoch: 9,
            tick: 1 << 30,
            input_ack: 12,
            own_pos: Pos::new(5, 6),
            corrected: true,
            updates: vec![Update {
                id: ActorId(3),
                mask: field::POS | field::VALUE0 << 3,
                props: Props {
                    pos: Pos::new(8, 9),
                    values: [0, 0, 0, 42],
                    ..Props {
                        name: "".into(),
                        facing: 0,
                        appearance: 0,
                        ..props()
                    }
                },
            }],
        };
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert_eq!(Frame::decode(&out).unwrap(), frame);
        for mask in [field::ALL, field::POS, field::NAME | field::FACING] {
            let mut out = Vec::new();
            put_props(&mut out, mask, &props());
            assert_eq!(out.len(), props_len(mask, &props()));
        }
    }

    #[test]
    fn hostile_counts_and_types_are_errors() {
        assert!(Reliable::decode(&[0, 0xff, 0xff, 0x03]).is_err());
        assert!(Frame::decode(&[FRAME, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x04]).is_err());
        assert!(Command::decode(&[command_type::CHAT, ChatScope::System as u8, 0, 0]).is_err());
        let too_many_moves = [CLIENT_STATE, 0, 0, (MAX_MOVES + 1) as u8];
        assert_eq!(
            ClientState::decode(&too_many_moves),
            Err(DecodeError::OutOfRange("move count"))
        );
        assert!(
            Command::decode(&[command_type::TRAVEL, 0, 1]).is_err(),
            "trailing byte"
        );
    }
}
