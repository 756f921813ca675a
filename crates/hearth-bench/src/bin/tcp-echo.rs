//! `tcp-echo ADDR`: the session path over TCP (length-prefixed framing, the
//! login flow, bunches, channels) with an echo handler.

use hearth_net::gate::{self, EchoHandler, GateConfig};

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(async move {
        let config = GateConfig {
            tcp: Some(addr),
            ..GateConfig::default()
        };
        let identity = hearth_proto::ServerIdentity::generate(hearth_proto::os_seed());
        let gate = gate::start(config, identity, EchoHandler).await?;
        eprintln!(
            "tcp-echo (hearth session) listening on tcp://{}",
            gate.tcp_addr.expect("bound")
        );
        std::future::pending::<()>().await;
        Ok(())
    })
}
