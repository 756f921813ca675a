//! The network conditioner, sans-IO: makes a link bad on purpose — loss,
//! lag, jitter, duplication, reordering, a bandwidth cap — the way Unreal's
//! packet simulation settings do, seeded so a run can be repeated exactly.
//!
//! One [`Conditioner`] handles one direction: packets go in with
//! [`Conditioner::push`], come out when due from [`Conditioner::poll`], and
//! [`Conditioner::next_due`] says when to look again. The driver reads the
//! clock and owns the sockets (`hearth impair` is one).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How bad one direction of a link is.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// Percent of packets dropped (0 to 100).
    pub loss_percent: f64,
    /// Delay added to every packet.
    pub lag_ms: u32,
    /// Up to this much more delay, uniformly at random, per packet.
    pub jitter_ms: u32,
    /// Percent of packets sent twice (the copy a little later).
    pub duplicate_percent: f64,
    /// Percent of packets held back long enough for later ones to overtake.
    pub reorder_percent: f64,
    /// Bytes per second the link carries; `None`: unlimited.
    pub bandwidth: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad impairment {0:?}: use key=value pairs separated by commas, keys loss, lag, jitter, dup, reorder, bandwidth (percent, milliseconds, bytes per second), e.g. loss=5,lag=40,jitter=10")]
pub struct ParseImpairmentError(pub String);

impl std::str::FromStr for Impairment {
    type Err = ParseImpairmentError;

    /// `loss=5,lag=40,jitter=10,dup=1,reorder=2,bandwidth=100000` (any
    /// subset; empty for a clean link).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ParseImpairmentError(text.to_owned());
        let mut out = Impairment::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let percent = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=100.0).contains(v))
                    .ok_or_else(bad)
            };
            match key.trim() {
                "loss" => out.loss_percent = percent()?,
                "dup" | "duplicate" => out.duplicate_percent = percent()?,
                "reorder" => out.reorder_percent = percent()?,
                "lag" => out.lag_ms = value.parse().map_err(|_| bad())?,
                "jitter" => out.jitter_ms = value.parse().map_err(|_| bad())?,
                "bandwidth" => {
                    out.bandwidth = Some(value.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?)
                }
                _ => return Err(bad()),
            }
        }
        Ok(out)
    }
}

/// What a conditioner did, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConditionerStats {
    pub received: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Dropped because the queue was full (a router's tail drop).
    pub overflowed: u64,
}

/// Packets a conditioner holds at most, and bytes: beyond either, new
/// packets are dropped (and counted), so a flood through a slow link cannot
/// grow memory.
pub const MAX_QUEUED_PACKETS: usize = 16_384;
pub const MAX_QUEUED_BYTES: usize = 32 << 20;

/// What a conditioner carries: bytes, or bytes with their address.
pub trait Packet: Clone {
    fn size(&self) -> usize;
}

impl Packet for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }
}

impl Packet for (std::net::SocketAddr, Vec<u8>) {
    fn size(&self) -> usize {
        self.1.len()
    }
}

/// A queued packet, ordered by due time then arrival.
struct Queued<P> {
    due: Instant,
    order: u64,
    packet: P,
}

impl<P> PartialEq for Queued<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl<P> Eq for Queued<P> {}
impl<P> PartialOrd for Queued<P> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<P> Ord for Queued<P> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

pub struct Conditioner<P = Vec<u8>> {
    impairment: Impairment,
    rng: u64,
    /// Packets by due time, then arrival order (so equal times keep order).
    queue: BinaryHeap<Reverse<Queued<P>>>,
    queued_bytes: usize,
    arrivals: u64,
    /// When the bandwidth cap lets the next packet start.
    link_free_at: Option<Instant>,
    pub stats: ConditionerStats,
}

