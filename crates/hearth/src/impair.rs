//! `hearth impair`: a UDP relay that makes the link bad on purpose, to put in
//! front of any UDP game (Hearth's own included) and rehearse loss, lag,
//! jitter, duplication, reordering and a thin pipe.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_net::conditioner::Impairment;
use hearth_net::impair::{Relay, RelayConfig, RelayStats};

#[derive(clap::Args)]
pub struct ImpairArgs {
    /// Where clients send (the relay's address).
    #[arg(long)]
    listen: SocketAddr,
    /// The real server.
    #[arg(long)]
    target: SocketAddr,
    /// Percent of packets lost, both directions.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Milliseconds added to every packet, both directions.
    #[arg(long, default_value_t = 0)]
    lag: u32,
    /// Up to this many more milliseconds, at random, per packet.
    #[arg(long, default_value_t = 0)]
    jitter: u32,
    /// Percent of packets duplicated.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// Percent of packets held back so that later ones overtake them.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Bytes per second each direction carries (default: unlimited).
    #[arg(long)]
    bandwidth: Option<u64>,
    /// Client-to-server impairment instead of the flags above, e.g.
    /// "loss=5,lag=40,jitter=10,dup=1,reorder=2,bandwidth=100000".
    #[arg(long)]
    up: Option<Impairment>,
    /// Server-to-client impairment instead of the flags above.
    #[arg(long)]
    down: Option<Impairment>,
    /// Seeds the randomness: the same seed and traffic give the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    secs: Option<f64>,
}

pub async fn run(args: ImpairArgs) -> anyhow::Result<()> {
    for (name, value) in [
        ("loss", args.loss),
        ("dup", args.dup),
        ("reorder", args.reorder),
    ] {
        if !(0.0..=100.0).contains(&value) {
            anyhow::bail!("--{name} is a percentage: 0 to 100, not {value}");
        }
    }
    let both = Impairment {
        loss_percent: args.loss,
        lag_ms: args.lag,
        jitter_ms: args.jitter,
        duplicate_percent: args.dup,
        reorder_percent: args.reorder,
        bandwidth: args.bandwidth,
    };
    let mut config = RelayConfig::new(args.listen, args.target);
    config.upstream = args.up.unwrap_or(both);
    config.downstream = args.down.unwrap_or(both);
    config.seed = args.seed;
    let relay = Relay::start(config.clone()).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (is the port in use?)",
            args.listen
        )
    })?;
    println!(
        "impairing udp {} -> {}: up {} | down {}",
        relay.local_addr,
        config.target,
        describe(&config.upstream),
        describe(&config.downstream)
    );
    match args.secs {
        Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let stats = relay.stop();
    report(&stats);
    Ok(())
}

fn describe(i: &Impairment) -> String {
    format!(
        "loss {}% lag {} ms jitter {} ms dup {}% reorder {}% bandwidth {}",
        i.loss_percent,
        i.lag_ms,
        i.jitter_ms,
        i.duplicate_percent,
        i.reorder_percent,
        i.bandwidth
            .map_or("unlimited".to_owned(), |b| format!("{b} B/s"))
    )
}

fn report(stats: &RelayStats) {
    for (name, s) in [("up", stats.upstream), ("down", stats.downstream)] {
        println!(
            "{name}: received {} delivered {} dropped {} duplicated {} reordered {} overflowed {}",
            s.received, s.delivered, s.dropped, s.duplicated, s.reordered, s.overflowed
        );
    }
    if stats.refused_clients > 0 {
        println!(
            "packets from clients beyond the limit: {}",
            stats.refused_clients
        );
    }
}
