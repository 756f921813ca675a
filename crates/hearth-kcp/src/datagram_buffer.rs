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

    /// Prepares for a flush: what the caller drained is dropped now.
    #[inline]
    pub(crate) fn begin(&mut self) {
        if self.drained {
            self.bytes.clear();
            self.open_limit = 0;
            self.closed = 0;
            self.drained = false;
        }
    }

    /// Returns the buffer to append `need` more bytes to, first closing the open
    /// datagram if they would not fit in `mtu`. Only between `begin` and `finish`.
    #[inline]
    pub(crate) fn reserve(&mut self, need: usize, mtu: usize) -> &mut Vec<u8> {
        debug_assert!(!self.drained, "begin() first");
        if self.bytes.len() + need > self.open_limit {
            self.start_datagram(mtu);
        }
        &mut self.bytes
    }

    /// Closes the open datagram, if any, and opens a new one.
    #[inline(never)]
    fn start_datagram(&mut self, mtu: usize) {
        self.finish();
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
    /// no datagram is open: a flush counts what it added as the difference.
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
        buffer.begin();
        for segment in 0..5u8 {
            buffer.reserve(10, 25).extend_from_slice(&[segment; 10]);
        }
        buffer.finish();
        let datagrams: Vec<Vec<u8>> = buffer.drain().map(<[u8]>::to_vec).collect();
        assert_eq!(
            datagrams,
            vec![
                [[0u8; 10], [1; 10]].concat(),
                [[2u8; 10], [3; 10]].concat(),
                vec![4; 10]
            ]
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.drain().count(), 0);
        buffer.begin();
        buffer.finish();
        assert_eq!(buffer.drain().count(), 0, "an empty finish closes nothing");
        buffer.begin();
        buffer.reserve(3, 25).extend_from_slice(b"new");
        buffer.finish();
        assert_eq!(buffer.waiting(), (1, 3));
        assert_eq!(buffer.drain().collect::<Vec<_>>(), vec![&b"new"[..]]);
        assert_eq!(buffer.waiting(), (0, 0));
    }

    #[test]
    fn an_empty_open_datagram_is_dropped_and_flushes_append() {
        let mut buffer = DatagramBuffer::default();
        buffer.begin();
        buffer.reserve(0, 25);
        buffer.finish();
        assert!(buffer.is_empty());
        // Two flushes without a drain in between: both datagrams wait, in order.
        buffer.reserve(2, 25).extend_from_slice(b"ab");
        buffer.finish();
        buffer.begin();
        buffer.reserve(2, 25).extend_from_slice(b"cd");
        buffer.finish();
        assert_eq!(buffer.waiting(), (2, 4));
        assert_eq!(
            buffer.drain().collect::<Vec<_>>(),
            vec![&b"ab"[..], &b"cd"[..]]
        );
    }
}
