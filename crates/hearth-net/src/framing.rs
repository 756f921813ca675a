//! Stream framing: each stream packet travels as a 4-byte big-endian length
//! followed by that many bytes. Built on tokio-util's length-delimited codec,
//! which buffers partial frames and splits coalesced ones, so any split or
//! coalescing of TCP segments gives the same packets.

use tokio_util::codec::LengthDelimitedCodec;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// The codec for one TCP connection. Frames longer than `max_frame` are an
/// error that closes the connection, before their body is buffered.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_PREFIX)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Appends one framed packet to `out`.
pub fn write_frame(out: &mut Vec<u8>, packet: &[u8]) {
    out.extend_from_slice(&(packet.len() as u32).to_be_bytes());
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    #[test]
    fn any_split_of_coalesced_frames_gives_the_same_packets() {
        let packets: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; i * 7]).collect();
        let mut wire = Vec::new();
        for p in &packets {
            write_frame(&mut wire, p);
        }
        for chunk in 1..wire.len() {
            let mut codec = codec(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(frame) = codec.decode(&mut buf).unwrap() {
                    got.push(frame.to_vec());
                }
            }
            assert_eq!(got, packets, "chunk size {chunk}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_the_body_arrives() {
        let mut codec = codec(1024);
        let mut buf = BytesMut::from(&2000u32.to_be_bytes()[..]);
        assert!(codec.decode(&mut buf).is_err());
    }
}
