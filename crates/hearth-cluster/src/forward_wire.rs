//! What one node hands another about a player who plays in a zone the
//! other runs (sans-IO). The player's session stays on their home node
//! (the node they logged in on: keys, acknowledgements, resume); the lines
//! of the zone run on the zone's node. The home node forwards the client's
//! messages there, the zone's node sends back what the player's client is
//! to be sent and the player's data to save (the home node holds the
//! account's claim and writes it, fenced), and either hands the player on
//! when they travel.
//!
//! Every message is untrusted input to the node that receives it:
//! [`decode`] checks every length against its bound and every text for
//! UTF-8, uses the whole input, and returns a typed error.
//!
//! Layout (hearth-codec's: integers big-endian, lengths as varints):
//!
//! ```text
//! u8 version (1) | string origin node id | string schema version | u64 player | u8 kind | ...
//! 1 arrive:   string name | string zone | u8 has_at [i32 x, i32 y] | u8 has_data [bytes data]
//!             | u32 bytes_per_second (0: none) | u8 entries
//!             | varint count, count x (u64 milli-tokens, u64 ticks since refill)
//! 2 input:    u16 channel | bytes
//! 3 leave
//! 4 send:     u16 channel | bytes
//! 5 save:     u8 last | bytes data
//! 6 close:    string reason
//! 7 departed: as arrive (where the player goes next)
//! 8 arrived
//! 9 refused:  string reason
//! ```
//!
//! A NATS message carries one such message, or a batch of them (what a
//! node queued for one other node at once; [`encode_batch`],
//! [`split_batch`]):
//!
//! ```text
//! u8 batch version (2) | varint count (2 ..= 256) | count x bytes message
//! ```

use hearth_codec::{DecodeError, Reader, Writer};

use crate::wire::put_bounded;
pub use crate::wire::TooLong;

/// The layout's version: the first byte of every message.
pub const FORWARD_VERSION: u8 = 3;
/// Longest node id, schema version, name, zone or reason carried.
pub const MAX_FORWARD_NAME: usize = 256;
/// Longest node name or line name a handover carries as a hint.
pub const MAX_FORWARD_LINE: usize = crate::leases::MAX_LINE_NAME;
/// Largest bytes for or from a client, or player data, carried (a game's
/// saved data is at most 64 KiB).
pub const MAX_FORWARD_BYTES: usize = 80 * 1024;
/// Most rate-limit buckets carried with a player (one per message of the
/// game's schema).
pub const MAX_FORWARD_LIMITS: usize = 1024;
/// Largest forwarded message.
pub const MAX_FORWARD_MESSAGE: usize =
    MAX_FORWARD_BYTES + 6 * (3 + MAX_FORWARD_NAME) + 16 * MAX_FORWARD_LIMITS + 64;

/// The first byte of a batch of messages.
pub const FORWARD_BATCH_VERSION: u8 = 2;
/// Messages in one batch at most.
pub const MAX_BATCH_MESSAGES: usize = 256;
/// Largest batch: well under NATS's default 1 MiB payload.
pub const MAX_FORWARD_BATCH: usize = 512 * 1024;

/// Messages (each [`encode`]'s bytes, in order) as one batch; they must
/// be 2 to [`MAX_BATCH_MESSAGES`] and fit [`MAX_FORWARD_BATCH`] (the
/// sender groups them so).
pub fn encode_batch<'a>(messages: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_FORWARD_BATCH.min(64 * 1024));
    out.put_u8(FORWARD_BATCH_VERSION);
    out.put_varint(messages.len() as u64);
    for message in messages {
        out.put_varint(message.len() as u64);
        out.extend_from_slice(message);
    }
    out
}

/// Bytes a message adds to a batch.
pub fn batched_len(message: &[u8]) -> usize {
    hearth_codec::varint_len(message.len() as u64) + message.len()
}

