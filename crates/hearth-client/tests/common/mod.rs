//! What the server tests share: a fresh data directory, a config on free
//! ports (PostgreSQL when `HEARTH_TEST_DATABASE_URL` is set), unique names.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hearth_server::Config;

pub mod cluster;

/// An empty data directory for one test (`label`) of this test process.
pub fn data_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-test-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A server config on ports the system picks, storing in `dir` (or the
/// PostgreSQL database the environment names).
pub fn config(dir: &Path) -> Config {
    let mut config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    if let Ok(url) = std::env::var("HEARTH_TEST_DATABASE_URL") {
        config.database_url = url;
    }
    config
}

/// `name` with a random suffix: account names never clash between runs
/// sharing one PostgreSQL database.
pub fn unique(name: &str) -> String {
    let seed = hearth_proto::os_seed();
    format!("{name}_{:02x}{:02x}{:02x}", seed[0], seed[1], seed[2])
}

/// The server's `/metrics` page on web address `web`.
pub async fn metrics(web: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{web}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (at most 20 s) for the game's `entered` and for the player's own
/// actor in the line it entered: the zone's name.
pub async fn arrival(world: &mut hearth_client::world::WorldClient) -> String {
    use hearth_client::world::generated::Message;
    use hearth_client::world::WorldUpdate;
    let mut zone = None;
    let ready = world
        .until(std::time::Duration::from_secs(20), |update, client| {
            match update {
                WorldUpdate::Message(Message::Entered { zone: entered }) => {
                    zone = Some(entered.clone())
                }
                WorldUpdate::Session(hearth_client::Event::Closed(reason)) => {
                    panic!("the session closed before entering: {reason}")
                }
                WorldUpdate::Malformed(why) => panic!("the server sent {why}"),
                _ => {}
            }
            zone.is_some() && client.is_ready()
        })
        .await;
    assert!(ready.is_some(), "entered a zone and steers in it");
    zone.unwrap()
}
