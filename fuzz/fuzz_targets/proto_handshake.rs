//! Handshake packets and protected headers: decode never panics, and what
//! decodes re-encodes to the same bytes (padding aside).
#![no_main]
use hearth_proto::handshake::{HandshakePacket, ProtectedHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ProtectedHeader::decode(data);
    if let Ok(packet) = HandshakePacket::decode(data) {
        let bytes = packet.to_vec();
        assert_eq!(HandshakePacket::decode(&bytes).as_ref(), Ok(&packet));
    }
});
