//! Wire format of the datagram handshake (plaintext, before keys exist) and
//! of the protected-packet header. Layouts are in docs/PROTOCOL.md.

use crate::codec::{DecodeError, Reader, Writer};

/// Version 2: stream links run their own key agreement and are sealed; the
/// attach proof and the transcript cover the resume count.
pub const PROTOCOL_VERSION: u16 = 2;
/// A client pads its Initial to this size so that the server's Challenge is
/// always smaller than what provoked it (no amplification), and so that a
/// path that cannot carry full-size packets fails at the first step.
pub const MIN_INITIAL_LEN: usize = 1200;
pub const COOKIE_LEN: usize = 32;

pub mod kind {
    pub const INITIAL: u8 = 0x01;
    pub const CHALLENGE: u8 = 0x02;
    pub const RESPONSE: u8 = 0x03;
    pub const ACK: u8 = 0x04;
    pub const RESTART: u8 = 0x05;
    pub const RESTART_RESPONSE: u8 = 0x06;
    pub const VERSION_MISMATCH: u8 = 0x07;
    pub const REJECT: u8 = 0x08;
    pub const PROTECTED: u8 = 0x10;
}

/// What a handshake asks for: a new session, or a new datagram link for an
/// existing one (the UDP ticket of a TCP login, or a resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    New,
    Attach { session_id: u64 },
}

impl Mode {
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            Mode::New => {
                out.put_u8(0);
                out.put_u64(0);
            }
            Mode::Attach { session_id } => {
                out.put_u8(1);
                out.put_u64(session_id);
            }
        }
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        let tag = reader.u8("handshake mode")?;
        let session_id = reader.u64("session id")?;
        match tag {
            0 => Ok(Mode::New),
            1 => Ok(Mode::Attach { session_id }),
            value => Err(DecodeError::UnknownType {
                what: "handshake mode",
                value,
            }),
        }
    }

    pub fn session_id(self) -> u64 {
        match self {
            Mode::New => 0,
            Mode::Attach { session_id } => session_id,
        }
    }
}

/// Why a server refused a handshake whose cookie was valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    UnknownSession = 1,
    BadProof = 2,
    ServerFull = 3,
    /// Too many sessions from the client's address are still logging in.
    TooManyFromAddress = 4,
}

impl RejectReason {
    fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::UnknownSession,
            2 => Self::BadProof,
            3 => Self::ServerFull,
            4 => Self::TooManyFromAddress,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "reject reason",
                    value,
                })
            }
        })
    }
}

/// The server's stateless answer, echoed back verbatim in the Response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    pub timestamp: u64,
    pub secret_id: u8,
    pub mac: [u8; COOKIE_LEN],
}

impl Cookie {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.timestamp);
        out.put_u8(self.secret_id);
        out.extend_from_slice(&self.mac);
    }

    fn decode(reader: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            timestamp: reader.u64("cookie timestamp")?,
            secret_id: reader.u8("cookie secret id")?,
            mac: reader.array("cookie")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakePacket {
    Initial {
        version: u16,
        mode: Mode,
        client_public: [u8; 32],
    },
    Challenge {
        version: u16,
        cookie: Cookie,
    },
    Response {
        version: u16,
        mode: Mode,
        client_public: [u8; 32],
        cookie: Cookie,
        /// HMAC under the attach secret (ticket or resume token); zero for New.
        proof: [u8; 32],
        /// Reliable messages the client has received so far (resume).
        received: u64,
    },
    Ack {
        version: u16,
        cookie_mac: [u8; COOKIE_LEN],
        server_ephemeral: [u8; 32],
        server_static: [u8; 32],
        /// `AckBody` sealed under the confirm key.
        sealed: [u8; 32],
    },
    Restart {
        version: u16,
        session_id: u64,
        cookie: Cookie,
    },
    RestartResponse {
        version: u16,
        session_id: u64,
        cookie: Cookie,
        packet_number: u64,
        /// AEAD tag over the packet's header under the client's session key.
        tag: [u8; 16],
    },
    VersionMismatch {
        server_version: u16,
        client_version: u16,
    },
    Reject {
        version: u16,
        cookie_mac: [u8; COOKIE_LEN],
        reason: RejectReason,
    },
}

/// Plaintext of the Ack's sealed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckBody {
    pub session_id: u64,
    pub received: u64,
}

