//! Datagrams produced by a flush, waiting for the caller to send them.
//!
//! All datagrams live in one reusable byte buffer, so a flush allocates nothing once
//! the buffer has grown to its working size.

#[derive(Debug, Default)]
pub(crate) struct DatagramBuffer {
    bytes: Vec<u8>,
    /// End offset of each finished datagram in `bytes`.
    ends: Vec<usize>,
    /// The caller has taken the current contents; clear before writing more.
    drained: bool,
    /// Datagrams and bytes ever closed, for statistics.
    pub datagrams_total: u64,
    pub bytes_total: u64,
}

impl DatagramBuffer {
    fn reset_if_drained(&mut self) {
        if self.drained {
            self.bytes.clear();
            self.ends.clear();
            self.drained = false;
        }
    }

    fn open_len(&self) -> usize {
        self.bytes.len() - self.ends.last().copied().unwrap_or(0)
    }

    /// Returns the buffer to append `need` more bytes to, first closing the open
    /// datagram if they would not fit in `mtu`.
    #[inline]
    pub fn reserve(&mut self, need: usize, mtu: usize) -> &mut Vec<u8> {
        self.reset_if_drained();
        if self.open_len() + need > mtu {
            self.finish();
        }
        &mut self.bytes
    }

    /// Closes the open datagram, if it has anything in it.
    pub fn finish(&mut self) {
        self.reset_if_drained();
        let open = self.open_len();
        if open > 0 {
            self.ends.push(self.bytes.len());
            self.datagrams_total += 1;
            self.bytes_total += open as u64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.drained || self.ends.is_empty()
    }

    pub fn drain(&mut self) -> Transmits<'_> {
        let already_taken = self.drained;
        self.drained = true;
        let ends: &[usize] = if already_taken { &[] } else { &self.ends };
        Transmits {
            bytes: &self.bytes,
            ends,
            start: 0,
        }
    }
}

/// Datagrams to send, oldest first. Everything this iterator was created with counts
/// as handed over, whether or not it is iterated to the end.
#[derive(Debug)]
pub struct Transmits<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
    start: usize,
}

impl<'a> Iterator for Transmits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&end, rest) = self.ends.split_first()?;
        self.ends = rest;
        let datagram = &self.bytes[self.start..end];
        self.start = end;
        Some(datagram)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.ends.len(), Some(self.ends.len()))
    }
}

impl ExactSizeIterator for Transmits<'_> {}
