//! One session: its links, channels, reliable sequencing, login state,
//! liveness and statistics. Shared by the server (one per client) and the
//! client. The endpoints route datagrams and stream packets to it and give it
//! an `Outbox` for what it wants sent and reported.

mod channels;
mod flow;
mod flush;
mod input;
mod links;
pub(crate) mod login;
mod output;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use thiserror::Error;

use crate::bunch::{
    flags, Bunch, ChannelKind, Delivery, OwnedBunch, CONTROL_CHANNEL, MAX_CHANNELS,
};
use crate::codec::DecodeError;
use crate::config::SessionConfig;
use crate::event::{CloseReason, Event, LinkKind, StreamId, Transmit};
use crate::frame::{self, Frame, Frames};
use crate::link::StreamCrypto;
use crate::link::{DatagramLink, Liveness, Role, StreamLink};
use crate::reassembly::Reassembly;
use crate::reliable::{Arrival, ReliableReceiver, ReliableSender};
use crate::stats::{DropReason, SessionStats};

use channels::Channel;
pub use channels::ChannelSpec;
use login::Login;
pub use login::LoginParams;

/// Where sessions put what they want sent and reported.
#[derive(Debug, Default)]
pub struct Outbox {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<(u64, Event)>,
    /// Where every session's KCP flushes, drained into sealed packets right
    /// after: one buffer for the whole endpoint stays in cache, and an idle
    /// session holds no datagram memory of its own.
    pub(crate) kcp_datagrams: hearth_kcp::DatagramBuffer,
}

/// Why `send` (or `open_channel`) refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("the session is closed")]
    Closed,
    #[error("the session is not logged in yet: wait for Welcome or Joined")]
    NotLoggedIn,
    #[error("channel {0} is not open: call open_channel first")]
    ChannelNotOpen(u16),
    #[error("channel {0} is already open")]
    ChannelAlreadyOpen(u16),
    #[error("channel {0} is reserved or out of range (1..={max})", max = MAX_CHANNELS)]
    BadChannel(u16),
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("too much unacknowledged data is queued; retry after the peer catches up")]
    Backpressure,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum State {
    Active,
    /// `close` was called: waiting for reliable messages to be acknowledged.
    Draining {
        deadline: Instant,
        code: u16,
        reason: String,
    },
    /// No link: waiting for a resume until the deadline.
    Detached {
        deadline: Instant,
    },
    Closed,
}

/// How a stream link attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamResume {
    /// A fresh stream (new session, or a second link).
    No,
    /// Client: re-attach (the keys prove the resume token); wait for `Resumed`.
    Request,
    /// Server: the client proved the token and reported `peer_received`.
    Answer { peer_received: u64 },
}

/// What a server buffers for a peer before its login is accepted: the
/// largest login (Hello, a Login with a 1 KiB password or token, a name and
/// 1 KiB of options, split into parts) with room to spare.
pub(crate) const PRE_LOGIN_BUFFER: usize = 16 * 1024;

/// How often a closing session with unacknowledged data probes the peer.
const CLOSE_PROBE_INTERVAL: Duration = Duration::from_millis(100);

/// Largest bunch header: flags, 3-byte channel, 10-byte sequence, 5-byte
/// part index, open, 3-byte length.
pub(crate) const BUNCH_OVERHEAD: usize = 1 + 3 + 10 + 5 + 2 + 3;

pub struct Session {
    pub(crate) id: u64,
    pub(crate) role: Role,
    pub(crate) config: SessionConfig,
    pub(crate) epoch: Instant,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) datagram: Option<DatagramLink>,
    pub(crate) stream: Option<StreamLink>,
    channels: HashMap<u16, Channel>,
    reliable_tx: ReliableSender,
    reliable_rx: ReliableReceiver<OwnedBunch>,
    reassembly: Reassembly,
    login: Login,
    pub(crate) state: State,
    ack_sent: u64,
    ack_due: Option<Instant>,
    /// Send an Ack even if the count did not move: the peer sent a duplicate
    /// or a Ping, so our last Ack may have been lost.
    ack_repeat: bool,
    pub(crate) stats: SessionStats,
    /// Secret for resume and UDP tickets; server-chosen, learned by the client in Welcome.
    pub(crate) attach_secret: [u8; 32],
    /// The server's static key as proven in the datagram handshake (client side).
    pub(crate) proven_server_key: Option<[u8; 32]>,
    net_speed: Option<u32>,
    /// Close frame to put on every link at the next flush.
    closing_frame: Option<(u16, String)>,
    /// A new reliable bunch went into KCP: flush it now, not at the next tick.
    kcp_dirty: bool,
    /// An input or a send asked for a flush that waits for the endpoint's
    /// next `poll_transmit` (see `defer_flush`), as of this time.
    flush_deferred: Option<Instant>,
    /// The endpoint has not yet been told about `flush_deferred`.
    flush_unlisted: bool,
    /// Server: the address slot this session holds until its login is accepted.
    pub(crate) logging_in_from: Option<crate::address_limit::AddressPrefix>,
    /// Server: where the session's first link came from (for the login hook).
    pub(crate) origin: Option<std::net::SocketAddr>,
    /// Server: when a datagram link last attached to it by ticket or resume.
    pub(crate) last_datagram_attach: Option<Instant>,
    /// The application cannot take more reliable messages now (see
    /// [`Session::pause_receive`]): what arrives meanwhile waits here.
    pub(crate) paused: Option<PausedReceive>,
}

