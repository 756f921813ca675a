use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kcp_peer::client::{self, ClientPlan};
use kcp_peer::relay::LossyRelay;
use kcp_peer::server;
use kcp_peer::settings::KcpArgs;

/// KCP echo peer: `server` echoes, `client` sends, verifies every byte and prints
/// round-trip statistics, `demo` runs both through a lossy relay on 127.0.0.1.
#[derive(Parser)]
#[command(name = "kcp-peer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo every message back to its sender.
    Server {
        addr: SocketAddr,
        #[command(flatten)]
        kcp: KcpArgs,
    },
    /// Send messages to a server, check the echoes, print statistics.
    Client {
        addr: SocketAddr,
        #[command(flatten)]
        kcp: KcpArgs,
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// Forward UDP between clients and UPSTREAM, dropping a share of datagrams.
    Relay {
        upstream: SocketAddr,
        /// Datagrams to drop, in percent, each way.
        #[arg(long, default_value_t = 10)]
        loss: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Server and client in one process, through a relay that drops datagrams.
    Demo {
        #[command(flatten)]
        kcp: KcpArgs,
        #[command(flatten)]
        plan: PlanArgs,
        /// Datagrams the relay drops, in percent, each way.
        #[arg(long, default_value_t = 10)]
        loss: u32,
    },
}

#[derive(clap::Args)]
struct PlanArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Bytes per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight at once.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u32,
}

impl PlanArgs {
    fn plan(&self) -> ClientPlan {
        ClientPlan {
            count: self.count,
            size: self.size,
            window: self.window,
            timeout_ms: self.timeout * 1000,
        }
    }
}

fn run_client(addr: SocketAddr, kcp: &KcpArgs, plan: &PlanArgs) -> anyhow::Result<bool> {
    let report = client::run(addr, kcp, &plan.plan())?;
    println!("{report}");
    if report.lost > 0 {
        eprintln!(
            "kcp-peer client: {} of {} messages not echoed in time",
            report.lost, report.count
        );
    }
    Ok(report.lost == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Server { addr, kcp } => server::bind(addr)
            .and_then(|socket| server::serve(socket, &kcp))
            .map(|()| true),
        Command::Client { addr, kcp, plan } => run_client(addr, &kcp, &plan),
        Command::Relay {
            upstream,
            loss,
            seed,
        } => (|| {
            let relay = LossyRelay::spawn(upstream, loss, seed)?;
            eprintln!(
                "kcp-peer relay: echoing on {} -> {upstream}, dropping {loss}%",
                relay.addr
            );
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                eprintln!(
                    "forwarded {} dropped {}",
                    relay.forwarded(),
                    relay.dropped()
                );
            }
        })(),
        Command::Demo { kcp, plan, loss } => (|| {
            let socket = server::bind("127.0.0.1:0".parse()?)?;
            let server_addr = socket.local_addr()?;
            let server_kcp = kcp.clone();
            std::thread::spawn(move || server::serve(socket, &server_kcp));
            let relay = LossyRelay::spawn(server_addr, loss, 1)?;
            println!("server on {server_addr}, client through a relay dropping {loss}% each way");
            let ok = run_client(relay.addr, &kcp, &plan)?;
            println!(
                "relay: {} datagrams forwarded, {} dropped",
                relay.forwarded(),
                relay.dropped()
            );
            Ok(ok)
        })(),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("kcp-peer: {error:#}");
            ExitCode::FAILURE
        }
    }
}
