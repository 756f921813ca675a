//! A safe owner of one ikcp.c control block, configured from a Hearth [`Config`] and
//! driven the same way as Hearth's engine: time passed in, datagrams collected.

use std::ffi::{c_char, c_int, c_long, c_void};

use hearth_kcp::Config;

use crate::ffi;

/// Datagrams the C side emitted, concatenated, with their end offsets.
#[derive(Default)]
struct Collected {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

unsafe extern "C" fn collect_output(
    buf: *const c_char,
    len: c_int,
    _kcp: *mut ffi::IkcpCb,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the `Collected` boxed by `ReferenceKcp`, alive as long as the
    // control block, and ikcp.c passes a valid buffer of `len` bytes.
    let collected = unsafe { &mut *(user as *mut Collected) };
    let datagram = unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize) };
    collected.bytes.extend_from_slice(datagram);
    collected.ends.push(collected.bytes.len());
    0
}

/// ikcp.c, owned. Not `Send`: ikcp.c is single-threaded per control block.
pub struct ReferenceKcp {
    kcp: *mut ffi::IkcpCb,
    collected: Box<Collected>,
}

impl ReferenceKcp {
    /// A control block with the same settings as Hearth's `Kcp::new(conv, config)`.
    /// Hearth-only switches (exact RTO, ...) have no C equivalent and are ignored.
    pub fn new(conv: u32, config: &Config) -> Self {
        let mut collected = Box::<Collected>::default();
        let user = &mut *collected as *mut Collected as *mut c_void;
        // SAFETY: ikcp_create returns an owned block (null only on allocation failure,
        // checked); the setters only write fields of that block.
        unsafe {
            let kcp = ffi::ikcp_create(conv, user);
            assert!(!kcp.is_null(), "ikcp_create failed");
            (*kcp).output = Some(collect_output);
            assert_eq!(ffi::ikcp_setmtu(kcp, config.mtu as c_int), 0, "ikcp_setmtu");
            ffi::ikcp_wndsize(kcp, config.send_window.into(), config.receive_window.into());
            ffi::ikcp_nodelay(
                kcp,
                config.nodelay.into(),
                config.interval as c_int,
                config.fast_resend as c_int,
                config.no_congestion_control.into(),
            );
            (*kcp).rx_minrto = config.min_rto as i32;
            (*kcp).fastlimit = config.fast_limit as c_int;
            (*kcp).dead_link = config.dead_link;
            (*kcp).stream = config.stream.into();
            Self { kcp, collected }
        }
    }

    /// Direct access to the control block, for settings test.cpp pokes into it.
    pub fn control_block(&mut self) -> &mut ffi::IkcpCb {
        // SAFETY: the block is owned by self and valid until drop.
        unsafe { &mut *self.kcp }
    }

    /// `ikcp_send`: the byte count queued, or ikcp.c's negative error code.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), i32> {
        // SAFETY: valid block; ikcp_send reads `len` bytes from `msg`.
        let ret = unsafe { ffi::ikcp_send(self.kcp, msg.as_ptr() as *const c_char, msg.len() as c_int) };
        if ret < 0 { Err(ret) } else { Ok(()) }
    }

    pub fn input(&mut self, datagram: &[u8]) -> Result<(), i32> {
        // SAFETY: valid block; ikcp_input reads `size` bytes.
        let ret = unsafe {
            ffi::ikcp_input(self.kcp, datagram.as_ptr() as *const c_char, datagram.len() as c_long)
        };
        if ret < 0 { Err(ret) } else { Ok(()) }
    }

    pub fn update(&mut self, now_ms: u32) {
        // SAFETY: valid block.
        unsafe { ffi::ikcp_update(self.kcp, now_ms) }
    }

    pub fn flush(&mut self) {
        // SAFETY: valid block.
        unsafe { ffi::ikcp_flush(self.kcp) }
    }

    pub fn check(&self, now_ms: u32) -> u32 {
        // SAFETY: valid block.
        unsafe { ffi::ikcp_check(self.kcp, now_ms) }
    }

    pub fn waiting_to_send(&self) -> usize {
        // SAFETY: valid block.
        unsafe { ffi::ikcp_waitsnd(self.kcp) as usize }
    }

    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.recv_into(&mut out).map(|_| out)
    }

    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        // SAFETY: valid block; the buffer has room for the peeked size.
        unsafe {
            let size = ffi::ikcp_peeksize(self.kcp);
            if size < 0 {
                return None;
            }
            out.clear();
            out.reserve(size as usize);
            let got = ffi::ikcp_recv(self.kcp, out.as_mut_ptr() as *mut c_char, size);
            assert_eq!(got, size, "ikcp_recv disagrees with ikcp_peeksize");
            out.set_len(size as usize);
            Some(size as usize)
        }
    }

    /// Hands every datagram emitted since the last call to `send`, in order.
    pub fn take_transmits(&mut self, mut send: impl FnMut(&[u8])) {
        let collected = &mut *self.collected;
        let mut start = 0;
        for &end in &collected.ends {
            send(&collected.bytes[start..end]);
            start = end;
        }
        collected.bytes.clear();
        collected.ends.clear();
    }
}

impl Drop for ReferenceKcp {
    fn drop(&mut self) {
        // SAFETY: created by ikcp_create, released once.
        unsafe { ffi::ikcp_release(self.kcp) }
    }
}