/// Reliable messages held while the application cannot take them, and the
/// count acknowledged to the peer when it paused: the peer keeps everything
/// after it unacknowledged, so its own limit (`max_unacked_bytes`) stops
/// it sending more. Flow control, not loss: they are delivered, in order,
/// when the application resumes.
#[derive(Debug, Default)]
pub(crate) struct PausedReceive {
    /// Bunches acknowledged to the peer: frozen while paused.
    pub acknowledged: u64,
    /// The messages held, each with the count of reliable bunches received
    /// through its last: what is acknowledged once it is delivered.
    pub held: std::collections::VecDeque<(crate::reassembly::Message, u64)>,
    /// Their payloads plus `flow::MIN_BUNCH_HEADER` each: no more than the
    /// peer counts of them against its limit.
    pub held_bytes: usize,
}

impl Session {
    pub(crate) fn new(
        role: Role,
        id: u64,
        config: SessionConfig,
        now: Instant,
        seed: [u8; 32],
    ) -> Self {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut attach_secret = [0u8; 32];
        rng.fill_bytes(&mut attach_secret);
        let login = Login::new(role, now, &config);
        Self {
            id,
            role,
            paused: None,
            reliable_rx: ReliableReceiver::new(config.max_unacked_bytes),
            reassembly: Reassembly::new(config.max_message_size, config.max_reassembly_bytes),
            config,
            epoch: now,
            rng,
            datagram: None,
            stream: None,
            channels: HashMap::new(),
            reliable_tx: ReliableSender::default(),
            login,
            state: State::Active,
            ack_sent: 0,
            ack_due: None,
            ack_repeat: false,
            stats: SessionStats::default(),
            attach_secret,
            proven_server_key: None,
            net_speed: None,
            closing_frame: None,
            kcp_dirty: false,
            flush_deferred: None,
            flush_unlisted: false,
            logging_in_from: None,
            origin: None,
            last_datagram_attach: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn stats(&self) -> SessionStats {
        let mut stats = self.stats.clone();
        if let Some(link) = &self.datagram {
            stats.packets_lost += link.crypto.lost;
        }
        stats
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub fn is_detached(&self) -> bool {
        matches!(self.state, State::Detached { .. })
    }

    pub fn has_link(&self, kind: LinkKind) -> bool {
        match kind {
            LinkKind::Datagram => self.datagram.is_some(),
            LinkKind::Stream => self.stream.is_some(),
        }
    }

    /// How `channel` delivers, while it is open (`None`: not open, or the
    /// control channel). This is the table as it is now: events not yet
    /// polled may describe an earlier state (a message on a channel that a
    /// later bunch closed).
    pub fn channel_delivery(&self, channel: u16) -> Option<Delivery> {
        self.channels.get(&channel).map(|c| c.spec.delivery)
    }

    /// Parts of unfinished messages held for reassembly.
    pub fn buffered_parts(&self) -> usize {
        self.reassembly.buffered_parts()
    }

    pub fn net_speed(&self) -> Option<u32> {
        self.net_speed
    }

    pub fn login_welcomed(&self) -> bool {
        self.login.is_welcomed()
    }

    pub fn is_joined(&self) -> bool {
        self.login.is_joined()
    }

    /// Reliable messages received in order and acknowledged so far (what
    /// a resume presents; while receiving is paused, those before it).
    pub fn reliable_received(&self) -> u64 {
        self.reliable_acknowledged()
    }

    /// Milliseconds since the session began, in 64 bits: never wraps.
    pub(crate) fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The 32-bit millisecond clock that KCP and heartbeat timestamps use.
    /// It wraps after 49.7 days; everything that reads it (KCP's timers, the
    /// round-trip from a Pong) takes differences with wrapping arithmetic, and
    /// deadlines are turned back into `Instant`s as offsets from `now`.
    pub(crate) fn clock32(&self, now: Instant) -> u32 {
        self.now_ms(now) as u32
    }

    pub(crate) fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.fill_bytes(&mut out);
        out
    }
}
