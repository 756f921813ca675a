//! Settings of one KCP session, with the reference implementation's defaults.

use crate::error::ConfigError;
use crate::header::HEADER_LEN;

/// ikcp.c refuses messages of this many fragments or more: the receiver's default
/// window must be able to hold a whole message.
pub const REFERENCE_FRAGMENT_LIMIT: usize = 128;

/// Largest `max_message_size`: message lengths are kept as 32-bit numbers.
pub const MAX_MESSAGE_SIZE_LIMIT: usize = u32::MAX as usize;

/// The three profiles of the KCP reference test (test.cpp), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// TCP-like: `nodelay(0, 10, 0, 0)`, congestion control on.
    Default,
    /// `nodelay(0, 10, 0, 1)`: congestion control off.
    Normal,
    /// `nodelay(2, 10, 2, 1)`: no-delay RTO growth, fast resend after 2 skips, no
    /// congestion control; in Hearth also immediate acknowledgements, which cost more
    /// datagrams and buy lower latency.
    Fast,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "default" => Ok(Self::Default),
            "normal" => Ok(Self::Normal),
            "fast" => Ok(Self::Fast),
            other => Err(format!(
                "unknown profile `{other}`: use default, normal or fast"
            )),
        }
    }
}

/// Everything that shapes a session's behaviour. Both ends must agree on `conv`,
/// `stream` and `large_messages`; everything else is local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest datagram this side emits, headers included.
    pub mtu: usize,
    /// Send window in segments.
    pub send_window: u16,
    /// Receive window in segments (ikcp.c raises anything below 128 to 128).
    pub receive_window: u16,
    /// 0: RTO doubles on loss; 1: grows by half; 2: grows by half the smoothed RTO.
    /// Non-zero also lowers the minimum RTO to 30 ms, like `ikcp_nodelay`.
    pub nodelay: u8,
    /// Flush interval in milliseconds (10..=5000).
    pub interval: u32,
    /// Resend a segment once this many later segments were acknowledged (0 = off).
    pub fast_resend: u32,
    /// How many times a segment may be fast-resent (0 = no limit).
    pub fast_limit: u32,
    /// Disable congestion control (send and remote windows still apply).
    pub no_congestion_control: bool,
    /// Lower bound of the retransmission timeout in milliseconds.
    pub min_rto: u32,
    /// A segment transmitted this many times marks the link dead.
    pub dead_link: u32,
    /// Stream mode: bytes, not messages; small sends coalesce into full segments.
    pub stream: bool,

    // Improvements over ikcp.c. All are invisible on the wire except `large_messages`,
    // which both sides must enable.
    /// Retransmit at the exact RTO deadline instead of the next interval tick.
    pub exact_rto: bool,
    /// Flush as soon as an acknowledgement advances `una`, so the freed window is used
    /// immediately instead of at the next tick.
    pub flush_on_una_advance: bool,
    /// Acknowledge every received segment at the next `update`, not at the next tick.
    pub immediate_ack: bool,
    /// Messages of any number of fragments (up to `max_message_size`). The peer must
    /// enable it too: the fragment numbering differs from ikcp.c's.
    pub large_messages: bool,
    /// Largest message accepted from the peer or from the application, in bytes.
    pub max_message_size: usize,
    /// Send each segment this many more times, `redundant_gap_ms` apart,
    /// before any loss is known: sparse small messages (a game's inputs)
    /// then survive a lost datagram without waiting for an RTO or for later
    /// acknowledgements, at that many times the bandwidth. The receiver drops
    /// the extra copies as duplicates, so the wire stays ikcp.c's. 0: off.
    pub redundant_copies: u8,
    pub redundant_gap_ms: u32,
}

impl Default for Config {
    /// ikcp.c's defaults (`ikcp_create`), plus the wire-invisible improvements.
    fn default() -> Self {
        Self {
            mtu: 1400,
            send_window: 32,
            receive_window: 128,
            nodelay: 0,
            interval: 100,
            fast_resend: 0,
            fast_limit: 5,
            no_congestion_control: false,
            min_rto: 100,
            dead_link: 20,
            stream: false,
            exact_rto: true,
            flush_on_una_advance: true,
            immediate_ack: false,
            large_messages: false,
            max_message_size: 16 << 20,
            redundant_copies: 0,
            redundant_gap_ms: 10,
        }
    }
}

impl Config {
    /// Exactly what ikcp.c does, improvements off: useful for lock-step comparisons.
    pub fn reference() -> Self {
        Self {
            exact_rto: false,
            flush_on_una_advance: false,
            ..Self::default()
        }
    }

    /// A named profile of the reference test, windows 128/128 as that test uses.
    pub fn profile(profile: Profile) -> Self {
        let mut config = Self {
            send_window: 128,
            receive_window: 128,
            ..Self::default()
        };
        match profile {
            Profile::Default => config.set_nodelay(0, 10, 0, false),
            Profile::Normal => config.set_nodelay(0, 10, 0, true),
            Profile::Fast => {
                config.set_nodelay(2, 10, 2, true);
                config.immediate_ack = true;
            }
        }
        config
    }

    /// The same knobs as `ikcp_nodelay`, with its side effect on the minimum RTO.
    pub fn set_nodelay(&mut self, nodelay: u8, interval: u32, resend: u32, no_cc: bool) {
        self.nodelay = nodelay;
        self.min_rto = if nodelay != 0 { 30 } else { 100 };
        self.interval = interval.clamp(10, 5000);
        self.fast_resend = resend;
        self.no_congestion_control = no_cc;
    }

    /// Payload bytes per segment.
    pub fn mss(&self) -> usize {
        self.mtu - HEADER_LEN
    }

    /// The receive window ikcp.c would actually use for this setting.
    pub(crate) fn effective_receive_window(&self) -> u32 {
        u32::from(self.receive_window).max(REFERENCE_FRAGMENT_LIMIT as u32)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.mtu < 50 {
            return Err(ConfigError::MtuTooSmall(self.mtu));
        }
        if self.mtu > 65507 {
            return Err(ConfigError::MtuTooLarge(self.mtu));
        }
        if self.send_window == 0 || self.receive_window == 0 {
            return Err(ConfigError::ZeroWindow {
                send: self.send_window,
                receive: self.receive_window,
            });
        }
        if self.max_message_size > MAX_MESSAGE_SIZE_LIMIT {
            return Err(ConfigError::MessageLimitTooLarge(self.max_message_size));
        }
        Ok(())
    }
}
