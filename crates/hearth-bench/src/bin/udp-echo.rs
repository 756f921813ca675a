//! `udp-echo ADDR`: the whole session path over UDP (cookie handshake,
//! AEAD, bunches, channels) with an echo handler: every message comes back on
//! its channel. Logins are accepted without credentials.

use hearth_net::gate::GateConfig;

fn main() -> anyhow::Result<()> {
    let config = GateConfig {
        udp: Some(hearth_bench::addr_arg()),
        ..GateConfig::default()
    };
    hearth_bench::serve_session_echo("udp-echo", config)
}
