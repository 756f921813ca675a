//! Bunches: the unit a channel sends, as in UE. A bunch names its channel,
//! carries open/close/reliable/partial flags, a sequence number and a payload.
//! Reliable bunches carry the session-wide reliable sequence number, which is
//! what lets the same messages survive a change of link; unreliable bunches
//! carry their channel's own message sequence (all parts of one message share
//! it), used for sequenced delivery. Parts of a partial message also carry
//! their index, so unreliable parts can be reassembled in any order.

use crate::codec::{DecodeError, Reader, Writer};

pub const MAX_CHANNELS: u16 = 32_767;
pub const CONTROL_CHANNEL: u16 = 0;

pub mod flags {
    pub const OPEN: u8 = 0x01;
    pub const CLOSE: u8 = 0x02;
    pub const RELIABLE: u8 = 0x04;
    pub const PARTIAL: u8 = 0x08;
    pub const PARTIAL_INITIAL: u8 = 0x10;
    pub const PARTIAL_FINAL: u8 = 0x20;
    pub const ALL: u8 = 0x3f;
}

/// What a channel is for (UE's control, actor, voice and data-stream channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Control = 0,
    Game = 1,
    Voice = 2,
    Data = 3,
}

/// How a channel's messages are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Every message, once, in the order sent (session-wide order).
    ReliableOrdered = 0,
    /// Best effort: may be lost, duplicated by nothing, arrive in any order.
    Unreliable = 1,
    /// Best effort, and anything older than the newest received is dropped.
    UnreliableSequenced = 2,
}

impl ChannelKind {
    pub fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::Control,
            1 => Self::Game,
            2 => Self::Voice,
            3 => Self::Data,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "channel kind",
                    value,
                })
            }
        })
    }
}

impl Delivery {
    pub fn from_u8(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::ReliableOrdered,
            1 => Self::Unreliable,
            2 => Self::UnreliableSequenced,
            value => {
                return Err(DecodeError::UnknownType {
                    what: "delivery mode",
                    value,
                })
            }
        })
    }

    pub fn is_reliable(self) -> bool {
        self == Self::ReliableOrdered
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bunch<'a> {
    pub flags: u8,
    pub channel: u16,
    pub sequence: u64,
    /// Index of this part within its message; present on the wire only with PARTIAL.
    pub part: u32,
    /// Present exactly when the OPEN flag is set.
    pub open: Option<(ChannelKind, Delivery)>,
    pub payload: &'a [u8],
}

/// A decoded bunch that owns its payload: kept while it waits for the
/// reliable bunches before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedBunch {
    pub flags: u8,
    pub channel: u16,
    pub sequence: u64,
    pub part: u32,
    pub open: Option<(ChannelKind, Delivery)>,
    pub payload: Vec<u8>,
}

impl OwnedBunch {
    pub fn as_bunch(&self) -> Bunch<'_> {
        Bunch {
            flags: self.flags,
            channel: self.channel,
            sequence: self.sequence,
            part: self.part,
            open: self.open,
            payload: &self.payload,
        }
    }
}