impl AckBody {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..].copy_from_slice(&self.received.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        Self {
            session_id: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            received: u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
        }
    }

    /// Sealed under the confirm key (nonce 0): only a holder of the server's
    /// static key can produce it, which is what a pinned client checks.
    pub fn seal(self, confirm: &[u8; 32]) -> [u8; 32] {
        let mut sealed = self.to_bytes().to_vec();
        crate::crypto::PacketKey::new(confirm).seal(0, &mut sealed, 0);
        sealed.try_into().expect("16 bytes + tag")
    }
}

/// Length of a RestartResponse before its tag: the authenticated header.
pub const RESTART_RESPONSE_HEADER_LEN: usize = 1 + 2 + 8 + 8 + 1 + COOKIE_LEN + 8;

impl HandshakePacket {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            HandshakePacket::Initial {
                version,
                mode,
                client_public,
            } => {
                let start = out.len();
                out.put_u8(kind::INITIAL);
                out.put_u16(*version);
                mode.encode(out);
                out.extend_from_slice(client_public);
                out.resize(start + MIN_INITIAL_LEN, 0);
            }
            HandshakePacket::Challenge { version, cookie } => {
                out.put_u8(kind::CHALLENGE);
                out.put_u16(*version);
                cookie.encode(out);
            }
            HandshakePacket::Response {
                version,
                mode,
                client_public,
                cookie,
                proof,
                received,
            } => {
                out.put_u8(kind::RESPONSE);
                out.put_u16(*version);
                mode.encode(out);
                out.extend_from_slice(client_public);
                cookie.encode(out);
                out.extend_from_slice(proof);
                out.put_u64(*received);
            }
            HandshakePacket::Ack {
                version,
                cookie_mac,
                server_ephemeral,
                server_static,
                sealed,
            } => {
                out.put_u8(kind::ACK);
                out.put_u16(*version);
                out.extend_from_slice(cookie_mac);
                out.extend_from_slice(server_ephemeral);
                out.extend_from_slice(server_static);
                out.extend_from_slice(sealed);
            }
            HandshakePacket::Restart {
                version,
                session_id,
                cookie,
            } => {
                out.put_u8(kind::RESTART);
                out.put_u16(*version);
                out.put_u64(*session_id);
                cookie.encode(out);
            }
            HandshakePacket::RestartResponse {
                version,
                session_id,
                cookie,
                packet_number,
                tag,
            } => {
                out.put_u8(kind::RESTART_RESPONSE);
                out.put_u16(*version);
                out.put_u64(*session_id);
                cookie.encode(out);
                out.put_u64(*packet_number);
                out.extend_from_slice(tag);
            }
            HandshakePacket::VersionMismatch {
                server_version,
                client_version,
            } => {
                out.put_u8(kind::VERSION_MISMATCH);
                out.put_u16(*server_version);
                out.put_u16(*client_version);
            }
            HandshakePacket::Reject {
                version,
                cookie_mac,
                reason,
            } => {
                out.put_u8(kind::REJECT);
                out.put_u16(*version);
                out.extend_from_slice(cookie_mac);
                out.put_u8(*reason as u8);
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one handshake datagram. The version is read before anything
    /// else so that a future client still gets a VersionMismatch answer.
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(datagram);
        let packet_kind = reader.u8("packet type")?;
        if packet_kind == kind::VERSION_MISMATCH {
            let packet = HandshakePacket::VersionMismatch {
                server_version: reader.u16("server version")?,
                client_version: reader.u16("client version")?,
            };
            reader.finish()?;
            return Ok(packet);
        }
        let version = reader.u16("protocol version")?;
        let packet = match packet_kind {
            kind::INITIAL => {
                if datagram.len() < MIN_INITIAL_LEN {
                    return Err(DecodeError::Truncated("padded Initial"));
                }
                let packet = HandshakePacket::Initial {
                    version,
                    mode: Mode::decode(&mut reader)?,
                    client_public: reader.array("client public key")?,
                };
                // The rest is padding; its content is not checked so that a
                // later version may use it.
                return Ok(packet);
            }
            kind::CHALLENGE => HandshakePacket::Challenge {
                version,
                cookie: Cookie::decode(&mut reader)?,
            },
            kind::RESPONSE => HandshakePacket::Response {
                version,
                mode: Mode::decode(&mut reader)?,
                client_public: reader.array("client public key")?,
                cookie: Cookie::decode(&mut reader)?,
                proof: reader.array("attach proof")?,
                received: reader.u64("received count")?,
            },
            kind::ACK => HandshakePacket::Ack {
                version,
                cookie_mac: reader.array("cookie")?,
                server_ephemeral: reader.array("server ephemeral key")?,
                server_static: reader.array("server static key")?,
                sealed: reader.array("sealed ack body")?,
            },
            kind::RESTART => HandshakePacket::Restart {
                version,
                session_id: reader.u64("session id")?,
                cookie: Cookie::decode(&mut reader)?,
            },
            kind::RESTART_RESPONSE => HandshakePacket::RestartResponse {
                version,
                session_id: reader.u64("session id")?,
                cookie: Cookie::decode(&mut reader)?,
                packet_number: reader.u64("packet number")?,
                tag: reader.array("restart tag")?,
            },
            kind::REJECT => HandshakePacket::Reject {
                version,
                cookie_mac: reader.array("cookie")?,
                reason: RejectReason::from_u8(reader.u8("reject reason")?)?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "handshake packet",
                    value,
                })
            }
        };
        reader.finish()?;
        Ok(packet)
    }
}

