//! The binary as a newcomer runs it: `hearth serve` in a fresh data
//! directory, `hearth client` registering and echoing through it, then SIGTERM
//! and a clean exit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::free_port;

#[test]
fn serve_then_client_then_sigterm() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (port, web_port) = (free_port(), free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--web-port",
            &web_port.to_string(),
        ])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.contains(&format!("127.0.0.1:{port}")), "{banner}");
    assert!(dir.join("server.key").exists() && dir.join("hearth.db").exists());

    let client = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["client", &format!("hearth://127.0.0.1:{port}")])
        .args(["--web", &format!("http://127.0.0.1:{web_port}")])
        .args([
            "--name",
            "cli_tester",
            "--password",
            "correct horse",
            "--register",
        ])
        .args(["--send", "hello from the terminal"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(
        out.contains("message on 2: hello from the terminal"),
        "{out}"
    );
    // The key the server printed is the one the client proved; pinned, it
    // connects; any other key is refused as a possible man in the middle.
    let printed = banner
        .split("server key ")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .expect("the banner names the server key")
        .to_owned();
    assert!(out.contains(&format!("server key {printed}")), "{out}");
    for (key, connects) in [(printed.clone(), true), ("ab".repeat(32), false)] {
        let pinned = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["client", &format!("tcp://127.0.0.1:{port}")])
            .args(["--name", "cli_tester", "--password", "correct horse"])
            .args(["--server-key", &key, "--send", "pinned"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&pinned.stderr);
        assert_eq!(pinned.status.success(), connects, "{stderr}");
        if !connects {
            assert!(stderr.contains("did not prove the pinned key"), "{stderr}");
        }
    }

    let wrong = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["client", &format!("tcp://127.0.0.1:{port}")])
        .args([
            "--name",
            "cli_tester",
            "--password",
            "wrong horse",
            "--send",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong name or password"));

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name in the config used to be promoted to administrator at every start,
/// whoever had registered it: the key is refused, with what to do instead.
#[test]
fn admins_by_name_in_the_config_are_refused_with_advice() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-admins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hearth.toml");
    std::fs::write(&config, "[accounts]\nadmins = [\"boss\"]\n").unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--port", "0", "--web-port", "0"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("[accounts] admins"), "{stderr}");
    assert!(stderr.contains("hearth admin create"), "{stderr}");
    assert!(!dir.join("data").exists(), "no database made");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_needs_both_files_and_says_which_one_is_unreadable() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-tls-{}", std::process::id()));
    let half = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--port",
            "0",
            "--web-port",
            "0",
            "--tls-cert",
            "web.crt",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!half.status.success());
    let stderr = String::from_utf8_lossy(&half.stderr);
    assert!(stderr.contains("--tls-cert and --tls-key"), "{stderr}");
    let missing = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--port", "0", "--web-port", "0"])
        .args([
            "--tls-cert",
            "/nonexistent/web.crt",
            "--tls-key",
            "/nonexistent/web.key",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot read the TLS cert /nonexistent/web.crt"),
        "{stderr}"
    );
    assert!(
        !dir.exists(),
        "no database made for a server that cannot start"
    );
}

#[test]
fn serving_beyond_loopback_without_tls_warns_on_the_console() {
    let dir = std::env::temp_dir().join(format!("hearth-cli-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--bind",
            "0.0.0.0",
            "--port",
            "0",
            "--web-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut warned = false;
    for line in BufReader::new(server.stderr.take().unwrap()).lines() {
        if line.unwrap().contains("WARNING: the web port") {
            warned = true;
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(warned, "a loud warning on the console");
}
