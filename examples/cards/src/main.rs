//! `cards`: the card game's command line. `cards serve` runs it inside
//! Hearth's server (accounts, every transport, the web API, and the game's
//! page at `/`); `cards play` sits down at a table through the Rust SDK and
//! plays a round by itself; `cards schema` prints its schema as JSON, which
//! `hearth codegen --schema FILE` turns into typed client bindings.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cards::player::AutoPlayer;
use clap::{Parser, Subcommand};
use hearth_client::game::GameSession;
use hearth_client::{Accounts, Event, Options};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};

#[derive(Parser)]
#[command(name = "cards", about = "Higher: a card game on Hearth's game API")]
struct Cli {
    #[command(subcommand)]
    command: CardsCommand,
}

#[derive(Subcommand)]
enum CardsCommand {
    /// Serve the game. Settings as for `hearth serve`: defaults, then hearth.toml (or
    /// --config), then HEARTH_* variables, then these flags.
    Serve {
        #[command(flatten)]
        server: hearth_server::ServerFlags,
    },
    /// Sit down at a table through the Rust SDK and play a round by itself (the
    /// lowest card that beats the top, else pass), printing what it sees, then
    /// leave. Exits 0 once a round it saw start has ended.
    Play(PlayArgs),
    /// Print the game's schema as JSON, e.g. `cargo run -p cards -- schema > cards.json`,
    /// then `hearth codegen --lang ts --schema cards.json`.
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
    /// Ask for a round to start as soon as this many players sit at the table
    /// (without it, someone else starts it).
    #[arg(long)]
    start_with: Option<usize>,
    /// Give up (and exit non-zero) when no round has ended after this many seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        CardsCommand::Schema => println!("{}", serde_json::to_string_pretty(&cards::schema())?),
        CardsCommand::Play(args) => tokio::runtime::Runtime::new()?.block_on(play(args))?,
        CardsCommand::Serve { server } => {
            let settings = server.load()?;
            tokio::runtime::Runtime::new()?.block_on(serve(settings))?;
        }
    }
    Ok(())
}

async fn serve(settings: hearth_server::Config) -> anyhow::Result<()> {
    let running = hearth_server::start_game_with_page(settings, cards::Cards, cards::PAGE).await?;
    println!(
        "cards is serving: game port {} (TCP) {:?} (UDP), web {}",
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
    let mut session = GameSession::join(&args.url, options, cards::generated::VERSION)
        .await
        .map_err(|error| match error {
            // Debug formatting escapes control and format characters: the server chose this text.
            hearth_client::Error::Session(reason) => anyhow::anyhow!("login failed: {reason:?}"),
            other => other.into(),
        })?;
    println!("logged in as {}", args.name);
    let outcome = tokio::select! {
        outcome = play_round(&mut session, &args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // Leave at once, whatever happened: a session merely dropped would keep
    // its seat at the table for the server's resume grace.
    let reason = match &outcome {
        Ok(()) => "the round is over",
        Err(_) => "the player stopped",
    };
    if !session.leave(reason, Duration::from_secs(2)).await {
        eprintln!("the goodbye was not confirmed within two seconds");
    }
    outcome
}

/// Follows the table and plays this player's turns until a round it saw
/// start has ended.
async fn play_round(session: &mut GameSession, args: &PlayArgs) -> anyhow::Result<()> {
    let mut player = AutoPlayer::new();
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let mut asked_to_start = false;
    loop {
        if Instant::now() >= deadline {
            bail!("no round ended within {} seconds", args.secs);
        }
        // None: nothing within a short wait (a move the server dropped is
        // sent again after a second).
        let event = tokio::time::timeout(Duration::from_millis(200), session.next_event())
            .await
            .ok();
        match event {
            Some(Some(Event::Message { channel, payload })) => {
                for line in player.receive(channel, &payload)? {
                    println!("{line}");
                }
            }
            Some(Some(Event::Closed(reason))) => {
                bail!("the server closed the session: {:?}", reason.to_string())
            }
            Some(None) => bail!("the connection ended"),
            Some(Some(_)) | None => {}
        }
        if let Some(ack) = player.poll_ack() {
            session.send(STATE_CHANNEL, &ack).await?;
        }
        if player.round_over() {
            match player.winner() {
                Some(seat) => println!("the round is over: seat {seat} won"),
                None => println!("the round is over"),
            }
            return Ok(());
        }
        if !asked_to_start && args.start_with.is_some_and(|n| player.seated() >= n) {
            if let Some(start) = player.start_message() {
                println!("asking for a round to start");
                session.send(RELIABLE_CHANNEL, &start).await?;
                asked_to_start = true;
            }
        }
        if let Some((_, message)) = player.next_move(Instant::now()) {
            session.send(RELIABLE_CHANNEL, &message).await?;
        }
    }
}
