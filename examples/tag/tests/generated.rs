//! The tag game's typed client bindings, committed (src/generated.rs for
//! Rust clients, web/tag.generated.ts for its page), regenerated here from
//! `tag::schema()` and compared.
//!
//! After a change of the schema or of the generator, regenerate them with
//! `HEARTH_BLESS=1 cargo test -p tag --test generated`.

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where the page's bindings find the client library (as for the cards).
const TS_IMPORT: &str = "../../../web/client/src/index.js";

fn check_committed(path: &str, generated: &str) {
    let file = format!("{ROOT}/{path}");
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "examples/tag/{path} is stale: run HEARTH_BLESS=1 cargo test -p tag --test generated"
    );
}

#[test]
fn the_committed_bindings_are_what_hearth_codegen_writes() {
    let schema = tag::schema();
    check_committed("src/generated.rs", &hearth_codegen::rust(&schema));
    check_committed(
        "web/tag.generated.ts",
        &hearth_codegen::typescript(&schema, TS_IMPORT),
    );
}
