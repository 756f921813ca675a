//! Hearth's KCP and the reference ikcp.c behind one trait, so that tests can run them
//! in lock-step and benchmarks can measure both in the same run on the same inputs.

// Nothing of kcp-sys's Rust API is used; naming the crate makes the linker include
// the ikcp.c it compiled, which `ffi` declares.
extern crate kcp_sys;

pub mod ffi;
mod reference;
pub mod workload;

use hearth_kcp::{Config, DatagramBuffer, Kcp};
pub use reference::ReferenceKcp;

/// What a test or benchmark needs from a KCP implementation.
pub trait Engine {
    const NAME: &'static str;
    fn create(conv: u32, config: &Config) -> Self;
    /// Queues a message; false if the implementation refused it.
    fn send(&mut self, msg: &[u8]) -> bool;
    /// Applies a datagram; false if the implementation refused it.
    fn input(&mut self, datagram: &[u8]) -> bool;
    /// Advances time; every datagram the engine emits goes to `send`, in order. (Both
    /// implementations emit only while updating.)
    fn update(&mut self, now_ms: u32, send: impl FnMut(&[u8]));
    /// State that sessions of one thread can share for `update_shared`.
    type Shared: Default;
    /// Like `update`, the way a server drives many sessions: Hearth flushes into
    /// one datagram buffer shared by all of them (`Kcp::update_into`); ikcp.c has
    /// no such mode (its buffer belongs to its control block), so it just updates.
    fn update_shared(&mut self, now_ms: u32, shared: &mut Self::Shared, send: impl FnMut(&[u8]));
    fn check(&self, now_ms: u32) -> u32;
    fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<usize>;
}

impl Engine for Kcp {
    const NAME: &'static str = "hearth";
    fn create(conv: u32, config: &Config) -> Self {
        Kcp::new(conv, config.clone()).expect("valid config")
    }
    fn send(&mut self, msg: &[u8]) -> bool {
        Kcp::send(self, msg).is_ok()
    }
    fn input(&mut self, datagram: &[u8]) -> bool {
        Kcp::input(self, datagram).is_ok()
    }
    fn update(&mut self, now_ms: u32, send: impl FnMut(&[u8])) {
        Kcp::update(self, now_ms);
        self.drain_transmits().for_each(send)
    }
    type Shared = DatagramBuffer;
    fn update_shared(&mut self, now_ms: u32, out: &mut DatagramBuffer, send: impl FnMut(&[u8])) {
        self.update_into(now_ms, out);
        out.drain().for_each(send)
    }
    fn check(&self, now_ms: u32) -> u32 {
        Kcp::check(self, now_ms)
    }
    fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        Kcp::recv_into(self, out)
    }
}

impl Engine for ReferenceKcp {
    const NAME: &'static str = "ikcp.c";
    fn create(conv: u32, config: &Config) -> Self {
        ReferenceKcp::new(conv, config)
    }
    fn send(&mut self, msg: &[u8]) -> bool {
        ReferenceKcp::send(self, msg).is_ok()
    }
    fn input(&mut self, datagram: &[u8]) -> bool {
        ReferenceKcp::input(self, datagram).is_ok()
    }
    fn update(&mut self, now_ms: u32, send: impl FnMut(&[u8])) {
        ReferenceKcp::update(self, now_ms, send)
    }
    type Shared = ();
    fn update_shared(&mut self, now_ms: u32, _: &mut (), send: impl FnMut(&[u8])) {
        ReferenceKcp::update(self, now_ms, send)
    }
    fn check(&self, now_ms: u32) -> u32 {
        ReferenceKcp::check(self, now_ms)
    }
    fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        ReferenceKcp::recv_into(self, out)
    }
}
