//! A game's schema: the kinds of actor it replicates, each with typed
//! properties, and the messages it exchanges with clients, each with typed
//! fields. The server publishes it (with its [`Schema::version`]); clients
//! follow any game generically with it, and `hearth codegen` turns it into
//! typed bindings.
//!
//! Everything here is bounded, so a client can decode what a schema
//! describes without trusting the server: every value type has a largest
//! encoding, and every list and string its limit.
//!
//! ```
//! use hearth_replica::schema::{KindSpec, MessageSpec, PropSpec, Schema, ValueType};
//!
//! let runner = KindSpec::new("runner")
//!     .prop(PropSpec::new("score", ValueType::int(0, 1_000_000)).reliable())
//!     .prop(PropSpec::new("it", ValueType::Bool))
//!     .prop(PropSpec::new("best", ValueType::int(0, 1_000_000)).owner_only());
//! let tag = MessageSpec::to_server("tag").field("target", ValueType::int(0, u32::MAX.into()));
//! let schema = Schema::new("tag", vec![runner], vec![tag]).unwrap();
//! assert_eq!(schema.version().len(), 16);
//! ```

use std::sync::Arc;

use hearth_codec::{DecodeError, Reader, Writer};
use serde::{Deserialize, Serialize};

/// Kinds of actor a schema may declare.
pub const MAX_KINDS: usize = 64;
/// Properties one kind may have: a change mask is one `u64`.
pub const MAX_PROPS: usize = 64;
/// Messages a schema may declare, both directions together.
pub const MAX_MESSAGES: usize = 128;
/// Fields one message may have.
pub const MAX_FIELDS: usize = 32;
/// Longest name of a game, kind, property, message, field or enum variant.
pub const MAX_NAME: usize = 32;
/// Variants one enum may have.
pub const MAX_VARIANTS: usize = 256;
/// Longest string value a schema may allow, in bytes.
pub const MAX_STRING: u16 = 1024;
/// Longest list a schema may allow.
pub const MAX_LIST: u16 = 256;
/// Largest encoded schema; a client refuses a longer one before reading it.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// The scalar types: what a list may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Scalar {
    Bool,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A fixed-point number: the value is `raw / scale`, `raw` in
    /// `min..=max` (so `scale` 100 with `min` -1000 and `max` 1000 is -10.00
    /// to 10.00). Positions are fixed-point: no floating point crosses the
    /// wire, so every client computes the same thing.
    Fixed {
        scale: u32,
        min: i64,
        max: i64,
    },
    /// One of the named variants, sent as its index.
    Enum {
        variants: Vec<String>,
    },
}

/// The type of a property or of a message's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValueType {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Fixed {
        scale: u32,
        min: i64,
        max: i64,
    },
    Enum {
        variants: Vec<String>,
    },
    /// UTF-8 text of at most `max_bytes`.
    Str {
        max_bytes: u16,
    },
    /// At most `max_len` scalars.
    List {
        item: Scalar,
        max_len: u16,
    },
}

impl ValueType {
    pub fn int(min: i64, max: i64) -> Self {
        ValueType::Int { min, max }
    }

    pub fn fixed(scale: u32, min: i64, max: i64) -> Self {
        ValueType::Fixed { scale, min, max }
    }

    pub fn enumeration(variants: &[&str]) -> Self {
        ValueType::Enum {
            variants: variants.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    pub fn string(max_bytes: u16) -> Self {
        ValueType::Str { max_bytes }
    }

    pub fn list(item: Scalar, max_len: u16) -> Self {
        ValueType::List { item, max_len }
    }

    /// The scalar this type is, if it is one.
    fn scalar(&self) -> Option<Scalar> {
        Some(match self {
            ValueType::Bool => Scalar::Bool,
            ValueType::Int { min, max } => Scalar::Int {
                min: *min,
                max: *max,
            },
            ValueType::Fixed { scale, min, max } => Scalar::Fixed {
                scale: *scale,
                min: *min,
                max: *max,
            },
            ValueType::Enum { variants } => Scalar::Enum {
                variants: variants.clone(),
            },
            ValueType::Str { .. } | ValueType::List { .. } => return None,
        })
    }

    /// The value every property of this type starts with: zero clamped into
    /// the range, the first variant, empty.
    pub fn default_value(&self) -> Value {
        match self {
            ValueType::Bool => Value::Bool(false),
            ValueType::Str { .. } => Value::Str(Arc::from("")),
            ValueType::List { .. } => Value::List(Arc::from([])),
            other => Value::Int(scalar_default(&other.scalar().expect("a scalar"))),
        }
    }

    /// Whether `value` has this type and lies within its bounds.
    pub fn admits(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueType::Str { max_bytes }, Value::Str(text)) => {
                text.len() <= usize::from(*max_bytes)
            }
            (ValueType::List { item, max_len }, Value::List(items)) => {
                items.len() <= usize::from(*max_len)
                    && items.iter().all(|&v| scalar_admits(item, v))
            }
            (ValueType::Bool, Value::Bool(_)) => true,
            (other, Value::Int(v)) => other
                .scalar()
                .is_some_and(|s| !matches!(s, Scalar::Bool) && scalar_admits(&s, *v)),
            _ => false,
        }
    }

