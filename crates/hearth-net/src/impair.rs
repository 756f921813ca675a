//! A UDP relay that makes the link bad on purpose: put it between any UDP
//! game client and its server. Each client address gets its own upstream
//! socket (the server sees one address per client, as through a NAT) and a
//! [`Conditioner`] per direction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conditioner::{Conditioner, ConditionerStats, Impairment};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    /// Client to server.
    pub upstream: Impairment,
    /// Server to client.
    pub downstream: Impairment,
    pub seed: u64,
    /// Clients relayed at once; packets from more are dropped (counted).
    pub max_clients: usize,
    /// A client silent this long in both directions is forgotten.
    pub idle: Duration,
}

impl RelayConfig {
    pub fn new(listen: SocketAddr, target: SocketAddr) -> Self {
        Self {
            listen,
            target,
            upstream: Impairment::default(),
            downstream: Impairment::default(),
            seed: 1,
            max_clients: 1024,
            idle: Duration::from_secs(60),
        }
    }
}

/// Totals over every client, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub upstream: ConditionerStats,
    pub downstream: ConditionerStats,
    /// Packets from clients beyond `max_clients`.
    pub refused_clients: u64,
}

/// What can be changed while the relay runs: every client's impairments,
/// and the relay's own address towards the server.
#[derive(Default)]
struct Control {
    impairments: Mutex<(Impairment, Impairment)>,
    /// Bumped to make every client's traffic leave from a new port: the
    /// server sees each client change address, as after a NAT rebinding.
    address_generation: std::sync::atomic::AtomicU64,
}

/// A running relay.
pub struct Relay {
    pub local_addr: SocketAddr,
    stats: Arc<Mutex<RelayStats>>,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(config: RelayConfig) -> std::io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind(config.listen).await?);
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(Mutex::new(RelayStats::default()));
        let control = Arc::new(Control {
            impairments: Mutex::new((config.upstream, config.downstream)),
            ..Control::default()
        });
        let task = tokio::spawn(listen(config, socket, stats.clone(), control.clone()));
        Ok(Self {
            local_addr,
            stats,
            control,
            task,
        })
    }

    /// New impairments for every client, from their next packet on.
    pub fn set_impairments(&self, upstream: Impairment, downstream: Impairment) {
        *self.control.impairments.lock().expect("not poisoned") = (upstream, downstream);
    }

    /// Every client's traffic to the server leaves from a new port from its
    /// next packet on (an address change, as a NAT rebinding makes one).
    pub fn change_addresses(&self) {
        self.control
            .address_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn stats(&self) -> RelayStats {
        *self.stats.lock().expect("not poisoned")
    }

    pub fn stop(self) -> RelayStats {
        self.task.abort();
        self.stats()
    }
}

/// Queued packets from one client waiting for its task.
const CLIENT_QUEUE: usize = 4096;

async fn listen(
    config: RelayConfig,
    socket: Arc<UdpSocket>,
    stats: Arc<Mutex<RelayStats>>,
    control: Arc<Control>,
) {
    let clients: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
    let mut buf = vec![0u8; 65_536];
    let mut next_seed = config.seed;
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = buf[..len].to_vec();
        let sender = {
            let mut map = clients.lock().expect("not poisoned");
            match map.get(&from) {
                Some(sender) => Some(sender.clone()),
                None if map.len() >= config.max_clients => None,
                None => {
                    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
                    map.insert(from, tx.clone());
                    // Each client's randomness is its own, drawn from the
                    // relay's seed in arrival order: a run with the same
                    // clients in the same order repeats exactly.
                    next_seed = next_seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    let task = Client {
                        config: config.clone(),
                        seed: next_seed,
                        address: from,
                        listen: socket.clone(),
                        clients: clients.clone(),
                        stats: stats.clone(),
                        control: control.clone(),
                    };
                    tokio::spawn(task.run(rx));
                    Some(tx)
                }
            }
        };
        match sender {
            Some(sender) => {
                let _ = sender.try_send(packet);
            }
            None => stats.lock().expect("not poisoned").refused_clients += 1,
        }
    }
}

