//! Acknowledgements owed to the peer until the next flush: `(sn, ts)` pairs.
//!
//! The first few live inside the session itself; a typical flush owes one or two,
//! and with thousands of sessions a separate allocation would be one more cache
//! miss per input and per flush. More spill to the heap.

/// Acknowledgements held inline.
const INLINE: usize = 4;

#[derive(Debug, Default)]
#[repr(C)] // the spill vector last, out of the hot cache line
pub(crate) struct AckList {
    inline: [(u32, u32); INLINE],
    len: u32,
    spilled: Vec<(u32, u32)>,
}

impl AckList {
    #[inline]
    pub fn push(&mut self, sn: u32, ts: u32) {
        let len = self.len as usize;
        if len < INLINE {
            self.inline[len] = (sn, ts);
        } else {
            self.spilled.push((sn, ts));
        }
        self.len += 1;
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// In the order they were pushed.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let inline = (self.len as usize).min(INLINE);
        self.inline[..inline]
            .iter()
            .chain(self.spilled.iter())
            .copied()
    }

    #[inline]
    pub fn clear(&mut self) {
        if self.len as usize > INLINE {
            self.spilled.clear();
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_the_spill_and_clears() {
        let mut acks = AckList::default();
        for round in 0..3 {
            assert!(acks.is_empty());
            for sn in 0..(3 + round * 4) {
                acks.push(sn, sn * 10);
            }
            let expected: Vec<(u32, u32)> = (0..(3 + round * 4)).map(|sn| (sn, sn * 10)).collect();
            assert_eq!(acks.iter().collect::<Vec<_>>(), expected);
            acks.clear();
        }
    }
}
