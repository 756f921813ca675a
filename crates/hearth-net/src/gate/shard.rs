//! One gate shard's task: owns its protocol endpoint (the sessions whose ids
//! name this shard) and its own UDP socket on the shared port, takes stream
//! packets, forwarded datagrams and commands from its queue, fires timers,
//! hands events to its handler and sends what the endpoint produced.
//!
//! A datagram that arrives on this shard's socket but names a session of
//! another shard (a client whose address changed hashes to another socket)
//! is forwarded to that shard's queue; a full queue drops it, counted, as a
//! congested network would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::{close_code, Server, ShardSet, StreamId, Transmit};
use tokio::sync::{mpsc, oneshot};

use super::outbox::{OutboxSender, PushError};
use super::streams::Shared;
use super::{CutReason, GateCtx, Handler, Input};
use crate::conditioner::{DatagramConditioner, LinkImpairment};
use crate::udp::BatchSocket;

/// Inputs taken per wakeup before the socket and timers get a turn.
const INPUT_BURST: usize = 256;
/// Receive batches per wakeup (each up to 32 datagrams).
const UDP_BURST: usize = 8;
const STATS_EVERY: Duration = Duration::from_millis(100);
/// Datagrams forwarded to one shard and not yet handled there, at most, in
/// entries and in bytes; beyond, they are dropped and counted.
const FORWARD_ENTRIES: usize = 8192;
const FORWARD_BYTES: usize = 8 << 20;

/// What is in flight towards one shard from the others.
#[derive(Default)]
pub(crate) struct ForwardQueue {
    entries: AtomicUsize,
    bytes: AtomicUsize,
}

impl ForwardQueue {
    fn try_take(&self, entries: usize, bytes: usize) -> bool {
        let held_entries = self.entries.fetch_add(entries, Ordering::AcqRel) + entries;
        let held_bytes = self.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if held_entries > FORWARD_ENTRIES || held_bytes > FORWARD_BYTES {
            self.release(entries, bytes);
            return false;
        }
        true
    }

