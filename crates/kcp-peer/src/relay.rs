//! A UDP relay that drops a share of datagrams each way, deterministically for a seed:
//! the lossy network between a client and a server on one machine.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hearth_kcp::sim::SimRng;

pub struct LossyRelay {
    /// Where clients send to.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl LossyRelay {
    /// Relays between whoever talks to the returned address and `upstream`.
    pub fn spawn(upstream: SocketAddr, loss_percent: u32, seed: u64) -> std::io::Result<Self> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        back.connect(upstream)?;
        front.set_nonblocking(true)?;
        back.set_nonblocking(true)?;
        let addr = front.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, dropped, forwarded) = (stop.clone(), dropped.clone(), forwarded.clone());
            std::thread::spawn(move || {
                let mut rng = SimRng::new(seed);
                let mut client: Option<SocketAddr> = None;
                let mut buffer = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let mut idle = true;
                    while let Ok((len, from)) = front.recv_from(&mut buffer) {
                        idle = false;
                        client = Some(from);
                        if rng.percent(loss_percent) {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        } else if back.send(&buffer[..len]).is_ok() {
                            forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    while let Ok(len) = back.recv(&mut buffer) {
                        idle = false;
                        if rng.percent(loss_percent) {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        } else if let Some(client) = client {
                            if front.send_to(&buffer[..len], client).is_ok() {
                                forwarded.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if idle {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            dropped,
            forwarded,
            thread: Some(thread),
        })
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
