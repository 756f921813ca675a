//! The web port's accept loop: the connection caps (in total and per
//! address, loopback exempt from the latter unless `limit_loopback`), TLS
//! when configured, the header read timeout, HTTP/1.1 with upgrades for the
//! WebSocket gate, `ConnectInfo<SocketAddr>` for handlers, and graceful
//! shutdown. Every refusal is counted for /metrics.
//!
//! A connection holds its place until it ends or is upgraded: an upgraded
//! WebSocket belongs to the gate, which applies its own stream caps.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use hearth_net::admission::{Admission, Refusal};
use hearth_net::tls::ServerTls;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::config::WebConfig;

/// Why the web port refused or cut a connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebCutReason {
    /// The total connection cap was reached.
    TooManyConnections,
    /// The per-address (IPv6: per /64) cap was reached.
    TooManyFromAddress,
    /// The request headers (or the next request on a kept-alive connection)
    /// did not arrive within the header timeout.
    HeaderTimeout,
    /// The TLS handshake failed or did not finish within the header timeout.
    TlsHandshake,
    /// A request body over the limit (answered 413).
    BodyTooLarge,
    /// A request not read and answered within the request timeout (408).
    RequestTimeout,
}

impl WebCutReason {
    pub const ALL: [WebCutReason; 6] = [
        WebCutReason::TooManyConnections,
        WebCutReason::TooManyFromAddress,
        WebCutReason::HeaderTimeout,
        WebCutReason::TlsHandshake,
        WebCutReason::BodyTooLarge,
        WebCutReason::RequestTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WebCutReason::TooManyConnections => "too_many_connections",
            WebCutReason::TooManyFromAddress => "too_many_from_address",
            WebCutReason::HeaderTimeout => "header_timeout",
            WebCutReason::TlsHandshake => "tls_handshake",
            WebCutReason::BodyTooLarge => "body_too_large",
            WebCutReason::RequestTimeout => "request_timeout",
        }
    }
}

/// What the web port counts.
#[derive(Default)]
pub struct WebPortMetrics {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    rejects: [AtomicU64; WebCutReason::ALL.len()],
}

impl WebPortMetrics {
    pub fn count_cut(&self, reason: WebCutReason) {
        self.rejects[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn cuts(&self, reason: WebCutReason) -> u64 {
        self.rejects[reason as usize].load(Ordering::Relaxed)
    }
}

/// Bounds request bodies read by extractors (413 beyond) and counts the
/// 413s; bounds each request's whole life, body included (408 beyond), so a
/// client that trickles its body cannot hold a connection.
pub fn limit_bodies(
    router: Router,
    max_bytes: usize,
    request_timeout: std::time::Duration,
    metrics: Arc<WebPortMetrics>,
) -> Router {
    let timeouts = metrics.clone();
    router
        .layer(axum::extract::DefaultBodyLimit::max(max_bytes))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let metrics = timeouts.clone();
                async move {
                    match tokio::time::timeout(request_timeout, next.run(request)).await {
                        Ok(response) => response,
                        Err(_) => {
                            metrics.count_cut(WebCutReason::RequestTimeout);
                            let mut response = Response::new(axum::body::Body::from(
                                "the request was not completed in time\n",
                            ));
                            *response.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
                            response
                        }
                    }
                }
            },
        ))
        .layer(axum::middleware::map_response(move |response: Response| {
            let metrics = metrics.clone();
            async move {
                if response.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                    metrics.count_cut(WebCutReason::BodyTooLarge);
                }
                response
            }
        }))
}

/// The web port, bound and ready to serve.
pub struct WebPort {
    pub listener: TcpListener,
    pub router: Router,
    pub tls: Option<ServerTls>,
    pub limits: WebConfig,
    /// Hold loopback clients to the per-address cap too (the top-level
    /// `limit_loopback`); otherwise only the total holds for them.
    pub limit_loopback: bool,
    pub metrics: Arc<WebPortMetrics>,
}

/// What every connection task shares.
struct Shared {
    router: Router,
    tls: Option<ServerTls>,
    header_timeout: Duration,
    metrics: Arc<WebPortMetrics>,
    stop: CancellationToken,
}

impl WebPort {
    /// Serves until `stop` is cancelled, then stops accepting, lets each open
    /// connection finish its request in flight, and returns once all ended.
    pub async fn serve(self, stop: CancellationToken) {
        let admission = Admission::with_loopback(
            self.limits.max_connections,
            self.limits.max_connections_per_address,
            !self.limit_loopback,
        );
        let shared = Arc::new(Shared {
            router: self.router,
            tls: self.tls,
            header_timeout: self.limits.header_timeout(),
            metrics: self.metrics,
            stop: stop.clone(),
        });
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = stop.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("web accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            shared.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            let slot = match admission.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    refuse(&shared, stream, peer, refusal);
                    continue;
                }
            };
            let shared = shared.clone();
            connections.spawn(async move {
                shared.metrics.open.fetch_add(1, Ordering::Relaxed);
                serve_connection(&shared, stream, peer).await;
                shared.metrics.open.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            });
        }
        drop(self.listener);
        connections.close();
        connections.wait().await;
    }
}

/// Counts the refusal and, on plain HTTP, says why in a best-effort 503
/// (never waiting on the peer); over TLS there is no way to say it cheaply.
fn refuse(shared: &Shared, stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
    let (reason, body) = match refusal {
        Refusal::Full => (
            WebCutReason::TooManyConnections,
            "the server has too many connections open; try again shortly\n",
        ),
        Refusal::TooManyFromAddress => (
            WebCutReason::TooManyFromAddress,
            "too many connections from your address; close some and try again\n",
        ),
    };
    shared.metrics.count_cut(reason);
    tracing::debug!(%peer, "web connection refused: {}", reason.name());
    if shared.tls.is_none() {
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(response.as_bytes());
    }
}

async fn serve_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = &shared.tls else {
        serve_http(shared, TokioIo::new(stream), peer).await;
        return;
    };
    // The handshake is bounded like the headers: a client that opens a
    // connection and dawdles holds a place either way.
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(shared.header_timeout, tls.accept(stream)) => handshake,
        () = shared.stop.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => serve_http(shared, TokioIo::new(stream), peer).await,
        Ok(Err(e)) => {
            shared.metrics.count_cut(WebCutReason::TlsHandshake);
            tracing::debug!(%peer, "TLS handshake failed: {e}");
        }
        Err(_) => {
            shared.metrics.count_cut(WebCutReason::TlsHandshake);
            tracing::debug!(%peer, "TLS handshake not done within {:?}", shared.header_timeout);
        }
    }
}

/// HTTP/1.1 on one connection. The IO types are the ones the WebSocket
/// upgrade knows how to take back out of hyper (`TokioIo<TcpStream>` and
/// `TokioIo<ServerTlsStream>`), so upgraded sockets skip hyper's wrapper.
async fn serve_http<I>(shared: &Shared, io: TokioIo<I>, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = shared.router.clone();
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        // A Router is always ready, so calling without poll_ready is allowed.
        router.clone().call(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.header_timeout);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shared.stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            shared.metrics.count_cut(WebCutReason::HeaderTimeout);
            tracing::debug!(%peer, "web connection closed: no complete request headers within {:?}", shared.header_timeout);
        } else {
            tracing::debug!(%peer, "web connection ended: {e}");
        }
    }
}
