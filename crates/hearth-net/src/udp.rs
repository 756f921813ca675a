//! One UDP socket with batched I/O: recvmmsg and GRO on receive, GSO on send
//! where the kernel offers them (through quinn-udp), plain calls elsewhere.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one GRO-coalesced receive.
const RECV_BUF: usize = 64 * 1024;

pub struct BatchSocket {
    io: UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    /// Consecutive datagrams to one address and of one size, sent as one GSO call.
    pending: Vec<u8>,
    pending_to: Option<SocketAddr>,
    pending_size: usize,
    pending_count: usize,
}

impl BatchSocket {
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::from_tokio(UdpSocket::bind(addr).await?)
    }

    /// Binds with SO_REUSEPORT, so that several sockets (one per gate shard)
    /// share `addr` and the kernel spreads clients over them by address.
    pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Self::from_tokio(UdpSocket::from_std(socket.into())?)
    }

    pub fn from_tokio(io: UdpSocket) -> io::Result<Self> {
        let state = UdpSocketState::new((&io).into())?;
        // Large kernel buffers ride out bursts; failures here are not fatal.
        let _ = state.set_recv_buffer_size((&io).into(), 4 << 20);
        let _ = state.set_send_buffer_size((&io).into(), 4 << 20);
        Ok(Self {
            io,
            state,
            bufs: (0..BATCH_SIZE).map(|_| vec![0u8; RECV_BUF]).collect(),
            meta: vec![RecvMeta::default(); BATCH_SIZE],
            pending: Vec::with_capacity(64 * 1024),
            pending_to: None,
            pending_size: 0,
            pending_count: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Waits until a receive may succeed. Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Receives one batch without waiting, calling `each(from, datagram)` per
    /// datagram. Returns how many arrived; `WouldBlock` when none were waiting.
    pub fn try_recv_batch(&mut self, mut each: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        let Self {
            io,
            state,
            bufs,
            meta,
            ..
        } = self;
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let count = io.try_io(Interest::READABLE, || {
            state.recv((&*io).into(), &mut slices, meta)
        })?;
        let mut datagrams = 0;
        for (meta, buf) in meta.iter().zip(slices.iter()).take(count) {
            let stride = meta.stride.max(1);
            for segment in buf[..meta.len].chunks(stride) {
                each(meta.addr, segment);
                datagrams += 1;
            }
        }
        Ok(datagrams)
    }

    /// Queues a datagram; consecutive ones to one address are coalesced for GSO.
    /// Call [`BatchSocket::flush`] when done.
    pub async fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        let max_segments = self.state.max_gso_segments();
        let joins = self.pending_to == Some(to)
            && bytes.len() <= self.pending_size
            && self.pending_count < max_segments
            && self.pending.len() + bytes.len() <= 64_000
            // Only the last segment may be shorter.
            && self.pending.len() == self.pending_size * self.pending_count;
        if !joins {
            self.flush().await?;
            self.pending_to = Some(to);
            self.pending_size = bytes.len();
        }
        self.pending.extend_from_slice(bytes);
        self.pending_count += 1;
        Ok(())
    }

    /// Sends what [`BatchSocket::send`] queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        let Some(to) = self.pending_to.take() else {
            return Ok(());
        };
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: &self.pending,
            segment_size: (self.pending_count > 1).then_some(self.pending_size),
            src_ip: None,
        };
        let result = loop {
            match self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.writable().await?,
                other => break other,
            }
        };
        self.pending.clear();
        self.pending_count = 0;
        // A datagram the network refuses (unreachable peer, too large) must not
        // stop the socket serving everyone else.
        match result {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                tracing::debug!("udp send to {to} failed: {e}");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
