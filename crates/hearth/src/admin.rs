//! `hearth admin`: administrators from the command line, on the server's
//! own database (it can run while the server does); and draining a node of
//! a cluster, over the cluster's NATS.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Hand every player in a cluster node's lines to the other nodes, and
    /// send that node no more (until it restarts); waits until it has none.
    /// Uses the config's [cluster] settings (nats, name).
    Drain {
        /// The node's name (`[cluster] node`).
        node: String,
        /// Give up waiting after this many seconds (the drain goes on).
        #[arg(long, default_value_t = 120)]
        wait: u64,
        /// Stop draining the node: it takes players again.
        #[arg(long)]
        undo: bool,
    },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut config = hearth_server::Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = args.database_url {
        config.database_url = url;
    }
    if let AdminAction::Drain { node, wait, undo } = &args.action {
        return drain(&config, node, Duration::from_secs(*wait), *undo).await;
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
        AdminAction::Drain { .. } => unreachable!("handled above"),
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

/// `hearth admin drain NODE`: asks the node over the cluster's NATS, then
/// follows its record until no player is left in its lines.
async fn drain(
    config: &hearth_server::Config,
    name: &str,
    wait: Duration,
    undo: bool,
) -> anyhow::Result<()> {
    use hearth_cluster::{connect_nats, ClusterName, NodeId, Presence};
    let settings = &config.cluster;
    anyhow::ensure!(
        settings.enabled(),
        "this config names no cluster: set [cluster] nats (or HEARTH_CLUSTER) to the cluster's NATS URL"
    );
    let cluster = ClusterName::new(&settings.name)?;
    // A client of the cluster, not a node: named for NATS's connection list.
    let me = NodeId::new("admin-cli")?;
    let client = connect_nats(&settings.nats, &me).await?;
    let period = Duration::from_millis(settings.heartbeat_ms.clamp(100, 60_000));
    let presence = Presence::open(&client, &cluster, period).await?;
    let members = presence.members().await?;
    let Some(target) = members.iter().find(|node| node.id.name() == name) else {
        let names: Vec<&str> = members.iter().map(|node| node.id.name()).collect();
        anyhow::bail!(
            "no live node named {name:?} in cluster {}: its nodes are {names:?}",
            cluster.as_str()
        );
    };
    let id = target.id.clone();
    let answer = hearth_cluster::drain::ask(
        &client,
        &cluster,
        &id,
        "hearth admin drain",
        undo,
        Duration::from_secs(10),
    )
    .await?;
    if let Some(reason) = answer.refused {
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect();
        anyhow::bail!("{name} will not drain: {reason}");
    }
    if undo {
        println!("{name} takes players again");
        return Ok(());
    }
    println!("{name}: draining, {} players to hand on", answer.players);
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = None;
    loop {
        let players = presence
            .members()
            .await?
            .into_iter()
            .find(|node| node.id == id)
            .map(|node| (node.players, node.draining));
        match players {
            None => {
                println!("{name} left the cluster");
                return Ok(());
            }
            Some((0, true)) => {
                println!("{name} is drained: no player in its lines");
                return Ok(());
            }
            Some((players, _)) if last != Some(players) => {
                println!("{name}: {players} players left in its lines");
                last = Some(players);
            }
            Some(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{name} still has players in its lines after {wait:?} (the drain goes on): the other nodes may be full, busy or draining; see /admin"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
