//! Datagrams produced by flushes, waiting for the caller to send them.
//!
//! Each session has one, and callers that flush many sessions can pass their own
//! ([`Kcp::update_into`](crate::Kcp::update_into)): one buffer shared by thousands of
//! sessions stays in cache, and idle sessions then hold no datagram memory at all.
//!
//! All datagrams live in one reusable byte buffer, each behind a 4-byte length
//! written when it is closed, so a flush allocates nothing once the buffer has
//! grown to its working size and touches no second structure to find where each
//! datagram ends (with thousands of sessions, every separate allocation a flush
//! touches is a cache miss).

use crate::header::HEADER_LEN;

/// Bytes before each datagram holding its length.
const PREFIX: usize = 4;

/// Datagrams from one or more sessions' flushes, oldest first. The datagrams carry
/// no session: drain after each session's update to know whose they are.
#[derive(Debug, Default)]
pub struct DatagramBuffer {
    /// Closed datagrams, each `len: u32 (native) | bytes`, then the open one.
    bytes: Vec<u8>,
    /// Where the open datagram's prefix is, if one is open.
    open_at: usize,
    /// `bytes` may grow to this length before the open datagram exceeds its
    /// MTU; 0 when none is open, so that one comparison decides both.
    open_limit: usize,
    /// Closed datagrams not yet drained.
    closed: u32,
    /// The caller has taken the current contents; clear before writing more.
    drained: bool,
}

impl DatagramBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Prepares for a flush: what the caller drained is dropped now, and a
    /// datagram is opened (`finish` drops it if the flush adds nothing).
    /// Returns what was waiting before (see `waiting`).
    #[inline]
    pub(crate) fn begin(&mut self, mtu: usize) -> (u64, u64) {
        if self.drained {
            self.bytes.clear();
            self.open_limit = 0;
            self.closed = 0;
            self.drained = false;
        }
        let waiting = self.waiting();
        if self.open_limit == 0 {
            self.open(mtu);
        }
        waiting
    }

    /// Appends one segment without a payload (an acknowledgement, a probe).
    /// Only between `begin` and `finish`.
    #[inline]
    pub(crate) fn push_header(&mut self, header: [u8; HEADER_LEN], mtu: usize) {
        debug_assert!(!self.drained && self.open_limit != 0, "begin() first");
        if self.bytes.len() + HEADER_LEN > self.open_limit {
            self.start_datagram(mtu);
        }
        self.bytes.extend_from_slice(&header);
    }

    /// Appends one segment, header then payload, first closing the open
    /// datagram if they would not fit in `mtu`. Only between `begin` and `finish`.
    #[inline]
    pub(crate) fn push_segment(&mut self, header: [u8; HEADER_LEN], payload: &[u8], mtu: usize) {
        debug_assert!(!self.drained && self.open_limit != 0, "begin() first");
        if self.bytes.len() + HEADER_LEN + payload.len() > self.open_limit {
            self.start_datagram(mtu);
        }
        crate::small_copy::append_after(&mut self.bytes, header, payload);
    }

    /// Closes the open datagram, if any, and opens a new one.
    #[inline(never)]
    fn start_datagram(&mut self, mtu: usize) {
        self.finish();
        self.open(mtu);
    }

    #[inline]
    fn open(&mut self, mtu: usize) {
        self.open_at = self.bytes.len();
        self.open_limit = self.open_at + PREFIX + mtu;
        self.bytes.extend_from_slice(&[0; PREFIX]);
    }

    /// Closes the open datagram, if it has anything in it.
    #[inline]
    pub(crate) fn finish(&mut self) {
        if self.open_limit == 0 {
            return;
        }
        self.open_limit = 0;
        let at = self.open_at;
        let len = self.bytes.len() - at - PREFIX;
        if len == 0 {
            self.bytes.truncate(at);
            return;
        }
        self.bytes[at..at + PREFIX].copy_from_slice(&(len as u32).to_ne_bytes());
        self.closed += 1;
    }

    /// Datagrams waiting and their bytes (without the length prefixes), when
    /// no datagram is open: a flush counts what it added as the difference
    /// between `begin` and after `finish`.
    // Derived rather than kept as running totals: a flush that increments
    // totals and then reads them back stalls on store forwarding.
    #[inline]
    pub(crate) fn waiting(&self) -> (u64, u64) {
        if self.drained {
            return (0, 0);
        }
        let closed = u64::from(self.closed);
        (
            closed,
            (self.bytes.len() - PREFIX * self.closed as usize) as u64,
        )
    }

    /// Whether no datagram is waiting.
    pub fn is_empty(&self) -> bool {
        self.drained || self.closed == 0
    }

    /// The waiting datagrams; they count as sent once this is called.
    pub fn drain(&mut self) -> Transmits<'_> {
        let already_taken = self.drained;
        self.drained = true;
        // Only closed datagrams are handed over (an open one is finished first by
        // every flush, so none is open here).
        let (bytes, count) = if already_taken {
            (&[][..], 0)
        } else {
            (&self.bytes[..], self.closed)
        };
        Transmits { bytes, count }
    }
}

