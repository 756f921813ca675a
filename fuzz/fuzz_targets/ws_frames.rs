//! Arbitrary bytes into Hearth's WebSocket decoder, in both roles, fed in two
//! pieces at an arbitrary split: it must return messages or an error with a
//! close code, never panic, and answer within its limits.
#![no_main]

use bytes::BytesMut;
use hearth_net::ws::{Limits, Protocol, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = (split as usize).min(rest.len());
    for role in [Role::Server, Role::Client] {
        let mut protocol = Protocol::new(role, Limits { max_message: 1 << 16 });
        let mut buf = BytesMut::from(&rest[..split]);
        for piece in [&rest[split..], &[][..]] {
            loop {
                match protocol.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => {
                        assert!(matches!(error.close_code(), 1002 | 1007 | 1009));
                        protocol.fail(&error);
                        return;
                    }
                }
            }
            buf.extend_from_slice(piece);
        }
        assert!(protocol.out.len() <= rest.len() + 256, "replies never outgrow the input");
    }
});