/// The messages in a NATS message: one, or a batch's (each still to be
/// [`decode`]d). The whole input used, every length within its bound.
pub fn split_batch(bytes: &[u8]) -> Result<Vec<&[u8]>, ForwardWireError> {
    if bytes.len() > MAX_FORWARD_BATCH {
        return Err(ForwardWireError::BatchTooLarge(bytes.len()));
    }
    match bytes.first() {
        Some(&FORWARD_BATCH_VERSION) => {}
        _ => return Ok(vec![bytes]),
    }
    let mut r = Reader::new(&bytes[1..]);
    let count = r.varint("batch count")?;
    if !(2..=MAX_BATCH_MESSAGES as u64).contains(&count) {
        return Err(ForwardWireError::BatchCount(count));
    }
    let mut messages = Vec::with_capacity(count as usize);
    for _ in 0..count {
        messages.push(r.len_prefixed(MAX_FORWARD_MESSAGE, "batched message")?);
    }
    r.finish()?;
    Ok(messages)
}

/// A player handed to another node's lines: who, where to, what the line
/// there needs to take them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub name: String,
    pub zone: String,
    /// Where they appear, in the zone's units.
    pub at: Option<(i32, i32)>,
    pub data: Option<Vec<u8>>,
    pub bytes_per_second: Option<u32>,
    /// Entries into lines so far.
    pub entries: u8,
    /// What their message rate limits still allow: (milli-tokens, ticks
    /// since refill) per message of the schema; empty for none.
    pub limits: Vec<(u64, u64)>,
    /// The node they go to, by name, when the sender chose it (a visitor
    /// whose line moved to that node, handed back home to go there).
    pub node: Option<String>,
    /// The line they go to there, by its name in the cluster (a line that
    /// moved: they follow it).
    pub line: Option<String>,
}

/// What a forwarded message says about its player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// Home to zone node: take the player into a line of the zone.
    Arrive(Handover),
    /// Home to zone node: bytes the player's client sent on a game channel.
    Input { channel: u16, bytes: Vec<u8> },
    /// Home to zone node: the player's session ended; let them go.
    Leave,
    /// Zone node to home: bytes for the player's client.
    Send { channel: u16, bytes: Vec<u8> },
    /// Zone node to home: the player's data to store (`last`: they left
    /// the game, this is what their next login starts from).
    Save { data: Vec<u8>, last: bool },
    /// Zone node to home: close the player's session, showing `reason`.
    Close { reason: String },
    /// Zone node to home: the player's line let go of them for a zone the
    /// zone node does not run (home's, or a third node's).
    Departed(Handover),
    /// Zone node to home: the player is in a line there (the answer to
    /// `Arrive`).
    Arrived,
    /// Zone node to home: the player could not be taken in.
    Refused { reason: String },
}

/// A forwarded message: from which node, for which version of the game,
/// about which player (the home node's id for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub origin: String,
    pub schema: String,
    pub player: u64,
    pub forwarded: Forwarded,
}

/// Why a forwarded message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardWireError {
    #[error("a forwarded message of {0} bytes is larger than {MAX_FORWARD_MESSAGE}")]
    TooLarge(usize),
    #[error("forward layout version {0} is not {FORWARD_VERSION}: the nodes run different Hearth versions")]
    Version(u8),
    #[error("a batch of {0} bytes is larger than {MAX_FORWARD_BATCH}")]
    BatchTooLarge(usize),
    #[error("a batch of {0} forwarded messages: a batch holds 2 to {MAX_BATCH_MESSAGES}")]
    BatchCount(u64),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

const ARRIVE: u8 = 1;
const INPUT: u8 = 2;
const LEAVE: u8 = 3;
const SEND: u8 = 4;
const SAVE: u8 = 5;
const CLOSE: u8 = 6;
const DEPARTED: u8 = 7;
const ARRIVED: u8 = 8;
const REFUSED: u8 = 9;

