//! Frames and bunches (a protected packet's plaintext, a stream packet, a
//! reliable bunch inside KCP): decode never panics; bunches round-trip.
#![no_main]
use hearth_proto::bunch::Bunch;
use hearth_proto::frame::{Frame, Frames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for frame in Frames::new(data) {
        let Ok(frame) = frame else { break };
        if let Frame::Bunch(bunch) = &frame {
            let mut bytes = Vec::new();
            bunch.encode(&mut bytes);
            assert_eq!(bytes.len(), bunch.encoded_len());
            assert_eq!(Bunch::decode_exact(&bytes).as_ref(), Ok(bunch));
        }
    }
    let _ = Bunch::decode_exact(data);
});
