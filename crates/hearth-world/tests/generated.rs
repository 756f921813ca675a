//! The built-in world's typed bindings for its page on the game API
//! (web/pages/world.generated.ts), committed, regenerated here from
//! `hearth_world::world_schema()` and compared: the schema does not depend
//! on the zone file, so one page serves every server of the built-in game.
//!
//! After a change of the schema or of the generator, regenerate them with
//! `HEARTH_BLESS=1 cargo test -p hearth-world --test generated`.

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/pages/world.generated.ts"
);
/// Where the page's bindings find the client library.
const TS_IMPORT: &str = "../client/src/index.js";

#[test]
fn the_committed_bindings_are_what_hearth_codegen_writes() {
    let generated = hearth_codegen::typescript(&hearth_world::world_schema(), TS_IMPORT);
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(FILE, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(FILE).unwrap_or_default();
    assert!(
        committed == generated,
        "web/pages/world.generated.ts is stale: run HEARTH_BLESS=1 cargo test -p hearth-world --test generated"
    );
}