/// The bytes of `envelope`, or which part is too long to forward.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(64);
    out.put_u8(FORWARD_VERSION);
    put_bounded(
        &mut out,
        envelope.origin.as_bytes(),
        MAX_FORWARD_NAME,
        "node id",
    )?;
    put_bounded(
        &mut out,
        envelope.schema.as_bytes(),
        MAX_FORWARD_NAME,
        "schema version",
    )?;
    out.put_u64(envelope.player);
    match &envelope.forwarded {
        Forwarded::Arrive(handover) => {
            out.put_u8(ARRIVE);
            put_handover(&mut out, handover)?;
        }
        Forwarded::Input { channel, bytes } | Forwarded::Send { channel, bytes } => {
            out.put_u8(match envelope.forwarded {
                Forwarded::Input { .. } => INPUT,
                _ => SEND,
            });
            out.put_u16(*channel);
            put_bounded(&mut out, bytes, MAX_FORWARD_BYTES, "message")?;
        }
        Forwarded::Leave => out.put_u8(LEAVE),
        Forwarded::Save { data, last } => {
            out.put_u8(SAVE);
            out.put_u8(u8::from(*last));
            put_bounded(&mut out, data, MAX_FORWARD_BYTES, "player data")?;
        }
        Forwarded::Close { reason } => {
            out.put_u8(CLOSE);
            put_bounded(&mut out, reason.as_bytes(), MAX_FORWARD_NAME, "reason")?;
        }
        Forwarded::Departed(handover) => {
            out.put_u8(DEPARTED);
            put_handover(&mut out, handover)?;
        }
        Forwarded::Arrived => out.put_u8(ARRIVED),
        Forwarded::Refused { reason } => {
            out.put_u8(REFUSED);
            put_bounded(&mut out, reason.as_bytes(), MAX_FORWARD_NAME, "reason")?;
        }
    }
    Ok(out)
}

fn put_handover(out: &mut Vec<u8>, handover: &Handover) -> Result<(), TooLong> {
    put_bounded(out, handover.name.as_bytes(), MAX_FORWARD_NAME, "name")?;
    put_bounded(out, handover.zone.as_bytes(), MAX_FORWARD_NAME, "zone")?;
    match handover.at {
        Some((x, y)) => {
            out.put_u8(1);
            out.put_u32(x as u32);
            out.put_u32(y as u32);
        }
        None => out.put_u8(0),
    }
    match &handover.data {
        Some(data) => {
            out.put_u8(1);
            put_bounded(out, data, MAX_FORWARD_BYTES, "player data")?;
        }
        None => out.put_u8(0),
    }
    out.put_u32(handover.bytes_per_second.unwrap_or(0));
    out.put_u8(handover.entries);
    if handover.limits.len() > MAX_FORWARD_LIMITS {
        return Err(TooLong("rate limits"));
    }
    out.put_varint(handover.limits.len() as u64);
    for &(milli_tokens, ago) in &handover.limits {
        out.put_u64(milli_tokens);
        out.put_u64(ago);
    }
    put_optional(out, handover.node.as_deref(), "node")?;
    put_optional(out, handover.line.as_deref(), "line")?;
    Ok(())
}

fn put_optional(out: &mut Vec<u8>, text: Option<&str>, what: &'static str) -> Result<(), TooLong> {
    match text {
        Some(text) => {
            out.put_u8(1);
            put_bounded(out, text.as_bytes(), MAX_FORWARD_LINE, what)
        }
        None => {
            out.put_u8(0);
            Ok(())
        }
    }
}

fn optional(r: &mut Reader<'_>, what: &'static str) -> Result<Option<String>, DecodeError> {
    match flag(r, what)? {
        true => Ok(Some(r.string(MAX_FORWARD_LINE, what)?)),
        false => Ok(None),
    }
}

