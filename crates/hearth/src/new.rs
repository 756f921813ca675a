//! `hearth new NAME`: a new game crate on the game API that builds, tests
//! and serves as it is: the schema and a small game (`src/lib.rs`), its
//! command line (`serve`, `play`, `schema`), its page, and a test that
//! plays it in one process. The files are the templates in
//! `crates/hearth/templates/`, with the name put in.
//!
//! Hearth's crates are not published, so the new crate depends on a
//! checkout of Hearth by path: `--hearth-path DIR`, else the checkout the
//! new crate's directory is in, else the one the current directory is in,
//! else the one this `hearth` was built from (if it is still there).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct NewArgs {
    /// The crate's name: lowercase ASCII letters, digits, '-' and '_', starting with a
    /// letter, at most 32 bytes.
    name: String,
    /// Where to write it (default: ./NAME). A directory that exists must be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The checkout of Hearth to depend on, by path (its crates are not on crates.io).
    /// Default: the checkout the new crate is in, else the one the current directory
    /// is in, else the one this hearth was built from.
    #[arg(long, value_name = "DIR")]
    hearth_path: Option<PathBuf>,
}

/// The longest name: the schema's game name is the crate's, and a schema
/// name is at most 32 bytes.
pub const MAX_NAME: usize = 32;

/// The new crate's files: where each goes, and its template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../templates/Cargo.toml.tmpl")),
    (".gitignore", include_str!("../templates/gitignore.tmpl")),
    ("README.md", include_str!("../templates/README.md.tmpl")),
    ("src/lib.rs", include_str!("../templates/lib.rs.tmpl")),
    ("src/main.rs", include_str!("../templates/main.rs.tmpl")),
    ("tests/line.rs", include_str!("../templates/line.rs.tmpl")),
    ("web/page.html", include_str!("../templates/page.html.tmpl")),
    ("web/page.js", include_str!("../templates/page.js.tmpl")),
    ("web/page.css", include_str!("../templates/page.css.tmpl")),
];

/// The end of Cargo.toml for a crate outside Hearth's workspace.
const OWN_WORKSPACE: &str = include_str!("../templates/workspace.toml.tmpl");

/// Names a crate may not have: Rust's keywords, the crates every program
/// has, and the new crate's own dependencies (a library of the same name
/// would hide one).
const TAKEN: &str = "\
    as async await break const continue crate dyn else enum extern false fn for if impl in let \
    loop match mod move mut pub ref return self static struct super trait true type unsafe use \
    where while abstract become box do final gen macro override priv try typeof unsized virtual \
    yield std core alloc proc_macro test anyhow clap serde serde_json tokio hearth_client \
    hearth_game hearth_replica hearth_server";

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    let hearth = match &args.hearth_path {
        Some(path) => checkout(path)?,
        None => find_checkout(&dir)?,
    };
    let made = create(&args.name, &dir, &hearth)?;
    println!(
        "Created the game {} in {}, depending on Hearth at {} by path{}.",
        args.name,
        dir.display(),
        hearth.display(),
        if made.in_hearth_workspace {
            " (a member of Hearth's workspace)"
        } else {
            ""
        }
    );
    println!("Next:");
    println!("    cd {}", dir.display());
    println!("    cargo test            # the game played in one process (tests/line.rs)");
    println!("    cargo run -- serve    # then open http://127.0.0.1:8080/");
    println!("The tutorial: {}", hearth.join("docs/GAME.md").display());
    Ok(())
}

/// Why a name cannot be a game crate's.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let rule = "a game's name is a crate name: lowercase ASCII letters, digits, '-' and '_', \
                starting with a letter, at most 32 bytes";
    if name.is_empty() || name.len() > MAX_NAME {
        bail!("{name:?} is {} bytes long: {rule}", name.len());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("{name:?} does not start with a lowercase letter: {rule}");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        bail!("{name:?} has {bad:?} in it: {rule}");
    }
    let ident = name.replace('-', "_");
    if TAKEN.split_whitespace().any(|taken| taken == ident) {
        bail!(
            "{name:?} is taken: it is a Rust keyword, a built-in crate or one of the new crate's \
             dependencies; choose another name"
        );
    }
    Ok(())
}

