//! `tag`: the tag game's command line. `tag serve` runs it inside Hearth's
//! server (accounts, every transport, the web API); `tag schema` prints its
//! schema as JSON, which `hearth codegen --schema FILE` turns into typed
//! client bindings.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tag", about = "Tag: an arena game on Hearth's game API")]
struct Cli {
    #[command(subcommand)]
    command: TagCommand,
}

#[derive(Subcommand)]
enum TagCommand {
    /// Serve the game. Settings as for `hearth serve`: defaults, then hearth.toml (or
    /// --config), then HEARTH_* variables, then these flags.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Game port (TCP and UDP).
        #[arg(long)]
        port: Option<u16>,
        /// Web port (API, /ws, /metrics, /api/schema).
        #[arg(long)]
        web_port: Option<u16>,
        /// Database and server key.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the game's schema as JSON, e.g. `cargo run -p tag -- schema > tag.json`,
    /// then `hearth codegen --lang ts --schema tag.json`.
    Schema,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        TagCommand::Schema => println!("{}", serde_json::to_string_pretty(&tag::schema())?),
        TagCommand::Serve {
            config,
            port,
            web_port,
            data_dir,
        } => {
            let mut settings = hearth_server::Config::load(config.as_deref())?;
            if let Some(port) = port {
                settings.port = port;
            }
            if let Some(port) = web_port {
                settings.web_port = port;
            }
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            tokio::runtime::Runtime::new()?.block_on(serve(settings))?;
        }
    }
    Ok(())
}

async fn serve(settings: hearth_server::Config) -> anyhow::Result<()> {
    let running = hearth_server::start_game(settings, tag::Tag::default()).await?;
    println!(
        "tag is serving: game port {} (TCP) {:?} (UDP), web {}",
        running.game_tcp,
        running.game_udp,
        running.web_url()
    );
    running
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
            "the server is stopping".to_owned()
        })
        .await?;
    Ok(())
}
