//! The world from the terminal: `hearth client` enters a zone, walks, hears
//! another player's chat; after SIGKILL the server has lost at most the save
//! period (`[world] save_period_ms`, 500 ms here).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{free_port, serve};

fn client(port: u16, web_port: u16, name: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["client", &format!("tcp://127.0.0.1:{port}")])
        .args(["--web", &format!("http://127.0.0.1:{web_port}")])
        .args(["--name", name, "--password", "correct horse"])
        .args(extra);
    command
}

#[test]
fn walk_chat_and_survive_sigkill_within_the_save_period() {
    let entered = "entered town\n";
    let dir = std::env::temp_dir().join(format!("hearth-world-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(&config, "[world]\nsave_period_ms = 500\n").unwrap();
    let (port, web_port) = (free_port(), free_port());
    let mut server = serve(&dir, &config, port, web_port);

    // The walker enters the town, walks to cell 20,10 and watches for 6 s.
    let walker = client(
        port,
        web_port,
        "walker",
        &[
            "--register",
            "--zone",
            "town",
            "--move",
            "20,10",
            "--watch",
            "6",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let talker = client(
        port,
        web_port,
        "talker",
        &[
            "--register",
            "--zone",
            "town",
            "--say",
            "hello town",
            "--watch",
            "1",
        ],
    )
    .output()
    .unwrap();
    let talker_out = String::from_utf8_lossy(&talker.stdout);
    assert!(talker.status.success(), "{talker_out}");
    assert!(talker_out.contains(entered), "{talker_out}");
    let walker = walker.wait_with_output().unwrap();
    let walker_out = String::from_utf8_lossy(&walker.stdout);
    assert!(walker_out.contains(entered), "{walker_out}");
    assert!(
        walker_out.contains("[zone] talker: hello town"),
        "{walker_out}"
    );
    assert!(
        walker_out.contains("walker at 20.5,10.5"),
        "the walk arrived: {walker_out}"
    );

    // The walker walks on and stays online; a second later (twice the save
    // period) the server is killed without warning.
    let mut walker = client(
        port,
        web_port,
        "walker",
        &["--move", "22,12", "--watch", "30"],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill")
        .args(["-KILL", &server.id().to_string()])
        .status()
        .unwrap()
        .success());
    server.wait().unwrap();
    let _ = walker.kill();
    let _ = walker.wait();

    let mut server = serve(&dir, &config, port, web_port);
    let back = client(port, web_port, "walker", &["--watch", "1"])
        .output()
        .unwrap();
    let back_out = String::from_utf8_lossy(&back.stdout);
    assert!(back_out.contains(entered), "{back_out}");
    assert!(
        back_out.contains("sees walker at 22.5,12.5"),
        "the place saved before the kill: {back_out}"
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hearth impair` between `hearth client` and `hearth serve`: with 10 %
/// loss and 30 ms of lag each way, the handshake, the login and the world
/// still work (KCP resends what the relay drops), and the relay reports
/// what it did.
#[test]
fn a_client_plays_through_an_impaired_link() {
    let dir = std::env::temp_dir().join(format!("hearth-impair-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(&config, "").unwrap();
    let (port, web_port, relay_port) = (free_port(), free_port(), free_port());
    let mut server = serve(&dir, &config, port, web_port);
    let mut relay = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["impair", "--listen", &format!("127.0.0.1:{relay_port}")])
        .args(["--target", &format!("127.0.0.1:{port}")])
        .args([
            "--loss", "10", "--lag", "30", "--jitter", "5", "--seed", "7", "--secs", "12",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut relay_out = BufReader::new(relay.stdout.take().unwrap());
    relay_out.read_line(&mut banner).unwrap();
    assert!(banner.contains("loss 10%"), "{banner}");
    let mut player = Command::new(env!("CARGO_BIN_EXE_hearth"));
    player
        .args(["client", &format!("udp://127.0.0.1:{relay_port}")])
        .args(["--web", &format!("http://127.0.0.1:{web_port}")])
        .args([
            "--name",
            "lossy",
            "--password",
            "correct horse",
            "--register",
        ])
        .args([
            "--zone",
            "meadow",
            "--say",
            "through the storm",
            "--watch",
            "3",
        ]);
    let played = player.output().unwrap();
    let out = String::from_utf8_lossy(&played.stdout);
    assert!(
        played.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&played.stderr)
    );
    assert!(out.contains("entered meadow"), "{out}");
    assert!(out.contains("[zone] lossy: through the storm"), "{out}");
    let relayed = relay.wait_with_output().unwrap();
    let mut report = String::new();
    std::io::Read::read_to_string(&mut relay_out, &mut report).unwrap();
    let _ = relayed;
    let dropped: u64 = report
        .lines()
        .filter_map(|line| {
            line.split("dropped ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(dropped > 0, "the relay dropped packets: {report}");
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hearth client --record FILE` records what the player received;
/// `hearth replay FILE` plays it back into a fresh replica and shows the same
/// world (faster with --speed); a file that is not a recording is refused.
/// The recording starts with the game's schema, and replays into the
/// game's replica.
#[test]
fn a_recorded_session_replays() {
    let entered = "entered town\n";
    let dir = std::env::temp_dir().join(format!("hearth-replay-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(&config, "").unwrap();
    let (port, web_port) = (free_port(), free_port());
    let _server = serve(&dir, &config, port, web_port);
    let recording = dir.join("session.hrec");
    let recorder = client(
        port,
        web_port,
        "recorder",
        &["--register", "--zone", "town", "--watch", "4"],
    )
    .arg("--record")
    .arg(&recording)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let talker = client(
        port,
        web_port,
        "talker2",
        &[
            "--register",
            "--zone",
            "town",
            "--say",
            "hello recording",
            "--watch",
            "1",
        ],
    )
    .output()
    .unwrap();
    assert!(talker.status.success());
    let live = recorder.wait_with_output().unwrap();
    let live_out = String::from_utf8_lossy(&live.stdout);
    assert!(
        live_out.contains("[zone] talker2: hello recording"),
        "{live_out}"
    );

    let replayed = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["replay", "--speed", "50"])
        .arg(&recording)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replayed.stdout);
    assert!(
        replayed.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert!(out.contains(entered), "{out}");
    assert!(out.contains("[zone] talker2: hello recording"), "{out}");
    assert!(out.contains("end of recording"), "{out}");
    // What the player saw live, the replay shows too (chat and spawns).
    for line in live_out
        .lines()
        .filter(|l| l.starts_with("[zone]") || l.starts_with("sees "))
    {
        assert!(
            out.contains(line),
            "{line:?} missing from the replay:\n{out}"
        );
    }

    let not_a_recording = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("replay")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!not_a_recording.status.success());
    assert!(String::from_utf8_lossy(&not_a_recording.stderr).contains("not a Hearth recording"));
    let _ = std::fs::remove_dir_all(&dir);
}
