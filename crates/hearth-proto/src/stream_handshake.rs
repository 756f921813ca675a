//! Key agreement on a stream link (TCP or WebSocket), before anything else
//! crosses it. A connected stream has already proven the client's address, so
//! there is no cookie: the client opens with `StreamHello`, the server answers
//! `StreamAccept` with the same confirm step as the datagram Ack, and every
//! later stream packet in either direction is sealed (`StreamCrypto`).
//!
//! Credentials, Welcome secrets, tickets and resume tokens therefore never
//! cross a stream in the clear, and a pinned client detects a man in the
//! middle on every transport. Layouts are in docs/PROTOCOL.md section 7.1.

use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::codec::{DecodeError, Reader, Writer};
use crate::handshake::{confirm_answer, kind, Mode, Unconfirmed, PROTOCOL_VERSION};
use crate::link::Role;
/// Stream packet protection lives with the links; named here too, as the
/// result of a stream handshake.
pub use crate::link::StreamCrypto;

pub mod stream_kind {
    pub const HELLO: u8 = 0x11;
    pub const ACCEPT: u8 = 0x12;
    pub const REJECT: u8 = 0x13;
}

/// Why a server refused a stream handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// Attach to a session the server does not have (closed or never existed).
    UnknownSession = 1,
    ServerFull = 3,
    /// Too many sessions from this address are still logging in.
    TooManyFromAddress = 4,
}

impl std::fmt::Display for StreamRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamRefusal::UnknownSession => "the server no longer has this session",
            StreamRefusal::ServerFull => "the server is full",
            StreamRefusal::TooManyFromAddress => {
                "too many connections from this address are logging in; try again shortly"
            }
        })
    }
}

impl StreamRefusal {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::UnknownSession,
            3 => Self::ServerFull,
            4 => Self::TooManyFromAddress,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "stream refusal",
                    value,
                })
            }
        })
    }
}

/// The plaintext packets of a stream handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamHandshake {
    Hello {
        version: u16,
        mode: Mode,
        client_public: [u8; 32],
    },
    Accept {
        version: u16,
        server_ephemeral: [u8; 32],
        server_static: [u8; 32],
        /// `AckBody` (session id, reliable bunches received) under the confirm key.
        sealed: [u8; 32],
    },
    Reject {
        version: u16,
        reason: StreamRefusal,
    },
    /// Same layout as the datagram VersionMismatch (type 0x07).
    VersionMismatch {
        server_version: u16,
        client_version: u16,
    },
}

impl StreamHandshake {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            StreamHandshake::Hello {
                version,
                mode,
                client_public,
            } => {
                out.put_u8(stream_kind::HELLO);
                out.put_u16(*version);
                out.extend_from_slice(&mode.to_bytes());
                out.extend_from_slice(client_public);
            }
            StreamHandshake::Accept {
                version,
                server_ephemeral,
                server_static,
                sealed,
            } => {
                out.put_u8(stream_kind::ACCEPT);
                out.put_u16(*version);
                out.extend_from_slice(server_ephemeral);
                out.extend_from_slice(server_static);
                out.extend_from_slice(sealed);
            }
            StreamHandshake::Reject { version, reason } => {
                out.put_u8(stream_kind::REJECT);
                out.put_u16(*version);
                out.put_u8(*reason as u8);
            }
            StreamHandshake::VersionMismatch {
                server_version,
                client_version,
            } => {
                out.put_u8(kind::VERSION_MISMATCH);
                out.put_u16(*server_version);
                out.put_u16(*client_version);
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(99);
        self.encode(&mut out);
        out
    }

