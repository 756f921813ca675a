//! Control-channel messages: UE's NMT_Hello, Challenge, Login, Welcome,
//! Netspeed, Join and Failure, plus Joined so the client learns it is in.

use crate::codec::{DecodeError, Reader, Writer};

pub const MAX_NAME: usize = 64;
pub const MAX_SECRET: usize = 1024;
pub const MAX_OPTIONS: usize = 1024;
pub const MAX_TEXT: usize = 256;
pub const NONCE_LEN: usize = 16;

pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const CHALLENGE: u8 = 0x02;
    pub const LOGIN: u8 = 0x03;
    pub const WELCOME: u8 = 0x04;
    pub const NET_SPEED: u8 = 0x05;
    pub const JOIN: u8 = 0x06;
    pub const JOINED: u8 = 0x07;
    pub const FAILURE: u8 = 0x08;
}

/// What a player logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Password {
        account: String,
        password: String,
    },
    Token(String),
    /// No credentials: the application's pre-login hook decides.
    Anonymous,
}

/// The seed-000 UDP ticket: what a client needs to bind a datagram link to
/// the session it logged in to over a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTicket {
    pub session_id: u64,
    pub secret: [u8; 32],
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    Hello {
        version: u16,
    },
    Challenge {
        nonce: [u8; NONCE_LEN],
    },
    Login {
        nonce: [u8; NONCE_LEN],
        credentials: Credentials,
        player_name: String,
        options: String,
    },
    Welcome {
        map: String,
        session_id: u64,
        resume_token: [u8; 32],
        /// Present when the server has a datagram port to offer.
        ticket: Option<UdpTicket>,
        server_key: [u8; 32],
    },
    NetSpeed {
        bytes_per_second: u32,
    },
    Join,
    Joined,
    Failure {
        code: u16,
        reason: String,
    },
}

