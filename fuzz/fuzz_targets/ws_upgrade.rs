//! Arbitrary bytes as a server's answer to a client's upgrade request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hearth_net::ws::handshake::parse_client_response(data, "dGhlIHNhbXBsZSBub25jZQ==");
});
