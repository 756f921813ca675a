//! `hearth codegen`: typed client bindings from a game's schema, for the
//! TypeScript client or the Rust SDK (see the `hearth-codegen` crate).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hearth_replica::schema::Schema;

#[derive(clap::Args)]
pub struct CodegenArgs {
    /// Language of the bindings.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The game's schema as JSON, e.g. from `cargo run -p cards -- schema > cards.json`.
    #[arg(long, required_unless_present = "url", conflicts_with = "url")]
    schema: Option<PathBuf>,
    /// A running server's web address (http://HOST:PORT), to read the schema it serves.
    #[arg(long)]
    url: Option<String>,
    /// Write the bindings to FILE (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Where the TypeScript bindings import the client library from (default @hearth/client).
    #[arg(long, value_name = "MODULE")]
    import: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    Ts,
    Rust,
}

const DEFAULT_IMPORT: &str = "@hearth/client";

pub fn run(args: CodegenArgs) -> anyhow::Result<()> {
    let schema = match (&args.schema, &args.url) {
        (Some(path), _) => read_schema(path)?,
        (None, Some(url)) => tokio::runtime::Runtime::new()?
            .block_on(hearth_client::Accounts::new(url).game_schema())
            .with_context(|| {
                format!(
                    "reading the schema that {url} serves at /api/schema (a server running a \
                     game on the game API serves one; the built-in world has none)"
                )
            })?,
        (None, None) => bail!("give --schema FILE.json or --url http://HOST:PORT"),
    };
    let code = match args.lang {
        Lang::Ts => {
            hearth_codegen::typescript(&schema, args.import.as_deref().unwrap_or(DEFAULT_IMPORT))
        }
        Lang::Rust => {
            if args.import.is_some() {
                bail!("--import is for --lang ts: the Rust bindings use the hearth-replica crate");
            }
            hearth_codegen::rust(&schema)
        }
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, code).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} (game {}, schema version {})",
                path.display(),
                schema.game(),
                schema.version()
            );
        }
        None => print!("{code}"),
    }
    Ok(())
}

fn read_schema(path: &Path) -> anyhow::Result<Schema> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a game schema (the JSON a game's schema serializes to, e.g. `cargo run -p cards -- schema`)",
            path.display()
        )
    })
}