/// Reads a forwarded message: every length against its bound, every text
/// against UTF-8, the whole input used.
pub fn decode(bytes: &[u8]) -> Result<Envelope, ForwardWireError> {
    if bytes.len() > MAX_FORWARD_MESSAGE {
        return Err(ForwardWireError::TooLarge(bytes.len()));
    }
    let mut r = Reader::new(bytes);
    let version = r.u8("forward version")?;
    if version != FORWARD_VERSION {
        return Err(ForwardWireError::Version(version));
    }
    let origin = r.string(MAX_FORWARD_NAME, "node id")?;
    let schema = r.string(MAX_FORWARD_NAME, "schema version")?;
    let player = r.u64("player")?;
    let forwarded = match r.u8("forwarded message kind")? {
        ARRIVE => Forwarded::Arrive(handover(&mut r)?),
        INPUT => Forwarded::Input {
            channel: r.u16("channel")?,
            bytes: r.len_prefixed(MAX_FORWARD_BYTES, "message")?.to_vec(),
        },
        LEAVE => Forwarded::Leave,
        SEND => Forwarded::Send {
            channel: r.u16("channel")?,
            bytes: r.len_prefixed(MAX_FORWARD_BYTES, "message")?.to_vec(),
        },
        SAVE => {
            let last = flag(&mut r, "last save")?;
            Forwarded::Save {
                last,
                data: r.len_prefixed(MAX_FORWARD_BYTES, "player data")?.to_vec(),
            }
        }
        CLOSE => Forwarded::Close {
            reason: r.string(MAX_FORWARD_NAME, "reason")?,
        },
        DEPARTED => Forwarded::Departed(handover(&mut r)?),
        ARRIVED => Forwarded::Arrived,
        REFUSED => Forwarded::Refused {
            reason: r.string(MAX_FORWARD_NAME, "reason")?,
        },
        value => {
            return Err(DecodeError::UnknownType {
                what: "forwarded message",
                value,
            }
            .into())
        }
    };
    r.finish()?;
    Ok(Envelope {
        origin,
        schema,
        player,
        forwarded,
    })
}

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::OutOfRange(what)),
    }
}

