//! The gate task: owns the protocol endpoint and the UDP socket, takes stream
//! packets and commands from a queue, fires timers, hands events to the
//! handler and sends what the endpoint produced.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_proto::{close_code, Server, StreamId, Transmit};
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

struct Gate<H> {
    server: Server,
    udp: Option<BatchSocket>,
    /// The network conditioner on the UDP side, when asked for.
    conditioner: Option<DatagramConditioner>,
    writers: HashMap<StreamId, OutboxSender>,
    handler: H,
    shared: Arc<Shared>,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    stopped: bool,
}

pub(crate) async fn run<H: Handler>(
    server: Server,
    udp: Option<BatchSocket>,
    impair: Option<LinkImpairment>,
    mut inputs: mpsc::Receiver<Input>,
    handler: H,
    shared: Arc<Shared>,
) {
    let mut gate = Gate {
        server,
        udp,
        conditioner: impair.map(|i| DatagramConditioner::new(i.up, i.down, i.seed)),
        writers: HashMap::new(),
        handler,
        shared,
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
            while let Some((from, bytes)) = conditioner.inbound.poll(now) {
                gate.server.handle(now, from, &bytes);
            }
        }
        if gate.server.poll_timeout().is_some_and(|t| t <= now) {
            gate.server.handle_timeout(now);
        }
        gate.settle().await;
        if now.duration_since(last_stats) >= STATS_EVERY {
            last_stats = now;
            gate.publish_stats();
        }
        gate.check_shutdown(now);
    }
    gate.publish_stats();
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
            Input::Impair(impair) => {
                self.conditioner = impair.map(|i| DatagramConditioner::new(i.up, i.down, i.seed));
            }
            Input::Run(command) => {
                let mut ctx = GateCtx {
                    server: &mut self.server,
                    now,
                };
                command(&mut ctx);
            }
            Input::Shutdown { reason, done } => {
                let ids: Vec<u64> = self.server.session_ids().collect();
                tracing::info!(sessions = ids.len(), "gate shutting down: {reason}");
                for id in ids {
                    self.server
                        .close(now, id, close_code::SERVER_SHUTDOWN, &reason);
                }
                let linger = Duration::from_millis(1500);
                self.shutdown = Some((now + linger, done));
            }
        }
    }

    fn receive_datagrams(&mut self) {
        let Some(udp) = self.udp.as_mut() else { return };
        let server = &mut self.server;
        let conditioner = &mut self.conditioner;
        let now = Instant::now();
        let mut total = 0;
        for _ in 0..UDP_BURST {
            let received = udp.try_recv_batch(|from, bytes| match conditioner.as_mut() {
                Some(conditioner) => conditioner.inbound.push(now, (from, bytes.to_vec())),
                None => server.handle(now, from, bytes),
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
                        self.writers.remove(&stream);
                        self.server.stream_closed(Instant::now(), stream);
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
        metrics.set_endpoint(self.server.stats());
        metrics
            .sessions_live
            .store(self.server.session_count() as u64, Ordering::Relaxed);
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
