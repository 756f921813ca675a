//! What a bot run measured: counts, failure reasons, HDR histograms of login
//! time and round trip, traffic both ways; printed as a table or JSON.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::terminal_text::escaped;

/// Everything the bots report, merged as they finish.
pub struct Tally {
    pub started: usize,
    pub connected: usize,
    pub failed: BTreeMap<String, usize>,
    /// Errors after login (disconnects, malformed world messages), by kind.
    pub errors: BTreeMap<String, usize>,
    /// Microseconds from starting to connect until in the world.
    pub login_us: Histogram<u64>,
    /// Microseconds, the session's smoothed RTT sampled once a second per bot.
    pub rtt_us: Histogram<u64>,
    /// When the ramp ends and the run: what comes between is the measured
    /// window of the figures "after the ramp", when every bot is in.
    pub window: Option<(Instant, Instant)>,
    /// Microseconds, each bot's latest heartbeat round trip (unsmoothed),
    /// sampled once a second per bot after the ramp.
    pub rtt_after_ramp_us: Histogram<u64>,
    /// Bytes the bots received after the ramp (sampled once a second).
    pub bytes_in_after_ramp: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub moves: u64,
    pub chats: u64,
}

impl Default for Tally {
    fn default() -> Self {
        // Three significant figures from 1 µs to an hour.
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Self {
            started: 0,
            connected: 0,
            failed: BTreeMap::new(),
            errors: BTreeMap::new(),
            login_us: histogram(),
            rtt_us: histogram(),
            window: None,
            rtt_after_ramp_us: histogram(),
            bytes_in_after_ramp: 0,
            messages_in: 0,
            messages_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            moves: 0,
            chats: 0,
        }
    }
}

impl Tally {
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }

    pub fn record_login(&mut self, took: Duration) {
        let _ = self.login_us.record((took.as_micros() as u64).max(1));
    }

    pub fn record_rtt(&mut self, rtt: Duration) {
        let _ = self.rtt_us.record((rtt.as_micros() as u64).max(1));
    }

    /// The run is past its ramp at `now`.
    pub fn after_ramp(&self, now: Instant) -> bool {
        self.window.is_some_and(|(ramp_ends, _)| now >= ramp_ends)
    }

    /// A bot's sample taken after the ramp: its latest round trip, and the
    /// bytes it received since its last sample.
    pub fn record_after_ramp(&mut self, latest_rtt: Option<Duration>, bytes_in: u64) {
        if let Some(rtt) = latest_rtt {
            let _ = self
                .rtt_after_ramp_us
                .record((rtt.as_micros() as u64).max(1));
        }
        self.bytes_in_after_ramp += bytes_in;
    }

    fn percentiles(histogram: &Histogram<u64>) -> Value {
        if histogram.is_empty() {
            return Value::Null;
        }
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        json!({
            "count": histogram.len(),
            "p50_ms": ms(0.50),
            "p90_ms": ms(0.90),
            "p99_ms": ms(0.99),
            "max_ms": histogram.max() as f64 / 1000.0,
        })
    }

    pub fn to_json(&self, elapsed: Duration) -> Value {
        let secs = elapsed.as_secs_f64().max(0.001);
        json!({
            "seconds": secs,
            "started": self.started,
            "connected": self.connected,
            "failed": self.failures(),
            "failed_by_reason": escaped_keys(&self.failed),
            "errors_by_kind": escaped_keys(&self.errors),
            "login": Self::percentiles(&self.login_us),
            "rtt": Self::percentiles(&self.rtt_us),
            "rtt_resolution_ms": 1,
            "messages_in_per_s": self.messages_in as f64 / secs,
            "messages_out_per_s": self.messages_out as f64 / secs,
            "bytes_in_per_s": self.bytes_in as f64 / secs,
            "rtt_after_ramp": Self::percentiles(&self.rtt_after_ramp_us),
            "bytes_in_per_s_after_ramp": self.window.map(|(ramp_ends, end)| {
                self.bytes_in_after_ramp as f64 / (end - ramp_ends).as_secs_f64().max(0.001)
            }),
            "bytes_out_per_s": self.bytes_out as f64 / secs,
            "moves": self.moves,
            "chats": self.chats,
        })
    }

    pub fn print_table(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        println!(
            "bots: {} started, {} connected, {} failed in {:.1} s",
            self.started,
            self.connected,
            self.failures(),
            secs
        );
        for (reason, count) in &self.failed {
            println!("  failed  {count:>6}  {}", escaped(reason));
        }
        for (kind, count) in &self.errors {
            println!("  error   {count:>6}  {}", escaped(kind));
        }
        // The RTT comes from the heartbeat, whose timestamps are milliseconds:
        // a loopback round trip reads 0 or 1 ms.
        for (name, histogram) in [
            ("login", &self.login_us),
            ("rtt", &self.rtt_us),
            ("rtt after ramp", &self.rtt_after_ramp_us),
        ] {
            if histogram.is_empty() {
                continue;
            }
            let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{name:<14} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} samples)",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                histogram.max() as f64 / 1000.0,
                histogram.len()
            );
        }
        println!(
            "traffic  in {:>10.0} msg/s {:>12.0} B/s   out {:>10.0} msg/s {:>12.0} B/s",
            self.messages_in as f64 / secs,
            self.bytes_in as f64 / secs,
            self.messages_out as f64 / secs,
            self.bytes_out as f64 / secs
        );
        println!("world    {} moves, {} chat lines", self.moves, self.chats);
    }
}

/// Reasons quote what servers said: JSON escapes only C0 controls, so the
/// rest a terminal would act on is escaped here, for whoever prints it.
fn escaped_keys(counts: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut shown = BTreeMap::new();
    for (reason, count) in counts {
        // Summed: a reason that spells out an escape reads like one escaped.
        *shown.entry(escaped(reason).to_string()).or_default() += count;
    }
    shown
}

/// A failure's reason with the variable parts (names, numbers) left out, so
/// that a thousand bots failing the same way count as one reason.
pub fn reason_kind(reason: &str) -> String {
    let mut kind: String = reason
        .split_whitespace()
        .map(|word| {
            if word.chars().any(|c| c.is_ascii_digit()) {
                "N"
            } else {
                word
            }
        })
        .take(20)
        .collect::<Vec<_>>()
        .join(" ");
    kind.truncate(160);
    kind
}
