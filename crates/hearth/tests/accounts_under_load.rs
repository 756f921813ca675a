//! The accounts under load, against the real binary: acknowledged writes
//! survive a SIGKILL, and a flood of registrations cannot take the server's
//! memory with it (the peak is read from /proc).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_client::{Accounts, Error};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearth-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `hearth serve` as a child process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    web: String,
}

impl Server {
    /// Starts the binary in `dir` with `hearth.toml` holding `config`, and
    /// waits for its banner.
    fn start(dir: &Path, config: &str) -> Self {
        let config_path = dir.join("hearth.toml");
        std::fs::write(&config_path, config).unwrap();
        let web_port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--port", &free_port().to_string()])
            .args(["--web-port", &web_port.to_string()])
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        assert!(banner.contains("hearth serving"), "{banner:?}");
        Self {
            child,
            web: format!("http://127.0.0.1:{web_port}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed on the way out.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No per-address limits: every request here comes from 127.0.0.1, and the
/// limits have tests of their own.
const UNLIMITED: &str = "[accounts]\nlogin_per_minute = 0\nregister_per_minute = 0\n";

/// What a client was told about one account before the crash.
#[derive(Debug, Clone)]
struct Acknowledged {
    password: String,
    /// A change that was sent but not answered: it may or may not have landed.
    unanswered: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_registrations_and_password_changes_survive_a_sigkill() {
    let dir = data_dir("sigkill");
    let server = Server::start(&dir, UNLIMITED);
    let api = Accounts::new(&server.web);
    let acknowledged: Arc<Mutex<HashMap<String, Acknowledged>>> = Arc::default();
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..12)
        .map(|client| {
            let api = api.clone();
            let acknowledged = acknowledged.clone();
            let changes = changes.clone();
            tokio::spawn(async move {
                for round in 0.. {
                    let name = format!("durable_{client}_{round}");
                    match api.register(&name, "first password").await {
                        Ok(_) => {}
                        Err(Error::Api { status: 503, .. }) => continue,
                        Err(_) => return,
                    }
                    acknowledged.lock().unwrap().insert(
                        name.clone(),
                        Acknowledged {
                            password: "first password".into(),
                            unanswered: Some("second password".into()),
                        },
                    );
                    match api
                        .change_password(&name, "first password", "second password")
                        .await
                    {
                        Ok(()) => {}
                        Err(Error::Api { status: 503, .. }) => continue,
                        Err(_) => return,
                    }
                    changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    acknowledged.lock().unwrap().insert(
                        name,
                        Acknowledged {
                            password: "second password".into(),
                            unanswered: None,
                        },
                    );
                }
            })
        })
        .collect();
    // Kill in full flow: once enough of both kinds were acknowledged.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 40
        || changes.load(std::sync::atomic::Ordering::Relaxed) < 20
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "too slow: {} registrations acknowledged",
            acknowledged.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for client in clients {
        tokio::time::timeout(Duration::from_secs(30), client)
            .await
            .expect("clients notice the server is gone")
            .unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let changed = acknowledged
        .values()
        .filter(|a| a.unanswered.is_none())
        .count();
    println!(
        "killed after {} acknowledged registrations, {changed} acknowledged password changes",
        acknowledged.len()
    );

    let server = Server::start(&dir, UNLIMITED);
    let api = Accounts::new(&server.web);
    for (name, account) in &acknowledged {
        let mut candidates = vec![&account.password];
        candidates.extend(&account.unanswered);
        let mut logged_in = false;
        for password in candidates {
            match api.login(name, password).await {
                Ok(_) => {
                    logged_in = true;
                    break;
                }
                Err(Error::Api { status: 401, .. }) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert!(
            logged_in,
            "{name}: acknowledged as {account:?} but lost after the crash"
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The peak resident set of a process, from /proc (Linux).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .expect("VmHWM in /proc/PID/status")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Four workers whatever the machine (one per core would make the bound
/// depend on it): at most 4 × 19 MiB of argon2 memory. The per-address
/// limits (registrations and web connections) are lifted, so that all 400
/// requests reach the hash pool: that is the bound under test.
const FLOOD: &str = "[accounts]\nregister_per_minute = 0\nhash_workers = 4\nhash_queue = 64\n\
                     [web]\nmax_connections_per_address = 1000\nmax_connections = 2000\n";

/// The brief asks for under 1 GiB (unbounded, 400 hashes took 14 GB); the
/// test holds a tighter line, which also catches freed argon2 buffers kept
/// resident by the allocator (that measured 386 MiB).
const PEAK_LIMIT: u64 = 256 * 1024 * 1024;

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hundred_concurrent_registrations_keep_the_server_under_1_gib() {
    let dir = data_dir("flood");
    let server = Server::start(&dir, FLOOD);
    let before = peak_rss_bytes(server.pid());
    let api = Accounts::new(&server.web);
    let started = Instant::now();
    let registrations: Vec<_> = (0..400)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.register(&format!("flood_{i}"), "correct horse").await })
        })
        .collect();
    let mut outcomes: HashMap<u16, usize> = HashMap::new();
    for registration in registrations {
        let status = match registration.await.unwrap() {
            Ok(_) => 201,
            Err(Error::Api { status, .. }) => status,
            Err(e) => panic!("{e}"),
        };
        *outcomes.entry(status).or_default() += 1;
    }
    let peak = peak_rss_bytes(server.pid());
    println!(
        "400 concurrent registrations in {:?}: {outcomes:?}; server peak RSS {:.1} MiB (at start {:.1} MiB)",
        started.elapsed(),
        peak as f64 / (1024.0 * 1024.0),
        before as f64 / (1024.0 * 1024.0),
    );
    assert!(
        outcomes.keys().all(|status| [201, 503].contains(status)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.get(&201).copied().unwrap_or(0) > 0,
        "some got in: {outcomes:?}"
    );
    assert!(
        outcomes.get(&503).copied().unwrap_or(0) > 0,
        "the pool refused the overflow: {outcomes:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.web))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = format!(
        "hearth_rejected_total{{layer=\"accounts\",reason=\"hash_pool_full\"}} {}",
        outcomes[&503]
    );
    assert!(metrics.contains(&refused), "{refused} in\n{metrics}");
    assert!(
        peak < PEAK_LIMIT,
        "peak RSS {peak} bytes: hashing memory is not bounded"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
