//! `hearth`: the one binary. `hearth serve` runs the whole server; `hearth
//! client` is a small terminal client.

mod admin;
mod bot;
mod client;
mod client_world;
mod codegen;
mod impair;
mod impair_flags;
mod new;
mod replay;
mod terminal_text;
mod world_check;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Hearth: game networking stack and unified game server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: game port (TCP+UDP), web port (API, pages, WebSocket, metrics).
    Serve(ServeArgs),
    /// Log in and talk to a server from the terminal.
    Client(client::ClientArgs),
    /// Relay UDP through a bad link on purpose: loss, lag, jitter, duplication, reordering, a bandwidth cap.
    Impair(impair::ImpairArgs),
    /// Play back a recording made with `hearth client --record FILE`.
    Replay(replay::ReplayArgs),
    /// Administrators: `hearth admin create NAME` (password on standard input).
    Admin(admin::AdminArgs),
    /// Simulated players for load tests: `hearth bot -n 500 --transport udp,tcp,ws --register`.
    Bot(bot::BotArgs),
    /// Typed client bindings from a game's schema: `hearth codegen --lang ts --schema game.json`.
    Codegen(codegen::CodegenArgs),
    /// A new game crate on the game API that builds, tests and serves: `hearth new mygame`.
    New(new::NewArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    server: hearth_server::ServerFlags,
    /// Impair what clients send over UDP, e.g. "loss=5,lag=40" (rehearsals).
    #[arg(long)]
    impair_up: Option<String>,
    /// Impair what the server sends over UDP.
    #[arg(long)]
    impair_down: Option<String>,
    /// Gone (the world always runs on the game API): accepted with a
    /// warning, so that older scripts still start the server.
    #[arg(long, hide = true)]
    world_engine: Option<String>,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // An error may quote a server's refusal, a web API's answer or a
            // line of a file: shown escaped, with its causes.
            eprintln!("Error: {:#}", terminal_text::escaped_lines(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Client(args) => runtime.block_on(client::run(args)),
        Command::Impair(args) => runtime.block_on(impair::run(args)),
        Command::Replay(args) => runtime.block_on(replay::run(args)),
        Command::Admin(args) => runtime.block_on(admin::run(args)),
        Command::Bot(args) => runtime.block_on(bot::run(args)),
        Command::Codegen(args) => codegen::run(args),
        Command::New(args) => new::run(args),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = args.server.load()?;
    if args.impair_up.is_some() {
        config.game.impair_up = args.impair_up;
    }
    if args.impair_down.is_some() {
        config.game.impair_down = args.impair_down;
    }
    if args.world_engine.is_some() {
        eprintln!("hearth serve: --world-engine is no longer read: the world always runs on the game API; drop the flag");
    }
    let running = hearth_server::start(config).await?;
    println!(
        "hearth serving: game tcp {} udp {}, web {}  (server key {})",
        running.game_tcp,
        running.game_udp.map_or("off".to_owned(), |a| a.to_string()),
        running.web_url(),
        hex(&running.public_key)
    );
    if running.plaintext_public {
        eprintln!(
            "\n  WARNING: the web port {} is reachable from the network WITHOUT TLS.\n  \
             Passwords sent to the web API cross the network unprotected.\n  \
             Give a certificate (--tls-cert FILE --tls-key FILE) or bind 127.0.0.1 behind a TLS proxy.\n",
            running.web
        );
    }
    running
        .run_until(async { format!("server shutting down ({})", wait_for_signal().await) })
        .await?;
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

pub use hearth_codec::to_hex as hex;
