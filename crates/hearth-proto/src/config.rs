//! Tunables. Defaults follow the issue: 1 s heartbeats, 10 s timeout, 30 s
//! resume grace, 1 MiB messages, 1200-byte datagrams.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest datagram sent, headers and tag included.
    pub max_datagram: usize,
    /// Largest stream packet (one TCP frame or WebSocket message) sent.
    pub max_stream_packet: usize,
    /// Send a heartbeat on a link that has been quiet this long.
    pub heartbeat_interval: Duration,
    /// Declare a link dead after hearing nothing this long.
    pub idle_timeout: Duration,
    /// Largest message, after partial bunches are reassembled.
    pub max_message_size: usize,
    /// Memory for partial messages being reassembled, per connection.
    pub max_reassembly_bytes: usize,
    /// Reliable bytes sent but not yet acknowledged; beyond it `send` refuses.
    pub max_unacked_bytes: usize,
    /// Delay before a standalone acknowledgement of reliable messages.
    pub ack_delay: Duration,
    /// How long each step of the login flow may take.
    pub login_step_timeout: Duration,
    /// How long a closing session waits for its reliable messages to be acknowledged.
    pub close_linger: Duration,
    /// How long a session with no link waits for a resume.
    pub resume_grace: Duration,
    /// KCP windows, in segments.
    pub kcp_window: u16,
    /// Server: game channels only after Join (not merely after Welcome);
    /// traffic before it closes the session like traffic before login.
    pub require_join: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_datagram: 1200,
            max_stream_packet: 64 * 1024,
            heartbeat_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            max_message_size: 1024 * 1024,
            max_reassembly_bytes: 2 * 1024 * 1024 + 64 * 1024,
            max_unacked_bytes: 4 * 1024 * 1024,
            ack_delay: Duration::from_millis(20),
            login_step_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(1),
            resume_grace: Duration::from_secs(30),
            kcp_window: 256,
            require_join: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub session: SessionConfig,
    pub max_sessions: usize,
    /// Stream connections that have not sent their first frame yet.
    pub max_pending_streams: usize,
    /// Stateless replies (challenges, restarts) waiting to be sent; beyond it they are dropped.
    pub max_queued_replies: usize,
    /// Minimum time between two restart challenges for one session.
    pub restart_interval: Duration,
    /// Minimum time between two address rebinds of one session.
    pub rebind_interval: Duration,
    /// Datagram port offered in UDP tickets to clients logged in over a stream.
    pub udp_ticket_port: Option<u16>,
    /// Map named in Welcome unless the pre-login hook names another.
    pub default_map: String,
    /// Sessions and stream connections from one address (IPv6: one /64)
    /// still in their handshake or login; beyond it new ones are refused.
    pub max_logging_in_per_address: u32,
    /// Completed datagram handshakes remembered (each for its cookie's
    /// lifetime, 40 s) so that a replayed Response never opens a session.
    /// When full, the oldest is forgotten and Responses with cookies not
    /// newer than it are refused from then on.
    pub max_recent_handshakes: usize,
    /// Key agreements (UDP handshakes and stream Hellos, new or resuming)
    /// one address (IPv6: one /64) may start: a burst, then this many a
    /// second. An IPv6 /48 gets eight times as much. 0 and 0: no limit.
    pub key_agreement_burst: u32,
    pub key_agreements_per_second: u32,
    /// Apply the per-address limits above to loopback clients too. Off by
    /// default: load generators and bots on the server's own machine connect
    /// thousands of sessions from 127.0.0.1, and whoever can send from
    /// loopback is on the machine already.
    pub limit_loopback: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            max_sessions: 100_000,
            max_pending_streams: 4096,
            max_queued_replies: 4096,
            restart_interval: Duration::from_millis(250),
            rebind_interval: Duration::from_secs(1),
            udp_ticket_port: None,
            default_map: "Entry".to_owned(),
            max_logging_in_per_address: 32,
            max_recent_handshakes: 65_536,
            key_agreement_burst: 32,
            key_agreements_per_second: 16,
            limit_loopback: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub session: SessionConfig,
    /// Resend the current handshake packet this often until answered.
    pub handshake_resend: Duration,
    /// Give up a handshake after this long.
    pub handshake_timeout: Duration,
    /// The server's static public key, when known in advance (pinning).
    pub server_key: Option<[u8; 32]>,
    pub credentials: crate::control::Credentials,
    pub player_name: String,
    /// UE-style URL options, e.g. `?Team=2?Spectator`.
    pub options: String,
    /// Advertised in NetSpeed.
    pub net_speed: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            handshake_resend: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(10),
            server_key: None,
            credentials: crate::control::Credentials::Anonymous,
            player_name: String::new(),
            options: String::new(),
            net_speed: 100_000,
        }
    }
}
