//! Counters: per-session statistics and drop reasons.

use std::time::Duration;

/// Why an input was dropped or refused. Every drop is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Could not be decoded (truncated, garbage, bad field).
    Malformed,
    /// Handshake from a client speaking another protocol version.
    VersionMismatch,
    /// Cookie older than its maximum age or from a retired secret.
    CookieExpired,
    /// Cookie MAC wrong: forged, altered, or replayed from another address.
    CookieInvalid,
    /// Protected datagram or attach request for a session that does not exist.
    UnknownSession,
    /// AEAD authentication failed (tampered or forged ciphertext).
    AuthFailed,
    /// Packet number seen before.
    Replay,
    /// Packet number older than the replay window.
    TooOld,
    /// Authentic datagram from an address the session is not bound to.
    WrongAddress,
    /// A restart or rebind arrived sooner than the rate limit allows.
    RebindRateLimited,
    /// Answering would send more than was received before the address is proven.
    AmplificationLimit,
    /// The stateless reply queue is full (the driver is not draining it).
    ReplyQueueFull,
    /// Attach proof (ticket or resume token) is wrong.
    BadProof,
    /// The session table is full.
    ServerFull,
    /// Packet type not valid in this state or direction.
    Unexpected,
    /// Unreliable bunch for a channel that is not open.
    UnknownChannel,
    /// Sequenced bunch older than the newest delivered on its channel.
    Stale,
    /// A partial message that could not complete (a part was lost or out of order).
    PartialIncomplete,
    /// A message larger than the configured maximum.
    MessageTooLarge,
    /// Reassembly memory for this connection is exhausted.
    ReassemblyFull,
    /// Reliable bunch already delivered (duplicate after a link change).
    Duplicate,
    /// Too many sessions from one address (IPv6: one /64) still in their
    /// handshake or login.
    TooManyFromAddress,
    /// A channel open or message on a game channel before the login was accepted.
    BeforeLogin,
}

impl DropReason {
    pub const ALL: [DropReason; 23] = [
        DropReason::Malformed,
        DropReason::VersionMismatch,
        DropReason::CookieExpired,
        DropReason::CookieInvalid,
        DropReason::UnknownSession,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::TooOld,
        DropReason::WrongAddress,
        DropReason::RebindRateLimited,
        DropReason::AmplificationLimit,
        DropReason::ReplyQueueFull,
        DropReason::BadProof,
        DropReason::ServerFull,
        DropReason::Unexpected,
        DropReason::UnknownChannel,
        DropReason::Stale,
        DropReason::PartialIncomplete,
        DropReason::MessageTooLarge,
        DropReason::ReassemblyFull,
        DropReason::Duplicate,
        DropReason::TooManyFromAddress,
        DropReason::BeforeLogin,
    ];

    /// A stable snake_case name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::CookieExpired => "cookie_expired",
            DropReason::CookieInvalid => "cookie_invalid",
            DropReason::UnknownSession => "unknown_session",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::TooOld => "too_old",
            DropReason::WrongAddress => "wrong_address",
            DropReason::RebindRateLimited => "rebind_rate_limited",
            DropReason::AmplificationLimit => "amplification_limit",
            DropReason::ReplyQueueFull => "reply_queue_full",
            DropReason::BadProof => "bad_proof",
            DropReason::ServerFull => "server_full",
            DropReason::Unexpected => "unexpected",
            DropReason::UnknownChannel => "unknown_channel",
            DropReason::Stale => "stale",
            DropReason::PartialIncomplete => "partial_incomplete",
            DropReason::MessageTooLarge => "message_too_large",
            DropReason::ReassemblyFull => "reassembly_full",
            DropReason::Duplicate => "duplicate",
            DropReason::TooManyFromAddress => "too_many_from_address",
            DropReason::BeforeLogin => "before_login",
        }
    }
}

/// Drop counters indexed by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops {
    counts: [u64; DropReason::ALL.len()],
}

impl Drops {
    pub fn add(&mut self, reason: DropReason) {
        self.counts[reason as usize] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Adds another set of counters to these.
    pub fn merge(&mut self, other: &Drops) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Non-zero counters, for display.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// RFC 6298 smoothed round-trip estimator, fed by heartbeat echoes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttEstimate {
    pub smoothed: Option<Duration>,
    pub variance: Duration,
    pub samples: u64,
    /// The most recent sample, unsmoothed (a load test's percentiles).
    pub latest: Option<Duration>,
}

impl RttEstimate {
    pub fn add_sample(&mut self, rtt: Duration) {
        self.samples += 1;
        self.latest = Some(rtt);
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variance = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.variance = (self.variance * 3 + delta) / 4;
                self.smoothed = Some((srtt * 7 + rtt) / 8);
            }
        }
    }
}

/// Per-session statistics, across all of its links.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    pub rtt: RttEstimate,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagram packet numbers skipped by the peer's sequence and never seen.
    pub packets_lost: u64,
    /// KCP segment retransmissions (timeout and fast), over all datagram links.
    pub retransmits: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub migrations: u64,
    pub resumes: u64,
    /// Times the application paused receiving (its queue was full; see
    /// `Server::pause_receive`).
    pub receive_pauses: u64,
    pub drops: Drops,
}

impl SessionStats {
    /// Share of the peer's datagrams that never arrived, 0.0 to 1.0.
    pub fn loss_rate(&self) -> f64 {
        let expected = self.packets_lost + self.datagrams_counted();
        if expected == 0 {
            0.0
        } else {
            self.packets_lost as f64 / expected as f64
        }
    }

    fn datagrams_counted(&self) -> u64 {
        self.packets_in
    }
}

/// Endpoint-wide counters (the stateless part of a server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointStats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub challenges_sent: u64,
    pub handshakes_completed: u64,
    /// Stream links whose key agreement completed (new sessions and resumes).
    pub stream_handshakes_completed: u64,
    pub restarts_sent: u64,
    pub rebinds: u64,
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    /// Drops by the endpoint, plus those of sessions that have ended (a
    /// session's own counters join these when it closes).
    pub drops: Drops,
}

impl EndpointStats {
    /// Adds another endpoint's counters (a gate's shards, summed).
    pub fn merge(&mut self, other: &EndpointStats) {
        self.datagrams_in += other.datagrams_in;
        self.bytes_in += other.bytes_in;
        self.datagrams_out += other.datagrams_out;
        self.bytes_out += other.bytes_out;
        self.challenges_sent += other.challenges_sent;
        self.handshakes_completed += other.handshakes_completed;
        self.stream_handshakes_completed += other.stream_handshakes_completed;
        self.restarts_sent += other.restarts_sent;
        self.rebinds += other.rebinds;
        self.sessions_opened += other.sessions_opened;
        self.sessions_closed += other.sessions_closed;
        self.drops.merge(&other.drops);
    }
}
