//! The built-in world's typed bindings on the game API, committed: for its
//! page (web/pages/world.generated.ts) and for Rust clients
//! (crates/hearth-client/src/world/generated.rs, which keeps the SDK
//! free of the simulation), regenerated here from
//! `hearth_world::world_schema()` and compared. The schema does not depend
//! on the zone file, so one page and one client serve every server of the
//! built-in game.
//!
//! After a change of the schema or of the generator, regenerate them with
//! `HEARTH_BLESS=1 cargo test -p hearth-world --test generated`.

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/pages/world.generated.ts"
);
const RUST_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hearth-client/src/world/generated.rs"
);
/// Where the page's bindings find the client library.
const TS_IMPORT: &str = "../client/src/index.js";

fn check_committed(file: &str, generated: &str) {
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(file, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        committed == generated,
        "{file} is stale: run HEARTH_BLESS=1 cargo test -p hearth-world --test generated"
    );
}

#[test]
fn the_committed_bindings_are_what_hearth_codegen_writes() {
    let schema = hearth_world::world_schema();
    check_committed(FILE, &hearth_codegen::typescript(&schema, TS_IMPORT));
    check_committed(RUST_FILE, &hearth_codegen::rust(&schema));
}
