//! The send ring: segments in flight, then segments queued, in one circular
//! buffer whose capacity is a power of two.
//!
//! `VecDeque` would do, but every use of it here pays for its generality: an
//! index wraps with a compare and a conditional move, and iterating a range
//! first splits the buffer into two slices. Here a slot is `(head + index) &
//! mask`, so a flush or an acknowledgement walks the ring with an add and an
//! and per segment.

use crate::kcp::Segment;

/// Slots allocated on the first push: a session with one message in flight at a
/// time never grows past them.
const FIRST_CAPACITY: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct SendRing {
    /// Empty, or a power of two long; slots outside the live range are stale.
    slots: Vec<Segment>,
    /// Slot of the front segment.
    head: u32,
    len: u32,
}

impl SendRing {
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot of the segment `index` places behind the front.
    #[inline]
    fn slot(&self, index: usize) -> usize {
        let mask = self.slots.len().wrapping_sub(1);
        (self.head as usize).wrapping_add(index) & mask
    }

    #[inline]
    pub fn get(&self, index: usize) -> Option<&Segment> {
        if index >= self.len() {
            return None;
        }
        let slot = self.slot(index);
        self.slots.get(slot)
    }

    #[inline]
    pub fn get_mut(&mut self, index: usize) -> Option<&mut Segment> {
        if index >= self.len() {
            return None;
        }
        let slot = self.slot(index);
        self.slots.get_mut(slot)
    }

    #[inline]
    pub fn front(&self) -> Option<&Segment> {
        self.get(0)
    }

    #[inline]
    pub fn back_mut(&mut self) -> Option<&mut Segment> {
        let last = self.len().checked_sub(1)?;
        self.get_mut(last)
    }

    #[inline]
    pub fn push_back(&mut self, segment: Segment) {
        if self.len() == self.slots.len() {
            self.grow();
        }
        let slot = self.slot(self.len());
        self.slots[slot] = segment;
        self.len += 1;
    }

    /// Removes the front segment, if any.
    #[inline]
    pub fn pop_front(&mut self) -> Option<Segment> {
        let front = *self.front()?;
        self.head = self.slot(1) as u32;
        self.len -= 1;
        Some(front)
    }

    /// Empties the ring and starts over at its first slot, so that the next
    /// segment reuses the cache line the last one used.
    #[inline]
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// The segment `index` places behind the front, for walks by index (which
    /// leave the rest of the session free to borrow).
    ///
    /// # Panics
    /// If `index` is not below `len()`.
    #[inline]
    pub fn at_mut(&mut self, index: usize) -> &mut Segment {
        assert!(index < self.len(), "segment {index} of {}", self.len);
        let slot = self.slot(index);
        &mut self.slots[slot]
    }

    /// Room for twice as many segments, in order from the first slot.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(FIRST_CAPACITY);
        let mut slots = Vec::with_capacity(capacity);
        for index in 0..self.len() {
            slots.push(self.slots[self.slot(index)]);
        }
        slots.resize(capacity, Segment::default());
        self.slots = slots;
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn segment(sn: u32) -> Segment {
        Segment {
            sn,
            ..Segment::default()
        }
    }

    /// The ring against `VecDeque` through pushes, pops, clears and growth,
    /// across the wrap of the buffer.
    #[test]
    fn behaves_as_a_deque() {
        let mut ring = SendRing::default();
        let mut model = VecDeque::new();
        let mut next = 0u32;
        for step in 0..5_000u32 {
            match step.wrapping_mul(2_654_435_761) >> 29 {
                0..=3 => {
                    ring.push_back(segment(next));
                    model.push_back(next);
                    next += 1;
                }
                4..=6 => assert_eq!(ring.pop_front().map(|s| s.sn), model.pop_front()),
                _ if step % 97 == 0 => {
                    ring.clear();
                    model.clear();
                }
                _ => {}
            }
            assert_eq!(ring.len(), model.len());
            assert_eq!(ring.front().map(|s| s.sn), model.front().copied());
            for (index, sn) in model.iter().enumerate() {
                assert_eq!(ring.get(index).map(|s| s.sn), Some(*sn));
            }
            assert!(ring.get(model.len()).is_none());
            let walked: Vec<u32> = (0..ring.len()).map(|i| ring.at_mut(i).sn).collect();
            assert_eq!(walked, model.iter().copied().collect::<Vec<_>>());
            if let Some(last) = ring.back_mut() {
                assert_eq!(Some(last.sn), model.back().copied());
            }
        }
    }
}