    /// Appends `value`, which must be admitted (checked by the caller:
    /// [`Schema`]'s users set values through checked setters).
    pub fn encode(&self, value: &Value, out: &mut Vec<u8>) {
        debug_assert!(self.admits(value), "{value:?} is not a {self:?}");
        match (self, value) {
            (ValueType::Bool, Value::Bool(b)) => out.put_u8(u8::from(*b)),
            (ValueType::Str { .. }, Value::Str(text)) => out.put_str(text),
            (ValueType::List { item, .. }, Value::List(items)) => {
                out.put_varint(items.len() as u64);
                for &v in items.iter() {
                    put_scalar(item, v, out);
                }
            }
            (other, Value::Int(v)) => put_scalar(&other.scalar().expect("a scalar"), *v, out),
            // Unreachable for admitted values; the default keeps the stream
            // decodable if a bug ever gets here in a release build.
            (other, _) => other.encode(&other.default_value(), out),
        }
    }

    /// Bytes `encode` writes for `value`.
    pub fn encoded_len(&self, value: &Value) -> usize {
        match (self, value) {
            (ValueType::Bool, _) => 1,
            (ValueType::Str { .. }, Value::Str(text)) => {
                hearth_codec::varint_len(text.len() as u64) + text.len()
            }
            (ValueType::List { item, .. }, Value::List(items)) => {
                hearth_codec::varint_len(items.len() as u64)
                    + items.iter().map(|&v| scalar_len(item, v)).sum::<usize>()
            }
            (other, Value::Int(v)) => scalar_len(&other.scalar().expect("a scalar"), *v),
            (other, _) => other.encoded_len(&other.default_value()),
        }
    }

    /// The most bytes a value of this type can take.
    pub fn max_len(&self) -> usize {
        match self {
            ValueType::Bool => 1,
            ValueType::Str { max_bytes } => {
                hearth_codec::varint_len(u64::from(*max_bytes)) + usize::from(*max_bytes)
            }
            ValueType::List { item, max_len } => {
                hearth_codec::varint_len(u64::from(*max_len))
                    + usize::from(*max_len) * scalar_max_len(item)
            }
            other => scalar_max_len(&other.scalar().expect("a scalar")),
        }
    }

    /// Reads a value, refusing anything outside the type's bounds.
    pub fn decode(&self, r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        Ok(match self {
            ValueType::Bool => Value::Bool(get_bool(r)?),
            ValueType::Str { max_bytes } => Value::Str(Arc::from(
                r.string(usize::from(*max_bytes), "string value")?,
            )),
            ValueType::List { item, max_len } => {
                let count = r.varint("list length")?;
                if count > u64::from(*max_len) || count > r.remaining() as u64 {
                    return Err(DecodeError::OutOfRange("list length"));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(get_scalar(item, r)?);
                }
                Value::List(Arc::from(items))
            }
            other => Value::Int(get_scalar(&other.scalar().expect("a scalar"), r)?),
        })
    }