impl<'a> Bunch<'a> {
    pub fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn to_owned_bunch(&self) -> OwnedBunch {
        OwnedBunch {
            flags: self.flags,
            channel: self.channel,
            sequence: self.sequence,
            part: self.part,
            open: self.open,
            payload: self.payload.to_vec(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.flags);
        out.put_varint(u64::from(self.channel));
        out.put_varint(self.sequence);
        if self.is(flags::PARTIAL) {
            out.put_varint(u64::from(self.part));
        }
        if let Some((kind, delivery)) = self.open {
            out.put_u8(kind as u8);
            out.put_u8(delivery as u8);
        }
        out.put_len_prefixed(self.payload);
    }

    /// Bytes `encode` would write, for packet budgeting.
    pub fn encoded_len(&self) -> usize {
        use crate::codec::varint_len;
        1 + varint_len(u64::from(self.channel))
            + varint_len(self.sequence)
            + if self.is(flags::PARTIAL) {
                varint_len(u64::from(self.part))
            } else {
                0
            }
            + if self.open.is_some() { 2 } else { 0 }
            + varint_len(self.payload.len() as u64)
            + self.payload.len()
    }

    pub fn decode(reader: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let flags = reader.u8("bunch flags")?;
        if flags & !flags::ALL != 0 {
            return Err(DecodeError::OutOfRange("bunch flags"));
        }
        let partial_marks = flags & (flags::PARTIAL_INITIAL | flags::PARTIAL_FINAL);
        if partial_marks != 0 && flags & flags::PARTIAL == 0 {
            return Err(DecodeError::OutOfRange("partial flags without PARTIAL"));
        }
        let channel = reader.varint("bunch channel")?;
        if channel > u64::from(MAX_CHANNELS) {
            return Err(DecodeError::OutOfRange("bunch channel"));
        }
        let sequence = reader.varint("bunch sequence")?;
        let part = if flags & flags::PARTIAL != 0 {
            let part = reader.varint("bunch part index")?;
            u32::try_from(part).map_err(|_| DecodeError::OutOfRange("bunch part index"))?
        } else {
            0
        };
        let open = if flags & flags::OPEN != 0 {
            let kind = ChannelKind::from_u8(reader.u8("channel kind")?)?;
            let delivery = Delivery::from_u8(reader.u8("delivery mode")?)?;
            Some((kind, delivery))
        } else {
            None
        };
        let payload = reader.len_prefixed(usize::MAX, "bunch payload")?;
        Ok(Self {
            flags,
            channel: channel as u16,
            sequence,
            part,
            open,
            payload,
        })
    }

    /// Decodes a bunch that must fill `bytes` exactly (a KCP message).
    pub fn decode_exact(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let bunch = Self::decode(&mut reader)?;
        reader.finish()?;
        Ok(bunch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bunches_round_trip_and_report_their_length() {
        let cases = [
            Bunch {
                flags: 0,
                channel: 0,
                sequence: 0,
                part: 0,
                open: None,
                payload: b"",
            },
            Bunch {
                flags: flags::OPEN | flags::RELIABLE,
                channel: MAX_CHANNELS,
                sequence: u64::MAX,
                part: 0,
                open: Some((ChannelKind::Voice, Delivery::UnreliableSequenced)),
                payload: b"hello",
            },
            Bunch {
                flags: flags::PARTIAL | flags::PARTIAL_FINAL,
                channel: 300,
                sequence: 1 << 20,
                part: 70_000,
                open: None,
                payload: &[1; 1000],
            },
        ];
        for bunch in cases {
            let mut out = Vec::new();
            bunch.encode(&mut out);
            assert_eq!(out.len(), bunch.encoded_len());
            assert_eq!(Bunch::decode_exact(&out).unwrap(), bunch);
        }
    }

    #[test]
    fn bad_bunches_are_refused() {
        let mut out = Vec::new();
        Bunch {
            flags: 0,
            channel: 1,
            sequence: 1,
            part: 0,
            open: None,
            payload: b"x",
        }
        .encode(&mut out);
        let mut unknown_flag = out.clone();
        unknown_flag[0] = 0x40;
        assert!(Bunch::decode_exact(&unknown_flag).is_err());
        let mut final_without_partial = out.clone();
        final_without_partial[0] = flags::PARTIAL_FINAL;
        assert!(Bunch::decode_exact(&final_without_partial).is_err());
        let mut big_channel = Vec::new();
        big_channel.put_u8(0);
        big_channel.put_varint(40_000);
        big_channel.put_varint(0);
        big_channel.put_varint(0);
        assert_eq!(
            Bunch::decode_exact(&big_channel),
            Err(DecodeError::OutOfRange("bunch channel"))
        );
        out.push(0);
        assert_eq!(
            Bunch::decode_exact(&out),
            Err(DecodeError::TrailingBytes(1))
        );
    }
}
