//! What one node hands another about its players (sans-IO): a zone's
//! message for the lines of the zone on every node, a message for a player
//! by name, an administrator's announcement. Every message names the node
//! that sent it and the version of the game's schema it was encoded with: a
//! node running another version of the game drops it instead of sending its
//! clients bytes they would misread.
//!
//! A message from another node is untrusted input: [`decode`] checks every
//! length against its bound and every text for UTF-8, and returns a typed
//! error (the node drops the message and counts it). The game's body is
//! checked against the schema by the game's lines before any client sees
//! it (`GameLines::deliver_to_zone`).
//!
//! Layout (hearth-codec's: integers big-endian, lengths as varints):
//!
//! ```text
//! u8 version (1) | u8 kind | string origin node id | string schema version
//! kind 1, zone:     string zone name   | u16 message | bytes body
//! kind 2, named:    string player name | u16 message | bytes body
//! kind 3, announce: string text
//! ```
//!
//! The answer to a named message is one byte: 1 delivered, 0 not here.

use hearth_codec::{DecodeError, Reader, Writer};

use crate::wire::put_bounded;
pub use crate::wire::TooLong;

/// The layout's version: the first byte of every message.
pub const RELAY_VERSION: u8 = 1;
/// Longest node id, schema version, zone name or player name carried.
pub const MAX_RELAY_NAME: usize = 64;
/// Largest game message body carried (a chat line is a few hundred bytes;
/// the game's bodies are bounded by its schema).
pub const MAX_RELAY_BODY: usize = 4096;
/// Longest announcement carried.
pub const MAX_RELAY_TEXT: usize = 1024;
/// Largest relayed message: its header and the largest body or text.
pub const MAX_RELAY_MESSAGE: usize = 2 + 3 * (2 + MAX_RELAY_NAME) + 2 + 2 + MAX_RELAY_BODY;

/// The answer a node gives to a named message it delivered.
pub const DELIVERED: u8 = 1;
/// The answer a node gives when the player is no longer here.
pub const NOT_HERE: u8 = 0;

/// What a relayed message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// A zone's message, for every line of `zone` on the receiving node.
    Zone {
        zone: String,
        message: u16,
        body: Vec<u8>,
    },
    /// A message for the player named `name` (compared as accounts' names
    /// are), answered with [`DELIVERED`] or [`NOT_HERE`].
    Named {
        name: String,
        message: u16,
        body: Vec<u8>,
    },
    /// An administrator's announcement, for every line.
    Announce { text: String },
}

/// A relayed message with who sent it and for which version of the game.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sending node's id.
    pub origin: String,
    /// The game's schema version on the sending node (`Schema::version`).
    pub schema: String,
    pub relayed: Relayed,
}

/// Why a relayed message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayWireError {
    #[error("a relayed message of {0} bytes is larger than {MAX_RELAY_MESSAGE}")]
    TooLarge(usize),
    #[error(
        "relay layout version {0} is not {RELAY_VERSION}: the nodes run different Hearth versions"
    )]
    Version(u8),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

const ZONE: u8 = 1;
const NAMED: u8 = 2;
const ANNOUNCE: u8 = 3;

/// The bytes of `envelope`, or which of its parts is too long to relay.
pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::with_capacity(64);
    out.put_u8(RELAY_VERSION);
    out.put_u8(match envelope.relayed {
        Relayed::Zone { .. } => ZONE,
        Relayed::Named { .. } => NAMED,
        Relayed::Announce { .. } => ANNOUNCE,
    });
    put_bounded(
        &mut out,
        envelope.origin.as_bytes(),
        MAX_RELAY_NAME,
        "node id",
    )?;
    put_bounded(
        &mut out,
        envelope.schema.as_bytes(),
        MAX_RELAY_NAME,
        "schema version",
    )?;
    match &envelope.relayed {
        Relayed::Zone {
            zone: name,
            message,
            body,
        }
        | Relayed::Named {
            name,
            message,
            body,
        } => {
            put_bounded(&mut out, name.as_bytes(), MAX_RELAY_NAME, "name")?;
            out.put_u16(*message);
            put_bounded(&mut out, body, MAX_RELAY_BODY, "message body")?;
        }
        Relayed::Announce { text } => {
            put_bounded(&mut out, text.as_bytes(), MAX_RELAY_TEXT, "announcement")?
        }
    }
    Ok(out)
}