    fn check(&self, at: &str) -> Result<(), SchemaError> {
        match self {
            ValueType::Str { max_bytes } if *max_bytes == 0 || *max_bytes > MAX_STRING => Err(
                SchemaError::new(at, format!("a string holds 1 to {MAX_STRING} bytes")),
            ),
            ValueType::List { item, max_len } => {
                if *max_len == 0 || *max_len > MAX_LIST {
                    return Err(SchemaError::new(
                        at,
                        format!("a list holds 1 to {MAX_LIST} items"),
                    ));
                }
                check_scalar(item, at)
            }
            ValueType::Str { .. } => Ok(()),
            other => check_scalar(&other.scalar().expect("a scalar"), at),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match self {
            ValueType::Str { max_bytes } => {
                out.put_u8(type_code::STR);
                out.put_varint(u64::from(*max_bytes));
            }
            ValueType::List { item, max_len } => {
                out.put_u8(type_code::LIST);
                out.put_varint(u64::from(*max_len));
                put_scalar_type(item, out);
            }
            other => put_scalar_type(&other.scalar().expect("a scalar"), out),
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = r.u8("value type")?;
        Ok(match code {
            type_code::STR => ValueType::Str {
                max_bytes: varint_u16(r, "string limit")?,
            },
            type_code::LIST => {
                let max_len = varint_u16(r, "list limit")?;
                let code = r.u8("list item type")?;
                ValueType::List {
                    item: get_scalar_type(code, r)?,
                    max_len,
                }
            }
            code => match get_scalar_type(code, r)? {
                Scalar::Bool => ValueType::Bool,
                Scalar::Int { min, max } => ValueType::Int { min, max },
                Scalar::Fixed { scale, min, max } => ValueType::Fixed { scale, min, max },
                Scalar::Enum { variants } => ValueType::Enum { variants },
            },
        })
    }
}

/// A property's or field's value. Integers, fixed-point numbers and enums
/// are all `Int` (the raw integer, the variant's index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(Arc<str>),
    List(Arc<[i64]>),
}

/// Who receives a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every client with the actor in view.
    Everyone,
    /// Only the client whose player owns the actor (a hand of cards).
    Owner,
    /// No client: the game's own state, kept and snapshotted with the actor.
    Server,
}

/// How a property's changes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// With the tick's frame: unreliable, newest wins, resent until
    /// acknowledged (positions, health).
    Frame,
    /// Reliable and ordered, every change delivered (a score, a turn).
    Reliable,
}

/// One replicated property of a kind of actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropSpec {
    pub name: String,
    pub ty: ValueType,
    pub visibility: Visibility,
    pub delivery: Delivery,
}

impl PropSpec {
    /// Seen by everyone with the actor in view, sent with the frame.
    pub fn new(name: &str, ty: ValueType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            visibility: Visibility::Everyone,
            delivery: Delivery::Frame,
        }
    }

    pub fn owner_only(mut self) -> Self {
        self.visibility = Visibility::Owner;
        self
    }

    pub fn server_only(mut self) -> Self {
        self.visibility = Visibility::Server;
        self
    }

    pub fn reliable(mut self) -> Self {
        self.delivery = Delivery::Reliable;
        self
    }
}

/// A kind of actor: its properties, in the order their mask bits count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSpec {
    pub name: String,
    /// Hearth moves actors of this kind (speed, collision with the zone's
    /// cells, prediction and correction, interest by distance); `None` for
    /// a card or a scoreboard, which every player of the line sees. A
    /// moving kind's first two properties are its position, [`POS_X`] and
    /// [`POS_Y`] (see [`KindSpec::moving`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub movement: Option<Movement>,
    pub props: Vec<PropSpec>,
}

/// How Hearth moves the actors of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Movement {
    /// The fastest legal speed, in cells per second: a player's move that
    /// goes further is refused and the client corrected.
    pub speed: u32,
    /// Walls (`#`, `~`) of the zone's map stop it.
    pub collides: bool,
}

impl Movement {
    /// `speed` cells per second, stopped by walls.
    pub fn new(speed: u32) -> Self {
        Self {
            speed,
            collides: true,
        }
    }

    /// Goes through walls (a ghost, a bird).
    pub fn through_walls(mut self) -> Self {
        self.collides = false;
        self
    }
}

/// The name of a moving kind's first property: the position's x, in
/// hundredths of a cell ([`position_type`]).
pub const POS_X: &str = "x";
/// The second: y.
pub const POS_Y: &str = "y";
/// A moving kind's optional third property ([`KindSpec::with_facing`]):
/// which way the actor looks, in 256ths of a turn (0 = +x, 64 = +y), kept
/// by Hearth as it moves the actor.
pub const FACING: &str = "facing";
/// Fastest legal speed, cells per second.
pub const MAX_SPEED: u32 = 1000;

