//! `hearth bot` against a real `hearth serve`: a mix of transports registers,
//! plays and chats, the JSON report counts them, `--cleanup` deletes the
//! accounts; refused logins are reported with their reason.

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

#[test]
fn bots_on_three_transports_play_report_and_clean_up() {
    let dir = std::env::temp_dir().join(format!("hearth-bot-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(
        &config,
        "[accounts]\nregister_burst = 100\nlogin_burst = 100\n",
    )
    .unwrap();
    let (port, web_port) = (free_port(), free_port());
    let _server = serve(&dir, &config, port, web_port);

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
