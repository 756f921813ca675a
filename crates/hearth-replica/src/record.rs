//! Recordings of what a client received from a game: every game message
//! (decrypted, as the session delivered it) with the time it arrived, after
//! the game's schema on [`SCHEMA_CHANNEL`], so a session can be replayed
//! into a [`crate::game_replica::GameReplica`] later.
//!
//! File format: the 8 bytes `HRTHREC1`, then records, each `u64` microseconds
//! since the recording started, `u16` channel, `u32` length (all
//! little-endian) and that many bytes. A record is at most
//! [`MAX_RECORD`] bytes long; a truncated last record (a crash while
//! writing) ends the recording cleanly.

use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"HRTHREC1";
/// The channel of a game recording's first record: the game's schema as
/// JSON (as `/api/schema` serves it), so that a replay needs nothing but
/// the file to decode what follows. No session uses this channel.
pub const SCHEMA_CHANNEL: u16 = u16::MAX;
/// Largest message a recording holds (the largest world message, an
/// Entered item with the biggest map, fits).
pub const MAX_RECORD: usize = 2 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub micros: u64,
    pub channel: u16,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a Hearth recording (it does not start with HRTHREC1)")]
    NotARecording,
    #[error(
        "record of {0} bytes is larger than any world message ({MAX_RECORD}): the file is damaged"
    )]
    TooLarge(usize),
    #[error("records go back in time ({then} µs after {before} µs): the file is damaged")]
    OutOfOrder { before: u64, then: u64 },
    #[error("cannot read the recording: {0}")]
    Io(#[from] io::Error),
}

/// Writes a recording.
pub struct Recorder<W: Write> {
    out: W,
}

impl<W: Write> Recorder<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self { out })
    }

    pub fn record(&mut self, micros: u64, channel: u16, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > MAX_RECORD {
            return Ok(());
        }
        self.out.write_all(&micros.to_le_bytes())?;
        self.out.write_all(&channel.to_le_bytes())?;
        self.out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.out.write_all(bytes)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads every record of a recording.
pub fn read_all(mut input: impl Read) -> Result<Vec<Record>, RecordError> {
    let mut magic = [0u8; 8];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(RecordError::NotARecording);
    }
    let mut records = Vec::new();
    let mut last = 0u64;
    loop {
        let mut header = [0u8; 14];
        match read_full(&mut input, &mut header)? {
            0 => return Ok(records),
            n if n < header.len() => return Ok(records),
            _ => {}
        }
        let micros = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let channel = u16::from_le_bytes(header[8..10].try_into().expect("2 bytes"));
        let len = u32::from_le_bytes(header[10..14].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD {
            return Err(RecordError::TooLarge(len));
        }
        if micros < last {
            return Err(RecordError::OutOfOrder {
                before: last,
                then: micros,
            });
        }
        last = micros;
        let mut bytes = vec![0u8; len];
        if read_full(&mut input, &mut bytes)? < len {
            // The writer stopped mid-record: what came before is whole.
            return Ok(records);
        }
        records.push(Record {
            micros,
            channel,
            bytes,
        });
    }
}

/// Reads until `buf` is full or the input ends; how many bytes came.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_round_trip_and_damage_is_reported() {
        let mut file = Vec::new();
        let mut recorder = Recorder::new(&mut file).unwrap();
        recorder.record(5, 10, b"abc").unwrap();
        recorder.record(9, 11, b"").unwrap();
        let records = read_all(&file[..]).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            Record {
                micros: 5,
                channel: 10,
                bytes: b"abc".to_vec()
            }
        );
        // A crash mid-record keeps what came before.
        assert_eq!(read_all(&file[..file.len() - 3]).unwrap().len(), 1);
        assert!(matches!(
            read_all(&b"nope"[..]),
            Err(RecordError::NotARecording)
        ));
        let mut backwards = file.clone();
        backwards.extend_from_slice(&1u64.to_le_bytes());
        backwards.extend_from_slice(&[10, 0, 0, 0, 0, 0]);
        assert!(matches!(
            read_all(&backwards[..]),
            Err(RecordError::OutOfOrder { .. })
        ));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[0; 8]);
        huge.extend_from_slice(&[10, 0]);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_all(&huge[..]), Err(RecordError::TooLarge(_))));
    }
}