/// The type of a position coordinate: fixed-point hundredths of a cell
/// (`geometry::UNITS_PER_CELL`) over the largest zone.
pub fn position_type() -> ValueType {
    ValueType::fixed(
        crate::geometry::UNITS_PER_CELL as u32,
        0,
        crate::zone::MAX_ZONE_SIDE as i64 * i64::from(crate::geometry::UNITS_PER_CELL),
    )
}

impl KindSpec {
    /// A kind that does not move: every player of the line sees its actors.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            movement: None,
            props: Vec::new(),
        }
    }

    /// A kind Hearth moves: it starts with the position properties
    /// [`POS_X`] and [`POS_Y`] (seen by everyone, with the frame), which
    /// the game reads and sets through `Ctx::position` and `Ctx::place`,
    /// and which a player's client moves for the actor it controls.
    pub fn moving(name: &str, movement: Movement) -> Self {
        Self {
            name: name.to_owned(),
            movement: Some(movement),
            props: vec![
                PropSpec::new(POS_X, position_type()),
                PropSpec::new(POS_Y, position_type()),
            ],
        }
    }

    /// Adds [`FACING`] as the third property of a moving kind: Hearth
    /// turns the actor towards each step it takes (a player's accepted
    /// move, a walk of `Ctx::walk_to`). Call it right after
    /// [`KindSpec::moving`].
    ///
    /// ```
    /// use hearth_replica::schema::{KindSpec, Movement, FACING};
    /// let walker = KindSpec::moving("walker", Movement::new(5)).with_facing();
    /// assert_eq!(walker.prop_index(FACING), Some(2));
    /// ```
    pub fn with_facing(mut self) -> Self {
        let at = self.props.len().min(2);
        self.props
            .insert(at, PropSpec::new(FACING, ValueType::int(0, 255)));
        self
    }

    /// Whether Hearth keeps this kind's facing ([`KindSpec::with_facing`]).
    pub fn has_facing(&self) -> bool {
        self.movement.is_some()
            && self
                .props
                .get(2)
                .is_some_and(|p| p.name == FACING && p.ty == ValueType::int(0, 255))
    }

    pub fn prop(mut self, prop: PropSpec) -> Self {
        self.props.push(prop);
        self
    }

    /// The index of the property named `name`.
    pub fn prop_index(&self, name: &str) -> Option<usize> {
        self.props.iter().position(|p| p.name == name)
    }
}

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToServer,
    ToClient,
}

/// How often a client may send a message: a burst, then so many a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub burst: u32,
    pub per_second: u32,
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub ty: ValueType,
}

/// A message the game declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    pub name: String,
    pub direction: Direction,
    pub fields: Vec<FieldSpec>,
    /// For messages to the server: Hearth refuses what exceeds it before
    /// the game sees it.
    pub rate: Option<RateLimit>,
}

impl MessageSpec {
    /// A client -> server message, at most 10 at once then 10 a second
    /// unless [`MessageSpec::rate`] says otherwise.
    pub fn to_server(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            direction: Direction::ToServer,
            fields: Vec::new(),
            rate: Some(RateLimit {
                burst: 10,
                per_second: 10,
            }),
        }
    }

    pub fn to_client(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            direction: Direction::ToClient,
            fields: Vec::new(),
            rate: None,
        }
    }

    pub fn field(mut self, name: &str, ty: ValueType) -> Self {
        self.fields.push(FieldSpec {
            name: name.to_owned(),
            ty,
        });
        self
    }

    pub fn rate(mut self, burst: u32, per_second: u32) -> Self {
        self.rate = Some(RateLimit { burst, per_second });
        self
    }

    /// The most bytes the message's fields can take.
    pub fn max_len(&self) -> usize {
        self.fields.iter().map(|f| f.ty.max_len()).sum()
    }

    /// Appends the fields' values, checked against their types.
    pub fn encode(&self, values: &[Value], out: &mut Vec<u8>) -> Result<(), ValueError> {
        if values.len() != self.fields.len() {
            return Err(ValueError::Count {
                message: self.name.clone(),
                expected: self.fields.len(),
                got: values.len(),
            });
        }
        for (field, value) in self.fields.iter().zip(values) {
            if !field.ty.admits(value) {
                return Err(ValueError::Type {
                    at: format!("{}.{}", self.name, field.name),
                    value: value.clone(),
                });
            }
        }
        for (field, value) in self.fields.iter().zip(values) {
            field.ty.encode(value, out);
        }
        Ok(())
    }

    /// Reads the fields' values; the whole input must be used.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
        if bytes.len() > self.max_len() {
            return Err(DecodeError::OutOfRange("message length"));
        }
        let mut r = Reader::new(bytes);
        let values = self
            .fields
            .iter()
            .map(|field| field.ty.decode(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(values)
    }
}