    /// Decodes one stream handshake packet. The version comes first so that a
    /// newer client still gets a VersionMismatch from an older server.
    pub fn decode(packet: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(packet);
        let packet_kind = reader.u8("stream handshake type")?;
        let packet = match packet_kind {
            kind::VERSION_MISMATCH => StreamHandshake::VersionMismatch {
                server_version: reader.u16("server version")?,
                client_version: reader.u16("client version")?,
            },
            stream_kind::HELLO => {
                let version = reader.u16("protocol version")?;
                let mode_bytes: [u8; 9] = reader.array("handshake mode")?;
                StreamHandshake::Hello {
                    version,
                    mode: Mode::from_bytes(&mode_bytes)?,
                    client_public: reader.array("client public key")?,
                }
            }
            stream_kind::ACCEPT => StreamHandshake::Accept {
                version: reader.u16("protocol version")?,
                server_ephemeral: reader.array("server ephemeral key")?,
                server_static: reader.array("server static key")?,
                sealed: reader.array("sealed accept body")?,
            },
            stream_kind::REJECT => StreamHandshake::Reject {
                version: reader.u16("protocol version")?,
                reason: StreamRefusal::from_u8(reader.u8("stream refusal")?)?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "stream handshake packet",
                    value,
                })
            }
        };
        reader.finish()?;
        Ok(packet)
    }

    /// The version a Hello announces, read before the rest is validated, so
    /// that a client of another version gets a VersionMismatch answer.
    pub fn hello_version(packet: &[u8]) -> Option<u16> {
        match packet {
            [stream_kind::HELLO, high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }
}

/// Transcript of a stream handshake: what both ends saw, bound into the keys.
/// The label differs from the datagram handshake's, so keys of one can never
/// be replayed as the other's.
pub fn stream_transcript(
    version: u16,
    client_public: &[u8; 32],
    server_ephemeral: &[u8; 32],
    server_static: &[u8; 32],
    mode: Mode,
) -> [u8; 32] {
    crate::crypto::transcript_hash(&[
        b"stream",
        &version.to_be_bytes(),
        client_public,
        server_ephemeral,
        server_static,
        &mode.to_bytes(),
    ])
}

/// Why a client could not open a stream with the server's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamAnswerError {
    #[error("bad stream handshake answer: {0}")]
    Malformed(DecodeError),
    #[error("{0}")]
    Refused(StreamRefusal),
    #[error("upgrade required: the server speaks protocol version {server_version}, this client {client_version}")]
    VersionMismatch {
        server_version: u16,
        client_version: u16,
    },
    #[error("the server presented another key than the pinned one")]
    WrongKey,
    #[error("the server's stream handshake answer did not prove its key")]
    NoProof,
    #[error("the server answered with a Hello")]
    Unexpected,
}

/// A stream whose key agreement completed, from the client's side.
pub struct OpenedStream {
    pub crypto: StreamCrypto,
    pub session_id: u64,
    /// Reliable bunches the server had received (Attach: what it will not need again).
    pub server_received: u64,
    /// The server's static key, now proven.
    pub server_key: [u8; 32],
}

/// The client's half of a stream key agreement, sans-IO: send `hello()` as
/// the stream's first packet, then `finish` with the server's answer. The
/// `Client` endpoint drives it, and so can tools that speak on a stream by
/// hand (tests, fuzzers, load generators).
pub struct StreamOpener {
    mode: Mode,
    secret: StaticSecret,
    public: [u8; 32],
}

