//! `hearth admin`: administrators from the command line, on the server's
//! own database (it can run while the server does).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use hearth_server::accounts::{Accounts, Role};
use hearth_server::storage::Storage;

#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    action: AdminAction,
    /// Config file (default: ./hearth.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where the database lives (as for `hearth serve`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB (as for `hearth serve`).
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(clap::Subcommand)]
enum AdminAction {
    /// Create an administrator account; the password is read from the first line of standard input.
    Create {
        name: String,
        /// Make an existing account an administrator instead (no password needed).
        #[arg(long)]
        promote: bool,
    },
    /// Take the administrator role away (the account stays, as a player).
    Demote { name: String },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut config = hearth_server::Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let storage = Storage::open(&config.database_url, &config.data_dir).await?;
    let accounts = Accounts::new(storage, config.accounts.clone(), config.limit_loopback);
    match args.action {
        AdminAction::Create { name, promote } => {
            let password = if promote {
                None
            } else {
                eprintln!("password for {name} (one line on standard input):");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            };
            accounts
                .create_admin(&name, password.as_deref(), promote)
                .await
                .with_context(|| format!("cannot make {name} an administrator"))?;
            println!("{name} is an administrator: log in at /admin");
        }
        AdminAction::Demote { name } => {
            accounts
                .set_role(&name, Role::Player)
                .await
                .with_context(|| format!("cannot demote {name}"))?;
            println!("{name} is a player again");
        }
    }
    Ok(())
}
