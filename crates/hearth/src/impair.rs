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
    /// A time-varying profile (TOML): steps that change the impairments or
    /// the relay's address at given seconds from the start, e.g.
    ///   [[step]] at = 30  both = "loss=20"
    ///   [[step]] at = 40  both = "loss=100"   # UDP blocked
    ///   [[step]] at = 45  both = ""  change_address = true
    #[arg(long)]
    profile: Option<std::path::PathBuf>,
}

/// One step of a profile; impairments not named stay as they were.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Seconds from the start.
    pub at: f64,
    pub both: Option<String>,
    pub up: Option<String>,
    pub down: Option<String>,
    /// Traffic to the server leaves from a new port from here on.
    #[serde(default)]
    pub change_address: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    step: Vec<Step>,
}

/// Reads a profile, steps in time order, impairments checked.
pub fn parse_profile(text: &str) -> anyhow::Result<Vec<Step>> {
    let profile: Profile =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("the profile is not valid: {e}"))?;
    let mut steps = profile.step;
    for step in &steps {
        if !step.at.is_finite() || step.at < 0.0 {
            anyhow::bail!(
                "a step's `at` is seconds from the start (0 or more), not {}",
                step.at
            );
        }
        for spec in [&step.both, &step.up, &step.down].into_iter().flatten() {
            spec.parse::<Impairment>()?;
        }
    }
    steps.sort_by(|a, b| a.at.total_cmp(&b.at));
    Ok(steps)
}

/// Runs the profile's steps against the relay, printing each.
async fn play(relay: &Relay, mut up: Impairment, mut down: Impairment, steps: Vec<Step>) {
    let start = tokio::time::Instant::now();
    for step in steps {
        tokio::time::sleep_until(start + Duration::from_secs_f64(step.at)).await;
        let parse = |spec: &Option<String>| {
            spec.as_deref()
                .map(|s| s.parse::<Impairment>().expect("checked when read"))
        };
        if let Some(both) = parse(&step.both) {
            (up, down) = (both, both);
        }
        up = parse(&step.up).unwrap_or(up);
        down = parse(&step.down).unwrap_or(down);
        relay.set_impairments(up, down);
        if step.change_address {
            relay.change_addresses();
        }
        println!(
            "at {:.1} s: up {} | down {}{}",
            step.at,
            describe(&up),
            describe(&down),
            if step.change_address {
                " | address changed"
            } else {
                ""
            }
        );
    }
    std::future::pending::<()>().await;
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
    let steps = match &args.profile {
        Some(path) => parse_profile(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the profile {}: {e}", path.display()))?,
        )?,
        None => Vec::new(),
    };
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
    let until = async {
        match args.secs {
            Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::select! {
        () = until => {}
        () = play(&relay, config.upstream, config.downstream, steps) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_in_time_order_and_bad_ones_say_why() {
        let steps = parse_profile(
            "[[step]]\nat = 40\nboth = \"loss=100\"\n[[step]]\nat = 30\nup = \"loss=20\"\n[[step]]\nat = 45\nboth = \"\"\nchange_address = true\n",
        )
        .unwrap();
        assert_eq!(
            steps.iter().map(|s| s.at).collect::<Vec<_>>(),
            [30.0, 40.0, 45.0]
        );
        assert!(steps[2].change_address);
        assert!(parse_profile("[[step]]\nat = 1\nboth = \"loss=200\"\n")
            .unwrap_err()
            .to_string()
            .contains("key=value"));
        assert!(parse_profile("[[step]]\nat = -1\n").is_err());
        assert!(parse_profile("[[step]]\nat = 1\nspeed = 3\n").is_err());
    }
}
