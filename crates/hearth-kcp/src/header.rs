//! The 24-byte KCP segment header, exactly as ikcp.c lays it out on the wire:
//! `conv u32 | cmd u8 | frg u8 | wnd u16 | ts u32 | sn u32 | una u32 | len u32`,
//! all little-endian.

use crate::error::InputError;

/// Size of one segment header on the wire.
pub const HEADER_LEN: usize = 24;

/// The four segment commands of the KCP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// Data.
    Push = 81,
    /// Acknowledgement of one segment (`sn`, echoing its `ts`).
    Ack = 82,
    /// Window probe: "tell me your window".
    WindowAsk = 83,
    /// Window announcement, the answer to a probe.
    WindowTell = 84,
}

impl Command {
    fn from_byte(byte: u8) -> Result<Self, InputError> {
        match byte {
            81 => Ok(Self::Push),
            82 => Ok(Self::Ack),
            83 => Ok(Self::WindowAsk),
            84 => Ok(Self::WindowTell),
            other => Err(InputError::UnknownCommand(other)),
        }
    }
}

/// One decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub conv: u32,
    pub cmd: Command,
    pub frg: u8,
    pub wnd: u16,
    pub ts: u32,
    pub sn: u32,
    pub una: u32,
    pub len: u32,
}

impl Header {
    /// Appends the encoded header to `out`.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The header as it goes on the wire.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        // Three 8-byte words rather than eight fields: three stores.
        let word0 = u64::from(self.conv)
            | u64::from(self.cmd as u8) << 32
            | u64::from(self.frg) << 40
            | u64::from(self.wnd) << 48;
        let word1 = u64::from(self.ts) | u64::from(self.sn) << 32;
        let word2 = u64::from(self.una) | u64::from(self.len) << 32;
        let mut raw = [0u8; HEADER_LEN];
        raw[0..8].copy_from_slice(&word0.to_le_bytes());
        raw[8..16].copy_from_slice(&word1.to_le_bytes());
        raw[16..24].copy_from_slice(&word2.to_le_bytes());
        raw
    }

    /// Decodes the header at the start of `bytes` and checks that its payload fits in
    /// what follows. Returns the header and the payload.
    #[inline]
    pub fn decode(bytes: &[u8]) -> Result<(Self, &[u8]), InputError> {
        let Some((raw, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(InputError::Truncated { len: bytes.len() });
        };
        let u32_at =
            |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let len = u32_at(20);
        // ikcp.c rejects a negative (as i32) length the same way as one past the end.
        if len as usize > rest.len() || (len as i32) < 0 {
            return Err(InputError::BadLength {
                claimed: len,
                available: rest.len(),
            });
        }
        let header = Header {
            conv: u32_at(0),
            cmd: Command::from_byte(raw[4])?,
            frg: raw[5],
            wnd: u16::from_le_bytes([raw[6], raw[7]]),
            ts: u32_at(8),
            sn: u32_at(12),
            una: u32_at(16),
            len,
        };
        Ok((header, &rest[..len as usize]))
    }
}

/// Reads the conversation id of a datagram without decoding it, so a server can route
/// the datagram to its session before handing it over (ikcp_getconv).
pub fn peek_conv(datagram: &[u8]) -> Option<u32> {
    datagram
        .first_chunk::<4>()
        .map(|raw| u32::from_le_bytes(*raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            conv: 0x1122_3344,
            cmd: Command::Push,
            frg: 3,
            wnd: 128,
            ts: 0xdead_beef,
            sn: 7,
            una: 5,
            len: 2,
        }
    }

    #[test]
    fn layout_matches_ikcp() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        out.extend_from_slice(b"hi");
        assert_eq!(
            out,
            [
                0x44, 0x33, 0x22, 0x11, 81, 3, 128, 0, 0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0, 5, 0, 0,
                0, 2, 0, 0, 0, b'h', b'i'
            ]
        );
        let (decoded, payload) = Header::decode(&out).unwrap();
        assert_eq!(decoded, sample());
        assert_eq!(payload, b"hi");
    }

    #[test]
    fn rejects_bad_inputs() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        assert_eq!(
            Header::decode(&out[..10]),
            Err(InputError::Truncated { len: 10 })
        );
        assert_eq!(
            Header::decode(&out),
            Err(InputError::BadLength {
                claimed: 2,
                available: 0
            })
        );
        out[4] = 99;
        out.extend_from_slice(b"hi");
        assert_eq!(Header::decode(&out), Err(InputError::UnknownCommand(99)));
    }
}
