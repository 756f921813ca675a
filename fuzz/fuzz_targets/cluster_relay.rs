//! What a node receives from another over NATS about players (a zone's
//! message, a message by name, an announcement) is untrusted input.
//! Decoding anything must not panic; what decodes is within the bounds the
//! decoder promises, encodes, and decodes again to the same message.

#![no_main]

use hearth_cluster::relay_wire::{
    decode, encode, Relayed, MAX_RELAY_BODY, MAX_RELAY_MESSAGE, MAX_RELAY_NAME, MAX_RELAY_TEXT,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_RELAY_MESSAGE);
    assert!(envelope.origin.len() <= MAX_RELAY_NAME);
    assert!(envelope.schema.len() <= MAX_RELAY_NAME);
    match &envelope.relayed {
        Relayed::Zone {
            zone: name, body, ..
        }
        | Relayed::Named { name, body, .. } => {
            assert!(name.len() <= MAX_RELAY_NAME);
            assert!(body.len() <= MAX_RELAY_BODY);
        }
        Relayed::Announce { text } => assert!(text.len() <= MAX_RELAY_TEXT),
    }
    let again = encode(&envelope).expect("what decodes encodes");
    assert_eq!(decode(&again), Ok(envelope));
});
