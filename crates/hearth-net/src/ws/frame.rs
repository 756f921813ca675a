//! RFC 6455 section 5.2: the frame header, and masking.

use super::WsError;

pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;

    pub fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }
}

/// The first reserved bit: permessage-deflate's "this message is compressed".
pub const RSV1: u8 = 0x40;

/// Control frames carry at most this much (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three reserved bits, unshifted (0 unless an extension was negotiated).
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header itself took.
    pub header_len: usize,
}

/// Parses a header from the front of `buf`; `Ok(None)` when more bytes are needed.
/// Checks what can be checked without context: reserved bits (only those in
/// `allowed_rsv`, which a negotiated extension owns), opcodes, control frame
/// rules; minimal length encoding is not required by the RFC for receivers.
pub fn parse_header(buf: &[u8], allowed_rsv: u8) -> Result<Option<FrameHeader>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    let rsv = b0 & 0x70;
    let op = b0 & 0x0F;
    let masked = b1 & 0x80 != 0;
    if rsv & !allowed_rsv != 0 {
        return Err(WsError::Protocol(
            "reserved bits set without a negotiated extension",
        ));
    }
    match op {
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
        opcode::CLOSE | opcode::PING | opcode::PONG => {
            if !fin {
                return Err(WsError::Protocol("control frames must not be fragmented"));
            }
        }
        _ => return Err(WsError::Protocol("reserved opcode")),
    }
    let (payload_len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(WsError::Protocol("payload length has its top bit set"));
            }
            (len, 10)
        }
        small => (small as u64, 2),
    };
    if opcode::is_control(op) && payload_len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(WsError::Protocol("control frame payload over 125 bytes"));
    }
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode: op,
        mask,
        payload_len,
        header_len: at,
    }))
}

/// Appends a frame header to `out`; `rsv` holds the reserved bits unshifted.
pub fn write_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    op: u8,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    out.push(if fin { 0x80 } else { 0 } | (rsv & 0x70) | op);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `data` with the mask, where `data` starts `offset` bytes into the payload.
/// Works a machine word at a time; masking is on the hot path of every frame.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut rotated = key;
    rotated.rotate_left(offset % 4);
    let word = u32::from_ne_bytes(rotated) as u64;
    let wide = word | (word << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn word_masking_matches_the_byte_definition_at_every_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for offset in 0..8 {
            for len in 0..40 {
                let original: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(31)).collect();
                let (mut fast, mut slow) = (original.clone(), original.clone());
                apply_mask(&mut fast, key, offset);
                naive_mask(&mut slow, key, offset);
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn headers_round_trip_for_each_length_form() {
        for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
            let mut out = Vec::new();
            write_header(&mut out, true, 0, opcode::BINARY, Some([1, 2, 3, 4]), len);
            let header = parse_header(&out, 0).unwrap().unwrap();
            assert_eq!(header.payload_len, len as u64);
            assert_eq!(header.header_len, out.len());
            assert_eq!(header.mask, Some([1, 2, 3, 4]));
            assert!(parse_header(&out[..out.len() - 1], 0).unwrap().is_none());
        }
    }

    #[test]
    fn bad_headers_are_protocol_errors() {
        assert!(parse_header(&[0x80 | 0x40 | 0x2, 0x80], 0).is_err(), "rsv1");
        assert!(
            parse_header(&[0x80 | 0x40 | 0x2, 0x80], RSV1).is_ok(),
            "rsv1 negotiated"
        );
        assert!(
            parse_header(&[0x80 | 0x20 | 0x2, 0x80], RSV1).is_err(),
            "rsv2"
        );
        assert!(
            parse_header(&[0x80 | 0x3, 0x80], 0).is_err(),
            "reserved opcode"
        );
        assert!(parse_header(&[0x09, 0x80], 0).is_err(), "fragmented ping");
        assert!(
            parse_header(&[0x89, 0x80 | 126, 0, 126], 0).is_err(),
            "long ping"
        );
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse_header(&huge, 0).is_err());
    }
}
