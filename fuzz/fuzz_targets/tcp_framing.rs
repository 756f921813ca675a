//! Arbitrary bytes into the TCP stream framing, in arbitrary chunks: frames
//! come out whole and never over the maximum, or the stream is refused.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let mut codec = hearth_net::framing::codec(4096);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk as usize + 1) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => assert!(frame.len() <= 4096),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
