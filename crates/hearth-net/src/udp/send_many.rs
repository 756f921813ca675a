//! sendmmsg(2): many datagrams, to as many addresses, in one system call.
//! A server answering thousands of idle sessions' heartbeats sends one
//! datagram to each; one call per datagram would be most of its work.

use std::io;
use std::net::SocketAddr;

/// Datagrams handed to the kernel in one call at most.
const MAX_BATCH: usize = 64;

pub(super) const SUPPORTED: bool = cfg!(target_os = "linux");

/// Sends up to [`MAX_BATCH`] of `datagrams` in one call and returns how many
/// the kernel took (at least one), or the error of the first.
#[cfg(target_os = "linux")]
pub(super) fn send<'a>(
    socket: &tokio::net::UdpSocket,
    datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let items: Vec<(socket2::SockAddr, &[u8])> = datagrams
        .take(MAX_BATCH)
        .map(|(to, bytes)| (socket2::SockAddr::from(to), bytes))
        .collect();
    let mut iovecs: Vec<libc::iovec> = items
        .iter()
        .map(|(_, bytes)| libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = items
        .iter()
        .zip(iovecs.iter_mut())
        .map(|((to, _), iov)| {
            // SAFETY: msghdr is plain data; all-zero is its empty value.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_name = to.as_ptr() as *mut libc::c_void;
            header.msg_namelen = to.len();
            header.msg_iov = iov as *mut libc::iovec;
            header.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: every header points at an address, an iovec and bytes that
    // live until this call returns; the count matches the array.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as libc::c_uint,
            0,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn send<'a>(
    _socket: &tokio::net::UdpSocket,
    _datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sendmmsg is Linux's",
    ))
}
