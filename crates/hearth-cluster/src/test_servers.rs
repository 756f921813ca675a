//! The real servers the cluster's tests run against: this project's
//! throwaway PostgreSQL and NATS (`scripts/postgres-up` and
//! `scripts/nats-up` start them, installing what is missing, and print their
//! URLs), unless the environment names others (`HEARTH_TEST_DATABASE_URL`,
//! `HEARTH_TEST_NATS_URL`). For tests in this workspace only: the scripts
//! are found from this crate's source directory.

use std::path::Path;
use std::process::Command;

/// Runs one of the project's `scripts/*-up` and returns the URL it prints.
fn up(script: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a URL")
        .trim()
        .to_owned()
}

/// The PostgreSQL database's URL.
pub fn postgres_url() -> String {
    std::env::var("HEARTH_TEST_DATABASE_URL").unwrap_or_else(|_| up("postgres-up"))
}

/// The NATS server's URL, with its credentials.
pub fn nats_url() -> String {
    std::env::var("HEARTH_TEST_NATS_URL").unwrap_or_else(|_| up("nats-up"))
}

/// `name` with a random suffix: names no other test run shares.
pub fn unique(name: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).expect("the OS has randomness");
    format!("{name}-{}", hearth_codec::to_hex(&bytes))
}
