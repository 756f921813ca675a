use thiserror::Error;

/// Why a datagram handed to [`crate::Kcp::input`] was refused.
///
/// Segments that precede the bad one in the same datagram have already been applied,
/// exactly as ikcp.c does; nothing after it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("datagram of {len} bytes is shorter than a 24-byte KCP header")]
    Truncated { len: usize },
    #[error("segment for conversation {got:#x}, but this session is {expected:#x}")]
    ConvMismatch { expected: u32, got: u32 },
    #[error("segment claims {claimed} payload bytes but only {available} follow")]
    BadLength { claimed: u32, available: usize },
    #[error("unknown KCP command byte {0}")]
    UnknownCommand(u8),
    #[error("message grew past the {limit}-byte maximum; it was discarded")]
    MessageTooLarge { limit: usize },
}

/// Why [`crate::Kcp::send`] refused a message. Nothing of a refused message is queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error(
        "message of {len} bytes needs {fragments} fragments; the limit is {limit} \
         (enable large messages on both sides, or split it)"
    )]
    TooManyFragments {
        len: usize,
        fragments: usize,
        limit: usize,
    },
    #[error("message of {len} bytes exceeds the configured maximum of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
}

/// A setting outside what the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("mtu {0} is too small: KCP needs at least 50 bytes")]
    MtuTooSmall(usize),
    #[error("mtu {0} is larger than a UDP datagram can carry (65507 bytes)")]
    MtuTooLarge(usize),
    #[error("window sizes must be at least 1 (send {send}, receive {receive})")]
    ZeroWindow { send: u16, receive: u16 },
    #[error("max_message_size {0} is above the 4 GiB a session can hold; lower it")]
    MessageLimitTooLarge(usize),
}