/// Datagrams to send, oldest first. Everything this iterator was created with counts
/// as handed over, whether or not it is iterated to the end.
#[derive(Debug)]
pub struct Transmits<'a> {
    bytes: &'a [u8],
    count: u32,
}

impl<'a> Iterator for Transmits<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let (prefix, rest) = self.bytes.split_first_chunk::<PREFIX>()?;
        let len = u32::from_ne_bytes(*prefix) as usize;
        let (datagram, rest) = rest.split_at(len);
        self.bytes = rest;
        Some(datagram)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count as usize, Some(self.count as usize))
    }
}

impl ExactSizeIterator for Transmits<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_to_the_mtu_and_hands_each_datagram_over_once() {
        let mut buffer = DatagramBuffer::default();
        let mtu = 2 * HEADER_LEN + 5;
        buffer.begin(mtu);
        for segment in 0..5u8 {
            buffer.push_segment([segment; HEADER_LEN], &[segment; 2], mtu);
        }
        buffer.finish();
        let datagrams: Vec<Vec<u8>> = buffer.drain().map(<[u8]>::to_vec).collect();
        let segment = |n: u8| [[n; HEADER_LEN].as_slice(), &[n; 2]].concat();
        assert_eq!(
            datagrams,
            vec![
                [segment(0), segment(1)].concat(),
                [segment(2), segment(3)].concat(),
                segment(4)
            ]
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.drain().count(), 0);
        buffer.begin(mtu);
        buffer.finish();
        assert_eq!(buffer.drain().count(), 0, "an empty finish closes nothing");
        buffer.begin(mtu);
        buffer.push_header([7; HEADER_LEN], mtu);
        buffer.finish();
        assert_eq!(buffer.waiting(), (1, HEADER_LEN as u64));
        assert_eq!(
            buffer.drain().collect::<Vec<_>>(),
            vec![&[7; HEADER_LEN][..]]
        );
        assert_eq!(buffer.waiting(), (0, 0));
    }

    #[test]
    fn an_empty_open_datagram_is_dropped_and_flushes_append() {
        let mut buffer = DatagramBuffer::default();
        let mtu = 100;
        buffer.begin(mtu);
        buffer.finish();
        assert!(buffer.is_empty());
        // Two flushes without a drain in between: both datagrams wait, in order.
        buffer.begin(mtu);
        buffer.push_segment([1; HEADER_LEN], b"ab", mtu);
        buffer.finish();
        buffer.begin(mtu);
        buffer.push_segment([2; HEADER_LEN], b"cd", mtu);
        buffer.finish();
        assert_eq!(buffer.waiting(), (2, 2 * (HEADER_LEN as u64 + 2)));
        let segment = |n: u8, payload: &[u8]| [[n; HEADER_LEN].as_slice(), payload].concat();
        assert_eq!(
            buffer.drain().map(<[u8]>::to_vec).collect::<Vec<_>>(),
            vec![segment(1, b"ab"), segment(2, b"cd")]
        );
    }
}