/// Reads a relayed message: every length checked against its bound, every
/// text against UTF-8, the whole input used.
pub fn decode(bytes: &[u8]) -> Result<Envelope, RelayWireError> {
    if bytes.len() > MAX_RELAY_MESSAGE {
        return Err(RelayWireError::TooLarge(bytes.len()));
    }
    let mut r = Reader::new(bytes);
    let version = r.u8("relay version")?;
    if version != RELAY_VERSION {
        return Err(RelayWireError::Version(version));
    }
    let kind = r.u8("relayed message kind")?;
    let origin = r.string(MAX_RELAY_NAME, "node id")?;
    let schema = r.string(MAX_RELAY_NAME, "schema version")?;
    let relayed = match kind {
        ZONE | NAMED => {
            let name = r.string(MAX_RELAY_NAME, "name")?;
            let message = r.u16("message")?;
            let body = r.len_prefixed(MAX_RELAY_BODY, "message body")?.to_vec();
            match kind {
                ZONE => Relayed::Zone {
                    zone: name,
                    message,
                    body,
                },
                _ => Relayed::Named {
                    name,
                    message,
                    body,
                },
            }
        }
        ANNOUNCE => Relayed::Announce {
            text: r.string(MAX_RELAY_TEXT, "announcement")?,
        },
        value => {
            return Err(DecodeError::UnknownType {
                what: "relayed message",
                value,
            }
            .into())
        }
    };
    r.finish()?;
    Ok(Envelope {
        origin,
        schema,
        relayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(relayed: Relayed) -> Envelope {
        Envelope {
            origin: "n1_0123456789ab".into(),
            schema: "9f2c".into(),
            relayed,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for relayed in [
            Relayed::Zone {
                zone: "town".into(),
                message: 3,
                body: vec![1, 2, 3],
            },
            Relayed::Named {
                name: "Ünïcode".into(),
                message: 65535,
                body: vec![0; MAX_RELAY_BODY],
            },
            Relayed::Announce {
                text: "x".repeat(MAX_RELAY_TEXT),
            },
        ] {
            let sent = envelope(relayed);
            let bytes = encode(&sent).unwrap();
            assert!(bytes.len() <= MAX_RELAY_MESSAGE);
            assert_eq!(decode(&bytes).unwrap(), sent);
        }
    }

    #[test]
    fn what_is_too_long_is_not_sent() {
        let long = envelope(Relayed::Named {
            name: "n".repeat(MAX_RELAY_NAME + 1),
            message: 1,
            body: vec![],
        });
        assert_eq!(encode(&long), Err(TooLong("name")));
        let big = envelope(Relayed::Zone {
            zone: "z".into(),
            message: 1,
            body: vec![0; MAX_RELAY_BODY + 1],
        });
        assert_eq!(encode(&big), Err(TooLong("message body")));
    }

    #[test]
    fn malformed_messages_get_typed_errors() {
        let good = encode(&envelope(Relayed::Zone {
            zone: "town".into(),
            message: 7,
            body: b"hi".to_vec(),
        }))
        .unwrap();
        // Every cut ends early.
        for end in 0..good.len() {
            assert!(
                matches!(
                    decode(&good[..end]),
                    Err(RelayWireError::Decode(DecodeError::Truncated(_)))
                ),
                "{end}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(RelayWireError::Decode(DecodeError::TrailingBytes(1)))
        );
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(decode(&version), Err(RelayWireError::Version(2)));
        let mut kind = good.clone();
        kind[1] = 9;
        assert!(matches!(
            decode(&kind),
            Err(RelayWireError::Decode(DecodeError::UnknownType {
                value: 9,
                ..
            }))
        ));
        // A name length beyond the bound, and text that is not UTF-8.
        let mut long = good.clone();
        long[2] = (MAX_RELAY_NAME + 1) as u8;
        assert_eq!(
            decode(&long),
            Err(RelayWireError::Decode(DecodeError::OutOfRange("node id")))
        );
        let mut bad = good.clone();
        bad[3] = 0xff;
        assert_eq!(
            decode(&bad),
            Err(RelayWireError::Decode(DecodeError::BadUtf8("node id")))
        );
        let huge = vec![RELAY_VERSION; MAX_RELAY_MESSAGE + 1];
        assert_eq!(
            decode(&huge),
            Err(RelayWireError::TooLarge(MAX_RELAY_MESSAGE + 1))
        );
        // A body length beyond the bound is refused before it is read.
        let mut body = vec![RELAY_VERSION, ZONE, 0, 0, 1, b'z', 0, 1];
        body.put_varint(MAX_RELAY_BODY as u64 + 1);
        assert_eq!(
            decode(&body),
            Err(RelayWireError::Decode(DecodeError::OutOfRange(
                "message body"
            )))
        );
    }
}