    fn release(&self, entries: usize, bytes: usize) {
        self.entries.fetch_sub(entries, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Everything one shard task starts with.
pub(crate) struct ShardParts<H> {
    pub index: usize,
    pub server: Server,
    pub udp: Option<BatchSocket>,
    pub impair: Option<LinkImpairment>,
    pub inputs: mpsc::Receiver<Input>,
    /// Every shard's queue (this one's too, for handlers that hand work to
    /// another thread), weak so that they do not keep each other alive once
    /// every handle is gone.
    pub peers: Vec<mpsc::WeakSender<Input>>,
    pub handler: H,
    pub shared: Arc<Shared>,
}

struct Gate<H> {
    index: usize,
    server: Server,
    set: Arc<ShardSet>,
    udp: Option<BatchSocket>,
    /// The network conditioner on the UDP side, when asked for.
    conditioner: Option<DatagramConditioner>,
    writers: HashMap<StreamId, OutboxSender>,
    handler: H,
    shared: Arc<Shared>,
    peers: Vec<mpsc::WeakSender<Input>>,
    /// Datagrams for other shards, gathered over one receive burst.
    forward: Vec<Vec<(SocketAddr, Vec<u8>)>>,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    stopped: bool,
}

pub(crate) async fn run<H: Handler>(parts: ShardParts<H>) {
    let ShardParts {
        index,
        server,
        udp,
        impair,
        mut inputs,
        peers,
        handler,
        shared,
    } = parts;
    let set = server.shard().set.clone();
    let mut gate = Gate {
        index,
        forward: vec![Vec::new(); peers.len()],
        server,
        set,
        udp,
        conditioner: impair.map(|i| conditioner_for(i, index)),
        writers: HashMap::new(),
        handler,
        shared,
        peers,
        shutdown: None,
        stopped: false,
    };
    let mut last_stats = Instant::now();
    while !gate.stopped {
        let wake = gate
            .server
            .poll_timeout()
            .into_iter()
            .chain(gate.conditioner.as_ref().and_then(|c| c.next_due()))
            .chain(gate.handler.wake_at())
            .min()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { break };
                gate.on_input(input);
                for _ in 0..INPUT_BURST {
                    match inputs.try_recv() {
                        Ok(input) => gate.on_input(input),
                        Err(_) => break,
                    }
                }
            }
            ready = readable(gate.udp.as_ref()) => {
                if ready.is_ok() {
                    gate.receive_datagrams();
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if let Some(conditioner) = gate.conditioner.as_mut() {
            let mut arrived = Vec::new();
            while let Some(datagram) = conditioner.inbound.poll(now) {
                arrived.push(datagram);
            }
            for (from, bytes) in arrived {
                gate.route(now, from, &bytes);
            }
            gate.send_forwarded();
        }
        if gate.server.poll_timeout().is_some_and(|t| t <= now) {
            gate.server.handle_timeout(now);
        }
        gate.settle().await;
        if gate.handler.wake_at().is_some_and(|t| t <= now) {
            gate.wake_handler();
            gate.settle().await;
        }
        if now.duration_since(last_stats) >= STATS_EVERY {
            last_stats = now;
            gate.publish_stats();
        }
        gate.check_shutdown(now);
    }
    gate.publish_stats();
}

/// Each shard's conditioner draws its own randomness from the run's seed.
fn conditioner_for(impair: LinkImpairment, shard: usize) -> DatagramConditioner {
    let seed = impair.seed.wrapping_add(shard as u64);
    DatagramConditioner::new(impair.up, impair.down, seed)
}

async fn readable(udp: Option<&BatchSocket>) -> std::io::Result<()> {
    match udp {
        Some(socket) => socket.readable().await,
        None => std::future::pending().await,
    }
}

impl<H: Handler> Gate<H> {
    fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::StreamOpened { id, writer, peer } => {
                if self.shutdown.is_some() {
                    self.shared.metrics.count_cut(CutReason::Overloaded);
                    writer.close();
                    return;
                }
                self.writers.insert(id, writer);
                self.server.stream_opened(now, id, peer);
            }
            Input::StreamPacket { id, packet } => {
                if self.writers.contains_key(&id) {
                    self.server.handle_stream(now, id, &packet);
                }
            }
            Input::StreamClosed { id } => {
                if self.writers.remove(&id).is_some() {
                    self.server.stream_closed(now, id);
                }
            }
            Input::Datagrams(datagrams) => {
                // Routed here by the shard they arrived at: handled here
                // whatever they say, so nothing is passed back and forth.
                let bytes: usize = datagrams.iter().map(|(_, b)| b.len()).sum();
                self.shared.forward[self.index].release(datagrams.len(), bytes);
                for (from, bytes) in datagrams {
                    self.server.handle(now, from, &bytes);
                }
            }
            Input::Impair(impair) => {
                self.conditioner = impair.map(|i| conditioner_for(i, self.index));
            }
            Input::Run(command) => {
                let mut ctx = GateCtx {
                    server: &mut self.server,
                    now,
                    shards: &self.peers,
                    metrics: &self.shared.metrics,
                };
                command(&mut ctx);
            }
            Input::Shutdown { reason, done } => {
                let ids: Vec<u64> = self.server.session_ids().collect();
                tracing::info!(
                    shard = self.index,
                    sessions = ids.len(),
                    "gate shard shutting down: {reason}"
                );
                for id in ids {
                    self.server
                        .close(now, id, close_code::SERVER_SHUTDOWN, &reason);
                }
                let linger = Duration::from_millis(1500);
                self.shutdown = Some((now + linger, done));
            }
        }
    }

    /// A datagram that arrived here: handled here, or queued for its shard.
    fn route(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        route(
            &self.set,
            self.index,
            &mut self.server,
            &mut self.forward,
            now,
            from,
            bytes,
        );
    }

    fn receive_datagrams(&mut self) {
        let Some(udp) = self.udp.as_mut() else { return };
        let server = &mut self.server;
        let conditioner = &mut self.conditioner;
        let forward = &mut self.forward;
        let set = &self.set;
        let index = self.index;
        let now = Instant::now();
        let mut total = 0;
        for _ in 0..UDP_BURST {
            let received = udp.try_recv_batch(|from, bytes| match conditioner.as_mut() {
                Some(conditioner) => conditioner.inbound.push(now, (from, bytes.to_vec())),
                None => route(set, index, server, forward, now, from, bytes),
            });
            match received {
                Ok(count) => total += count,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors surface here on some systems; they concern one peer.
                    tracing::debug!("udp receive error: {e}");
                    break;
                }
            }
        }
        self.shared
            .metrics
            .udp_datagrams_in
            .fetch_add(total as u64, Ordering::Relaxed);
        self.send_forwarded();
    }

    /// Hands each other shard what this one received for it, one message
    /// per shard per burst; never waits.
    fn send_forwarded(&mut self) {
        for (shard, batch) in self.forward.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let batch = std::mem::take(batch);
            let count = batch.len() as u64;
            let bytes: usize = batch.iter().map(|(_, b)| b.len()).sum();
            let queue = &self.shared.forward[shard];
            let sent = queue.try_take(batch.len(), bytes)
                && match self.peers[shard].upgrade() {
                    Some(peer) => match peer.try_send(Input::Datagrams(batch)) {
                        Ok(()) => true,
                        Err(_) => {
                            queue.release(count as usize, bytes);
                            false
                        }
                    },
                    None => {
                        queue.release(count as usize, bytes);
                        false
                    }
                };
            let metrics = &self.shared.metrics;
            if sent {
                metrics.udp_forwarded.fetch_add(count, Ordering::Relaxed);
            } else {
                metrics
                    .udp_forward_dropped
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    /// Lets the handler retry what it holds (see `Handler::wake_at`).
    fn wake_handler(&mut self) {
        let mut ctx = GateCtx {
            server: &mut self.server,
            now: Instant::now(),
            shards: &self.peers,
            metrics: &self.shared.metrics,
        };
        self.handler.on_wake(&mut ctx);
    }

    /// Delivers events and sends transmits until the endpoint has nothing left:
    /// handlers and closed streams can produce more of both.
    async fn settle(&mut self) {
        loop {
            let mut progressed = false;
            while let Some((id, event)) = self.server.poll_event() {
                progressed = true;
                let mut ctx = GateCtx {
                    server: &mut self.server,
                    now: Instant::now(),
                    shards: &self.peers,
                    metrics: &self.shared.metrics,
                };
                self.handler.on_event(&mut ctx, id, event);
            }
            while let Some(transmit) = self.server.poll_transmit() {
                progressed = true;
                self.transmit(transmit).await;
            }
            if !progressed {
                break;
            }
        }
        if let (Some(conditioner), Some(udp)) = (self.conditioner.as_mut(), self.udp.as_mut()) {
            while let Some((to, bytes)) = conditioner.outbound.poll(Instant::now()) {
                let _ = udp.send(to, &bytes).await;
            }
        }
        if let Some(udp) = self.udp.as_mut() {
            let _ = udp.flush().await;
        }
    }

    async fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Datagram { to, bytes } => {
                if let Some(udp) = self.udp.as_mut() {
                    self.shared
                        .metrics
                        .udp_datagrams_out
                        .fetch_add(1, Ordering::Relaxed);
                    match self.conditioner.as_mut() {
                        Some(conditioner) => conditioner.outbound.push(Instant::now(), (to, bytes)),
                        None => {
                            let _ = udp.send(to, &bytes).await;
                        }
                    }
                }
            }
            Transmit::Stream { stream, bytes } => {
                let Some(writer) = self.writers.get(&stream) else {
                    return;
                };
                match writer.push(bytes) {
                    Ok(()) => {}
                    Err(PushError::Full) => {
                        // Dropping a packet would break the stream's ordering
                        // promise; the client that cannot keep up loses the link.
                        self.shared.metrics.count_cut(CutReason::SlowConsumer);
                        tracing::debug!(?stream, "closing stream: client too slow to read");
                        self.writers.remove(&stream);
                        self.server.stream_closed(Instant::now(), stream);
                    }
                    Err(PushError::Closed) => {
                        // The connection's task has ended, but what it read
                        // before is still in this shard's queue, ahead of its
                        // `StreamClosed`: often the peer's Close frame, the
                        // very reason the connection ended. Closing the
                        // stream now would drop those packets and leave the
                        // session waiting for a resume; it closes, in order,
                        // when `StreamClosed` arrives. Nothing can be written
                        // any more, so this packet is dropped with the link.
                    }
                }
            }
            Transmit::CloseStream { stream } => {
                if let Some(writer) = self.writers.remove(&stream) {
                    writer.close();
                }
            }
        }
    }

    fn publish_stats(&self) {
        let metrics = &self.shared.metrics;
        metrics.set_endpoint(self.index, self.server.stats());
        metrics
            .sessions_live
            .store(self.server.total_sessions() as u64, Ordering::Relaxed);
    }

    fn check_shutdown(&mut self, now: Instant) {
        let Some((deadline, _)) = &self.shutdown else {
            return;
        };
        if self.server.session_count() == 0 || now >= *deadline {
            for (_, writer) in self.writers.drain() {
                writer.close();
            }
            if let Some((_, done)) = self.shutdown.take() {
                let _ = done.send(());
            }
            self.stopped = true;
        }
    }
}

/// Handles a datagram on shard `index`, or queues it in `forward` for the
/// shard that owns the session it names.
fn route(
    set: &ShardSet,
    index: usize,
    server: &mut Server,
    forward: &mut [Vec<(SocketAddr, Vec<u8>)>],
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
) {
    match set.datagram_shard(bytes) {
        Some(shard) if shard != index => forward[shard].push((from, bytes.to_vec())),
        _ => server.handle(now, from, bytes),
    }
}
