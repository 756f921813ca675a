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

    /// Asks the kernel to deliver each protected datagram to the socket of
    /// the shard its session id names (the id's top byte, modulo `shards`),
    /// as QUIC servers steer by connection id: a classic BPF program on the
    /// SO_REUSEPORT group, whose sockets must have been bound in shard
    /// order. Anything else (handshakes) keeps the kernel's address hash.
    /// Without it (other systems), datagrams that land on the wrong shard
    /// are forwarded by the gate, at the cost of a hop.
    #[cfg(target_os = "linux")]
    pub fn steer_by_session_shard(&self, shards: usize) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Classic BPF opcodes: class | size or operation | source.
        const LD_B_ABS: u16 = 0x10 | 0x20; // BPF_LD (0) | BPF_B | BPF_ABS
        const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K (0)
        const MOD_K: u16 = 0x04 | 0x90; // BPF_ALU | BPF_MOD | BPF_K (0)
        const RET_A: u16 = 0x06 | 0x10; // BPF_RET | BPF_A
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K (0)
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut program = [
            op(LD_B_ABS, 0, 0, 0), // A = the packet type
            op(
                JEQ_K,
                0,
                3,
                u32::from(hearth_proto::handshake::kind::PROTECTED),
            ),
            op(LD_B_ABS, 0, 0, 1),          // A = the session id's top byte
            op(MOD_K, 0, 0, shards as u32), // A = its shard
            op(RET_A, 0, 0, 0),
            op(RET_K, 0, 0, u32::MAX), // out of range: the kernel's own hash
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: a valid socket descriptor and a filter program that
        // outlives the call (the kernel copies it).
        let result = unsafe {
            libc::setsockopt(
                self.io.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_REUSEPORT_CBPF,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn steer_by_session_shard(&self, _shards: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "steering datagrams to shards needs Linux's SO_ATTACH_REUSEPORT_CBPF",
        ))
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
