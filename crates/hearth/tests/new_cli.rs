//! `hearth new` as a newcomer runs it: a game crate made in a directory of
//! its own, depending on this checkout by path, that cargo builds and whose
//! own tests pass, and whose `schema` command prints its schema.
//!
//! Kept fast by building the generated crate in this test run's own target
//! directory (the one `cargo test -p hearth` uses, found from
//! `CARGO_TARGET_TMPDIR`): the third-party dependencies it shares with
//! Hearth (tokio, axum, sqlx, the crypto) are compiled there already, with
//! the same versions (the new crate starts from Hearth's Cargo.lock) and the
//! same profile (it sets Hearth's `opt-level = 3` for dependencies). What is
//! left is Hearth's own crates, which cargo compiles again for any other
//! workspace (it keys a path dependency by its path from the workspace
//! root), and the game. So the game is made at a fixed place under the
//! target directory, where the next run finds that build again, and Hearth's
//! crates are built unoptimised (`--config`), as Hearth's workspace builds
//! them: a minute on two cores where the optimised build takes three and a
//! half. A target directory of its own would compile the whole world again
//! on every fresh checkout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use hearth_replica::schema::Schema;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// This test run's target directory: `CARGO_TARGET_TMPDIR` is its `tmp`.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn hearth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("HEARTH_LOG", "off")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--config` for each of Hearth's crates: unoptimised, as in Hearth's
/// workspace (the game's build would optimise them as dependencies).
fn hearth_crates_unoptimised() -> Vec<String> {
    let mut configs = Vec::new();
    for entry in std::fs::read_dir(repository().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("hearth") {
            configs.push("--config".to_owned());
            configs.push(format!("profile.dev.package.{name}.opt-level=0"));
        }
    }
    configs
}

/// `cargo SUBCOMMAND` on the game's manifest, then `args`.
fn cargo(manifest: &Path, subcommand: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The variables cargo sets for this test (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME, ...) stay out of the game's build: build scripts that
    // watch them (ring's does) would run again, and their dependents be
    // compiled again, here and then once more in the next `cargo test -p
    // hearth`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref());
        if set_for_tests {
            command.env_remove(key.as_ref());
        }
    }
    let output = command
        .args(hearth_crates_unoptimised())
        .arg(subcommand)
        .arg("--manifest-path")
        .arg(manifest)
        .args(args)
        .current_dir(manifest.parent().unwrap())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    eprintln!(
        "cargo {subcommand} {} took {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    output
}

#[test]
fn a_new_game_builds_passes_its_own_tests_and_prints_its_schema() {
    // A fixed place under this run's target: the game's own build is found
    // again by the next run.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hearth-new/wave-room");
    let _ = std::fs::remove_dir_all(&dir);
    let repository = repository();
    // A name with a '-': the crate's, while its library and schema say '_'.
    let made = hearth(&[
        "new",
        "wave-room",
        "--path",
        dir.to_str().unwrap(),
        "--hearth-path",
        repository.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let said = text(&made.stdout);
    assert!(said.contains("Created the game wave-room"), "{said}");
    assert!(said.contains("cargo run -- serve"), "{said}");

    let manifest = dir.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    // Hearth by path: absolute from outside the checkout, relative from
    // inside it (a target directory in the checkout, as CI has): either way
    // to this checkout's crates.
    let game_path = toml
        .lines()
        .find_map(|line| line.strip_prefix("hearth-game = { path = \""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no hearth-game path in {toml}"));
    assert_eq!(
        dir.join(game_path).canonicalize().unwrap(),
        repository
            .join("crates/hearth-game")
            .canonicalize()
            .unwrap(),
        "{game_path}"
    );
    assert!(toml.contains("\n[workspace]\n"), "a workspace of its own");

    assert_formatted(&dir);

    // Its own tests pass: two players in one process, a wave, a move, a
    // save, a snapshot.
    let tested = cargo(&manifest, "test", &["--quiet"]);
    assert!(
        tested.status.success(),
        "{}\n{}",
        text(&tested.stdout),
        text(&tested.stderr)
    );
    let report = text(&tested.stdout);
    assert!(report.contains("test result: ok. 4 passed"), "{report}");

    // `wave-room schema` prints the schema as JSON, as the game declares it.
    let schema = cargo(&manifest, "run", &["--quiet", "--", "schema"]);
    assert!(schema.status.success(), "{}", text(&schema.stderr));
    let schema: Schema = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(schema.game(), "wave_room");
    let (_, walker) = schema.kind("walker").expect("the walker kind");
    assert!(walker.movement.is_some(), "walkers move");
    for prop in ["x", "y", "name", "score", "waving"] {
        assert!(walker.prop_index(prop).is_some(), "{prop}");
    }
    assert!(schema.message("wave").is_some());
    assert!(schema.message("waved").is_some());
}

/// The generated Rust is as rustfmt writes it.
fn assert_formatted(dir: &Path) {
    let rs: Vec<PathBuf> = ["src/lib.rs", "src/main.rs", "tests/line.rs"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let fmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2021"])
        .args(&rs)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "{}", text(&fmt.stdout));
}

#[test]
fn the_longest_name_gives_formatted_code_too() {
    let name = "abcdefghij-klmnopqrst-uvwxyz-012";
    assert_eq!(name.len(), 32);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hearth-new/longest");
    let _ = std::fs::remove_dir_all(&dir);
    let repository = repository();
    let made = hearth(&[
        "new",
        name,
        "--path",
        dir.to_str().unwrap(),
        "--hearth-path",
        repository.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert_formatted(&dir);
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("pub const GAME: &str = \"abcdefghij_klmnopqrst_uvwxyz_012\";"));
}

#[test]
fn a_bad_name_or_a_directory_in_use_is_refused_and_nothing_is_written() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hearth-new/refused");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let repository = repository();
    let repository = repository.to_str().unwrap();

    let bad = hearth(&["new", "My Game", "--path", base.join("x").to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("does not start with a lowercase letter"));
    assert!(!base.join("x").exists());

    std::fs::write(base.join("keep.txt"), "mine").unwrap();
    let used = hearth(&[
        "new",
        "walkers",
        "--path",
        base.to_str().unwrap(),
        "--hearth-path",
        repository,
    ]);
    assert!(!used.status.success());
    assert!(
        text(&used.stderr).contains("exists and is not empty"),
        "{}",
        text(&used.stderr)
    );
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 1);

    let nowhere = hearth(&[
        "new",
        "walkers",
        "--path",
        base.join("y").to_str().unwrap(),
        "--hearth-path",
        base.to_str().unwrap(),
    ]);
    assert!(!nowhere.status.success());
    assert!(text(&nowhere.stderr).contains("is not a checkout of Hearth"));
    assert!(!base.join("y").exists());
}