/// Header of a protected datagram: type, session id, packet number.
pub const PROTECTED_HEADER_LEN: usize = 1 + 8 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedHeader {
    pub session_id: u64,
    pub packet_number: u64,
}

impl ProtectedHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(kind::PROTECTED);
        out.put_u64(self.session_id);
        out.put_u64(self.packet_number);
    }

    /// Reads the header of a protected datagram (type byte included).
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(datagram);
        let packet_kind = reader.u8("packet type")?;
        if packet_kind != kind::PROTECTED {
            return Err(DecodeError::UnknownType {
                what: "protected packet",
                value: packet_kind,
            });
        }
        let header = Self {
            session_id: reader.u64("session id")?,
            packet_number: reader.u64("packet number")?,
        };
        if reader.remaining() < crate::crypto::TAG_LEN {
            return Err(DecodeError::Truncated("authentication tag"));
        }
        Ok(header)
    }
}

impl Mode {
    pub fn to_bytes(self) -> [u8; 9] {
        let mut out = Vec::with_capacity(9);
        self.encode(&mut out);
        out.try_into().expect("9 bytes")
    }

    pub fn from_bytes(bytes: &[u8; 9]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(bytes))
    }
}

/// The fields a cookie's MAC covers besides time and address.
pub fn cookie_params(version: u16, mode: Mode, client_public: &[u8; 32]) -> [u8; 43] {
    let mut out = [0u8; 43];
    out[..2].copy_from_slice(&version.to_be_bytes());
    out[2..11].copy_from_slice(&mode.to_bytes());
    out[11..].copy_from_slice(client_public);
    out
}

/// The fields a restart cookie's MAC covers besides time and address.
pub fn restart_params(session_id: u64) -> [u8; 15] {
    let mut out = [0u8; 15];
    out[..7].copy_from_slice(b"restart");
    out[7..].copy_from_slice(&session_id.to_be_bytes());
    out
}

/// Transcript hash both sides compute after the Ack. `received` is the
/// Response's resume count: bound into the keys, so an on-path attacker who
/// changes it makes the handshake fail instead of changing what is resent.
pub fn handshake_transcript(
    cookie_mac: &[u8; 32],
    client_public: &[u8; 32],
    server_ephemeral: &[u8; 32],
    server_static: &[u8; 32],
    mode: Mode,
    received: u64,
) -> [u8; 32] {
    crate::crypto::transcript_hash(&[
        cookie_mac,
        client_public,
        server_ephemeral,
        server_static,
        &mode.to_bytes(),
        &received.to_be_bytes(),
    ])
}

/// Proof that the client holds a session's attach secret (ticket or resume
/// token), covering the resume count it reports.
pub fn attach_proof(
    secret: &[u8; 32],
    cookie_mac: &[u8; 32],
    client_public: &[u8; 32],
    received: u64,
) -> [u8; 32] {
    crate::crypto::hmac_parts(
        secret,
        &[
            b"hearth attach",
            cookie_mac,
            client_public,
            &received.to_be_bytes(),
        ],
    )
}

