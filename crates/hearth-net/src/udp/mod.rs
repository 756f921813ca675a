//! One UDP socket with batched I/O: recvmmsg and GRO on receive; on send, GSO
//! for runs of datagrams to one address (through quinn-udp) and sendmmsg for
//! datagrams to many (a server's heartbeats: one system call for a batch
//! instead of one each), plain calls elsewhere.

mod send_many;
mod steer;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one GRO-coalesced receive.
const RECV_BUF: usize = 64 * 1024;
/// Runs queued before a flush is forced, and bytes (one GSO run is at most 64,000).
const MAX_RUNS: usize = 64;
const MAX_PENDING: usize = 256 * 1024;

/// Consecutive queued datagrams to one address, all of `size` bytes but the
/// last (which may be shorter): one GSO call, or one message of a sendmmsg.
#[derive(Debug, Clone, Copy)]
struct Run {
    to: SocketAddr,
    start: usize,
    len: usize,
    size: usize,
    count: usize,
}

pub struct BatchSocket {
    io: UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    /// The bytes of every queued datagram, back to back, in `runs`' order.
    pending: Vec<u8>,
    runs: Vec<Run>,
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
            runs: Vec::with_capacity(MAX_RUNS),
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

    /// Queues a datagram; consecutive ones to one address are coalesced for
    /// GSO, and runs to different addresses go out together. Call
    /// [`BatchSocket::flush`] when done.
    pub async fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        let max_segments = self.state.max_gso_segments();
        if let Some(run) = self.runs.last_mut() {
            let joins = run.to == to
                && bytes.len() <= run.size
                && run.count < max_segments
                && run.len + bytes.len() <= 64_000
                // Only the last segment may be shorter.
                && run.len == run.size * run.count;
            if joins {
                self.pending.extend_from_slice(bytes);
                run.len += bytes.len();
                run.count += 1;
                return Ok(());
            }
        }
        if self.runs.len() >= MAX_RUNS || self.pending.len() + bytes.len() > MAX_PENDING {
            self.flush().await?;
        }
        self.runs.push(Run {
            to,
            start: self.pending.len(),
            len: bytes.len(),
            size: bytes.len(),
            count: 1,
        });
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Sends what [`BatchSocket::send`] queued, in order: single datagrams to
    /// different addresses by sendmmsg where there is one, GSO runs each in
    /// one call.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut next = 0;
        while next < self.runs.len() {
            let singles = self.runs[next..]
                .iter()
                .take_while(|run| run.count == 1)
                .count();
            if singles > 1 && send_many::SUPPORTED {
                self.send_singles(next, singles).await;
                next += singles;
            } else {
                let run = self.runs[next];
                self.send_run(run).await;
                next += 1;
            }
        }
        self.runs.clear();
        self.pending.clear();
        Ok(())
    }

    /// One run through quinn-udp (GSO when it has several segments).
    async fn send_run(&mut self, run: Run) {
        let transmit = Transmit {
            destination: run.to,
            ecn: None,
            contents: &self.pending[run.start..run.start + run.len],
            segment_size: (run.count > 1).then_some(run.size),
            src_ip: None,
        };
        let result = loop {
            match self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.io.writable().await {
                        break Err(e);
                    }
                }
                other => break other,
            }
        };
        // A datagram the network refuses (unreachable peer, too large) must not
        // stop the socket serving everyone else.
        if let Err(e) = result {
            tracing::debug!("udp send to {} failed: {e}", run.to);
        }
    }

    /// `count` single-datagram runs from `first`, in as few sendmmsg calls
    /// as the kernel takes; a datagram it refuses is skipped, as `send_run`
    /// skips one.
    async fn send_singles(&mut self, first: usize, count: usize) {
        let mut done = 0;
        while done < count {
            let batch = &self.runs[first + done..first + count];
            let pending = &self.pending;
            let result = self.io.try_io(Interest::WRITABLE, || {
                send_many::send(
                    &self.io,
                    batch
                        .iter()
                        .map(|run| (run.to, &pending[run.start..run.start + run.len])),
                )
            });
            match result {
                Ok(sent) => done += sent.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.io.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!("udp send to {} failed: {e}", batch[0].to);
                    done += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flush_delivers_datagrams_to_many_addresses_and_runs_to_one() {
        let mut sender = BatchSocket::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut receivers = Vec::new();
        for _ in 0..100 {
            receivers.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        // One datagram to each of 100 addresses (sendmmsg batches), then a
        // run of five to the first (GSO), then one more to each again.
        for (index, receiver) in receivers.iter().enumerate() {
            let to = receiver.local_addr().unwrap();
            sender.send(to, &[index as u8; 40]).await.unwrap();
        }
        let first = receivers[0].local_addr().unwrap();
        for segment in 0..5u8 {
            sender.send(first, &[200 + segment; 100]).await.unwrap();
        }
        for (index, receiver) in receivers.iter().enumerate() {
            let to = receiver.local_addr().unwrap();
            sender.send(to, &[index as u8; 20]).await.unwrap();
        }
        sender.flush().await.unwrap();
        let mut buf = [0u8; 2048];
        for (index, receiver) in receivers.iter().enumerate() {
            let mut expected = vec![vec![index as u8; 40]];
            if index == 0 {
                expected.extend((0..5u8).map(|s| vec![200 + s; 100]));
            }
            expected.push(vec![index as u8; 20]);
            for want in expected {
                let len = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    receiver.recv(&mut buf),
                )
                .await
                .expect("delivered")
                .unwrap();
                assert_eq!(&buf[..len], &want[..], "receiver {index}, in order");
            }
        }
    }
}
