//! Interop over real UDP on 127.0.0.1 with the reference ikcp.c, run by
//! tools/kcp_ref_peer.py through the PyPI package `kcp` (which vendors ikcp.c).
//! Both directions, small and 127-fragment messages, default and fast profiles,
//! direct and through a relay that drops 10 % of datagrams each way.
//!
//! Needs the project's Python environment: `scripts/setup-test-env.sh` (the README's
//! test command runs it).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hearth_kcp::{Profile, REFERENCE_FRAGMENT_LIMIT};
use kcp_peer::client::{self, ClientPlan};
use kcp_peer::relay::LossyRelay;
use kcp_peer::settings::KcpArgs;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("HEARTH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import kcp"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        works,
        "{} cannot import the `kcp` package (the C reference). Run scripts/setup-test-env.sh \
         or set HEARTH_PYTHON to a Python that has it.",
        python.display()
    );
    python
}

/// A child process killed when the test ends, pass or fail.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts a server process and waits for its "echoing on" line.
fn start_server(mut command: Command) -> Peer {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().unwrap();
    let (ready, wait) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("echoing on") {
                let _ = ready.send(());
            }
            eprintln!("[server] {line}");
        }
    });
    wait.recv_timeout(Duration::from_secs(20))
        .expect("server did not start");
    Peer(child)
}

fn c_server(addr: SocketAddr, profile: &str) -> Peer {
    let mut command = Command::new(python());
    command
        .arg(workspace().join("tools/kcp_ref_peer.py"))
        .args(["server", &addr.to_string(), "--profile", profile]);
    start_server(command)
}

fn hearth_server(addr: SocketAddr, profile: &str) -> Peer {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kcp-peer"));
    command.args(["server", &addr.to_string(), "--profile", profile]);
    start_server(command)
}

fn args(conv: u32, profile: Profile) -> KcpArgs {
    KcpArgs {
        conv,
        profile,
        mtu: None,
        sndwnd: None,
        rcvwnd: None,
        stream: false,
        large: false,
    }
}

/// 127 fragments of 1376 bytes: the largest message ikcp.c accepts at MTU 1400.
const LARGEST: usize = (REFERENCE_FRAGMENT_LIMIT - 1) * 1376;

fn plans() -> [(&'static str, ClientPlan); 2] {
    [
        (
            "small",
            ClientPlan {
                count: 200,
                size: 48,
                window: 8,
                timeout_ms: 60_000,
            },
        ),
        (
            "127 fragments",
            ClientPlan {
                count: 4,
                size: LARGEST,
                window: 1,
                timeout_ms: 60_000,
            },
        ),
    ]
}

// Each plan gets its own conversation: through a relay every client shares one source
// address, and a server tells sessions apart by (address, conv).
fn hearth_client_against(server: SocketAddr, profile: Profile, conv: u32) {
    for (index, (name, plan)) in plans().into_iter().enumerate() {
        let conv = conv * 10 + index as u32;
        let report = client::run(server, &args(conv, profile), &plan)
            .unwrap_or_else(|error| panic!("{profile:?} {name}: {error:#}"));
        eprintln!("hearth client, {profile:?}, {name}: {report}");
        assert_eq!(report.lost, 0, "{profile:?} {name}: {report}");
    }
}

fn c_client_against(server: SocketAddr, profile: &str, conv: u32) {
    for (index, (name, plan)) in plans().into_iter().enumerate() {
        let conv = conv * 10 + index as u32;
        let output = Command::new(python())
            .arg(workspace().join("tools/kcp_ref_peer.py"))
            .args(["client", &server.to_string(), "--profile", profile])
            .args([
                "--conv",
                &conv.to_string(),
                "--count",
                &plan.count.to_string(),
            ])
            .args([
                "--size",
                &plan.size.to_string(),
                "--window",
                &plan.window.to_string(),
            ])
            .output()
            .expect("run C client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!(
            "C client, {profile}, {name}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "C client {profile} {name} failed: {stdout}"
        );
        assert!(
            stdout.contains(&format!("count={} lost=0", plan.count)),
            "{stdout}"
        );
    }
}

const PROFILES: [(&str, Profile); 2] = [("default", Profile::Default), ("fast", Profile::Fast)];

#[test]
fn hearth_client_with_c_server() {
    for (name, profile) in PROFILES {
        let addr = free_port();
        let _server = c_server(addr, name);
        hearth_client_against(addr, profile, 11);
    }
}

#[test]
fn c_client_with_hearth_server() {
    for (name, _) in PROFILES {
        let addr = free_port();
        let _server = hearth_server(addr, name);
        c_client_against(addr, name, 12);
    }
}

#[test]
fn hearth_client_with_c_server_through_10_percent_loss() {
    for (name, profile) in PROFILES {
        let addr = free_port();
        let _server = c_server(addr, name);
        let relay = LossyRelay::spawn(addr, 10, 3).unwrap();
        hearth_client_against(relay.addr, profile, 13);
        assert!(relay.dropped() > 0, "the relay dropped nothing");
    }
}

#[test]
fn c_client_with_hearth_server_through_10_percent_loss() {
    for (name, _) in PROFILES {
        let addr = free_port();
        let _server = hearth_server(addr, name);
        let relay = LossyRelay::spawn(addr, 10, 4).unwrap();
        c_client_against(relay.addr, name, 14);
        assert!(relay.dropped() > 0, "the relay dropped nothing");
    }
}
