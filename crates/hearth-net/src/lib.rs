//! Hearth's drivers: the tokio gates (UDP, TCP, WebSocket) that feed the
//! sans-IO session protocol, and the client connector.

pub mod client;
pub mod framing;
pub mod gate;
pub mod udp;
pub mod ws;
