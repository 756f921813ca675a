//! `hearth bot` against a real `hearth serve`: a mix of transports registers,
//! plays and chats, the JSON report counts them, `--cleanup` deletes the
//! accounts; refused logins are reported with their reason. The same bots
//! play the built-in world (a game on the game API).

mod common;

use std::process::Command;

use common::{free_port, serve};

fn bot(port: u16, web_port: u16, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "bot",
            "--port",
            &port.to_string(),
            "--web-port",
            &web_port.to_string(),
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// An empty data directory and a config that lets one address register
/// and log in as many bots as the test needs.
fn fresh_dir(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(
        &config,
        "[accounts]\nregister_burst = 100\nlogin_burst = 100\n",
    )
    .unwrap();
    (dir, config)
}

/// Light bots (`--light`) play the same world with the same traffic and
/// no replica, and report what they cost.
#[test]
fn light_bots_play_and_report_their_own_cost() {
    let (dir, config) = fresh_dir("hearth-bot-cli-light");
    let (port, web_port) = (free_port(), free_port());
    let _server = serve(&dir, &config, port, web_port);
    let report = bot(
        port,
        web_port,
        &[
            "-n",
            "6",
            "--light",
            "--transport",
            "udp,tcp,ws",
            "--register",
            "--behaviour",
            "chatty",
            "--chat-every",
            "1",
            "--move-every",
            "0.5",
            "--ramp",
            "1",
            "--secs",
            "5",
            "--cleanup",
            "--prefix",
            "lightbot",
        ],
    );
    assert_eq!(report["connected"], 6, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(
        report["errors_by_kind"].as_object().map(|e| e.len()),
        Some(0),
        "{report:#}"
    );
    assert!(report["moves"].as_u64().unwrap() >= 6, "{report:#}");
    assert!(report["chats"].as_u64().unwrap() >= 6, "{report:#}");
    // Six bots in one zone hear each other's chat; every bot got its RTT.
    assert!(
        report["messages_in_per_s"].as_f64().unwrap() > 2.0,
        "{report:#}"
    );
    assert!(report["rtt"]["p50_ms"].as_f64().is_some(), "{report:#}");
    assert_eq!(report["bots_cpu"]["light"], true, "{report:#}");
    assert!(
        report["bots_cpu"]["per_bot_percent_of_a_core"]
            .as_f64()
            .unwrap()
            >= 0.0,
        "{report:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bots_on_three_transports_play_report_and_clean_up() {
    let (dir, config) = fresh_dir("hearth-bot-cli");
    let (port, web_port) = (free_port(), free_port());
    let server = serve(&dir, &config, port, web_port);
    let server_pid = server.0.id().to_string();

    let report = bot(
        port,
        web_port,
        &[
            "-n",
            "6",
            "--transport",
            "udp,tcp,ws",
            "--register",
            "--behaviour",
            "chatty",
            "--chat-every",
            "1",
            "--move-every",
            "0.5",
            "--ramp",
            "1",
            "--secs",
            "5",
            "--cleanup",
            "--prefix",
            "loadbot",
            "--watch-pid",
            &server_pid,
        ],
    );
    assert_eq!(report["connected"], 6, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["login"]["count"], 6);
    assert!(report["rtt"]["count"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["chats"].as_u64().unwrap() >= 6, "{report:#}");
    assert!(report["moves"].as_u64().unwrap() >= 6, "{report:#}");
    // Six bots in one zone hear each other and see each other move.
    assert!(
        report["messages_in_per_s"].as_f64().unwrap() > 5.0,
        "{report:#}"
    );
    assert!(
        report["bytes_out_per_s"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    // --watch-pid: the server's own cost, read from /proc.
    let watched = &report["server"];
    assert!(
        watched["rss_max_bytes"].as_u64().unwrap() > 1_000_000,
        "{report:#}"
    );
    let cores = watched["cpu_cores_after_ramp"].as_f64().unwrap();
    assert!(cores > 0.0 && cores < 2.5, "{report:#}");

    // --cleanup deleted the accounts: logging in again is refused, by reason.
    let again = bot(
        port,
        web_port,
        &[
            "-n", "3", "--secs", "3", "--ramp", "0", "--prefix", "loadbot",
        ],
    );
    assert_eq!(again["connected"], 0);
    assert_eq!(again["failed"], 3);
    assert_eq!(
        again["failed_by_reason"]["login: login refused: wrong name or password"], 3,
        "{again:#}"
    );

    // Anonymous bots on a server that wants accounts: refused, and said why.
    let anonymous = bot(
        port,
        web_port,
        &["-n", "2", "--secs", "3", "--ramp", "0", "--anonymous"],
    );
    assert_eq!(anonymous["failed"], 2, "{anonymous:#}");
    let reasons = anonymous["failed_by_reason"].as_object().unwrap();
    assert!(
        reasons.keys().any(|r| r.contains("requires an account")),
        "{anonymous:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An administrator's POST to the admin API; returns the status.
fn admin_post(web_port: u16, token: &str, path: &str, body: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{web_port}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn token(web_port: u16, name: &str, password: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        hearth_client::Accounts::new(&format!("http://127.0.0.1:{web_port}"))
            .login(name, password)
            .await
            .unwrap()
            .access_token
    })
}

#[test]
fn the_conditioner_set_by_an_administrator_or_by_the_bots_own_flags_shows_in_the_rtt() {
    let (dir, config) = fresh_dir("hearth-bot-impair");
    let created = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["admin", "create", "root", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"root password 1\n")?;
            child.wait()
        })
        .unwrap();
    assert!(created.success());
    let (port, web_port) = (free_port(), free_port());
    let _server = serve(&dir, &config, port, web_port);
    let admin = token(web_port, "root", "root password 1");

    // 150 ms each way on the game port's UDP: a round trip of at least 300 ms.
    let lag = r#"{"up": "lag=150", "down": "lag=150", "seed": 7}"#;
    assert_eq!(admin_post(web_port, &admin, "/api/admin/impair", lag), 200);
    let slow = bot(
        port,
        web_port,
        &[
            "-n",
            "2",
            "--transport",
            "udp",
            "--register",
            "--behaviour",
            "idle",
            "--ramp",
            "0",
            "--secs",
            "5",
            "--prefix",
            "lagbot",
        ],
    );
    assert_eq!(slow["connected"], 2, "{slow:#}");
    let p50 = slow["rtt"]["p50_ms"].as_f64().unwrap();
    assert!(p50 >= 290.0, "RTT p50 {p50} ms through 150 ms each way");

    // Clean again: the round trip on loopback is back to milliseconds.
    assert_eq!(admin_post(web_port, &admin, "/api/admin/impair", "{}"), 200);
    let fast = bot(
        port,
        web_port,
        &[
            "-n",
            "2",
            "--transport",
            "udp",
            "--behaviour",
            "idle",
            "--ramp",
            "0",
            "--secs",
            "4",
            "--prefix",
            "lagbot",
        ],
    );
    assert!(fast["rtt"]["p50_ms"].as_f64().unwrap() < 100.0, "{fast:#}");

    // The bots' own conditioner: 100 ms each way on their side of the link.
    let lagged = bot(
        port,
        web_port,
        &[
            "-n",
            "2",
            "--transport",
            "udp",
            "--behaviour",
            "idle",
            "--ramp",
            "0",
            "--secs",
            "5",
            "--prefix",
            "lagbot",
            "--impair-up",
            "lag=100",
            "--impair-down",
            "lag=100",
        ],
    );
    assert_eq!(lagged["connected"], 2, "{lagged:#}");
    let p50 = lagged["rtt"]["p50_ms"].as_f64().unwrap();
    assert!(
        p50 >= 190.0,
        "RTT p50 {p50} ms through the bots' 100 ms each way"
    );

    // A bad spec says why; a player's token may not touch the network.
    assert_eq!(
        admin_post(
            web_port,
            &admin,
            "/api/admin/impair",
            r#"{"up": "loss=300"}"#
        ),
        400
    );
    let player = token(web_port, "lagbot0", "hearth-bot-password");
    assert_eq!(admin_post(web_port, &player, "/api/admin/impair", lag), 403);
    let _ = std::fs::remove_dir_all(&dir);
}
