/// Counters and gauges of one session, cheap to copy out at any time.
// The counters every flush and input bump come first (`repr(C)` keeps them
// on one cache line); the gauges are filled in by `Kcp::stats` and never stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stats {
    /// Datagrams handed to `input`, and their bytes.
    pub datagrams_in: u64,
    pub bytes_in: u64,

    /// Datagrams emitted, and their bytes.
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// Data segments sent for the first time.
    pub segments_sent: u64,
    /// Data segments received, duplicates included.
    pub segments_received: u64,
    /// All retransmissions, timeout and fast.
    pub retransmits: u64,
    /// Retransmissions triggered by skipped acknowledgements.
    pub fast_retransmits: u64,
    /// Copies sent ahead of any loss (`Config::redundant_copies`).
    pub redundant_copies: u64,
    /// Segments presumed lost: their retransmission timer expired.
    pub lost_segments: u64,
    /// Data segments received twice, or already delivered.
    pub duplicate_segments: u64,
    /// Data segments outside the receive window, dropped.
    pub out_of_window_segments: u64,
    /// Datagrams refused by `input`, by reason.
    pub rejected_truncated: u64,
    pub rejected_conv: u64,
    pub rejected_length: u64,
    pub rejected_command: u64,
    /// Messages from the peer discarded for exceeding the size limit.
    pub oversized_messages: u64,
    /// Smoothed round-trip time in milliseconds (0 until the first sample).
    pub srtt_ms: u32,
    /// Round-trip time variation in milliseconds.
    pub rttvar_ms: u32,
    /// Current retransmission timeout in milliseconds.
    pub rto_ms: u32,
    /// Segments sent but not yet acknowledged.
    pub in_flight: u32,
    /// Segments queued by the application, not yet sent.
    pub queued: u32,
    /// Congestion window in segments (not grown without congestion control,
    /// which never reads it).
    pub cwnd: u32,
    /// Our send window in segments.
    pub send_window: u32,
    /// Our receive window, and how much of it is free.
    pub receive_window: u32,
    pub receive_window_free: u32,
    /// The peer's last advertised window.
    pub remote_window: u32,
}