/// A value that does not fit where the game put it: a bug in the game,
/// reported to it rather than sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{message} has {expected} fields, {got} values were given")]
    Count {
        message: String,
        expected: usize,
        got: usize,
    },
    #[error("{value:?} is not a valid value of {at}: check its type and range in the schema")]
    Type { at: String, value: Value },
}

/// A schema that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema: {at}: {why}")]
pub struct SchemaError {
    pub at: String,
    pub why: String,
}

impl SchemaError {
    fn new(at: &str, why: impl Into<String>) -> Self {
        Self {
            at: at.to_owned(),
            why: why.into(),
        }
    }
}

/// A game's kinds of actor and messages, checked. It deserializes only
/// through [`Schema::new`]'s checks (the version is computed again, never
/// taken from the input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedSchema")]
pub struct Schema {
    game: String,
    kinds: Vec<KindSpec>,
    messages: Vec<MessageSpec>,
    /// Hex of the canonical encoding's hash, computed once.
    version: String,
}

impl Schema {
    /// Checks names (identifiers of at most [`MAX_NAME`] bytes, unique where
    /// they meet), counts and every type's bounds.
    pub fn new(
        game: &str,
        kinds: Vec<KindSpec>,
        messages: Vec<MessageSpec>,
    ) -> Result<Self, SchemaError> {
        check_name(game, "game")?;
        if kinds.len() > MAX_KINDS {
            return Err(SchemaError::new(
                game,
                format!("at most {MAX_KINDS} kinds of actor"),
            ));
        }
        if messages.len() > MAX_MESSAGES {
            return Err(SchemaError::new(
                game,
                format!("at most {MAX_MESSAGES} messages"),
            ));
        }
        check_unique(kinds.iter().map(|k| k.name.as_str()), "kind")?;
        for kind in &kinds {
            check_name(&kind.name, "kind")?;
            if kind.props.len() > MAX_PROPS {
                return Err(SchemaError::new(
                    &kind.name,
                    format!("at most {MAX_PROPS} properties"),
                ));
            }
            check_unique(
                kind.props.iter().map(|p| p.name.as_str()),
                &format!("property of {}", kind.name),
            )?;
            for prop in &kind.props {
                let at = format!("{}.{}", kind.name, prop.name);
                check_name(&prop.name, &at)?;
                prop.ty.check(&at)?;
            }
            if let Some(movement) = kind.movement {
                check_movement(kind, movement)?;
            }
        }
        check_unique(messages.iter().map(|m| m.name.as_str()), "message")?;
        for message in &messages {
            check_name(&message.name, "message")?;
            if message.fields.len() > MAX_FIELDS {
                return Err(SchemaError::new(
                    &message.name,
                    format!("at most {MAX_FIELDS} fields"),
                ));
            }
            check_unique(
                message.fields.iter().map(|f| f.name.as_str()),
                &format!("field of {}", message.name),
            )?;
            for field in &message.fields {
                let at = format!("{}.{}", message.name, field.name);
                check_name(&field.name, &at)?;
                field.ty.check(&at)?;
            }
            match (message.direction, message.rate) {
                (Direction::ToServer, None) => {
                    return Err(SchemaError::new(
                        &message.name,
                        "a message to the server needs a rate limit",
                    ))
                }
                (Direction::ToServer, Some(rate)) if rate.burst == 0 => {
                    return Err(SchemaError::new(
                        &message.name,
                        "a rate limit's burst is at least 1",
                    ))
                }
                (Direction::ToClient, Some(_)) => {
                    return Err(SchemaError::new(
                        &message.name,
                        "only messages to the server have a rate limit",
                    ))
                }
                _ => {}
            }
        }
        let mut schema = Self {
            game: game.to_owned(),
            kinds,
            messages,
            version: String::new(),
        };
        let encoded = schema.encode();
        if encoded.len() > MAX_SCHEMA_BYTES {
            return Err(SchemaError::new(
                game,
                format!("the schema encodes to more than {MAX_SCHEMA_BYTES} bytes"),
            ));
        }
        schema.version = format!("{:016x}", fnv1a(&encoded));
        Ok(schema)
    }

