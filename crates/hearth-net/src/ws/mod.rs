//! WebSocket (RFC 6455), written for Hearth: a sans-IO frame codec and
//! connection state machine ([`Protocol`]), the opening handshake for both
//! ends ([`handshake`]), permessage-deflate (RFC 7692, [`deflate`], off
//! unless configured), and a thin async driver ([`WebSocket`]).
//!
//! The gate on the web port and the `ws-echo` example run this same code.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod protocol;
mod stream;
mod upgrade;

use bytes::Bytes;
use thiserror::Error;

pub use deflate::DeflateConfig;
pub use protocol::{close_code_is_valid, Limits, Protocol, Role};
pub use stream::WebSocket;
pub use upgrade::{upgrade, upgrade_with_deflate, PendingUpgrade, UpgradedSocket, UpgradedStream};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Valid UTF-8, checked before delivery.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's status code and reason, if it sent one.
    Close(Option<(u16, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WsError {
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("message larger than the limit of {limit} bytes")]
    TooBig { limit: usize },
    #[error("compressed message is not valid permessage-deflate data: {0}")]
    BadDeflate(&'static str),
    #[error("the WebSocket is closing or closed")]
    Closed,
    #[error("transport error: {0}")]
    Io(String),
}

impl WsError {
    /// The status code sent in the Close frame that fails the connection.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::Protocol(_) => 1002,
            WsError::InvalidUtf8 | WsError::BadDeflate(_) => 1007,
            WsError::TooBig { .. } => 1009,
            WsError::Closed | WsError::Io(_) => 1011,
        }
    }
}

impl From<std::io::Error> for WsError {
    fn from(error: std::io::Error) -> Self {
        WsError::Io(error.to_string())
    }
}
