//! Partial bunches: messages larger than one packet travel as parts (the
//! first flagged PARTIAL_INITIAL, the last PARTIAL_FINAL, each with its index)
//! and are rebuilt here. Unreliable parts may arrive in any order, so parts are
//! kept by index; a message whose parts do not all arrive is evicted (counted)
//! once newer messages push it out. Memory is bounded per message and per
//! connection.

use std::collections::{BTreeMap, HashMap};

use crate::bunch::{flags, Bunch};
use crate::stats::DropReason;

/// Unfinished messages kept per channel lane before the oldest is given up.
pub const MAX_PARTIALS_PER_LANE: usize = 32;
/// What one stored part costs besides its payload (its map node and vector
/// header), charged against the connection's budget so that the bound holds
/// in entries as well as bytes: at most `max_bytes / PART_COST` parts.
pub const PART_COST: usize = 64;

#[derive(Default)]
struct Partial {
    parts: BTreeMap<u32, Vec<u8>>,
    /// What the parts are charged: payload plus `PART_COST` each.
    bytes: usize,
    payload_bytes: usize,
    final_index: Option<u32>,
    /// Too large or out of budget: swallow the remaining parts.
    discarding: bool,
}

/// A reassembled (or single-bunch) message.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: u16,
    /// Sequence of the message (its first bunch), for sequenced delivery.
    pub sequence: u64,
    pub payload: Vec<u8>,
}

/// (channel, reliable): the two lanes of a channel never mix.
type Lane = (u16, bool);

pub struct Reassembly {
    partials: HashMap<Lane, BTreeMap<u64, Partial>>,
    bytes: usize,
    max_message: usize,
    max_bytes: usize,
}

impl Reassembly {
    pub fn new(max_message: usize, max_bytes: usize) -> Self {
        Self {
            partials: HashMap::new(),
            bytes: 0,
            max_message,
            max_bytes,
        }
    }

    /// Bytes charged for what is buffered (payload plus `PART_COST` a part).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Parts buffered across all unfinished messages.
    pub fn buffered_parts(&self) -> usize {
        self.partials
            .values()
            .flat_map(|lane| lane.values())
            .map(|partial| partial.parts.len())
            .sum()
    }

