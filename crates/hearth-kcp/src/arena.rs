//! One contiguous byte buffer per session for payloads that are written in order and
//! released in order: the bytes of queued and in-flight segments on the sending side,
//! and of complete (and partly reassembled) messages on the receiving side.
//!
//! Segments name their bytes by a logical offset that only grows, so releasing or
//! compacting the front never invalidates a live segment. Compared with one heap
//! buffer per segment this touches one or two cache lines per message instead of a
//! pointer chase per segment plus a buffer pool, and a session that has everything
//! acknowledged and read holds no payload bytes at all.

/// Once empty, a buffer that grew past this (a burst, a large message) gives its
/// memory back; idle sessions must stay small.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Released bytes at the front are moved out only when there are at least this many
/// and at least as many as live ones: each byte is moved at most once on average.
const COMPACT_AT_LEAST: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct ByteArena {
    bytes: Vec<u8>,
    /// Logical offset of `bytes[0]`.
    base: u64,
    /// `bytes[..released]` is no longer needed.
    released: usize,
}

impl ByteArena {
    /// Logical offset of the first live byte.
    #[inline]
    pub fn start(&self) -> u64 {
        self.base + self.released as u64
    }

    /// Logical offset one past the last byte.
    #[inline]
    pub fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Live bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len() - self.released
    }

    /// Appends `data` and returns the logical offset it starts at.
    #[inline]
    pub fn push(&mut self, data: &[u8]) -> u64 {
        let at = self.end();
        crate::small_copy::append(&mut self.bytes, data);
        at
    }

    /// Appends a message record: its length and segment count (native order),
    /// then its bytes.
    #[inline]
    pub fn push_record(&mut self, len: u32, segments: u32, data: &[u8]) {
        crate::small_copy::append_after(
            &mut self.bytes,
            crate::kcp::message_header(len, segments),
            data,
        );
    }

    /// The `len` bytes at logical offset `at`, which must be live.
    #[inline]
    pub fn get(&self, at: u64, len: usize) -> &[u8] {
        let from = (at - self.base) as usize;
        &self.bytes[from..from + len]
    }

    /// Overwrites live bytes at logical offset `at` (a record header filled in later).
    #[inline]
    pub fn write_at(&mut self, at: u64, data: &[u8]) {
        let from = (at - self.base) as usize;
        self.bytes[from..from + data.len()].copy_from_slice(data);
    }

    /// The live `u32` (native order) at logical offset `at`.
    #[inline]
    pub fn u32_at(&self, at: u64) -> u32 {
        let from = (at - self.base) as usize;
        let raw = self.bytes[from..from + 4].try_into().expect("4 bytes");
        u32::from_ne_bytes(raw)
    }

    /// The message record header at logical offset `at` (see
    /// [`crate::kcp::MESSAGE_HEADER`]): its length and segment count.
    #[inline]
    pub fn record_header_at(&self, at: u64) -> (u32, u32) {
        let from = (at - self.base) as usize;
        let raw: [u8; crate::kcp::MESSAGE_HEADER] = self.bytes
            [from..from + crate::kcp::MESSAGE_HEADER]
            .try_into()
            .expect("8 bytes");
        let [a, b, c, d, e, f, g, h] = raw;
        (
            u32::from_ne_bytes([a, b, c, d]),
            u32::from_ne_bytes([e, f, g, h]),
        )
    }

    /// Drops the bytes from logical offset `end` on (a message being discarded).
    pub fn truncate(&mut self, end: u64) {
        let keep = (end.max(self.start()) - self.base) as usize;
        self.bytes.truncate(keep);
    }

    /// Everything before logical offset `at` is no longer needed.
    #[inline]
    pub fn release_before(&mut self, at: u64) {
        let upto = (at.saturating_sub(self.base) as usize).min(self.bytes.len());
        if upto == self.bytes.len() {
            // Empty: start over at the front, no bytes moved (the common case).
            self.base += upto as u64;
            self.bytes.clear();
            self.released = 0;
            if self.bytes.capacity() > SHRINK_ABOVE {
                self.give_back();
            }
        } else if upto > self.released {
            self.release_part(upto);
        }
    }

    /// A burst is over: its memory goes back to the allocator.
    #[cold]
    #[inline(never)]
    fn give_back(&mut self) {
        self.bytes = Vec::new();
    }

    /// Releases `bytes[..upto]` while later bytes stay live, compacting when the
    /// dead front has grown (kept out of the hot paths, which release everything).
    #[inline(never)]
    fn release_part(&mut self, upto: usize) {
        self.released = upto;
        if self.released >= COMPACT_AT_LEAST && self.released >= self.len() {
            self.bytes.drain(..self.released);
            self.base += self.released as u64;
            self.released = 0;
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_release_and_compaction() {
        let mut arena = ByteArena::default();
        let mut live = std::collections::VecDeque::new();
        for round in 0..10_000u32 {
            let data = round.to_le_bytes().repeat(1 + round as usize % 7);
            live.push_back((arena.push(&data), data));
            if round % 3 != 0 {
                live.pop_front();
                arena.release_before(live.front().map_or(arena.end(), |(at, _)| *at));
            }
            for (at, data) in &live {
                assert_eq!(arena.get(*at, data.len()), &data[..]);
            }
            let live_bytes: usize = live.iter().map(|(_, d)| d.len()).sum();
            assert_eq!(arena.len(), live_bytes);
            // Compaction keeps dead bytes within a constant factor of live ones.
            assert!(arena.bytes.len() <= 2 * live_bytes + COMPACT_AT_LEAST + 32);
        }
    }

    #[test]
    fn empties_without_moving_and_gives_back_a_burst() {
        let mut arena = ByteArena::default();
        let at = arena.push(&vec![1u8; SHRINK_ABOVE * 2]);
        arena.release_before(at + (SHRINK_ABOVE * 2) as u64);
        assert_eq!(arena.len(), 0);
        assert_eq!(arena.capacity(), 0);
        let next = arena.push(b"abc");
        assert_eq!(next, (SHRINK_ABOVE * 2) as u64);
        assert_eq!(arena.get(next, 3), b"abc");
    }

    #[test]
    fn truncate_drops_only_the_tail() {
        let mut arena = ByteArena::default();
        let a = arena.push(b"keep");
        let b = arena.push(b"drop me");
        arena.truncate(b);
        assert_eq!(arena.end(), b);
        assert_eq!(arena.get(a, 4), b"keep");
    }
}
