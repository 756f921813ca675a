//! A safe owner of one ikcp.c control block, configured from a Hearth [`Config`] and
//! driven the same way as Hearth's engine: time passed in, datagrams collected.

use std::ffi::{c_char, c_int, c_long, c_void};

use hearth_kcp::Config;

use crate::ffi;

type SinkPtr = *mut (dyn FnMut(&[u8]) + 'static);

/// Where ikcp.c's output callback sends datagrams: the caller's sink, installed only
/// for the duration of `update`/`flush` (the only calls in which ikcp.c emits), so
/// datagrams go straight from ikcp.c's buffer to the consumer with no copy.
#[derive(Default)]
struct Output {
    sink: Option<SinkPtr>,
}

unsafe extern "C" fn forward_output(
    buf: *const c_char,
    len: c_int,
    _kcp: *mut ffi::IkcpCb,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the `Output` boxed by `ReferenceKcp`, alive as long as the
    // control block; ikcp.c passes a valid buffer of `len` bytes; the sink pointer is
    // set only while `with_sink` holds the closure borrowed.
    let output = unsafe { &mut *(user as *mut Output) };
    let datagram = unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize) };
    match output.sink {
        Some(sink) => unsafe { (*sink)(datagram) },
        None => debug_assert!(false, "ikcp.c emitted outside update/flush"),
    }
    0
}

/// ikcp.c, owned. Not `Send`: ikcp.c is single-threaded per control block.
pub struct ReferenceKcp {
    kcp: *mut ffi::IkcpCb,
    output: Box<Output>,
}

impl ReferenceKcp {
    /// A control block with the same settings as Hearth's `Kcp::new(conv, config)`.
    /// Hearth-only switches (exact RTO, ...) have no C equivalent and are ignored.
    pub fn new(conv: u32, config: &Config) -> Self {
        let mut output = Box::<Output>::default();
        let user = &mut *output as *mut Output as *mut c_void;
        // SAFETY: ikcp_create returns an owned block (null only on allocation failure,
        // checked); the setters only write fields of that block.
        unsafe {
            let kcp = ffi::ikcp_create(conv, user);
            assert!(!kcp.is_null(), "ikcp_create failed");
            (*kcp).output = Some(forward_output);
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
            Self { kcp, output }
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
        let ret =
            unsafe { ffi::ikcp_send(self.kcp, msg.as_ptr() as *const c_char, msg.len() as c_int) };
        if ret < 0 {
            Err(ret)
        } else {
            Ok(())
        }
    }

    pub fn input(&mut self, datagram: &[u8]) -> Result<(), i32> {
        // SAFETY: valid block; ikcp_input reads `size` bytes.
        let ret = unsafe {
            ffi::ikcp_input(
                self.kcp,
                datagram.as_ptr() as *const c_char,
                datagram.len() as c_long,
            )
        };
        if ret < 0 {
            Err(ret)
        } else {
            Ok(())
        }
    }

    /// `ikcp_update`; every datagram it emits goes to `send`, in order.
    pub fn update(&mut self, now_ms: u32, send: impl FnMut(&[u8])) {
        let kcp = self.kcp;
        // SAFETY: valid block.
        self.with_sink(send, || unsafe { ffi::ikcp_update(kcp, now_ms) })
    }

    /// `ikcp_flush`; every datagram it emits goes to `send`, in order.
    pub fn flush(&mut self, send: impl FnMut(&[u8])) {
        let kcp = self.kcp;
        // SAFETY: valid block.
        self.with_sink(send, || unsafe { ffi::ikcp_flush(kcp) })
    }

    fn with_sink(&mut self, mut send: impl FnMut(&[u8]), call: impl FnOnce()) {
        let sink: &mut dyn FnMut(&[u8]) = &mut send;
        // SAFETY: only the lifetime is erased; the pointer is removed below, before
        // `send` goes out of scope, and ikcp.c does not keep it.
        let sink: SinkPtr = unsafe { std::mem::transmute(sink as *mut dyn FnMut(&[u8])) };
        self.output.sink = Some(sink);
        call();
        self.output.sink = None;
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
}

impl Drop for ReferenceKcp {
    fn drop(&mut self) {
        // SAFETY: created by ikcp_create, released once.
        unsafe { ffi::ikcp_release(self.kcp) }
    }
}
