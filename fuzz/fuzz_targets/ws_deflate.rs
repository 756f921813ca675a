//! Arbitrary bytes into permessage-deflate: the offer and answer parsers, the
//! inflater on its own under every negotiated window and takeover setting,
//! and a server `Protocol` with deflate on. Never a panic; inflated bytes
//! never pass the limit; errors are 1002, 1007 or 1009.
#![no_main]

use bytes::BytesMut;
use hearth_net::ws::deflate::{self, Params, PerMessageDeflate};
use hearth_net::ws::{DeflateConfig, Limits, Protocol, Role};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let config = DeflateConfig {
        max_window_bits: 8 + (flags & 7),
        ..DeflateConfig::on()
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = deflate::negotiate([text], &config);
        let _ = deflate::accept_response(text, &config);
    }
    let params = Params {
        server_no_context_takeover: flags & 0x08 != 0,
        client_no_context_takeover: flags & 0x10 != 0,
        server_max_window_bits: 15,
        client_max_window_bits: 8 + ((flags >> 5) & 7),
    };

    // The inflater alone, the input cut into two frames of one message and
    // then repeated as a second message (context takeover or not).
    let mut codec = PerMessageDeflate::new(Role::Server, &params, &config);
    let split = rest.len() / 2;
    'messages: for _ in 0..2 {
        let mut out = Vec::new();
        for (piece, fin) in [(&rest[..split], false), (&rest[split..], true)] {
            if let Err(error) = codec.inflate(piece, &mut out, LIMIT, fin) {
                assert!(matches!(error.close_code(), 1007 | 1009), "{error}");
                assert!(out.len() <= LIMIT + 1);
                break 'messages;
            }
            assert!(out.len() <= LIMIT);
        }
    }

    // The whole decoder with deflate negotiated.
    let mut protocol = Protocol::new(Role::Server, Limits { max_message: LIMIT });
    protocol.enable_deflate(PerMessageDeflate::new(Role::Server, &params, &config));
    let mut buf = BytesMut::from(rest);
    loop {
        match protocol.decode(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => {
                assert!(matches!(error.close_code(), 1002 | 1007 | 1009), "{error}");
                protocol.fail(&error);
                break;
            }
        }
    }
});
