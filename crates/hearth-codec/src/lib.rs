//! Bounded byte reader and writer shared by every decoder of Hearth: the
//! session protocol's packets, frames and bunches, and the world's messages.
//! A crate of its own so that what a client needs to follow a world (the
//! wire, the replica) can decode without the protocol's crypto.
//!
//! Every read checks the remaining length first, so a decoder can never index
//! past the input; each failure names what was being read.

use thiserror::Error;

/// Why a packet, frame, bunch or control message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ends early while reading {0}")]
    Truncated(&'static str),
    #[error("unknown {what} type 0x{value:02x}")]
    UnknownType { what: &'static str, value: u8 },
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    #[error("variable-length integer is longer than 10 bytes or overflows 64 bits")]
    BadVarint,
    #[error("{0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
}

/// Reads fields from a byte slice, front to back.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// LEB128: seven bits a byte, least significant group first.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.u8(what)?;
            let group = u64::from(byte & 0x7f);
            if index == 9 && group > 1 {
                return Err(DecodeError::BadVarint);
            }
            value |= group << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A varint length followed by that many bytes, refused above `max`.
    pub fn len_prefixed(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.varint(what)?;
        if len > max as u64 {
            return Err(DecodeError::OutOfRange(what));
        }
        self.bytes(len as usize, what)
    }

    pub fn string(&mut self, max: usize, what: &'static str) -> Result<String, DecodeError> {
        let raw = self.len_prefixed(max, what)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadUtf8(what))
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.bytes.len()))
        }
    }
}

/// Appends fields to a byte vector.
pub trait Writer {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_varint(&mut self, value: u64);
    fn put_len_prefixed(&mut self, bytes: &[u8]);
    fn put_str(&mut self, text: &str) {
        self.put_len_prefixed(text.as_bytes());
    }
}

impl Writer for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }
    fn put_len_prefixed(&mut self, bytes: &[u8]) {
        self.put_varint(bytes.len() as u64);
        self.extend_from_slice(bytes);
    }
}

/// `bytes` as lowercase hexadecimal, two digits a byte.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Bytes `put_varint` writes for `value`.
pub fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.max(1).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(to_hex(&[]), "");
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            out.put_varint(value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            let mut reader = Reader::new(&out);
            assert_eq!(reader.varint("v").unwrap(), value);
            reader.finish().unwrap();
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        assert_eq!(
            Reader::new(&[0x80; 11]).varint("v"),
            Err(DecodeError::BadVarint)
        );
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(
            Reader::new(&too_big).varint("v"),
            Err(DecodeError::BadVarint)
        );
        assert_eq!(
            Reader::new(&[0x80]).varint("v"),
            Err(DecodeError::Truncated("v"))
        );
    }

    #[test]
    fn length_prefix_is_bounded() {
        let mut out = Vec::new();
        out.put_len_prefixed(&[7; 10]);
        assert_eq!(
            Reader::new(&out).len_prefixed(9, "x"),
            Err(DecodeError::OutOfRange("x"))
        );
        assert_eq!(Reader::new(&out).len_prefixed(10, "x").unwrap(), &[7; 10]);
        assert_eq!(
            Reader::new(&out[..5]).len_prefixed(10, "x"),
            Err(DecodeError::Truncated("x"))
        );
    }
}
