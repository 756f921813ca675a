//! `tag`: the tag game's command line. `tag serve` runs it inside Hearth's
//! server (accounts, every transport, the web API, and the game's page at
//! `/`); `tag play` runs in the arena through the Rust SDK by itself,
//! printing what it sees; `tag schema` prints its schema as JSON, which
//! `hearth codegen --schema FILE` turns into typed client bindings.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_client::game::GameSession;
use hearth_client::{Accounts, Options};
use tag::bot::Bot;
use tokio::time::Instant;

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
        #[command(flatten)]
        server: hearth_server::ServerFlags,
        /// Seconds a round lasts.
        #[arg(long, default_value_t = tag::ROUND_SECS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(tag::ROUND_SECS)))]
        round_secs: u32,
        /// The arena's map from a file, rows of cells as in zones.toml (# a wall,
        /// . floor, S a spawn point), instead of the built-in arena.
        #[arg(long)]
        map: Option<PathBuf>,
    },
    /// Run in the arena through the Rust SDK by itself (chasing when it is it,
    /// fleeing it otherwise), printing what it sees (runners, tags, rounds), for
    /// --secs seconds or until stopped (Ctrl-C or SIGTERM); then leave.
    Play(PlayArgs),
    /// Print the game's schema as JSON, e.g. `cargo run -p tag -- schema > tag.json`,
    /// then `hearth codegen --lang ts --schema tag.json`.
    Schema,
}

#[derive(clap::Args)]
struct PlayArgs {
    /// hearth://HOST:PORT (TCP then UDP), udp://, tcp://, ws://HOST:WEBPORT/ws or wss://.
    #[arg(default_value = "hearth://127.0.0.1:7777")]
    url: String,
    /// Account name.
    #[arg(long)]
    name: String,
    /// Password (or set HEARTH_PASSWORD).
    #[arg(long, env = "HEARTH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Register the account first, through the web API.
    #[arg(long)]
    register: bool,
    /// The web API, for --register (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    web: String,
    /// Leave after this many seconds (without it, play until stopped).
    #[arg(long)]
    secs: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        TagCommand::Schema => println!("{}", serde_json::to_string_pretty(&tag::schema())?),
        TagCommand::Play(args) => tokio::runtime::Runtime::new()?.block_on(play(args))?,
        TagCommand::Serve {
            server,
            round_secs,
            map,
        } => {
            let settings = server.load()?;
            let mut game = tag::Tag {
                round_secs,
                ..tag::Tag::default()
            };
            if let Some(file) = map {
                game.map = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading the map {}", file.display()))?;
                game.check()
                    .with_context(|| format!("the map {} is no arena", file.display()))?;
            }
            tokio::runtime::Runtime::new()?.block_on(serve(settings, game))?;
        }
    }
    Ok(())
}

async fn serve(settings: hearth_server::Config, game: tag::Tag) -> anyhow::Result<()> {
    let running = hearth_server::start_game_with_page(settings, game, tag::PAGE).await?;
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

async fn play(args: PlayArgs) -> anyhow::Result<()> {
    if args.register {
        Accounts::new(&args.web)
            .register(&args.name, &args.password)
            .await
            .with_context(|| format!("registering {}", args.name))?;
        println!("registered {}", args.name);
    }
    let options = Options::password(&args.name, &args.password);
    // A server that runs another version of the game refuses the login, and says why.
    let mut session = GameSession::join(&args.url, options, tag::generated::VERSION)
        .await
        .map_err(|error| match error {
            // Debug formatting escapes control and format characters: the server chose this text.
            hearth_client::Error::Session(reason) => anyhow::anyhow!("login failed: {reason:?}"),
            other => other.into(),
        })?;
    println!("logged in as {}", args.name);
    // Players start out in different directions.
    let heading = args.name.bytes().map(usize::from).sum::<usize>();
    let mut bot = Bot::new(heading);
    let end = args
        .secs
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let outcome = tokio::select! {
        outcome = tag::play::run(&mut session, &mut bot, end, |line| println!("{line}")) => {
            outcome.map_err(anyhow::Error::from)
        }
        stop = stopped() => stop.map(|()| println!("told to stop")),
    };
    let tags = bot
        .messages()
        .iter()
        .filter(|m| matches!(m, tag::generated::Message::Tagged { .. }))
        .count();
    let rounds = bot
        .messages()
        .iter()
        .filter(|m| matches!(m, tag::generated::Message::RoundOver { .. }))
        .count();
    println!(
        "leaving: saw {tags} tags and {rounds} rounds end, corrected {} times",
        bot.corrections()
    );
    // Leave at once: a session merely dropped would keep its runner in the
    // arena for the server's resume grace.
    let reason = match &outcome {
        Ok(()) => "the player is done",
        Err(_) => "the player stopped",
    };
    if !session.leave(reason, Duration::from_secs(2)).await {
        eprintln!("the goodbye was not confirmed within two seconds");
    }
    outcome
}

/// Ctrl-C or SIGTERM.
async fn stopped() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}
