use std::time::{Duration, Instant};

/// Milliseconds since the program started, wrapping like KCP's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now_ms(&self) -> u32 {
        self.0.elapsed().as_millis() as u32
    }

    /// How long to wait for a datagram before `deadline_ms` (at least 1 ms, at most 10).
    pub fn wait_until(&self, deadline_ms: u32) -> Duration {
        let wait = deadline_ms.wrapping_sub(self.now_ms()) as i32;
        Duration::from_millis(wait.clamp(1, 10) as u64)
    }
}
