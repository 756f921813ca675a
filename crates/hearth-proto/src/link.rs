//! The links a session talks over: one protected datagram link (KCP inside
//! for reliable bunches) and one reliable stream link (TCP or WebSocket).
//! Each link keeps its own liveness clock and its queue of pending frames.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use hearth_kcp::{Config as KcpConfig, Kcp, Profile};

use crate::crypto::{PacketKey, ReplayVerdict, ReplayWindow, SessionKeys, TAG_LEN};
use crate::event::StreamId;
use crate::handshake::{ProtectedHeader, PROTECTED_HEADER_LEN};
use crate::stats::DropReason;

/// Room a KCP frame header takes inside a packet (type + 2-byte varint length).
pub const KCP_FRAME_OVERHEAD: usize = 3;
/// Bytes of a protected datagram that are not plaintext.
pub const DATAGRAM_OVERHEAD: usize = PROTECTED_HEADER_LEN + TAG_LEN;
/// Unreliable frames waiting for a packet, per link, before new ones are dropped.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// State common to both kinds of link.
pub struct Liveness {
    pub last_received: Instant,
    pub last_sent: Instant,
    /// A heartbeat goes out once nothing else was sent for an interval (the
    /// peer then hears from us at least that often), and at least every
    /// [`RTT_REFRESH`] intervals whatever else is sent, to keep round-trip
    /// measurements fresh.
    pub last_ping: Instant,
    pub ping_due: bool,
    /// Heartbeat timestamps to echo, newest last.
    pub pongs: Vec<u32>,
    /// Encoded frames waiting for the next packet.
    pub queue: VecDeque<Vec<u8>>,
    pub queued_bytes: usize,
}

/// Heartbeat intervals after which a ping goes out even on a busy link.
pub const RTT_REFRESH: u32 = 4;

impl Liveness {
    /// When the next heartbeat is due: an interval after anything was last
    /// sent (a busy link needs none to prove it lives), but no later than
    /// [`RTT_REFRESH`] intervals after the last one. Until the session has a
    /// round-trip measurement (`measured`), every interval.
    pub fn ping_at(&self, interval: std::time::Duration, measured: bool) -> Instant {
        let every = self.last_ping + interval;
        if !measured {
            return every;
        }
        (self.last_ping.max(self.last_sent) + interval).min(self.last_ping + interval * RTT_REFRESH)
    }

