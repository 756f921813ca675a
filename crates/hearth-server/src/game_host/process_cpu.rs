//! How much of the cores it may run on the whole process uses (the gate
//! shards, the web server and the game host together), read from
//! `/proc/self/stat`: the load that a tick's own cost does not show, such
//! as the gates opening and sealing a crowd's datagrams.

use std::time::{Duration, Instant};

/// Samples closer together than this are not taken: the kernel counts CPU
/// time in ticks of 10 ms.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// The process's CPU time between two samples.
#[derive(Debug)]
pub struct ProcessCpu {
    /// Cores this process may run on (its affinity, so a server pinned to
    /// one core is busy at one core's worth).
    cores: u64,
    /// The last sample: when, and the CPU time used by then in clock ticks.
    last: Option<(Instant, u64)>,
}

impl ProcessCpu {
    pub fn new() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            last: None,
        }
    }

    /// The share of its cores the process used since the last sample, in
    /// thousandths; `None` for the first sample, one taken too soon after
    /// the last, or where `/proc` cannot be read.
    pub fn sample(&mut self, now: Instant) -> Option<u64> {
        if let Some((at, _)) = self.last {
            if now.duration_since(at) < MIN_INTERVAL {
                return None;
            }
        }
        let ticks = cpu_ticks()?;
        let (at, before) = self.last.replace((now, ticks))?;
        let wall_ticks = now.duration_since(at).as_secs_f64() * CLOCK_TICKS_PER_S;
        let used = ticks.saturating_sub(before) as f64;
        Some((used * 1000.0 / (wall_ticks * self.cores as f64)) as u64)
    }
}

impl Default for ProcessCpu {
    fn default() -> Self {
        Self::new()
    }
}

/// `USER_HZ`: 100 on every Linux the project runs on.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// User and system CPU time of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. utime and stime are fields 14 and 15 (11 and 12 here).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_shows_as_used_cpu() {
        let mut cpu = ProcessCpu::new();
        let start = Instant::now();
        assert_eq!(
            cpu.sample(start),
            None,
            "the first sample has nothing before it"
        );
        // Spin for 600 ms: at least this thread's worth of one core.
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(600) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = cpu.sample(Instant::now()).expect("a sample");
        // A fifth of it, at least, however loaded the machine running the
        // tests is.
        let least = 1000 / cpu.cores / 5;
        assert!(used >= least, "{used} thousandths of {} cores", cpu.cores);
        assert_eq!(cpu.sample(Instant::now()), None, "too soon");
    }
}