/// Why a client did not accept a server's key-agreement answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unconfirmed {
    /// The server presented another static key than the pinned one.
    WrongKey,
    /// The confirm tag did not open (or a shared secret was not
    /// contributory): the peer does not hold the key it named.
    NoProof,
}

/// The client's check of a server's key-agreement answer (datagram Ack or
/// stream Accept): the pinned key if there is one, contributory shared
/// secrets, and the confirm tag that only a holder of the server's static
/// key can produce. Returns the session keys and the confirmed body.
pub fn confirm_answer(
    secret: &x25519_dalek::StaticSecret,
    server_ephemeral: [u8; 32],
    server_static: [u8; 32],
    sealed: [u8; 32],
    pinned: Option<&[u8; 32]>,
    attach_secret: Option<&[u8; 32]>,
    transcript: &[u8; 32],
) -> Result<(crate::crypto::SessionKeys, AckBody), Unconfirmed> {
    use x25519_dalek::PublicKey;
    if pinned.is_some_and(|known| !crate::crypto::secure_eq(known, &server_static)) {
        return Err(Unconfirmed::WrongKey);
    }
    let ephemeral_dh = secret.diffie_hellman(&PublicKey::from(server_ephemeral));
    let static_dh = secret.diffie_hellman(&PublicKey::from(server_static));
    if !ephemeral_dh.was_contributory() || !static_dh.was_contributory() {
        return Err(Unconfirmed::NoProof);
    }
    let keys = crate::crypto::SessionKeys::derive(
        ephemeral_dh.as_bytes(),
        static_dh.as_bytes(),
        attach_secret,
        transcript,
    );
    let mut body = sealed.to_vec();
    crate::crypto::PacketKey::new(&keys.confirm)
        .open(0, &mut body, 0)
        .ok_or(Unconfirmed::NoProof)?;
    let body = AckBody::from_bytes(body[..16].try_into().expect("16 bytes"));
    Ok((keys, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie() -> Cookie {
        Cookie {
            timestamp: 123_456,
            secret_id: 1,
            mac: [9; 32],
        }
    }

    #[test]
    fn every_packet_round_trips() {
        let packets = [
            HandshakePacket::Initial {
                version: 1,
                mode: Mode::New,
                client_public: [3; 32],
            },
            HandshakePacket::Initial {
                version: 1,
                mode: Mode::Attach { session_id: 77 },
                client_public: [3; 32],
            },
            HandshakePacket::Challenge {
                version: 1,
                cookie: cookie(),
            },
            HandshakePacket::Response {
                version: 1,
                mode: Mode::Attach { session_id: 5 },
                client_public: [4; 32],
                cookie: cookie(),
                proof: [5; 32],
                received: 99,
            },
            HandshakePacket::Ack {
                version: 1,
                cookie_mac: [1; 32],
                server_ephemeral: [2; 32],
                server_static: [3; 32],
                sealed: [4; 32],
            },
            HandshakePacket::Restart {
                version: 1,
                session_id: 8,
                cookie: cookie(),
            },
            HandshakePacket::RestartResponse {
                version: 1,
                session_id: 8,
                cookie: cookie(),
                packet_number: 1 << 40,
                tag: [6; 16],
            },
            HandshakePacket::VersionMismatch {
                server_version: 1,
                client_version: 9,
            },
            HandshakePacket::Reject {
                version: 1,
                cookie_mac: [1; 32],
                reason: RejectReason::BadProof,
            },
        ];
        for packet in packets {
            let bytes = packet.to_vec();
            assert_eq!(HandshakePacket::decode(&bytes).unwrap(), packet);
            for cut in 0..bytes.len().min(120) {
                assert!(
                    HandshakePacket::decode(&bytes[..cut]).is_err(),
                    "{packet:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn initial_is_padded_and_challenge_is_smaller() {
        let initial = HandshakePacket::Initial {
            version: 1,
            mode: Mode::New,
            client_public: [0; 32],
        }
        .to_vec();
        let challenge = HandshakePacket::Challenge {
            version: 1,
            cookie: cookie(),
        }
        .to_vec();
        assert_eq!(initial.len(), MIN_INITIAL_LEN);
        assert!(challenge.len() * 10 < initial.len());
    }
}
