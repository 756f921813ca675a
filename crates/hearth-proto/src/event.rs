//! What the protocol tells the application, and why sessions end.

use std::net::SocketAddr;

use crate::bunch::{ChannelKind, Delivery};
use crate::control::{Credentials, UdpTicket};

/// Where a transmit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Which kind of link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// UDP: KCP for reliable traffic, raw protected datagrams for the rest.
    Datagram,
    /// A reliable ordered stream: TCP or WebSocket.
    Stream,
}

/// Bytes for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    Datagram {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// One stream packet; the driver frames it (length prefix on TCP, one
    /// binary message on WebSocket).
    Stream {
        stream: StreamId,
        bytes: Vec<u8>,
    },
    /// The driver should close this stream after sending what came before.
    CloseStream {
        stream: StreamId,
    },
}

/// Close codes carried on the wire in Close frames and Failure messages.
pub mod close_code {
    pub const NORMAL: u16 = 0;
    pub const KICKED: u16 = 1;
    pub const VERSION_MISMATCH: u16 = 2;
    pub const PROTOCOL_ERROR: u16 = 3;
    pub const LOGIN_REFUSED: u16 = 4;
    pub const LOGIN_TIMEOUT: u16 = 5;
    pub const SERVER_SHUTDOWN: u16 = 6;
    pub const REPLACED: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    /// The server sheds load: it could not take this session's traffic in
    /// time. Nothing was lost silently; try again later.
    pub const OVERLOADED: u16 = 9;
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing heard within the idle timeout and no resume within the grace window.
    Timeout,
    /// The peer closed the session.
    ClosedByPeer { code: u16, reason: String },
    /// The server removed this client.
    Kicked { reason: String },
    /// The two ends speak different protocol versions: upgrade the older one.
    VersionMismatch(String),
    /// The peer broke the protocol.
    ProtocolError(String),
    /// The pre-login hook refused the player.
    LoginRefused(String),
    /// A login step took longer than allowed.
    LoginTimeout(String),
    /// The handshake was not answered in time (server unreachable or UDP blocked).
    HandshakeTimeout,
    /// The server refused the handshake.
    HandshakeRejected(String),
    /// The server's key differs from the pinned one, or it could not prove it holds it.
    ServerKeyMismatch,
    /// This end called `close`.
    Local { code: u16 },
}

impl CloseReason {
    /// The code sent on the wire for a close this end initiates.
    pub fn code(&self) -> u16 {
        use close_code::*;
        match self {
            CloseReason::Timeout | CloseReason::HandshakeTimeout => TIMEOUT,
            CloseReason::ClosedByPeer { code, .. } | CloseReason::Local { code } => *code,
            CloseReason::Kicked { .. } => KICKED,
            CloseReason::VersionMismatch(_) => VERSION_MISMATCH,
            CloseReason::ProtocolError(_) => PROTOCOL_ERROR,
            CloseReason::LoginRefused(_) | CloseReason::HandshakeRejected(_) => LOGIN_REFUSED,
            CloseReason::ServerKeyMismatch => PROTOCOL_ERROR,
            CloseReason::LoginTimeout(_) => LOGIN_TIMEOUT,
        }
    }

    /// The text sent to the peer with the code: the bare reason where there is
    /// one (the peer adds its own framing), else the description.
    pub fn wire_text(&self) -> String {
        match self {
            CloseReason::ClosedByPeer { reason, .. } | CloseReason::Kicked { reason } => {
                reason.clone()
            }
            CloseReason::VersionMismatch(why)
            | CloseReason::ProtocolError(why)
            | CloseReason::LoginRefused(why)
            | CloseReason::LoginTimeout(why)
            | CloseReason::HandshakeRejected(why) => why.clone(),
            other => other.to_string(),
        }
    }

    /// Interprets a code and text received from the peer.
    pub fn from_peer(code: u16, reason: &str) -> Self {
        match code {
            close_code::KICKED => CloseReason::Kicked {
                reason: reason.to_owned(),
            },
            close_code::LOGIN_REFUSED => CloseReason::LoginRefused(reason.to_owned()),
            close_code::PROTOCOL_ERROR => CloseReason::ProtocolError(reason.to_owned()),
            close_code::LOGIN_TIMEOUT => CloseReason::LoginTimeout(reason.to_owned()),
            _ => CloseReason::ClosedByPeer {
                code,
                reason: reason.to_owned(),
            },
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Timeout => write!(f, "timed out: nothing heard from the peer"),
            CloseReason::ClosedByPeer { code, reason } => write!(f, "closed by peer (code {code}): {reason}"),
            CloseReason::Kicked { reason } => write!(f, "kicked by the server: {reason}"),
            CloseReason::VersionMismatch(why) => write!(f, "protocol version mismatch: {why}"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
            CloseReason::LoginRefused(why) => write!(f, "login refused: {why}"),
            CloseReason::LoginTimeout(why) => write!(f, "login timed out: {why}"),
            CloseReason::HandshakeTimeout => write!(
                f,
                "handshake not answered in time: is the server running and is UDP to it allowed?"
            ),
            CloseReason::HandshakeRejected(why) => write!(f, "handshake rejected by the server: {why}"),
            CloseReason::ServerKeyMismatch => write!(
                f,
                "the server did not prove the pinned key: possible man in the middle, or a wrong key in the config"
            ),
            CloseReason::Local { code } => write!(f, "closed locally (code {code})"),
        }
    }
}

/// The pre-login hook's input: the application accepts or refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub credentials: Credentials,
    pub player_name: String,
    pub options: String,
    /// The address of the link the login came over, when it is a datagram link.
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Server: a player asks to log in. Answer with `accept_login` or `refuse_login`.
    LoginRequest(LoginRequest),
    /// Client: the server accepted the login.
    Welcomed {
        session_id: u64,
        map: String,
        ticket: Option<UdpTicket>,
    },
    /// Both: the Join step completed; application channels may be used.
    Joined,
    Message {
        channel: u16,
        payload: Vec<u8>,
    },
    ChannelOpened {
        channel: u16,
        kind: ChannelKind,
        delivery: Delivery,
    },
    ChannelClosed {
        channel: u16,
    },
    LinkUp(LinkKind),
    LinkDown(LinkKind),
    /// Server: the peer's datagram address changed and was proven.
    Migrated {
        from: SocketAddr,
        to: SocketAddr,
    },
    /// Every link is down; the session waits `resume_grace` for a resume.
    Detached,
    /// A new link re-attached to the session; no reliable message was lost.
    Resumed,
    /// Client: the datagram handshake gave up; traffic stays on the stream.
    DatagramUnavailable,
    Closed(CloseReason),
}