/// What [`create`] made.
#[derive(Debug)]
pub struct Created {
    /// The crate is a member of the Hearth checkout's workspace (it was made
    /// in its `crates/` or `examples/`), so its Cargo.toml has no
    /// `[workspace]` table of its own.
    pub in_hearth_workspace: bool,
}

/// Writes the game crate `name` into `dir` (new, or empty), depending on
/// the Hearth checkout at `hearth`. Refuses a directory with anything in
/// it; never overwrites a file.
pub fn create(name: &str, dir: &Path, hearth: &Path) -> anyhow::Result<Created> {
    check_name(name)?;
    let existed = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty: hearth new writes only into a new or empty \
                     directory (nothing was changed; give another --path)",
                    dir.display()
                );
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) if dir.exists() && !dir.is_dir() => {
            bail!("{} exists and is not a directory ({e})", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let hearth = hearth
        .canonicalize()
        .with_context(|| format!("finding Hearth at {}", hearth.display()))?;
    let place = Placement::of(&canonical_to_be(dir)?, &hearth)?;
    let vars = [
        ("name", name.to_owned()),
        ("crate", name.replace('-', "_")),
        ("hearth", toml_basic_string_body(&place.hearth_ref)),
        (
            "workspace",
            if place.in_hearth_workspace {
                String::new()
            } else {
                OWN_WORKSPACE.to_owned()
            },
        ),
    ];
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let written = write_all(dir, &vars, &hearth, place.in_hearth_workspace);
    if let Err(error) = written {
        // Leave nothing half made: the directory was new or empty.
        let _ = if existed {
            remove_contents(dir)
        } else {
            std::fs::remove_dir_all(dir)
        };
        return Err(error);
    }
    Ok(Created {
        in_hearth_workspace: place.in_hearth_workspace,
    })
}

fn write_all(
    dir: &Path,
    vars: &[(&str, String)],
    hearth: &Path,
    in_hearth_workspace: bool,
) -> anyhow::Result<()> {
    for (path, template) in FILES {
        write_new(&dir.join(path), render(template, vars).as_bytes())?;
    }
    // Outside Hearth's workspace the crate has a lock file of its own: it
    // starts as Hearth's, so the new crate builds with the versions Hearth
    // is tested with (and offline, where Hearth builds).
    let lock = hearth.join("Cargo.lock");
    if !in_hearth_workspace && lock.is_file() {
        let bytes = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
        write_new(&dir.join("Cargo.lock"), &bytes)?;
    }
    Ok(())
}

/// Creates `path` (and its directory), refusing to replace a file.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn remove_contents(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The template with each `{{key}}` replaced by its value.
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// `s` escaped to sit between the double quotes of a TOML basic string.
fn toml_basic_string_body(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Where the new crate sits relative to Hearth.
#[derive(Debug, PartialEq, Eq)]
struct Placement {
    /// How its Cargo.toml names the checkout: relative inside it (the two
    /// move together), absolute outside.
    hearth_ref: String,
    in_hearth_workspace: bool,
}

impl Placement {
    /// `dir` and `hearth` canonical.
    fn of(dir: &Path, hearth: &Path) -> anyhow::Result<Self> {
        let (hearth_ref, in_hearth_workspace) = match dir.strip_prefix(hearth) {
            Ok(inside) => {
                let depth = inside.components().count();
                if depth == 0 {
                    bail!(
                        "{} is Hearth's own directory: give the game a directory of its own",
                        dir.display()
                    );
                }
                let up = vec![".."; depth].join("/");
                // Hearth's workspace takes every crate in crates/ and examples/.
                let member = depth == 2
                    && ["crates", "examples"]
                        .iter()
                        .any(|d| dir.parent() == Some(&hearth.join(d)));
                (up, member)
            }
            Err(_) => (
                hearth
                    .to_str()
                    .with_context(|| {
                        format!(
                            "Hearth's path {} is not UTF-8, which Cargo.toml cannot hold",
                            hearth.display()
                        )
                    })?
                    .to_owned(),
                false,
            ),
        };
        Ok(Self {
            hearth_ref,
            in_hearth_workspace,
        })
    }
}

/// `dir` made absolute and canonical, though it may not exist yet: its
/// nearest existing ancestor canonical, the rest as given.
fn canonical_to_be(dir: &Path) -> anyhow::Result<PathBuf> {
    let absolute =
        std::path::absolute(dir).with_context(|| format!("finding where {} is", dir.display()))?;
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        if let Ok(found) = at.canonicalize() {
            let mut out = found;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => bail!("no part of {} exists", absolute.display()),
        }
    }
}

/// `dir` if it is a checkout of Hearth (canonical), else why not.
fn checkout(dir: &Path) -> anyhow::Result<PathBuf> {
    if !is_checkout(dir) {
        bail!(
            "{} is not a checkout of Hearth (it has no crates/hearth-game/Cargo.toml): \
             --hearth-path names the directory of Hearth's own Cargo.toml",
            dir.display()
        );
    }
    dir.canonicalize()
        .with_context(|| format!("finding {}", dir.display()))
}

fn is_checkout(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file()
        && [
            "hearth-game",
            "hearth-server",
            "hearth-replica",
            "hearth-client",
        ]
        .iter()
        .all(|c| dir.join("crates").join(c).join("Cargo.toml").is_file())
}

/// The checkout `dir` is in, else the one the current directory is in,
/// else the one this binary was built from.
fn find_checkout(dir: &Path) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut starts = vec![canonical_to_be(dir)?];
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    for start in &starts {
        if let Some(found) = start.ancestors().find(|a| is_checkout(a)) {
            return checkout(found);
        }
    }
    if is_checkout(&built_from) {
        return checkout(&built_from);
    }
    bail!(
        "no checkout of Hearth found (the new crate depends on Hearth's crates by path, as they \
         are not published): run hearth new inside one, or give --hearth-path DIR"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hearth-new-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    /// A directory that looks like a checkout of Hearth.
    fn fake_checkout(at: &Path) {
        std::fs::write(at.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(at.join("Cargo.lock"), "# the lock\n").unwrap();
        for c in [
            "hearth-game",
            "hearth-server",
            "hearth-replica",
            "hearth-client",
        ] {
            std::fs::create_dir_all(at.join("crates").join(c)).unwrap();
            std::fs::write(at.join("crates").join(c).join("Cargo.toml"), "").unwrap();
        }
    }

    #[test]
    fn names_are_crate_names_of_at_most_32_bytes() {
        for good in ["walkers", "my-game", "my_game2", "a", &"g".repeat(32)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "0 bytes long"),
            (&"g".repeat(33), "33 bytes long"),
            ("2fast", "does not start with a lowercase letter"),
            ("_game", "does not start with a lowercase letter"),
            ("-game", "does not start with a lowercase letter"),
            ("MyGame", "does not start with a lowercase letter"),
            ("myGame", "has 'G' in it"),
            ("my game", "has ' ' in it"),
            ("my.game", "has '.' in it"),
            ("jeu-été", "has 'é' in it"),
            ("../evil", "does not start"),
            ("fn", "is taken"),
            ("test", "is taken"),
            ("hearth-game", "is taken"),
            ("serde", "is taken"),
        ] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let vars = [
            ("name", "my-game".to_owned()),
            ("crate", "my_game".to_owned()),
            ("hearth", "/h".to_owned()),
            ("workspace", OWN_WORKSPACE.to_owned()),
        ];
        for (path, template) in FILES {
            let out = render(template, &vars);
            assert!(!out.contains("{{"), "{path} keeps a placeholder");
        }
        let lib = render(FILES[3].1, &vars);
        assert!(lib.contains("pub const GAME: &str = \"my_game\";"));
        let manifest = render(FILES[0].1, &vars);
        assert!(manifest.contains("name = \"my-game\""));
        assert!(manifest.contains("path = \"/h/crates/hearth-game\""));
        assert!(manifest.contains("\n[workspace]\n"));
    }

    #[test]
    fn a_path_is_escaped_for_toml() {
        assert_eq!(toml_basic_string_body(r#"C:\a "b""#), r#"C:\\a \"b\""#);
        assert_eq!(toml_basic_string_body("a\nb"), "a\\u000Ab");
    }

    #[test]
    fn hearth_is_named_relatively_inside_it_and_absolutely_outside() {
        let hearth = Path::new("/src/hearth");
        assert_eq!(
            Placement::of(Path::new("/tmp/g"), hearth).unwrap(),
            Placement {
                hearth_ref: "/src/hearth".into(),
                in_hearth_workspace: false
            }
        );
        assert_eq!(
            Placement::of(Path::new("/src/hearth/games/g"), hearth).unwrap(),
            Placement {
                hearth_ref: "../..".into(),
                in_hearth_workspace: false
            }
        );
        for member in ["/src/hearth/examples/g", "/src/hearth/crates/g"] {
            assert_eq!(
                Placement::of(Path::new(member), hearth).unwrap(),
                Placement {
                    hearth_ref: "../..".into(),
                    in_hearth_workspace: true
                }
            );
        }
        assert!(Placement::of(hearth, hearth).is_err());
    }

    #[test]
    fn a_directory_with_anything_in_it_is_refused_and_left_alone() {
        let hearth = temp("refuse-hearth");
        fake_checkout(&hearth);
        let dir = temp("refuse");
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let error = create("walkers", &dir, &hearth).unwrap_err().to_string();
        assert!(error.contains("exists and is not empty"), "{error}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "nothing was written");
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );

        // A file where the directory would go.
        let file = dir.join("notes.txt");
        let error = create("walkers", &file, &hearth).unwrap_err().to_string();
        assert!(error.contains("not a directory"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&hearth);
    }

    #[test]
    fn an_empty_or_new_directory_gets_the_crate() {
        let hearth = temp("make-hearth");
        fake_checkout(&hearth);
        let outside = temp("make");
        let created = create("my-game", &outside, &hearth).unwrap();
        assert!(!created.in_hearth_workspace);
        let manifest = std::fs::read_to_string(outside.join("Cargo.toml")).unwrap();
        let hearth_text = hearth.to_str().unwrap();
        assert!(manifest.contains(&format!("path = \"{hearth_text}/crates/hearth-server\"")));
        assert!(manifest.contains("[workspace]"));
        assert_eq!(
            std::fs::read_to_string(outside.join("Cargo.lock")).unwrap(),
            "# the lock\n",
            "the crate starts from Hearth's lock"
        );
        for (path, _) in FILES {
            assert!(outside.join(path).is_file(), "{path}");
        }

        // Inside the checkout, in examples/: a member of its workspace.
        let inside = hearth.join("examples").join("walkers");
        let created = create("walkers", &inside, &hearth).unwrap();
        assert!(created.in_hearth_workspace);
        let manifest = std::fs::read_to_string(inside.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("path = \"../../crates/hearth-game\""));
        assert!(!manifest.contains("[workspace]"));
        assert!(!inside.join("Cargo.lock").exists(), "the workspace's lock");
        // ... and found there without --hearth-path.
        assert_eq!(
            find_checkout(&hearth.join("examples").join("other")).unwrap(),
            hearth
        );

        let _ = std::fs::remove_dir_all(&outside);
        let _ = std::fs::remove_dir_all(&hearth);
    }

    #[test]
    fn a_directory_that_is_not_a_checkout_is_refused_as_hearth() {
        let dir = temp("not-hearth");
        let error = checkout(&dir).unwrap_err().to_string();
        assert!(error.contains("is not a checkout of Hearth"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