    /// Feeds one bunch; returns a whole message when one completes, and the
    /// reason when something had to be dropped.
    pub fn accept(&mut self, bunch: &Bunch) -> (Option<Message>, Option<DropReason>) {
        let reliable = bunch.is(flags::RELIABLE);
        if !bunch.is(flags::PARTIAL) {
            if bunch.payload.len() > self.max_message {
                return (None, Some(DropReason::MessageTooLarge));
            }
            let message = Message {
                channel: bunch.channel,
                sequence: bunch.sequence,
                payload: bunch.payload.to_vec(),
            };
            return (Some(message), None);
        }
        // Reliable parts each take a session sequence number; unreliable parts
        // share their message's.
        let message_sequence = if reliable {
            match bunch.sequence.checked_sub(u64::from(bunch.part)) {
                Some(first) => first,
                None => return (None, Some(DropReason::Malformed)),
            }
        } else {
            bunch.sequence
        };
        let initial = bunch.is(flags::PARTIAL_INITIAL);
        let last = bunch.is(flags::PARTIAL_FINAL);
        if initial != (bunch.part == 0) {
            return (None, Some(DropReason::Malformed));
        }
        if bunch.payload.is_empty() {
            // A sender splits only non-empty messages, into non-empty parts.
            return (None, Some(DropReason::Malformed));
        }
        let lane = (bunch.channel, reliable);
        let mut dropped = None;
        let in_lane = self.partials.entry(lane).or_default();
        if !reliable {
            // Parts that far behind a newer message will not come any more.
            while let Some(entry) = in_lane.first_entry() {
                if *entry.key() + MAX_PARTIALS_PER_LANE as u64 > message_sequence {
                    break;
                }
                let stale = entry.remove();
                self.bytes -= stale.bytes;
                if !stale.discarding {
                    dropped = Some(DropReason::PartialIncomplete);
                }
            }
        }
        if !in_lane.contains_key(&message_sequence) && in_lane.len() >= MAX_PARTIALS_PER_LANE {
            let (_, oldest) = in_lane.pop_first().expect("lane is full");
            self.bytes -= oldest.bytes;
            if !oldest.discarding {
                dropped = Some(DropReason::PartialIncomplete);
            }
        }
        let in_lane = self.partials.get_mut(&lane).expect("created above");
        let partial = in_lane.entry(message_sequence).or_default();
        if last {
            if partial.final_index.is_some_and(|index| index != bunch.part) {
                return (None, Some(DropReason::Malformed));
            }
            partial.final_index = Some(bunch.part);
        }
        if partial.discarding || partial.parts.contains_key(&bunch.part) {
            return (None, dropped);
        }
        let cost = bunch.payload.len() + PART_COST;
        if partial.payload_bytes + bunch.payload.len() > self.max_message {
            dropped = Some(DropReason::MessageTooLarge);
        } else if self.bytes + cost > self.max_bytes {
            dropped = Some(DropReason::ReassemblyFull);
        }
        if dropped == Some(DropReason::MessageTooLarge)
            || dropped == Some(DropReason::ReassemblyFull)
        {
            self.bytes -= partial.bytes;
            partial.parts.clear();
            partial.bytes = 0;
            partial.payload_bytes = 0;
            partial.discarding = true;
            return (None, dropped);
        }
        partial.parts.insert(bunch.part, bunch.payload.to_vec());
        partial.bytes += cost;
        partial.payload_bytes += bunch.payload.len();
        self.bytes += cost;
        let complete = partial
            .final_index
            .is_some_and(|index| partial.parts.len() as u64 == u64::from(index) + 1);
        if !complete {
            return (None, dropped);
        }
        let partial = in_lane.remove(&message_sequence).expect("present");
        self.bytes -= partial.bytes;
        let mut payload = Vec::with_capacity(partial.payload_bytes);
        for part in partial.parts.into_values() {
            payload.extend_from_slice(&part);
        }
        (
            Some(Message {
                channel: bunch.channel,
                sequence: message_sequence,
                payload,
            }),
            dropped,
        )
    }

    /// Gives up unreliable partials (their remaining parts died with a link);
    /// returns how many unfinished messages were dropped.
    pub fn abandon_unreliable(&mut self) -> u64 {
        let mut dropped = 0;
        for ((_, reliable), lane) in self.partials.iter_mut() {
            if *reliable {
                continue;
            }
            for (_, partial) in std::mem::take(lane) {
                self.bytes -= partial.bytes;
                dropped += u64::from(!partial.discarding);
            }
        }
        dropped
    }
}

/// Splits a message into bunch payload slices of at most `part` bytes;
/// an empty message is one empty part.
pub fn split(message: &[u8], part: usize) -> Vec<&[u8]> {
    if message.is_empty() {
        return vec![message];
    }
    message.chunks(part).collect()
}