impl<P: Packet> Conditioner<P> {
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        Self {
            impairment,
            rng: seed ^ 0x5eed_c0de_1710_cafe,
            queue: BinaryHeap::new(),
            queued_bytes: 0,
            arrivals: 0,
            link_free_at: None,
            stats: ConditionerStats::default(),
        }
    }

    pub fn impairment(&self) -> Impairment {
        self.impairment
    }

    /// Changes the impairment from now on (packets in flight keep theirs).
    pub fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = impairment;
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, percent: f64) -> bool {
        percent > 0.0 && (self.next() % 1_000_000) as f64 / 10_000.0 < percent
    }

    fn upto(&mut self, ms: u32) -> Duration {
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.next() % (u64::from(ms) * 1000 + 1))
    }

    /// A packet enters the link at `now`.
    pub fn push(&mut self, now: Instant, packet: P) {
        self.stats.received += 1;
        let impairment = self.impairment;
        if self.chance(impairment.loss_percent) {
            self.stats.dropped += 1;
            return;
        }
        // The bandwidth cap serialises packets: each starts when the link is
        // free and occupies it for its length.
        let mut sent_at = now;
        if let Some(rate) = impairment.bandwidth {
            let start = self.link_free_at.filter(|free| *free > now).unwrap_or(now);
            let busy = Duration::from_nanos(packet.size() as u64 * 1_000_000_000 / rate.max(1));
            self.link_free_at = Some(start + busy);
            sent_at = start + busy;
        }
        let mut due = sent_at
            + Duration::from_millis(u64::from(impairment.lag_ms))
            + self.upto(impairment.jitter_ms);
        if self.chance(impairment.reorder_percent) {
            // Held back past the packets behind it: at least 10 ms and at
            // least the jitter range more.
            due += Duration::from_millis(10 + u64::from(impairment.jitter_ms)) + self.upto(10);
            self.stats.reordered += 1;
        }
        if self.chance(impairment.duplicate_percent) {
            let copy_due = due + self.upto(5);
            self.stats.duplicated += 1;
            self.enqueue(copy_due, packet.clone());
        }
        self.enqueue(due, packet);
    }

    fn enqueue(&mut self, due: Instant, packet: P) {
        if self.queue.len() >= MAX_QUEUED_PACKETS
            || self.queued_bytes + packet.size() > MAX_QUEUED_BYTES
        {
            self.stats.overflowed += 1;
            return;
        }
        self.queued_bytes += packet.size();
        self.arrivals += 1;
        self.queue.push(Reverse(Queued {
            due,
            order: self.arrivals,
            packet,
        }));
    }

    /// The next packet due by `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<P> {
        if self.queue.peek()?.0.due > now {
            return None;
        }
        let packet = self.queue.pop().expect("peeked").0.packet;
        self.queued_bytes -= packet.size();
        self.stats.delivered += 1;
        Some(packet)
    }

    /// When the next packet is due (`None`: nothing queued).
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|queued| queued.0.due)
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        impairment: Impairment,
        seed: u64,
        count: usize,
    ) -> (Vec<(Duration, usize)>, ConditionerStats) {
        let start = Instant::now();
        let mut link: Conditioner = Conditioner::new(impairment, seed);
        let mut out = Vec::new();
        for i in 0..count {
            let now = start + Duration::from_millis(i as u64);
            link.push(now, (i as u32).to_be_bytes().to_vec());
            while let Some(p) = link.poll(now) {
                out.push((
                    now - start,
                    u32::from_be_bytes(p[..4].try_into().unwrap()) as usize,
                ));
            }
        }
        let end = start + Duration::from_secs(100);
        while let Some(due) = link.next_due() {
            let p = link
                .poll(due.max(start))
                .or_else(|| link.poll(end))
                .unwrap();
            out.push((
                due - start,
                u32::from_be_bytes(p[..4].try_into().unwrap()) as usize,
            ));
        }
        (out, link.stats)
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_another() {
        let bad: Impairment = "loss=20,lag=30,jitter=20,dup=5,reorder=5".parse().unwrap();
        assert_eq!(run(bad, 7, 2_000), run(bad, 7, 2_000));
        assert_ne!(run(bad, 7, 2_000).0, run(bad, 8, 2_000).0);
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_their_rates() {
        let bad: Impairment = "loss=10,dup=5,reorder=5,jitter=0".parse().unwrap();
        let (out, stats) = run(bad, 1, 20_000);
        let lost = stats.dropped as f64 / 20_000.0;
        assert!((0.09..0.11).contains(&lost), "loss {lost}");
        let dup = stats.duplicated as f64 / 18_000.0;
        assert!((0.04..0.06).contains(&dup), "dup {dup}");
        let out_of_order = out.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(out_of_order > 500, "{out_of_order} reorderings");
        assert_eq!(stats.delivered as usize, out.len());
        assert_eq!(
            stats.delivered,
            stats.received - stats.dropped + stats.duplicated
        );
    }

    #[test]
    fn lag_and_jitter_bound_every_delay_and_a_clean_link_keeps_order() {
        let laggy: Impairment = "lag=40,jitter=10".parse().unwrap();
        let (out, _) = run(laggy, 3, 1_000);
        for (at, index) in &out {
            let delay = at.as_millis() as i64 - *index as i64;
            assert!(
                (40..=51).contains(&delay),
                "packet {index} delayed {delay} ms"
            );
        }
        let (clean, stats) = run(Impairment::default(), 3, 1_000);
        assert_eq!(stats.delivered, 1_000);
        assert!(clean.windows(2).all(|w| w[0].1 < w[1].1));
    }

    #[test]
    fn a_bandwidth_cap_spaces_packets_by_their_size() {
        let mut link: Conditioner = Conditioner::new("bandwidth=100000".parse().unwrap(), 1);
        let start = Instant::now();
        for _ in 0..10 {
            link.push(start, vec![0u8; 1_000]);
        }
        // 10 kB at 100 kB/s: the last leaves after 100 ms, the first after 10.
        assert_eq!(link.next_due(), Some(start + Duration::from_millis(10)));
        let mut last = start;
        while let Some(due) = link.next_due() {
            assert!(link.poll(due).is_some());
            last = due;
        }
        assert_eq!(last, start + Duration::from_millis(100));
    }

    #[test]
    fn the_queue_is_bounded_in_packets() {
        let mut link: Conditioner = Conditioner::new("lag=1000".parse().unwrap(), 1);
        let now = Instant::now();
        for _ in 0..MAX_QUEUED_PACKETS + 10 {
            link.push(now, vec![1]);
        }
        assert_eq!(link.queued(), MAX_QUEUED_PACKETS);
        assert_eq!(link.stats.overflowed, 10);
    }

    #[test]
    fn impairments_parse_and_bad_ones_say_how() {
        let parsed: Impairment = "loss=2.5, lag=40,jitter=5,dup=1,reorder=3,bandwidth=64000"
            .parse()
            .unwrap();
        assert_eq!(
            parsed,
            Impairment {
                loss_percent: 2.5,
                lag_ms: 40,
                jitter_ms: 5,
                duplicate_percent: 1.0,
                reorder_percent: 3.0,
                bandwidth: Some(64_000),
            }
        );
        assert_eq!("".parse::<Impairment>().unwrap(), Impairment::default());
        for bad in ["loss=101", "lag=-1", "speed=3", "loss", "bandwidth=0"] {
            let error = bad.parse::<Impairment>().unwrap_err().to_string();
            assert!(error.contains("key=value"), "{bad}: {error}");
        }
    }
}

/// Both directions of one endpoint's datagram socket, as the drivers use it:
/// what arrives waits in `inbound` before the protocol sees it; what the
/// protocol sends waits in `outbound` before the socket does.
pub struct DatagramConditioner {
    pub inbound: Conditioner<(std::net::SocketAddr, Vec<u8>)>,
    pub outbound: Conditioner<(std::net::SocketAddr, Vec<u8>)>,
}

impl DatagramConditioner {
    pub fn new(inbound: Impairment, outbound: Impairment, seed: u64) -> Self {
        Self {
            inbound: Conditioner::new(inbound, seed),
            outbound: Conditioner::new(outbound, seed.rotate_left(17) ^ 0x0b5e_55ed),
        }
    }

    /// When either direction next has a packet due.
    pub fn next_due(&self) -> Option<Instant> {
        [self.inbound.next_due(), self.outbound.next_due()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A link's impairments as the config and flags give them: `up` is always
/// client to server, `down` server to client, whichever end applies them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkImpairment {
    pub up: Impairment,
    pub down: Impairment,
    pub seed: u64,
}
