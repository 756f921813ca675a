//! What a node receives from another about a player who plays across nodes
//! (arrivals, client input, bytes for the client, data to save, handovers)
//! is untrusted input. Decoding anything must not panic; what decodes is
//! within the decoder's bounds, encodes, and decodes again to the same. A
//! batch splits into messages within their bound that batch again into
//! the same messages.

#![no_main]

use hearth_cluster::forward_wire::{
    decode, encode, encode_batch, split_batch, Forwarded, FORWARD_BATCH_VERSION,
    MAX_BATCH_MESSAGES, MAX_FORWARD_BATCH, MAX_FORWARD_BYTES, MAX_FORWARD_LIMITS,
    MAX_FORWARD_MESSAGE, MAX_FORWARD_NAME,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = split_batch(data) {
        assert!(data.len() <= MAX_FORWARD_BATCH);
        if data.first() == Some(&FORWARD_BATCH_VERSION) {
            assert!((2..=MAX_BATCH_MESSAGES).contains(&items.len()));
            assert!(items.iter().all(|item| item.len() <= MAX_FORWARD_MESSAGE));
            // (Varints may come overlong: the bytes need not be the same,
            // the messages must.)
            let again = encode_batch(items.iter().copied());
            assert_eq!(
                split_batch(&again).expect("what splits batches again"),
                items
            );
        } else {
            assert_eq!(items, [data]);
        }
    }
    let Ok(envelope) = decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_FORWARD_MESSAGE);
    assert!(envelope.origin.len() <= MAX_FORWARD_NAME);
    match &envelope.forwarded {
        Forwarded::Arrive(handover) | Forwarded::Departed(handover) => {
            assert!(handover.name.len() <= MAX_FORWARD_NAME);
            assert!(handover.zone.len() <= MAX_FORWARD_NAME);
            assert!(handover
                .data
                .as_ref()
                .is_none_or(|d| d.len() <= MAX_FORWARD_BYTES));
            assert_ne!(handover.bytes_per_second, Some(0));
            assert!(handover.limits.len() <= MAX_FORWARD_LIMITS);
        }
        Forwarded::Input { bytes, .. } | Forwarded::Send { bytes, .. } => {
            assert!(bytes.len() <= MAX_FORWARD_BYTES)
        }
        Forwarded::Save { data, .. } => assert!(data.len() <= MAX_FORWARD_BYTES),
        Forwarded::Close { reason } | Forwarded::Refused { reason } => {
            assert!(reason.len() <= MAX_FORWARD_NAME)
        }
        Forwarded::Leave | Forwarded::Arrived => {}
    }
    let again = encode(&envelope).expect("what decodes encodes");
    assert_eq!(decode(&again), Ok(envelope));
});
