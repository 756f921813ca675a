//! Control messages: decode never panics and round-trips.
#![no_main]
use hearth_proto::control::ControlMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ControlMessage::decode(data) {
        assert_eq!(ControlMessage::decode(&message.to_vec()), Ok(message));
    }
});
