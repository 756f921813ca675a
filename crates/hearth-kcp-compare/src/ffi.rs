//! The parts of ikcp.h we use. The library itself is compiled and linked by the
//! `kcp-sys` crate (whose own raw bindings are private); this mirrors the classic
//! release's `struct IKCPCB` that kcp-sys ships, so that tests can set the fields
//! test.cpp sets directly (`rx_minrto`, `fastresend`).

use std::ffi::{c_char, c_int, c_long, c_void};

pub type OutputFn = unsafe extern "C" fn(*const c_char, c_int, *mut IkcpCb, *mut c_void) -> c_int;

#[repr(C)]
pub struct QueueHead {
    next: *mut QueueHead,
    prev: *mut QueueHead,
}

#[repr(C)]
pub struct IkcpCb {
    pub conv: u32,
    pub mtu: u32,
    pub mss: u32,
    pub state: u32,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub ts_recent: u32,
    pub ts_lastack: u32,
    pub ssthresh: u32,
    pub rx_rttval: i32,
    pub rx_srtt: i32,
    pub rx_rto: i32,
    pub rx_minrto: i32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub rmt_wnd: u32,
    pub cwnd: u32,
    pub probe: u32,
    pub current: u32,
    pub interval: u32,
    pub ts_flush: u32,
    pub xmit: u32,
    pub nrcv_buf: u32,
    pub nsnd_buf: u32,
    pub nrcv_que: u32,
    pub nsnd_que: u32,
    pub nodelay: u32,
    pub updated: u32,
    pub ts_probe: u32,
    pub probe_wait: u32,
    pub dead_link: u32,
    pub incr: u32,
    pub snd_queue: QueueHead,
    pub rcv_queue: QueueHead,
    pub snd_buf: QueueHead,
    pub rcv_buf: QueueHead,
    pub acklist: *mut u32,
    pub ackcount: u32,
    pub ackblock: u32,
    pub user: *mut c_void,
    pub buffer: *mut c_char,
    pub fastresend: c_int,
    pub fastlimit: c_int,
    pub nocwnd: c_int,
    pub stream: c_int,
    pub logmask: c_int,
    pub output: Option<OutputFn>,
    pub writelog: Option<unsafe extern "C" fn(*const c_char, *mut IkcpCb, *mut c_void)>,
}

extern "C" {
    pub fn ikcp_create(conv: u32, user: *mut c_void) -> *mut IkcpCb;
    pub fn ikcp_release(kcp: *mut IkcpCb);
    pub fn ikcp_recv(kcp: *mut IkcpCb, buffer: *mut c_char, len: c_int) -> c_int;
    pub fn ikcp_send(kcp: *mut IkcpCb, buffer: *const c_char, len: c_int) -> c_int;
    pub fn ikcp_update(kcp: *mut IkcpCb, current: u32);
    pub fn ikcp_check(kcp: *const IkcpCb, current: u32) -> u32;
    pub fn ikcp_input(kcp: *mut IkcpCb, data: *const c_char, size: c_long) -> c_int;
    pub fn ikcp_flush(kcp: *mut IkcpCb);
    pub fn ikcp_peeksize(kcp: *const IkcpCb) -> c_int;
    pub fn ikcp_setmtu(kcp: *mut IkcpCb, mtu: c_int) -> c_int;
    pub fn ikcp_wndsize(kcp: *mut IkcpCb, sndwnd: c_int, rcvwnd: c_int) -> c_int;
    pub fn ikcp_nodelay(
        kcp: *mut IkcpCb,
        nodelay: c_int,
        interval: c_int,
        resend: c_int,
        nc: c_int,
    ) -> c_int;
    pub fn ikcp_waitsnd(kcp: *const IkcpCb) -> c_int;
}
