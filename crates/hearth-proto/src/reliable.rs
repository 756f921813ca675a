//! Session-wide reliable sequencing, above any one link.
//!
//! KCP makes one datagram link reliable, TCP one stream; neither survives its
//! link. Each reliable bunch therefore carries a session sequence number and is
//! kept by the sender until the peer acknowledges it (a cumulative count in Ack
//! frames). When a link dies, or a new one attaches after a resume, the sender
//! resends what is unacknowledged on the link that remains; the receiver drops
//! what it already has and restores order across links.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
pub struct ReliableSender {
    next_sequence: u64,
    /// Everything below this the peer has acknowledged.
    acknowledged: u64,
    /// (sequence, encoded bunch), oldest first.
    unacked: VecDeque<(u64, Vec<u8>)>,
    unacked_bytes: usize,
}

impl ReliableSender {
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    pub fn is_idle(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Takes the next sequence number for a bunch about to be encoded.
    pub fn allocate(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    pub fn retain(&mut self, sequence: u64, encoded: Vec<u8>) {
        self.unacked_bytes += encoded.len();
        self.unacked.push_back((sequence, encoded));
    }

    /// Applies a cumulative acknowledgement; ignores one that moves backwards
    /// or claims more than was sent (returns false for the latter).
    pub fn acknowledge(&mut self, received: u64) -> bool {
        if received > self.next_sequence {
            return false;
        }
        if received <= self.acknowledged {
            return true;
        }
        self.acknowledged = received;
        while let Some((sequence, encoded)) = self.unacked.front() {
            if *sequence >= received {
                break;
            }
            self.unacked_bytes -= encoded.len();
            self.unacked.pop_front();
        }
        true
    }

    /// Encoded bunches the peer has not acknowledged, for resending.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &[u8]> {
        self.unacked.iter().map(|(_, encoded)| encoded.as_slice())
    }
}

/// Where an arriving reliable bunch stands against what was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Exactly the next one: deliver it now, then `take_ready`.
    Next,
    /// Ahead of a gap: `store` it until the gap is filled.
    Early,
    /// Already delivered or already stored.
    Duplicate,
}

/// What one stored early bunch costs besides its payload: its map node and
/// header. Charged so that a flood of empty bunches is bounded by the same
/// budget as large ones.
pub const EARLY_ENTRY_COST: usize = 64;

/// Restores the order of reliable bunches across links. Early arrivals are
/// kept as the caller hands them over (decoded: they are not re-encoded for
/// storage), charged their payload plus `EARLY_ENTRY_COST`.
#[derive(Debug)]
pub struct ReliableReceiver<T> {
    /// Count of bunches delivered in order = next sequence expected.
    received: u64,
    early: BTreeMap<u64, (T, usize)>,
    early_bytes: usize,
    max_bytes: usize,
}

impl<T> ReliableReceiver<T> {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            received: 0,
            early: BTreeMap::new(),
            early_bytes: 0,
            max_bytes,
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn classify(&self, sequence: u64) -> Arrival {
        if sequence < self.received || self.early.contains_key(&sequence) {
            Arrival::Duplicate
        } else if sequence == self.received {
            Arrival::Next
        } else {
            Arrival::Early
        }
    }

    /// Marks the next bunch delivered.
    pub fn advance(&mut self) {
        self.received += 1;
    }

    /// Keeps an early bunch of `payload_len` bytes; false when that would
    /// exceed the budget, which a peer respecting its own unacknowledged-bytes
    /// limit never causes.
    pub fn store(&mut self, sequence: u64, item: T, payload_len: usize) -> bool {
        let cost = payload_len + EARLY_ENTRY_COST;
        if self.early_bytes + cost > self.max_bytes {
            return false;
        }
        self.early_bytes += cost;
        self.early.insert(sequence, (item, cost));
        true
    }

    /// The stored bunch that is now next, if any; marks it delivered.
    pub fn take_ready(&mut self) -> Option<T> {
        let (item, cost) = self.early.remove(&self.received)?;
        self.early_bytes -= cost;
        self.received += 1;
        Some(item)
    }

    pub fn stored(&self) -> usize {
        self.early.len()
    }

    /// What the stored bunches are charged (payload plus `EARLY_ENTRY_COST` each).
    pub fn stored_bytes(&self) -> usize {
        self.early_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_keeps_until_acknowledged() {
        let mut sender = ReliableSender::default();
        for n in 0..5u8 {
            let sequence = sender.allocate();
            sender.retain(sequence, vec![n; 10]);
        }
        assert_eq!(sender.unacked_bytes(), 50);
        assert!(sender.acknowledge(3));
        assert_eq!(
            sender.unacknowledged().collect::<Vec<_>>(),
            vec![&[3u8; 10][..], &[4; 10]]
        );
        assert!(sender.acknowledge(2), "old acks are harmless");
        assert!(
            !sender.acknowledge(6),
            "cannot acknowledge what was never sent"
        );
        assert!(sender.acknowledge(5));
        assert!(sender.is_idle());
    }

    #[test]
    fn receiver_restores_order_and_drops_duplicates() {
        let mut receiver = ReliableReceiver::new(100 + EARLY_ENTRY_COST);
        assert_eq!(receiver.classify(1), Arrival::Early);
        assert!(receiver.store(1, b"b".to_vec(), 1));
        assert_eq!(receiver.classify(1), Arrival::Duplicate);
        assert_eq!(receiver.classify(0), Arrival::Next);
        receiver.advance();
        assert_eq!(receiver.take_ready(), Some(b"b".to_vec()));
        assert_eq!(receiver.take_ready(), None);
        assert_eq!(receiver.classify(0), Arrival::Duplicate);
        assert_eq!(receiver.received(), 2);
        assert!(!receiver.store(50, vec![0; 101], 101));
    }

    #[test]
    fn empty_early_bunches_are_charged_per_entry() {
        let budget = 10 * EARLY_ENTRY_COST;
        let mut receiver = ReliableReceiver::new(budget);
        let stored = (1..1_000u64)
            .take_while(|sequence| receiver.store(*sequence, (), 0))
            .count();
        assert_eq!(stored, 10);
        assert_eq!(receiver.stored(), 10);
    }
}
