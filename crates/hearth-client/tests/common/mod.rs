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
