//! `cards`: the card game's command line. `cards schema` prints the game's
//! schema as JSON, which `hearth codegen --schema FILE` turns into typed
//! client bindings.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cards", about = "Higher: a card game on Hearth's game API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the game's schema as JSON, e.g. `cargo run -p cards -- schema > cards.json`,
    /// then `hearth codegen --lang ts --schema cards.json`.
    Schema,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Schema => println!("{}", serde_json::to_string_pretty(&cards::schema())?),
    }
    Ok(())
}
