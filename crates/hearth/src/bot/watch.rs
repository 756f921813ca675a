//! `hearth bot --watch-pid PID`: what the run cost the server, read from
//! `/proc` (the server must run on this machine): CPU from the end of the
//! ramp to the end of the run, when every bot is in and playing, and the
//! largest resident memory seen, sampled every second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// CPU seconds the process has used (utime + stime, in clock ticks of 10 ms).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    Some(kib.split_whitespace().next()?.parse::<u64>().ok()? * 1024)
}

pub struct ServerWatch {
    pid: u32,
    /// CPU seconds and time when the steady window began.
    steady_from: Arc<std::sync::Mutex<Option<(f64, Instant)>>>,
    rss_max: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl ServerWatch {
    /// Fails at once when the process cannot be read, rather than after the run.
    pub fn start(pid: u32, ramp_ends: Instant) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cpu_seconds(pid).is_some() && rss_bytes(pid).is_some(),
            "--watch-pid {pid}: cannot read /proc/{pid} (is the server running on this machine?)"
        );
        let steady_from = Arc::new(std::sync::Mutex::new(None));
        let rss_max = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (steady_from, rss_max) = (steady_from.clone(), rss_max.clone());
            tokio::spawn(async move {
                loop {
                    if let Some(rss) = rss_bytes(pid) {
                        rss_max.fetch_max(rss, Ordering::Relaxed);
                    }
                    {
                        let mut from = steady_from.lock().expect("not poisoned");
                        if from.is_none() && Instant::now() >= ramp_ends {
                            *from = cpu_seconds(pid).map(|cpu| (cpu, Instant::now()));
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        Ok(Self {
            pid,
            steady_from,
            rss_max,
            sampler,
        })
    }

    /// The server's figures; `connected` bots share its memory.
    pub fn finish(self, connected: usize) -> Value {
        self.sampler.abort();
        let steady = *self.steady_from.lock().expect("not poisoned");
        let cores = match (steady, cpu_seconds(self.pid)) {
            (Some((before, since)), Some(after)) if since.elapsed() >= Duration::from_secs(1) => {
                Some((after - before) / since.elapsed().as_secs_f64())
            }
            _ => None,
        };
        let rss = self.rss_max.load(Ordering::Relaxed);
        json!({
            "pid": self.pid,
            "cpu_cores_after_ramp": cores,
            "rss_max_bytes": rss,
            "rss_per_connected_bot_bytes": if connected > 0 { Some(rss / connected as u64) } else { None },
        })
    }
}