    pub fn new(now: Instant) -> Self {
        Self {
            last_received: now,
            last_sent: now,
            last_ping: now,
            ping_due: false,
            pongs: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Queues an encoded frame; refuses when the link is backed up.
    pub fn enqueue(&mut self, frame: Vec<u8>, limit: usize) -> bool {
        if self.queued_bytes + frame.len() > limit {
            return false;
        }
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
        true
    }

    pub fn dequeue(&mut self) -> Option<Vec<u8>> {
        let frame = self.queue.pop_front()?;
        self.queued_bytes -= frame.len();
        Some(frame)
    }

    pub fn add_pong(&mut self, echo: u32) {
        // A peer flooding pings gets only the most recent few answered.
        if self.pongs.len() >= 4 {
            self.pongs.remove(0);
        }
        self.pongs.push(echo);
    }
}

/// Packet protection of one datagram link: keys, numbers, replay window.
pub struct DatagramCrypto {
    session_id: u64,
    send_key: PacketKey,
    receive_key: PacketKey,
    next_packet_number: u64,
    replay: ReplayWindow,
    highest_received: u64,
    /// Packet numbers skipped by the peer and not (yet) seen.
    pub lost: u64,
}

impl DatagramCrypto {
    pub fn new(
        role: Role,
        session_id: u64,
        keys: &SessionKeys,
        first_send: u64,
        first_receive: u64,
    ) -> Self {
        let (send, receive) = match role {
            Role::Client => (&keys.client_to_server, &keys.server_to_client),
            Role::Server => (&keys.server_to_client, &keys.client_to_server),
        };
        Self {
            session_id,
            send_key: PacketKey::new(send),
            receive_key: PacketKey::new(receive),
            next_packet_number: first_send,
            replay: ReplayWindow::starting_at(first_receive),
            highest_received: first_receive.saturating_sub(1),
            lost: 0,
        }
    }

    /// Starts a packet: writes the header placeholder.
    pub fn begin(&self, buffer: &mut Vec<u8>) {
        buffer.clear();
        buffer.resize(PROTECTED_HEADER_LEN, 0);
    }

    /// Fills in the header and seals the plaintext after it.
    pub fn seal(&mut self, buffer: &mut Vec<u8>) {
        let packet_number = self.next_packet_number;
        self.next_packet_number += 1;
        // Written in place over the placeholder: no allocation per packet.
        buffer[0] = crate::handshake::kind::PROTECTED;
        buffer[1..9].copy_from_slice(&self.session_id.to_be_bytes());
        buffer[9..PROTECTED_HEADER_LEN].copy_from_slice(&packet_number.to_be_bytes());
        self.send_key
            .seal(packet_number, buffer, PROTECTED_HEADER_LEN);
    }

    /// The next packet number this end will send (for a RestartResponse).
    pub fn take_packet_number(&mut self) -> u64 {
        let number = self.next_packet_number;
        self.next_packet_number += 1;
        number
    }

    pub fn send_key(&self) -> &PacketKey {
        &self.send_key
    }

    pub fn receive_key(&self) -> &PacketKey {
        &self.receive_key
    }

    fn check_replay(&self, packet_number: u64) -> Result<(), DropReason> {
        match self.replay.check(packet_number) {
            ReplayVerdict::Fresh => Ok(()),
            ReplayVerdict::Duplicate => Err(DropReason::Replay),
            ReplayVerdict::TooOld => Err(DropReason::TooOld),
        }
    }

    /// Authenticates and decrypts `packet` in place; on success returns the
    /// plaintext range and records the packet number.
    pub fn open(&mut self, packet: &mut [u8]) -> Result<std::ops::Range<usize>, DropReason> {
        let header = ProtectedHeader::decode(packet).map_err(|_| DropReason::Malformed)?;
        self.check_replay(header.packet_number)?;
        let len = self
            .receive_key
            .open(header.packet_number, packet, PROTECTED_HEADER_LEN)
            .ok_or(DropReason::AuthFailed)?;
        self.record(header.packet_number);
        Ok(PROTECTED_HEADER_LEN..PROTECTED_HEADER_LEN + len)
    }

    /// Checks authenticity without decrypting into `packet` or recording it:
    /// used for a datagram from an unexpected address.
    pub fn is_authentic(&self, packet: &[u8]) -> bool {
        let Ok(header) = ProtectedHeader::decode(packet) else {
            return false;
        };
        if self.check_replay(header.packet_number).is_err() {
            return false;
        }
        let mut copy = packet.to_vec();
        self.receive_key
            .open(header.packet_number, &mut copy, PROTECTED_HEADER_LEN)
            .is_some()
    }

    /// Accepts a packet number proven by a RestartResponse.
    pub fn accept_number(&mut self, packet_number: u64) -> Result<(), DropReason> {
        self.check_replay(packet_number)?;
        self.record(packet_number);
        Ok(())
    }

    fn record(&mut self, packet_number: u64) {
        self.replay.commit(packet_number);
        if packet_number > self.highest_received {
            self.lost += packet_number - self.highest_received - 1;
            self.highest_received = packet_number;
        } else {
            // A late packet fills a gap counted as lost.
            self.lost = self.lost.saturating_sub(1);
        }
    }
}

pub struct DatagramLink {
    pub peer: SocketAddr,
    pub crypto: DatagramCrypto,
    pub kcp: Kcp,
    pub live: Liveness,
    /// When the next KCP update is due.
    pub kcp_due: Instant,
    pub last_restart: Option<Instant>,
    pub last_rebind: Option<Instant>,
    /// KCP retransmissions already added to the session's statistics.
    pub retransmits_counted: u64,
}

impl DatagramLink {
    pub fn new(
        now: Instant,
        peer: SocketAddr,
        crypto: DatagramCrypto,
        kcp_conv: u32,
        max_datagram: usize,
        window: u16,
    ) -> Self {
        let mut config = KcpConfig::profile(Profile::Fast);
        config.mtu = max_datagram - DATAGRAM_OVERHEAD - KCP_FRAME_OVERHEAD;
        config.send_window = window;
        config.receive_window = window;
        // Dead-link detection is the session's heartbeat timeout, not KCP's
        // retransmission count, so that both transports behave alike.
        config.dead_link = u32::MAX;
        let kcp = Kcp::new(kcp_conv, config).expect("session KCP configuration is valid");
        Self {
            peer,
            crypto,
            kcp,
            live: Liveness::new(now),
            kcp_due: now,
            last_restart: None,
            last_rebind: None,
            retransmits_counted: 0,
        }
    }

    /// Largest encoded reliable bunch that fits one KCP segment.
    pub fn reliable_room(&self) -> usize {
        self.kcp.config().mtu - hearth_kcp::HEADER_LEN
    }
}

/// Packet protection of one stream link. A stream delivers in order and never
/// loses or repeats a packet, so the nonce is an implicit per-direction counter
/// (as in TLS records): nothing but the tag is added to each packet, and any
/// reordering, replay or deletion by a man in the middle fails authentication.
/// The keys are fresh for every stream handshake, so counters start at zero.
pub struct StreamCrypto {
    send_key: PacketKey,
    receive_key: PacketKey,
    sent: u64,
    received: u64,
}

impl StreamCrypto {
    pub fn new(role: Role, keys: &SessionKeys) -> Self {
        let (send, receive) = match role {
            Role::Client => (&keys.client_to_server, &keys.server_to_client),
            Role::Server => (&keys.server_to_client, &keys.client_to_server),
        };
        Self {
            send_key: PacketKey::new(send),
            receive_key: PacketKey::new(receive),
            sent: 0,
            received: 0,
        }
    }

    /// Encrypts `packet` in place and appends the tag.
    pub fn seal(&mut self, packet: &mut Vec<u8>) {
        self.send_key.seal(self.sent, packet, 0);
        self.sent += 1;
    }

    /// Authenticates and decrypts `packet` in place; returns the plaintext
    /// length. A failure means the stream was tampered with or is not ours.
    pub fn open(&mut self, packet: &mut [u8]) -> Option<usize> {
        if packet.len() < TAG_LEN {
            return None;
        }
        let len = self.receive_key.open(self.received, packet, 0)?;
        self.received += 1;
        Some(len)
    }

    /// Largest plaintext that fits a stream packet of `max_packet` bytes.
    pub fn max_plaintext(max_packet: usize) -> usize {
        max_packet - TAG_LEN
    }
}
pub struct StreamLink {
    pub id: StreamId,
    pub live: Liveness,
    pub crypto: StreamCrypto,
}
