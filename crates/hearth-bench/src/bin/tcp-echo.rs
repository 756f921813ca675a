//! `tcp-echo ADDR`: the session path over TCP (length-prefixed framing, the
//! login flow, bunches, channels) with an echo handler.

use hearth_net::gate::GateConfig;

fn main() -> anyhow::Result<()> {
    let config = GateConfig {
        tcp: Some(hearth_bench::addr_arg()),
        ..GateConfig::default()
    };
    hearth_bench::serve_session_echo("tcp-echo", config)
}
