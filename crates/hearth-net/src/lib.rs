//! Hearth's drivers: the tokio gates (UDP, TCP, WebSocket) that feed the
//! sans-IO session protocol, the client connector, and TLS for the web port.

pub mod admission;
pub mod client;
pub mod conditioner;
pub mod framing;
pub mod gate;
pub mod impair;
mod pump;
pub mod tls;
pub mod udp;
pub mod ws;
