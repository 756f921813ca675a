//! Frames: what a protected datagram's plaintext, or one message on a stream
//! link, is made of. A packet is a sequence of frames; a Padding frame ends it.

use crate::bunch::Bunch;
use crate::codec::{DecodeError, Reader, Writer};

pub mod kind {
    pub const PADDING: u8 = 0x00;
    pub const KCP: u8 = 0x01;
    pub const BUNCH: u8 = 0x02;
    pub const ACK: u8 = 0x03;
    pub const PING: u8 = 0x04;
    pub const PONG: u8 = 0x05;
    pub const CLOSE: u8 = 0x06;
    pub const RESUME: u8 = 0x07;
    pub const RESUMED: u8 = 0x08;
}

pub const MAX_CLOSE_REASON: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The rest of the packet is padding.
    Padding,
    /// KCP output (one or more segments) carrying reliable bunches.
    Kcp(&'a [u8]),
    Bunch(Bunch<'a>),
    /// Cumulative count of reliable bunches the sender has received.
    Ack {
        received: u64,
    },
    /// Heartbeat; `sent_ms` is echoed in the Pong to measure round trips.
    Ping {
        sent_ms: u32,
    },
    Pong {
        echo_ms: u32,
    },
    Close {
        code: u16,
        reason: &'a str,
    },
    /// First frame on a stream link that re-attaches to an existing session.
    /// It travels sealed under keys that only a holder of the resume token can
    /// derive (the stream handshake's Attach mode), so the token itself never
    /// crosses the link.
    Resume {
        session_id: u64,
        received: u64,
    },
    Resumed {
        received: u64,
    },
}

impl<'a> Frame<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Padding => out.put_u8(kind::PADDING),
            Frame::Kcp(bytes) => {
                out.put_u8(kind::KCP);
                out.put_len_prefixed(bytes);
            }
            Frame::Bunch(bunch) => {
                out.put_u8(kind::BUNCH);
                bunch.encode(out);
            }
            Frame::Ack { received } => {
                out.put_u8(kind::ACK);
                out.put_varint(*received);
            }
            Frame::Ping { sent_ms } => {
                out.put_u8(kind::PING);
                out.put_u32(*sent_ms);
            }
            Frame::Pong { echo_ms } => {
                out.put_u8(kind::PONG);
                out.put_u32(*echo_ms);
            }
            Frame::Close { code, reason } => {
                out.put_u8(kind::CLOSE);
                out.put_u16(*code);
                let mut cut = reason.len().min(MAX_CLOSE_REASON);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.put_str(&reason[..cut]);
            }
            Frame::Resume {
                session_id,
                received,
            } => {
                out.put_u8(kind::RESUME);
                out.put_u64(*session_id);
                out.put_varint(*received);
            }
            Frame::Resumed { received } => {
                out.put_u8(kind::RESUMED);
                out.put_varint(*received);
            }
        }
    }

    pub fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(match reader.u8("frame type")? {
            kind::PADDING => {
                // Consume the padding so iteration ends.
                let rest = reader.remaining();
                reader.bytes(rest, "padding")?;
                Frame::Padding
            }
            kind::KCP => Frame::Kcp(reader.len_prefixed(usize::MAX, "KCP frame")?),
            kind::BUNCH => Frame::Bunch(Bunch::decode(reader)?),
            kind::ACK => Frame::Ack {
                received: reader.varint("ack")?,
            },
            kind::PING => Frame::Ping {
                sent_ms: reader.u32("ping")?,
            },
            kind::PONG => Frame::Pong {
                echo_ms: reader.u32("pong")?,
            },
            kind::CLOSE => {
                let code = reader.u16("close code")?;
                let raw = reader.len_prefixed(MAX_CLOSE_REASON, "close reason")?;
                let reason =
                    std::str::from_utf8(raw).map_err(|_| DecodeError::BadUtf8("close reason"))?;
                Frame::Close { code, reason }
            }
            kind::RESUME => Frame::Resume {
                session_id: reader.u64("session id")?,
                received: reader.varint("received count")?,
            },
            kind::RESUMED => Frame::Resumed {
                received: reader.varint("received count")?,
            },
            value => {
                return Err(DecodeError::UnknownType {
                    what: "frame",
                    value,
                })
            }
        })
    }
}

/// Iterates the frames of one packet; stops at the first error.
pub struct Frames<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Frames<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(payload),
            failed: false,
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let frame = Frame::decode(&mut self.reader);
        self.failed = frame.is_err();
        Some(frame)
    }
}

/// Decodes a whole packet's frames, failing on the first bad one.
pub fn decode_all(payload: &[u8]) -> Result<Vec<Frame<'_>>, DecodeError> {
    Frames::new(payload).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bunch::flags;

    #[test]
    fn frames_round_trip_in_sequence() {
        let frames = vec![
            Frame::Ack { received: 300 },
            Frame::Kcp(&[1, 2, 3]),
            Frame::Bunch(Bunch {
                flags: flags::RELIABLE,
                channel: 2,
                sequence: 9,
                part: 0,
                open: None,
                payload: b"hi",
            }),
            Frame::Ping { sent_ms: 77 },
            Frame::Pong { echo_ms: 78 },
            Frame::Close {
                code: 4,
                reason: "bye",
            },
            Frame::Resume {
                session_id: 5,
                received: 7,
            },
            Frame::Resumed { received: 8 },
            Frame::Padding,
        ];
        let mut out = Vec::new();
        for frame in &frames {
            frame.encode(&mut out);
        }
        out.extend_from_slice(&[0; 20]);
        assert_eq!(decode_all(&out).unwrap(), frames);
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let mut out = Vec::new();
        Frame::Close {
            code: 1,
            reason: &long,
        }
        .encode(&mut out);
        match decode_all(&out).unwrap()[0] {
            Frame::Close { reason, .. } => assert!(reason.len() <= MAX_CLOSE_REASON),
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_all(&[0x99]).is_err());
        assert!(decode_all(&[kind::KCP, 5, 1]).is_err());
        assert!(decode_all(&[kind::CLOSE, 0, 1, 2, 0xff, 0xfe]).is_err());
    }
}