/// One client's relay: its own socket towards the server, a conditioner
/// each way.
struct Client {
    config: RelayConfig,
    seed: u64,
    address: SocketAddr,
    listen: Arc<UdpSocket>,
    clients: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
    stats: Arc<Mutex<RelayStats>>,
    control: Arc<Control>,
}

impl Client {
    async fn upstream_socket(&self) -> Option<UdpSocket> {
        let bind: SocketAddr = if self.config.target.is_ipv4() {
            "0.0.0.0:0".parse().expect("valid")
        } else {
            "[::]:0".parse().expect("valid")
        };
        let socket = UdpSocket::bind(bind).await.ok()?;
        socket.connect(self.config.target).await.ok()?;
        Some(socket)
    }

    async fn run(self, mut from_client: mpsc::Receiver<Vec<u8>>) {
        use std::sync::atomic::Ordering;
        let mut generation = self.control.address_generation.load(Ordering::SeqCst);
        let Some(mut upstream) = self.upstream_socket().await else {
            self.clients
                .lock()
                .expect("not poisoned")
                .remove(&self.address);
            return;
        };
        let (up_now, down_now) = *self.control.impairments.lock().expect("not poisoned");
        let mut up = Conditioner::new(up_now, self.seed);
        let mut down = Conditioner::new(down_now, self.seed.rotate_left(32));
        let mut buf = vec![0u8; 65_536];
        let mut last_heard = Instant::now();
        let mut reported = (ConditionerStats::default(), ConditionerStats::default());
        loop {
            let due = [up.next_due(), down.next_due()].into_iter().flatten().min();
            let wake = due
                .map(Instant::from_std)
                .unwrap_or_else(|| last_heard + self.config.idle);
            enum Woke {
                FromClient(Vec<u8>),
                FromServer(Vec<u8>),
                Timer,
                Gone,
            }
            let woke = tokio::select! {
                packet = from_client.recv() => packet.map_or(Woke::Gone, Woke::FromClient),
                received = upstream.recv(&mut buf) => match received {
                    Ok(len) => Woke::FromServer(buf[..len].to_vec()),
                    Err(_) => Woke::Timer,
                },
                () = tokio::time::sleep_until(wake) => Woke::Timer,
            };
            // Changes made while the relay runs apply from this packet on.
            let (up_now, down_now) = *self.control.impairments.lock().expect("not poisoned");
            up.set_impairment(up_now);
            down.set_impairment(down_now);
            let current = self.control.address_generation.load(Ordering::SeqCst);
            if current != generation {
                if let Some(fresh) = self.upstream_socket().await {
                    upstream = fresh;
                    generation = current;
                }
            }
            match woke {
                Woke::FromClient(packet) => {
                    last_heard = Instant::now();
                    up.push(last_heard.into_std(), packet);
                }
                Woke::FromServer(packet) => {
                    last_heard = Instant::now();
                    down.push(last_heard.into_std(), packet);
                }
                Woke::Timer => {}
                Woke::Gone => break,
            }
            let now = std::time::Instant::now();
            while let Some(packet) = up.poll(now) {
                let _ = upstream.send(&packet).await;
            }
            while let Some(packet) = down.poll(now) {
                let _ = self.listen.send_to(&packet, self.address).await;
            }
            if (up.stats, down.stats) != reported {
                let mut totals = self.stats.lock().expect("not poisoned");
                add(&mut totals.upstream, &up.stats, &reported.0);
                add(&mut totals.downstream, &down.stats, &reported.1);
                reported = (up.stats, down.stats);
            }
            if up.queued() == 0 && down.queued() == 0 && last_heard.elapsed() >= self.config.idle {
                break;
            }
        }
        self.clients
            .lock()
            .expect("not poisoned")
            .remove(&self.address);
    }
}

/// Adds what `now` counted since `before` to `total`.
fn add(total: &mut ConditionerStats, now: &ConditionerStats, before: &ConditionerStats) {
    total.received += now.received - before.received;
    total.delivered += now.delivered - before.delivered;
    total.dropped += now.dropped - before.dropped;
    total.duplicated += now.duplicated - before.duplicated;
    total.reordered += now.reordered - before.reordered;
    total.overflowed += now.overflowed - before.overflowed;
}