impl ControlMessage {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "Hello",
            Self::Challenge { .. } => "Challenge",
            Self::Login { .. } => "Login",
            Self::Welcome { .. } => "Welcome",
            Self::NetSpeed { .. } => "NetSpeed",
            Self::Join => "Join",
            Self::Joined => "Joined",
            Self::Failure { .. } => "Failure",
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Hello { version } => {
                out.put_u8(kind::HELLO);
                out.put_u16(*version);
            }
            Self::Challenge { nonce } => {
                out.put_u8(kind::CHALLENGE);
                out.extend_from_slice(nonce);
            }
            Self::Login {
                nonce,
                credentials,
                player_name,
                options,
            } => {
                out.put_u8(kind::LOGIN);
                out.extend_from_slice(nonce);
                match credentials {
                    Credentials::Password { account, password } => {
                        out.put_u8(0);
                        out.put_str(account);
                        out.put_str(password);
                    }
                    Credentials::Token(token) => {
                        out.put_u8(1);
                        out.put_str(token);
                    }
                    Credentials::Anonymous => out.put_u8(2),
                }
                out.put_str(player_name);
                out.put_str(options);
            }
            Self::Welcome {
                map,
                session_id,
                resume_token,
                ticket,
                server_key,
            } => {
                out.put_u8(kind::WELCOME);
                out.put_str(map);
                out.put_u64(*session_id);
                out.extend_from_slice(resume_token);
                match ticket {
                    None => out.put_u8(0),
                    Some(ticket) => {
                        out.put_u8(1);
                        out.put_u64(ticket.session_id);
                        out.extend_from_slice(&ticket.secret);
                        out.put_u16(ticket.port);
                    }
                }
                out.extend_from_slice(server_key);
            }
            Self::NetSpeed { bytes_per_second } => {
                out.put_u8(kind::NET_SPEED);
                out.put_u32(*bytes_per_second);
            }
            Self::Join => out.put_u8(kind::JOIN),
            Self::Joined => out.put_u8(kind::JOINED),
            Self::Failure { code, reason } => {
                out.put_u8(kind::FAILURE);
                out.put_u16(*code);
                out.put_str(reason);
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let message = match reader.u8("control message type")? {
            kind::HELLO => Self::Hello {
                version: reader.u16("protocol version")?,
            },
            kind::CHALLENGE => Self::Challenge {
                nonce: reader.array("login nonce")?,
            },
            kind::LOGIN => {
                let nonce = reader.array("login nonce")?;
                let credentials = match reader.u8("credential type")? {
                    0 => Credentials::Password {
                        account: reader.string(MAX_NAME, "account name")?,
                        password: reader.string(MAX_SECRET, "password")?,
                    },
                    1 => Credentials::Token(reader.string(MAX_SECRET, "token")?),
                    2 => Credentials::Anonymous,
                    value => {
                        return Err(DecodeError::UnknownType {
                            what: "credential",
                            value,
                        })
                    }
                };
                Self::Login {
                    nonce,
                    credentials,
                    player_name: reader.string(MAX_NAME, "player name")?,
                    options: reader.string(MAX_OPTIONS, "login options")?,
                }
            }
            kind::WELCOME => {
                let map = reader.string(MAX_TEXT, "map")?;
                let session_id = reader.u64("session id")?;
                let resume_token = reader.array("resume token")?;
                let ticket = match reader.u8("ticket presence")? {
                    0 => None,
                    1 => Some(UdpTicket {
                        session_id: reader.u64("ticket session id")?,
                        secret: reader.array("ticket secret")?,
                        port: reader.u16("ticket port")?,
                    }),
                    value => {
                        return Err(DecodeError::UnknownType {
                            what: "ticket presence",
                            value,
                        })
                    }
                };
                Self::Welcome {
                    map,
                    session_id,
                    resume_token,
                    ticket,
                    server_key: reader.array("server key")?,
                }
            }
            kind::NET_SPEED => Self::NetSpeed {
                bytes_per_second: reader.u32("net speed")?,
            },
            kind::JOIN => Self::Join,
            kind::JOINED => Self::Joined,
            kind::FAILURE => Self::Failure {
                code: reader.u16("failure code")?,
                reason: reader.string(MAX_TEXT, "failure reason")?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "control message",
                    value,
                })
            }
        };
        reader.finish()?;
        Ok(message)
    }
}

/// Parses UE-style URL options (`?Name=Ann?Team=2?Spectator`) into pairs.
pub fn parse_options(options: &str) -> Vec<(String, String)> {
    options
        .split('?')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (part.to_owned(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_round_trip() {
        let messages = [
            ControlMessage::Hello { version: 1 },
            ControlMessage::Challenge { nonce: [1; 16] },
            ControlMessage::Login {
                nonce: [1; 16],
                credentials: Credentials::Password {
                    account: "ann".into(),
                    password: "pw".into(),
                },
                player_name: "Ann".into(),
                options: "?Team=2".into(),
            },
            ControlMessage::Login {
                nonce: [2; 16],
                credentials: Credentials::Token("tok".into()),
                player_name: String::new(),
                options: String::new(),
            },
            ControlMessage::Welcome {
                map: "Lobby".into(),
                session_id: 9,
                resume_token: [3; 32],
                ticket: Some(UdpTicket {
                    session_id: 9,
                    secret: [4; 32],
                    port: 7777,
                }),
                server_key: [5; 32],
            },
            ControlMessage::NetSpeed {
                bytes_per_second: 100_000,
            },
            ControlMessage::Join,
            ControlMessage::Joined,
            ControlMessage::Failure {
                code: 3,
                reason: "full".into(),
            },
        ];
        for message in messages {
            let bytes = message.to_vec();
            assert_eq!(ControlMessage::decode(&bytes).unwrap(), message);
            for cut in 0..bytes.len() {
                assert!(ControlMessage::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn options_parse_like_unreal_urls() {
        assert_eq!(
            parse_options("?Name=Ann?Team=2?Spectator"),
            vec![
                ("Name".into(), "Ann".into()),
                ("Team".into(), "2".into()),
                ("Spectator".into(), String::new())
            ]
        );
    }
}
