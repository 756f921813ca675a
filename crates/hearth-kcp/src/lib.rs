//! A sans-IO implementation of the KCP ARQ protocol, byte-compatible with the
//! reference C implementation (`ikcp.c`).
//!
//! A [`Kcp`] holds no socket and reads no clock. The caller:
//! 1. feeds every datagram from the peer to [`Kcp::input`];
//! 2. calls [`Kcp::update`] with the current time in milliseconds, at the latest by
//!    [`Kcp::check`];
//! 3. sends every datagram from [`Kcp::drain_transmits`];
//! 4. reads messages with [`Kcp::recv`] and queues its own with [`Kcp::send`].
//!
//! ```
//! use hearth_kcp::{Config, Kcp};
//! let mut a = Kcp::new(7, Config::default()).unwrap();
//! let mut b = Kcp::new(7, Config::default()).unwrap();
//! a.send(b"hello").unwrap();
//! for now in (0..200).step_by(10) {
//!     a.update(now);
//!     b.update(now);
//!     let wire: Vec<Vec<u8>> = a.drain_transmits().map(<[u8]>::to_vec).collect();
//!     for datagram in wire { b.input(&datagram).unwrap(); }
//!     let wire: Vec<Vec<u8>> = b.drain_transmits().map(<[u8]>::to_vec).collect();
//!     for datagram in wire { a.input(&datagram).unwrap(); }
//! }
//! assert_eq!(b.recv().as_deref(), Some(&b"hello"[..]));
//! ```
//!
//! Differences from ikcp.c, each a [`Config`] switch: retransmission at the exact RTO
//! deadline, a flush as soon as an acknowledgement advances `una`, optional immediate
//! acknowledgements, optional messages of more than 127 fragments, and no allocation
//! per segment once buffers are warm. [`Config::reference`] turns the timing ones off.

mod ack_list;
mod arena;
mod config;
mod datagram_buffer;
mod error;
mod flush;
mod header;
mod input;
mod kcp;
mod send_ring;
pub mod sim;
mod small_copy;
mod stats;

pub use config::{Config, Profile, REFERENCE_FRAGMENT_LIMIT};
pub use datagram_buffer::{DatagramBuffer, Transmits};
pub use error::{ConfigError, InputError, SendError};
pub use header::{peek_conv, Command, Header, HEADER_LEN};
pub use kcp::Kcp;
pub use stats::Stats;