    pub fn game(&self) -> &str {
        &self.game
    }

    pub fn kinds(&self) -> &[KindSpec] {
        &self.kinds
    }

    pub fn messages(&self) -> &[MessageSpec] {
        &self.messages
    }

    /// Names this exact schema: a client built for another version is
    /// refused at login instead of misreading every message. A hash of the
    /// canonical encoding (FNV-1a, 64 bits: an identifier, not a security
    /// measure; the session is already authenticated).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn kind(&self, name: &str) -> Option<(u16, &KindSpec)> {
        let at = self.kinds.iter().position(|k| k.name == name)?;
        Some((at as u16, &self.kinds[at]))
    }

    pub fn message(&self, name: &str) -> Option<(u16, &MessageSpec)> {
        let at = self.messages.iter().position(|m| m.name == name)?;
        Some((at as u16, &self.messages[at]))
    }

    /// The canonical encoding: what the version hashes, and what the login
    /// flow can carry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u8(SCHEMA_FORMAT);
        out.put_str(&self.game);
        out.put_varint(self.kinds.len() as u64);
        for kind in &self.kinds {
            out.put_str(&kind.name);
            match kind.movement {
                None => out.put_u8(0),
                Some(movement) => {
                    out.put_u8(1);
                    out.put_varint(u64::from(movement.speed));
                    out.put_u8(u8::from(movement.collides));
                }
            }
            out.put_varint(kind.props.len() as u64);
            for prop in &kind.props {
                out.put_str(&prop.name);
                prop.ty.put(&mut out);
                out.put_u8(prop.visibility as u8);
                out.put_u8(prop.delivery as u8);
            }
        }
        out.put_varint(self.messages.len() as u64);
        for message in &self.messages {
            out.put_str(&message.name);
            out.put_u8(message.direction as u8);
            if let Some(rate) = message.rate {
                out.put_varint(u64::from(rate.burst));
                out.put_varint(u64::from(rate.per_second));
            }
            out.put_varint(message.fields.len() as u64);
            for field in &message.fields {
                out.put_str(&field.name);
                field.ty.put(&mut out);
            }
        }
        out
    }

    /// Reads a schema as [`Schema::encode`] wrote it and checks it like
    /// [`Schema::new`]; counts are bounded before anything is reserved.
    pub fn decode(bytes: &[u8]) -> Result<Self, SchemaDecodeError> {
        if bytes.len() > MAX_SCHEMA_BYTES {
            return Err(DecodeError::OutOfRange("schema length").into());
        }
        let mut r = Reader::new(bytes);
        if r.u8("schema format")? != SCHEMA_FORMAT {
            return Err(DecodeError::OutOfRange("schema format").into());
        }
        let game = r.string(MAX_NAME, "game name")?;
        let kind_count = bounded_count(&mut r, MAX_KINDS, "kind count")?;
        let mut kinds = Vec::with_capacity(kind_count);
        for _ in 0..kind_count {
            let name = r.string(MAX_NAME, "kind name")?;
            let movement = match get_bool(&mut r)? {
                false => None,
                true => Some(Movement {
                    speed: varint_u32(&mut r, "speed")?,
                    collides: get_bool(&mut r)?,
                }),
            };
            let prop_count = bounded_count(&mut r, MAX_PROPS, "property count")?;
            let mut props = Vec::with_capacity(prop_count);
            for _ in 0..prop_count {
                props.push(PropSpec {
                    name: r.string(MAX_NAME, "property name")?,
                    ty: ValueType::get(&mut r)?,
                    visibility: match r.u8("visibility")? {
                        0 => Visibility::Everyone,
                        1 => Visibility::Owner,
                        2 => Visibility::Server,
                        _ => return Err(DecodeError::OutOfRange("visibility").into()),
                    },
                    delivery: match r.u8("delivery")? {
                        0 => Delivery::Frame,
                        1 => Delivery::Reliable,
                        _ => return Err(DecodeError::OutOfRange("delivery").into()),
                    },
                });
            }
            kinds.push(KindSpec {
                name,
                movement,
                props,
            });
        }
        let message_count = bounded_count(&mut r, MAX_MESSAGES, "message count")?;
        let mut messages = Vec::with_capacity(message_count);
        for _ in 0..message_count {
            let name = r.string(MAX_NAME, "message name")?;
            let direction = match r.u8("direction")? {
                0 => Direction::ToServer,
                1 => Direction::ToClient,
                _ => return Err(DecodeError::OutOfRange("direction").into()),
            };
            let rate = match direction {
                Direction::ToServer => Some(RateLimit {
                    burst: varint_u32(&mut r, "burst")?,
                    per_second: varint_u32(&mut r, "rate")?,
                }),
                Direction::ToClient => None,
            };
            let field_count = bounded_count(&mut r, MAX_FIELDS, "field count")?;
            let mut fields = Vec::with_capacity(field_count);
            for _ in 0..field_count {
                fields.push(FieldSpec {
                    name: r.string(MAX_NAME, "field name")?,
                    ty: ValueType::get(&mut r)?,
                });
            }
            messages.push(MessageSpec {
                name,
                direction,
                fields,
                rate,
            });
        }
        r.finish()?;
        Ok(Self::new(&game, kinds, messages)?)
    }
}