fn handover(r: &mut Reader<'_>) -> Result<Handover, DecodeError> {
    let name = r.string(MAX_FORWARD_NAME, "name")?;
    let zone = r.string(MAX_FORWARD_NAME, "zone")?;
    let at = match flag(r, "arrival point")? {
        true => Some((r.u32("x")? as i32, r.u32("y")? as i32)),
        false => None,
    };
    let data = match flag(r, "player data")? {
        true => Some(r.len_prefixed(MAX_FORWARD_BYTES, "player data")?.to_vec()),
        false => None,
    };
    let bytes_per_second = match r.u32("bytes per second")? {
        0 => None,
        rate => Some(rate),
    };
    let entries = r.u8("entries")?;
    let count = r.varint("rate limits")?;
    if count > MAX_FORWARD_LIMITS as u64 {
        return Err(DecodeError::OutOfRange("rate limits"));
    }
    let limits = (0..count)
        .map(|_| Ok((r.u64("milli-tokens")?, r.u64("ticks since refill")?)))
        .collect::<Result<Vec<_>, DecodeError>>()?;
    let node = optional(r, "node")?;
    let line = optional(r, "line")?;
    Ok(Handover {
        name,
        zone,
        at,
        data,
        bytes_per_second,
        entries,
        limits,
        node,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(forwarded: Forwarded) -> Envelope {
        Envelope {
            origin: "n1_0123456789ab".into(),
            schema: "9f2c".into(),
            player: 0xfeed_beef_0000_0001,
            forwarded,
        }
    }

    fn handover() -> Handover {
        Handover {
            name: "ann".into(),
            zone: "caves".into(),
            at: Some((-150, 2_000_000)),
            data: Some(b"{\"zone\":\"caves\"}".to_vec()),
            bytes_per_second: Some(20_000),
            entries: 255,
            limits: vec![(3000, 7), (0, u64::MAX)],
            node: None,
            line: Some("hearth/world/caves/12".into()),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for forwarded in [
            Forwarded::Arrive(handover()),
            Forwarded::Arrive(Handover {
                at: None,
                data: None,
                bytes_per_second: None,
                limits: vec![],
                ..handover()
            }),
            Forwarded::Input {
                channel: 10,
                bytes: vec![1; MAX_FORWARD_BYTES],
            },
            Forwarded::Leave,
            Forwarded::Send {
                channel: 11,
                bytes: vec![],
            },
            Forwarded::Save {
                data: vec![7; 100],
                last: true,
            },
            Forwarded::Close {
                reason: "kicked".into(),
            },
            Forwarded::Departed(handover()),
            Forwarded::Arrived,
            Forwarded::Refused {
                reason: "full".into(),
            },
        ] {
            let sent = envelope(forwarded);
            let bytes = encode(&sent).unwrap();
            assert!(bytes.len() <= MAX_FORWARD_MESSAGE);
            assert_eq!(decode(&bytes).unwrap(), sent);
        }
    }

    #[test]
    fn a_batch_splits_into_its_messages_and_a_malformed_one_is_refused_whole() {
        let messages: Vec<Vec<u8>> = [
            Forwarded::Leave,
            Forwarded::Input {
                channel: 3,
                bytes: vec![7; 300],
            },
            Forwarded::Arrived,
        ]
        .into_iter()
        .map(|f| encode(&envelope(f)).unwrap())
        .collect();
        let batch = encode_batch(messages.iter().map(Vec::as_slice));
        assert_eq!(
            batch.len(),
            2 + messages.iter().map(|m| batched_len(m)).sum::<usize>()
        );
        let split = split_batch(&batch).unwrap();
        assert_eq!(
            split,
            messages.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        // A single message is its own batch of one.
        assert_eq!(split_batch(&messages[0]).unwrap(), [&messages[0][..]]);
        // Cut anywhere, it is refused; so is a count out of bounds, or
        // bytes after the last message.
        for end in 1..batch.len() {
            assert!(split_batch(&batch[..end]).is_err(), "{end}");
        }
        for count in [0u8, 1] {
            let mut odd = batch.clone();
            odd[1] = count;
            assert!(matches!(
                split_batch(&odd),
                Err(ForwardWireError::BatchCount(_))
            ));
        }
        let mut long = batch.clone();
        long.push(0);
        assert!(split_batch(&long).is_err());
        let huge = vec![FORWARD_BATCH_VERSION; MAX_FORWARD_BATCH + 1];
        assert!(matches!(
            split_batch(&huge),
            Err(ForwardWireError::BatchTooLarge(_))
        ));
    }

    #[test]
    fn malformed_messages_get_typed_errors() {
        let good = encode(&envelope(Forwarded::Arrive(handover()))).unwrap();
        for end in 0..good.len() {
            assert!(
                matches!(
                    decode(&good[..end]),
                    Err(ForwardWireError::Decode(DecodeError::Truncated(_)))
                ),
                "{end}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(ForwardWireError::Decode(DecodeError::TrailingBytes(1)))
        );
        let mut version = good.clone();
        version[0] = 9;
        assert_eq!(decode(&version), Err(ForwardWireError::Version(9)));
        assert_eq!(
            decode(&vec![FORWARD_VERSION; MAX_FORWARD_MESSAGE + 1]),
            Err(ForwardWireError::TooLarge(MAX_FORWARD_MESSAGE + 1))
        );
        let too_big = envelope(Forwarded::Input {
            channel: 1,
            bytes: vec![0; MAX_FORWARD_BYTES + 1],
        });
        assert_eq!(encode(&too_big), Err(TooLong("message")));
        // A flag that is neither 0 nor 1.
        let mut save = encode(&envelope(Forwarded::Save {
            data: vec![],
            last: false,
        }))
        .unwrap();
        let at = save.len() - 2;
        save[at] = 2;
        assert_eq!(
            decode(&save),
            Err(ForwardWireError::Decode(DecodeError::OutOfRange(
                "last save"
            )))
        );
    }
}
