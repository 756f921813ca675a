//! A game's schema from arbitrary bytes (what a client reads from a server
//! it does not trust): no panic, nothing reserved beyond the input, and a
//! schema that decodes re-encodes to the same bytes and version. Then the
//! rest of the input as each of its messages: whatever decodes is within
//! the declared types, and its encoding decodes to the same values.

#![no_main]

use hearth_replica::schema::Schema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (schema_bytes, rest) = data.split_at(split);
    let schema = match Schema::decode(data).or_else(|_| Schema::decode(schema_bytes)) {
        Ok(schema) => schema,
        Err(_) => return,
    };
    let encoded = schema.encode();
    let again = Schema::decode(&encoded).expect("a schema's own encoding decodes");
    assert_eq!(again, schema);
    assert_eq!(again.version(), schema.version());
    for message in schema.messages() {
        if let Ok(values) = message.decode(rest) {
            let mut out = Vec::new();
            message.encode(&values, &mut out).expect("decoded values are admitted");
            assert_eq!(message.decode(&out).as_ref(), Ok(&values));
        }
    }
});
