//! `hearth codegen` as a studio runs it: a schema's JSON in, the bindings
//! `hearth-codegen` writes out (to standard output or a file); a missing
//! file, bad JSON, a schema that fails its checks and flags that do not
//! apply refused with what to do.

use std::path::PathBuf;
use std::process::{Command, Output};

use hearth_replica::schema::{KindSpec, MessageSpec, PropSpec, Schema, ValueType};

fn schema() -> Schema {
    let runner = KindSpec::new("runner")
        .prop(PropSpec::new("score", ValueType::int(0, 1_000_000)).reliable())
        .prop(PropSpec::new("x", ValueType::fixed(100, -10_000, 10_000)))
        .prop(PropSpec::new("best", ValueType::int(0, 1_000_000)).owner_only());
    let tag = MessageSpec::to_server("tag").field("target", ValueType::int(0, 9));
    let tagged = MessageSpec::to_client("tagged").field("by", ValueType::string(32));
    Schema::new("tag", vec![runner], vec![tag, tagged]).unwrap()
}

/// A directory of this test's own (tests run in parallel).
fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-codegen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn codegen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("codegen")
        .args(args)
        .env("HEARTH_LOG", "off")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bindings_from_a_schema_file_are_what_the_generator_writes() {
    let dir = dir("ok");
    let json = dir.join("tag.json");
    std::fs::write(&json, serde_json::to_string_pretty(&schema()).unwrap()).unwrap();
    let json = json.to_str().unwrap();

    let ts = codegen(&["--lang", "ts", "--schema", json]);
    assert!(ts.status.success(), "{}", stderr(&ts));
    assert_eq!(
        String::from_utf8(ts.stdout).unwrap(),
        hearth_codegen::typescript(&schema(), "@hearth/client")
    );

    let local = codegen(&[
        "--lang",
        "ts",
        "--schema",
        json,
        "--import",
        "./lib/index.js",
    ]);
    assert_eq!(
        String::from_utf8(local.stdout).unwrap(),
        hearth_codegen::typescript(&schema(), "./lib/index.js")
    );

    let out = dir.join("tag.rs");
    let rust = codegen(&[
        "--lang",
        "rust",
        "--schema",
        json,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(rust.status.success(), "{}", stderr(&rust));
    assert!(rust.stdout.is_empty());
    assert!(stderr(&rust).contains(&format!("schema version {}", schema().version())));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        hearth_codegen::rust(&schema())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_with_what_to_do() {
    let dir = dir("bad");
    let refused = |args: &[&str], says: &str| {
        let output = codegen(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(output.stdout.is_empty(), "{args:?} wrote bindings");
        let text = stderr(&output);
        assert!(text.contains(says), "{args:?}: {text}");
    };
    let missing = dir.join("missing.json");
    refused(
        &["--lang", "ts", "--schema", missing.to_str().unwrap()],
        "reading",
    );

    let not_json = dir.join("not.json");
    std::fs::write(&not_json, "{ \"game\": ").unwrap();
    refused(
        &["--lang", "ts", "--schema", not_json.to_str().unwrap()],
        "is not a game schema",
    );

    // Well-formed JSON, but a name generated code could not use.
    let mut value = serde_json::to_value(schema()).unwrap();
    value["kinds"][0]["name"] = "Runner Two".into();
    let unchecked = dir.join("unchecked.json");
    std::fs::write(&unchecked, value.to_string()).unwrap();
    refused(
        &["--lang", "rust", "--schema", unchecked.to_str().unwrap()],
        "\"Runner Two\" is not a name",
    );

    let good = dir.join("tag.json");
    std::fs::write(&good, serde_json::to_string(&schema()).unwrap()).unwrap();
    let good = good.to_str().unwrap();
    refused(
        &["--lang", "rust", "--schema", good, "--import", "x"],
        "--import is for --lang ts",
    );
    // Nothing listens on port 1.
    refused(
        &["--lang", "ts", "--url", "http://127.0.0.1:1"],
        "/api/schema",
    );
    refused(&["--lang", "ts"], "--schema");
    refused(
        &["--lang", "cobol", "--schema", good],
        "invalid value 'cobol'",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--url`: the schema a running game server serves, the same bindings as
/// from its JSON.
#[test]
fn codegen_reads_the_schema_a_running_game_serves() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = dir("url");
    let running = runtime
        .block_on(hearth_server::start_game(
            hearth_server::Config {
                port: 0,
                web_port: 0,
                data_dir: data.join("data"),
                ..hearth_server::Config::default()
            },
            cards::Cards,
        ))
        .unwrap();
    let output = codegen(&["--lang", "ts", "--url", &running.web_url()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        hearth_codegen::typescript(&cards::schema(), "@hearth/client")
    );
    // The built-in world is a game on the API too: its schema is served.
    runtime.block_on(running.shutdown("done"));
    let builtin = runtime
        .block_on(hearth_server::start(hearth_server::Config {
            port: 0,
            web_port: 0,
            data_dir: data.join("builtin"),
            ..hearth_server::Config::default()
        }))
        .unwrap();
    let output = codegen(&["--lang", "ts", "--url", &builtin.web_url()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        hearth_codegen::typescript(&hearth_world::world_schema(), "@hearth/client")
    );
    runtime.block_on(builtin.shutdown("done"));
    let _ = std::fs::remove_dir_all(&data);
}
