//! What the `hearth` binary's tests share: free ports, a server process
//! that dies with its test.
#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, passed or failed, so no
/// server outlives its test.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

pub fn serve(dir: &Path, config: &Path, port: u16, web_port: u16) -> Killed {
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--web-port",
            &web_port.to_string(),
        ])
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.contains("hearth serving"), "{banner}");
    Killed(server)
}