/// A moving kind: a legal speed, and its position first, as
/// [`KindSpec::moving`] makes it.
fn check_movement(kind: &KindSpec, movement: Movement) -> Result<(), SchemaError> {
    if movement.speed == 0 || movement.speed > MAX_SPEED {
        return Err(SchemaError::new(
            &kind.name,
            format!("a moving kind's speed is 1 to {MAX_SPEED} cells per second"),
        ));
    }
    let position = PropSpec::new(POS_X, position_type());
    let starts_with_position = kind.props.len() >= 2
        && kind.props[0] == position
        && kind.props[1]
            == PropSpec {
                name: POS_Y.to_owned(),
                ..position
            };
    if !starts_with_position {
        return Err(SchemaError::new(
            &kind.name,
            "a moving kind starts with its position (x, y): make it with KindSpec::moving",
        ));
    }
    Ok(())
}

/// A schema as read from JSON, before its checks. A misspelt field is an
/// error, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedSchema {
    game: String,
    kinds: Vec<KindSpec>,
    messages: Vec<MessageSpec>,
    /// Computed again from the rest, never trusted.
    #[serde(default, rename = "version")]
    _version: Option<String>,
}

impl TryFrom<UncheckedSchema> for Schema {
    type Error = SchemaError;

    fn try_from(unchecked: UncheckedSchema) -> Result<Self, SchemaError> {
        Schema::new(&unchecked.game, unchecked.kinds, unchecked.messages)
    }
}

/// Why received schema bytes are not a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaDecodeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Invalid(#[from] SchemaError),
}

/// The first byte of an encoded schema: bumped if the encoding changes.
const SCHEMA_FORMAT: u8 = 2;

mod type_code {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FIXED: u8 = 3;
    pub const ENUM: u8 = 4;
    pub const STR: u8 = 5;
    pub const LIST: u8 = 6;
}

fn put_scalar_type(scalar: &Scalar, out: &mut Vec<u8>) {
    match scalar {
        Scalar::Bool => out.put_u8(type_code::BOOL),
        Scalar::Int { min, max } => {
            out.put_u8(type_code::INT);
            out.put_varint(zigzag(*min));
            out.put_varint(zigzag(*max));
        }
        Scalar::Fixed { scale, min, max } => {
            out.put_u8(type_code::FIXED);
            out.put_varint(u64::from(*scale));
            out.put_varint(zigzag(*min));
            out.put_varint(zigzag(*max));
        }
        Scalar::Enum { variants } => {
            out.put_u8(type_code::ENUM);
            out.put_varint(variants.len() as u64);
            for variant in variants {
                out.put_str(variant);
            }
        }
    }
}

fn get_scalar_type(code: u8, r: &mut Reader<'_>) -> Result<Scalar, DecodeError> {
    Ok(match code {
        type_code::BOOL => Scalar::Bool,
        type_code::INT => Scalar::Int {
            min: unzigzag(r.varint("minimum")?),
            max: unzigzag(r.varint("maximum")?),
        },
        type_code::FIXED => Scalar::Fixed {
            scale: varint_u32(r, "scale")?,
            min: unzigzag(r.varint("minimum")?),
            max: unzigzag(r.varint("maximum")?),
        },
        type_code::ENUM => {
            let count = bounded_count(r, MAX_VARIANTS, "variant count")?;
            let mut variants = Vec::with_capacity(count);
            for _ in 0..count {
                variants.push(r.string(MAX_NAME, "variant")?);
            }
            Scalar::Enum { variants }
        }
        value => {
            return Err(DecodeError::UnknownType {
                what: "value type",
                value,
            })
        }
    })
}

