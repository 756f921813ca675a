//! Partial bunches: messages larger than one packet travel as a run of
//! consecutive bunches (initial, middle..., final) and are rebuilt here, with
//! a limit per message and a memory budget per connection.

use std::collections::HashMap;

use crate::bunch::{flags, Bunch};
use crate::stats::DropReason;

struct Partial {
    first_sequence: u64,
    next_sequence: u64,
    data: Vec<u8>,
    /// Too large or out of budget: swallow the remaining parts.
    discarding: bool,
}

/// A reassembled (or single-bunch) message.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub channel: u16,
    /// Sequence of the message's first bunch (for sequenced delivery).
    pub sequence: u64,
    pub payload: Vec<u8>,
}

pub struct Reassembly {
    /// Keyed by (channel, reliable): the two lanes of a channel never mix.
    partials: HashMap<(u16, bool), Partial>,
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

    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Feeds one bunch; returns a whole message when one completes, and the
    /// reason when something had to be dropped.
    pub fn accept(&mut self, bunch: &Bunch) -> (Option<Message>, Option<DropReason>) {
        let lane = (bunch.channel, bunch.is(flags::RELIABLE));
        if !bunch.is(flags::PARTIAL) {
            let dropped = self.abandon(lane);
            if bunch.payload.len() > self.max_message {
                return (None, Some(DropReason::MessageTooLarge));
            }
            let message = Message {
                channel: bunch.channel,
                sequence: bunch.sequence,
                payload: bunch.payload.to_vec(),
            };
            return (Some(message), dropped);
        }
        let mut dropped = None;
        if bunch.is(flags::PARTIAL_INITIAL) {
            dropped = self.abandon(lane);
            self.partials.insert(
                lane,
                Partial {
                    first_sequence: bunch.sequence,
                    next_sequence: bunch.sequence,
                    data: Vec::new(),
                    discarding: false,
                },
            );
        }
        let Some(partial) = self.partials.get_mut(&lane) else {
            // A middle or final part whose beginning was lost.
            return (None, Some(DropReason::PartialIncomplete));
        };
        if bunch.sequence != partial.next_sequence {
            self.abandon(lane);
            return (None, Some(DropReason::PartialIncomplete));
        }
        partial.next_sequence += 1;
        if !partial.discarding {
            if partial.data.len() + bunch.payload.len() > self.max_message {
                partial.discarding = true;
                self.bytes -= partial.data.len();
                partial.data = Vec::new();
                dropped = Some(DropReason::MessageTooLarge);
            } else if self.bytes + bunch.payload.len() > self.max_bytes {
                partial.discarding = true;
                self.bytes -= partial.data.len();
                partial.data = Vec::new();
                dropped = Some(DropReason::ReassemblyFull);
            } else {
                partial.data.extend_from_slice(bunch.payload);
                self.bytes += bunch.payload.len();
            }
        }
        if !bunch.is(flags::PARTIAL_FINAL) {
            return (None, dropped);
        }
        let partial = self.partials.remove(&lane).expect("present above");
        if partial.discarding {
            return (None, dropped);
        }
        self.bytes -= partial.data.len();
        let message = Message {
            channel: bunch.channel,
            sequence: partial.first_sequence,
            payload: partial.data,
        };
        (Some(message), dropped)
    }

    /// Forgets an unfinished message on `lane`, reporting it as incomplete.
    fn abandon(&mut self, lane: (u16, bool)) -> Option<DropReason> {
        let partial = self.partials.remove(&lane)?;
        self.bytes -= partial.data.len();
        (!partial.discarding).then_some(DropReason::PartialIncomplete)
    }

    /// Drops unreliable partials (their remaining parts died with a link).
    pub fn abandon_unreliable(&mut self) -> u64 {
        let lanes: Vec<_> = self
            .partials
            .keys()
            .filter(|(_, reliable)| !reliable)
            .copied()
            .collect();
        lanes
            .into_iter()
            .filter_map(|lane| self.abandon(lane))
            .count() as u64
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
                sequence: first + index as u64,
                open: None,
                payload,
            })
            .collect()
    }

    #[test]
    fn large_message_reassembles() {
        let message: Vec<u8> = (0..10_000u32).map(|n| n as u8).collect();
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        let mut out = None;
        for bunch in bunches(&message, 1000, 40, false) {
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
    fn a_lost_part_drops_the_message_and_frees_memory() {
        let message = vec![1u8; 5000];
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        let all = bunches(&message, 1000, 0, false);
        for (index, bunch) in all.iter().enumerate() {
            if index == 2 {
                continue;
            }
            let (done, dropped) = reassembly.accept(bunch);
            assert!(done.is_none());
            if index == 3 {
                assert_eq!(dropped, Some(DropReason::PartialIncomplete));
            }
        }
        assert_eq!(reassembly.buffered_bytes(), 0);
        // The next message on the lane is unaffected.
        let next = bunches(&message, 1000, 5, false);
        let results: Vec<_> = next.iter().map(|b| reassembly.accept(b).0).collect();
        assert_eq!(results.last().unwrap().as_ref().unwrap().payload, message);
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
        assert!(outcomes
            .iter()
            .any(|(_, d)| *d == Some(DropReason::MessageTooLarge)));
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
    fn orphan_parts_are_counted() {
        let message = vec![1u8; 3000];
        let all = bunches(&message, 1000, 0, false);
        let mut reassembly = Reassembly::new(1 << 20, 1 << 20);
        assert_eq!(
            reassembly.accept(&all[1]),
            (None, Some(DropReason::PartialIncomplete))
        );
    }
}
