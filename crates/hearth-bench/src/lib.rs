//! Echo servers and a load generator for Hearth's echo benchmarks.
//!
//! Binaries: `ws-echo`, `udp-echo`, `tcp-echo` (Hearth's code paths) and
//! their peers `ws-echo-tungstenite`, `ws-echo-fastwebsockets`,
//! `udp-echo-bare`, `tcp-echo-bare`; `echo-load` drives any of them; the
//! `echo` bench runs them all in one go and prints the ratios.

pub mod process;
pub mod session_io;

/// A tokio runtime with as many workers as the process may use: under
/// `taskset -c 0` that is one, so every echo server gets the same core budget.
pub fn runtime() -> tokio::runtime::Runtime {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("tokio runtime")
    }
}

/// The number under `key` in one flat JSON line that a load generator
/// printed (NaN when it is missing), so the benches need no JSON parser.
pub fn json_number(line: &str, key: &str) -> f64 {
    let Some((_, rest)) = line.split_once(&format!("\"{key}\": ")) else {
        return f64::NAN;
    };
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().unwrap_or(f64::NAN)
}

/// The address argument every echo server takes.
pub fn addr_arg() -> std::net::SocketAddr {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    text.parse().unwrap_or_else(|e| {
        eprintln!("usage: <echo-server> ADDR (e.g. 127.0.0.1:9001): {text}: {e}");
        std::process::exit(2)
    })
}

/// A response from one of the hyper-based echo servers.
pub type HttpResponse = hyper::Response<http_body_util::Full<bytes::Bytes>>;

/// Serves HTTP/1.1 with upgrades on `addr`: the accept loop the WebSocket echo
/// servers built on hyper share, so they differ only in their handler.
pub async fn serve_hyper<F, Fut>(
    addr: std::net::SocketAddr,
    label: &str,
    handler: F,
) -> anyhow::Result<()>
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<HttpResponse, std::convert::Infallible>>
        + Send
        + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("{label} listening on ws://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper::service::service_fn(handler),
                )
                .with_upgrades()
                .await;
        });
    }
}

/// Runs Hearth's gate with the echo handler until the process is killed:
/// the server side of `udp-echo` and `tcp-echo`, which differ only in `config`.
/// `HEARTH_SHARDS` sets the gate's shards (default: one per core it may use);
/// `HEARTH_ECHO_OFFLOAD=1` runs the echo off the shards' tasks (`gate::Offload`).
pub fn serve_session_echo(
    label: &str,
    mut config: hearth_net::gate::GateConfig,
) -> anyhow::Result<()> {
    if let Ok(shards) = std::env::var("HEARTH_SHARDS") {
        config.shards = shards
            .parse()
            .map_err(|_| anyhow::anyhow!("HEARTH_SHARDS={shards:?}: give a number of shards"))?;
    }
    runtime().block_on(async move {
        let identity = hearth_proto::ServerIdentity::generate(hearth_proto::os_seed());
        let offload = std::env::var_os("HEARTH_ECHO_OFFLOAD").is_some_and(|v| v == "1");
        let gate = if offload {
            // The echo on its own thread per shard, fed through the bounded
            // handler queue: what a handler off the I/O tasks costs.
            let handler = hearth_net::gate::Offload::new(hearth_net::gate::EchoHandler);
            hearth_net::gate::start(config, identity, handler).await?
        } else {
            hearth_net::gate::start(config, identity, hearth_net::gate::EchoHandler).await?
        };
        let bound = gate
            .udp_addr
            .or(gate.tcp_addr)
            .expect("one socket is configured");
        eprintln!("{label} (hearth session) listening on {bound}");
        std::future::pending::<()>().await;
        Ok(())
    })
}
