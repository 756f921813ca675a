//! The real parts the cluster tests run against: the project's throwaway
//! PostgreSQL and NATS servers (started by `scripts/postgres-up` and
//! `scripts/nats-up` unless the environment names others), and names no
//! other test run shares.

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
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The PostgreSQL database: `HEARTH_TEST_DATABASE_URL`, or the project's.
#[allow(dead_code)] // Not every test file uses PostgreSQL.
pub fn postgres_url() -> String {
    std::env::var("HEARTH_TEST_DATABASE_URL").unwrap_or_else(|_| up("postgres-up"))
}

#[allow(dead_code)] // Not every test file uses NATS.
/// The NATS server (with credentials): `HEARTH_TEST_NATS_URL`, or the
/// project's.
pub fn nats_url() -> String {
    std::env::var("HEARTH_TEST_NATS_URL").unwrap_or_else(|_| up("nats-up"))
}

/// `name` with a random suffix.
pub fn unique(name: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}
