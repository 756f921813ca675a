//! What the cluster's process tests share: a node's directory and config on
//! the project's PostgreSQL and NATS, and a world client's arrival.

use std::path::PathBuf;
use std::time::Duration;

use hearth_client::world::generated::{self, Message};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_client::{connect, Event, Options};
use hearth_cluster::test_servers::{nats_url, postgres_url, unique};

use super::free_port;

/// The two small zones the cluster tests play in.
pub const ZONES: &str = include_str!("../../../hearth-client/tests/data/two_small_zones.toml");

/// Node `name` of `cluster`: its directory, config file (the two small
/// zones, heartbeats every `heartbeat_ms`, and `extra` appended), game
/// port and web port.
pub fn node(
    cluster: &str,
    name: &str,
    heartbeat_ms: u64,
    extra: &str,
) -> (PathBuf, PathBuf, u16, u16) {
    let dir = std::env::temp_dir().join(unique(&format!("hearth-{cluster}-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    let zones = dir.join("zones.toml");
    std::fs::write(&zones, ZONES).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {database:?}\n\
             [world]\nzones = {zones:?}\n\
             [cluster]\nnats = {nats:?}\nname = {cluster:?}\nnode = {name:?}\nheartbeat_ms = {heartbeat_ms}\n\
             {extra}",
            database = postgres_url(),
            nats = nats_url(),
        ),
    )
    .unwrap();
    (dir, config, free_port(), free_port())
}

/// Waits (20 s at most) until the client enters a zone and is ready: the
/// zone's name. A closed session fails the test.
pub async fn arrival(world: &mut WorldClient) -> String {
    let mut zone = None;
    let ready = world
        .until(Duration::from_secs(20), |update, client| {
            match update {
                WorldUpdate::Message(Message::Entered { zone: entered }) => {
                    zone = Some(entered.clone())
                }
                WorldUpdate::Session(Event::Closed(reason)) => {
                    panic!("the session closed: {reason}")
                }
                _ => {}
            }
            zone.is_some() && client.is_ready()
        })
        .await;
    assert!(ready.is_some(), "entered a zone");
    zone.unwrap()
}

/// Registers a fresh player (named after `name`) on the node whose web port
/// is `web`, logs them in on its game port `port` as a world client, and
/// waits for their arrival: the client and the zone.
pub async fn new_player(name: &str, port: u16, web: u16) -> (WorldClient, String) {
    let name = unique(name).replace('-', "_");
    hearth_client::Accounts::new(&format!("http://127.0.0.1:{web}"))
        .register(&name, "correct horse")
        .await
        .unwrap();
    let mut options = Options::password(&name, "correct horse");
    options
        .options
        .push_str(&format!("?schema={}", generated::VERSION));
    let url = format!("tcp://127.0.0.1:{port}");
    let mut world = WorldClient::new(connect(&url, options).await.unwrap());
    let zone = arrival(&mut world).await;
    (world, zone)
}

/// `hearth admin ARGS --config CONFIG`, run to its end.
pub fn admin(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("admin")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}