/// Flags for part `index` of `count`.
pub fn part_flags(index: usize, count: usize) -> u8 {
    if count == 1 {
        return 0;
    }
    let mut value = flags::PARTIAL;
    if index == 0 {
        value |= flags::PARTIAL_INITIAL;
    }
    if index + 1 == count {
        value |= flags::PARTIAL_FINAL;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bunches(message: &[u8], part: usize, first: u64, reliable: bool) -> Vec<Bunch<'_>> {
        let parts = split(message, part);
        let count = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(index, payload)| Bunch {
                flags: part_flags(index, count) | if reliable { flags::RELIABLE } else { 0 },
                channel: 3,
                sequence: if reliable {
                    first + index as u64
                } else {
                    first
                },
                part: index as u32,
                open: None,
                payload,
            })
            .collect()
    }

    #[test]
    fn large_message_reassembles_from_parts_in_any_order() {
        let message: Vec<u8> = (0..10_000u32).map(|n| n as u8).collect();
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        let mut parts = bunches(&message, 1000, 40, false);
        parts.reverse();
        parts.swap(3, 7);
        let mut out = None;
        for bunch in parts {
            let (done, dropped) = reassembly.accept(&bunch);
            assert_eq!(dropped, None);
            out = done.or(out);
        }
        let out = out.unwrap();
        assert_eq!(out.payload, message);
        assert_eq!(out.sequence, 40);
        assert_eq!(reassembly.buffered_bytes(), 0);
    }

    #[test]
    fn a_lost_part_is_evicted_by_newer_messages_and_counted() {
        let message = vec![1u8; 5000];
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        for (index, bunch) in bunches(&message, 1000, 0, false).iter().enumerate() {
            if index != 2 {
                assert!(reassembly.accept(bunch).0.is_none());
            }
        }
        assert!(reassembly.buffered_bytes() > 0);
        let mut evicted = 0;
        for sequence in 1..=MAX_PARTIALS_PER_LANE as u64 {
            for bunch in bunches(&message, 1000, sequence, false) {
                let (done, dropped) = reassembly.accept(&bunch);
                evicted += u32::from(dropped == Some(DropReason::PartialIncomplete));
                if let Some(done) = done {
                    assert_eq!(done.payload, message);
                }
            }
        }
        assert_eq!(evicted, 1);
        assert_eq!(reassembly.buffered_bytes(), 0);
    }

    #[test]
    fn limits_are_enforced() {
        let message = vec![1u8; 5000];
        let mut small = Reassembly::new(3000, 1 << 20);
        let outcomes: Vec<_> = bunches(&message, 1000, 0, true)
            .iter()
            .map(|b| small.accept(b))
            .collect();
        assert!(outcomes.iter().all(|(done, _)| done.is_none()));
        assert_eq!(
            outcomes
                .iter()
                .filter(|(_, d)| *d == Some(DropReason::MessageTooLarge))
                .count(),
            1
        );
        assert_eq!(small.buffered_bytes(), 0);

        let mut tight = Reassembly::new(1 << 20, 2500);
        let outcomes: Vec<_> = bunches(&message, 1000, 0, true)
            .iter()
            .map(|b| tight.accept(b))
            .collect();
        assert!(outcomes
            .iter()
            .any(|(_, d)| *d == Some(DropReason::ReassemblyFull)));
        assert_eq!(tight.buffered_bytes(), 0);
    }

    #[test]
    fn parts_are_charged_per_entry_and_empty_parts_refused() {
        let budget = 64 * 1024;
        let mut reassembly = Reassembly::new(1 << 20, budget);
        // Empty middle parts with distinct indices: refused, nothing stored.
        for part in 1..10_000u32 {
            let bunch = Bunch {
                flags: flags::PARTIAL,
                channel: 0,
                sequence: 7,
                part,
                open: None,
                payload: &[],
            };
            assert_eq!(reassembly.accept(&bunch).1, Some(DropReason::Malformed));
        }
        assert_eq!(reassembly.buffered_parts(), 0);
        // One-byte parts: the entry cost bounds how many can be held.
        let mut held_max = 0;
        for part in 1..100_000u32 {
            let bunch = Bunch {
                flags: flags::PARTIAL,
                channel: 0,
                sequence: 7,
                part,
                open: None,
                payload: &[1],
            };
            reassembly.accept(&bunch);
            held_max = held_max.max(reassembly.buffered_parts());
            assert!(reassembly.buffered_bytes() <= budget);
        }
        assert!(
            held_max <= budget / (PART_COST + 1),
            "{held_max} parts held"
        );
    }

    #[test]
    fn inconsistent_parts_are_malformed() {
        let message = vec![1u8; 3000];
        let mut all = bunches(&message, 1000, 0, false);
        all[1].flags |= flags::PARTIAL_INITIAL;
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        assert_eq!(
            reassembly.accept(&all[1]),
            (None, Some(DropReason::Malformed))
        );
    }
}