fn check_scalar(scalar: &Scalar, at: &str) -> Result<(), SchemaError> {
    match scalar {
        Scalar::Bool => Ok(()),
        Scalar::Int { min, max } | Scalar::Fixed { min, max, .. } if min > max => Err(
            SchemaError::new(at, format!("the minimum {min} is above the maximum {max}")),
        ),
        Scalar::Fixed { scale: 0, .. } => {
            Err(SchemaError::new(at, "a fixed-point scale is at least 1"))
        }
        Scalar::Int { .. } | Scalar::Fixed { .. } => Ok(()),
        Scalar::Enum { variants } => {
            if variants.is_empty() || variants.len() > MAX_VARIANTS {
                return Err(SchemaError::new(
                    at,
                    format!("an enum has 1 to {MAX_VARIANTS} variants"),
                ));
            }
            for variant in variants {
                check_name(variant, at)?;
            }
            check_unique(
                variants.iter().map(String::as_str),
                &format!("variant of {at}"),
            )
        }
    }
}

fn scalar_bounds(scalar: &Scalar) -> (i64, i64) {
    match scalar {
        Scalar::Bool => (0, 1),
        Scalar::Int { min, max } | Scalar::Fixed { min, max, .. } => (*min, *max),
        Scalar::Enum { variants } => (0, variants.len() as i64 - 1),
    }
}

fn scalar_admits(scalar: &Scalar, value: i64) -> bool {
    let (min, max) = scalar_bounds(scalar);
    (min..=max).contains(&value)
}

fn scalar_default(scalar: &Scalar) -> i64 {
    let (min, max) = scalar_bounds(scalar);
    0i64.clamp(min, max)
}

/// Scalars travel as their distance above the minimum: small and unsigned
/// for the usual ranges (0..=100 is one byte, whatever the sign of `min`).
fn offset(scalar: &Scalar, value: i64) -> u64 {
    let (min, _) = scalar_bounds(scalar);
    (i128::from(value) - i128::from(min)) as u64
}

fn put_scalar(scalar: &Scalar, value: i64, out: &mut Vec<u8>) {
    out.put_varint(offset(scalar, value));
}

fn scalar_len(scalar: &Scalar, value: i64) -> usize {
    hearth_codec::varint_len(offset(scalar, value))
}

fn scalar_max_len(scalar: &Scalar) -> usize {
    let (_, max) = scalar_bounds(scalar);
    scalar_len(scalar, max)
}

fn get_scalar(scalar: &Scalar, r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    let (min, max) = scalar_bounds(scalar);
    let raw = r.varint("value")?;
    let span = (i128::from(max) - i128::from(min)) as u64;
    if raw > span {
        return Err(DecodeError::OutOfRange("value"));
    }
    Ok((i128::from(min) + i128::from(raw)) as i64)
}

fn get_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8("bool")? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::OutOfRange("bool")),
    }
}

fn bounded_count(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<usize, DecodeError> {
    let count = r.varint(what)?;
    // Every entry takes at least a byte: a count the input cannot hold is
    // refused before anything is reserved for it.
    if count > max as u64 || count > r.remaining() as u64 {
        return Err(DecodeError::OutOfRange(what));
    }
    Ok(count as usize)
}

fn varint_u32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, DecodeError> {
    u32::try_from(r.varint(what)?).map_err(|_| DecodeError::OutOfRange(what))
}

fn varint_u16(r: &mut Reader<'_>, what: &'static str) -> Result<u16, DecodeError> {
    u16::try_from(r.varint(what)?).map_err(|_| DecodeError::OutOfRange(what))
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn check_name(name: &str, what: &str) -> Result<(), SchemaError> {
    let mut chars = name.chars();
    let well_formed = name.len() <= MAX_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if well_formed {
        Ok(())
    } else {
        Err(SchemaError::new(
            what,
            format!("{name:?} is not a name: use lowercase ASCII letters, digits and '_', starting with a letter or '_', at most {MAX_NAME} bytes (generated code uses it as an identifier)"),
        ))
    }
}

fn check_unique<'a>(names: impl Iterator<Item = &'a str>, what: &str) -> Result<(), SchemaError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(SchemaError::new(
                what,
                format!("{name:?} is declared twice"),
            ));
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
