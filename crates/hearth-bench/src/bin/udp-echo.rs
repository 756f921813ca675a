//! `udp-echo ADDR`: the whole session path over UDP (cookie handshake,
//! AEAD, bunches, channels) with an echo handler: every message comes back on
//! its channel. Logins are accepted without credentials.

use hearth_net::gate::{self, EchoHandler, GateConfig};

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(async move {
        let config = GateConfig {
            udp: Some(addr),
            ..GateConfig::default()
        };
        let identity = hearth_proto::ServerIdentity::generate(hearth_proto::os_seed());
        let gate = gate::start(config, identity, EchoHandler).await?;
        eprintln!(
            "udp-echo (hearth session) listening on udp://{}",
            gate.udp_addr.expect("bound")
        );
        std::future::pending::<()>().await;
        Ok(())
    })
}
