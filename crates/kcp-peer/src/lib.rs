//! An echo server and a verifying client for KCP over UDP: run one side with Hearth
//! and the other with any KCP implementation to check they interoperate.

pub mod client;
pub mod clock;
pub mod pattern;
pub mod relay;
pub mod server;
pub mod settings;
