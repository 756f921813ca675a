//! Hearth's session protocol, sans-IO.
//!
//! The connection process of Unreal Engine's NetDriver, hardened: a stateless
//! cookie handshake over UDP (Initial, Challenge, Response, Ack; Restart for a
//! changed address), X25519 key agreement with the server's static key for
//! authentication, every later datagram sealed with ChaCha20-Poly1305 under a
//! per-direction key with a replay window; packets carrying KCP segments and
//! bunches on channels; the control-channel login flow (Hello, Challenge,
//! Login, pre-login hook, Welcome, NetSpeed, Join); heartbeats; migration; and
//! resume of a session over a new link within a grace window.
//!
//! Nothing here opens a socket or reads a clock. The drivers feed
//! [`Server::handle`] / [`Client::handle_datagram`] (or the stream variants),
//! then drain `poll_transmit`, `poll_event` and call `handle_timeout` at
//! `poll_timeout`. The wire format is in `docs/PROTOCOL.md`.

pub mod address_limit;
pub mod bunch;
pub mod client;
pub use hearth_codec as codec;
pub mod config;
pub mod control;
pub mod cookie;
pub mod crypto;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod link;
pub mod reassembly;
pub mod reliable;
pub mod server;
pub mod session;
pub mod stats;
pub mod stream_handshake;

pub use bunch::{ChannelKind, Delivery, CONTROL_CHANNEL, MAX_CHANNELS};
pub use client::Client;
pub use config::{ClientConfig, ServerConfig, SessionConfig};
pub use control::{Credentials, UdpTicket};
pub use event::{close_code, CloseReason, Event, LinkKind, LoginRequest, StreamId, Transmit};
pub use handshake::PROTOCOL_VERSION;
pub use server::{
    shard_of_session, Server, ServerIdentity, Shard, ShardSet, StateSize, MAX_SHARDS,
};
pub use session::{ChannelSpec, SendError, Session};
pub use stats::{DropReason, Drops, EndpointStats, SessionStats};

/// 32 bytes from the operating system's cryptographic RNG, to seed an endpoint.
pub fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the operating system RNG is available");
    seed
}