impl StreamOpener {
    pub fn new(rng: &mut impl CryptoRngCore, mode: Mode) -> Self {
        let secret = StaticSecret::random_from_rng(rng);
        let public = PublicKey::from(&secret).to_bytes();
        Self {
            mode,
            secret,
            public,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn hello(&self) -> Vec<u8> {
        StreamHandshake::Hello {
            version: PROTOCOL_VERSION,
            mode: self.mode,
            client_public: self.public,
        }
        .to_vec()
    }

    /// Checks the server's answer: `pinned` is the key the server must prove,
    /// `attach_secret` the resume token in Attach mode.
    pub fn finish(
        &self,
        answer: &[u8],
        pinned: Option<&[u8; 32]>,
        attach_secret: Option<&[u8; 32]>,
    ) -> Result<OpenedStream, StreamAnswerError> {
        let (server_ephemeral, server_static, sealed) =
            match StreamHandshake::decode(answer).map_err(StreamAnswerError::Malformed)? {
                StreamHandshake::Accept {
                    server_ephemeral,
                    server_static,
                    sealed,
                    ..
                } => (server_ephemeral, server_static, sealed),
                StreamHandshake::Reject { reason, .. } => {
                    return Err(StreamAnswerError::Refused(reason))
                }
                StreamHandshake::VersionMismatch {
                    server_version,
                    client_version,
                } => {
                    return Err(StreamAnswerError::VersionMismatch {
                        server_version,
                        client_version,
                    })
                }
                StreamHandshake::Hello { .. } => return Err(StreamAnswerError::Unexpected),
            };
        let transcript = stream_transcript(
            PROTOCOL_VERSION,
            &self.public,
            &server_ephemeral,
            &server_static,
            self.mode,
        );
        let (keys, body) = confirm_answer(
            &self.secret,
            server_ephemeral,
            server_static,
            sealed,
            pinned,
            attach_secret,
            &transcript,
        )
        .map_err(|error| match error {
            Unconfirmed::WrongKey => StreamAnswerError::WrongKey,
            Unconfirmed::NoProof => StreamAnswerError::NoProof,
        })?;
        Ok(OpenedStream {
            crypto: StreamCrypto::new(Role::Client, &keys),
            session_id: body.session_id,
            server_received: body.received,
            server_key: server_static,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SessionKeys;

    #[test]
    fn every_packet_round_trips_and_truncations_fail() {
        let packets = [
            StreamHandshake::Hello {
                version: 2,
                mode: Mode::New,
                client_public: [1; 32],
            },
            StreamHandshake::Hello {
                version: 2,
                mode: Mode::Attach { session_id: 42 },
                client_public: [1; 32],
            },
            StreamHandshake::Accept {
                version: 2,
                server_ephemeral: [2; 32],
                server_static: [3; 32],
                sealed: [4; 32],
            },
            StreamHandshake::Reject {
                version: 2,
                reason: StreamRefusal::TooManyFromAddress,
            },
            StreamHandshake::VersionMismatch {
                server_version: 2,
                client_version: 1,
            },
        ];
        for packet in packets {
            let bytes = packet.to_vec();
            assert_eq!(StreamHandshake::decode(&bytes).unwrap(), packet);
            for cut in 0..bytes.len() {
                assert!(
                    StreamHandshake::decode(&bytes[..cut]).is_err(),
                    "{packet:?} cut {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(StreamHandshake::decode(&longer).is_err());
        }
    }

    #[test]
    fn sealed_packets_open_once_in_order() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32], None, &[3; 32]);
        let mut client = StreamCrypto::new(Role::Client, &keys);
        let mut server = StreamCrypto::new(Role::Server, &keys);
        let mut first = b"hello".to_vec();
        let mut second = b"world".to_vec();
        client.seal(&mut first);
        client.seal(&mut second);
        assert_ne!(&first[..5], b"hello");
        // Out of order (a reordering or deleting man in the middle) fails.
        let mut swapped = second.clone();
        assert!(server.open(&mut swapped).is_none());
        let len = server.open(&mut first).unwrap();
        assert_eq!(&first[..len], b"hello");
        let len = server.open(&mut second).unwrap();
        assert_eq!(&second[..len], b"world");
        // A replay of an earlier packet fails.
        let mut replay = b"hello".to_vec();
        StreamCrypto::new(Role::Client, &keys).seal(&mut replay);
        assert!(server.open(&mut replay).is_none());
        // The server's direction uses the other key.
        let mut reply = b"ok".to_vec();
        server.seal(&mut reply);
        assert_eq!(client.open(&mut reply), Some(2));
    }
}
