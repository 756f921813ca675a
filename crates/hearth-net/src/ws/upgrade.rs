//! Server side of the upgrade inside a hyper (or axum) service: check the
//! request, answer 101, and hand back the WebSocket once hyper lets go of the
//! connection. When the connection is a plain tokio TCP stream (as under
//! axum::serve or hyper with `TokioIo<TcpStream>`) or the web port's TLS
//! stream (`TokioIo<tls::ServerTlsStream>`), it is taken back out of hyper's
//! wrapper, so frames go straight to the socket (or the TLS session).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::deflate::{self, DeflateConfig, Params, PerMessageDeflate};
use super::handshake::{self, Refused};
use super::{Limits, Role, WebSocket};
use crate::tls::ServerTlsStream;

pub type UpgradedSocket = WebSocket<UpgradedStream>;

/// The transport under an upgraded WebSocket.
pub enum UpgradedStream {
    Tcp(TcpStream),
    /// Boxed: a TLS session's state is large next to a socket.
    Tls(Box<ServerTlsStream>),
    /// Anything else hyper served (TLS, tests): through hyper's wrapper.
    Hyper(TokioIo<Upgraded>),
}

impl AsyncRead for UpgradedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpgradedStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            UpgradedStream::Hyper(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpgradedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpgradedStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpgradedStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            UpgradedStream::Hyper(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpgradedStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            UpgradedStream::Hyper(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpgradedStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpgradedStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            UpgradedStream::Hyper(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A checked upgrade: send `response`, then await `socket`.
pub struct PendingUpgrade {
    pub response: Response<()>,
    pub protocol: Option<String>,
    /// permessage-deflate, when the client offered it and the config allows.
    pub deflate: Option<Params>,
    deflate_config: DeflateConfig,
    on_upgrade: hyper::upgrade::OnUpgrade,
    limits: Limits,
}

impl PendingUpgrade {
    /// Resolves once hyper has sent the 101 and released the connection.
    pub async fn socket(self) -> Result<UpgradedSocket, hyper::Error> {
        let upgraded = self.on_upgrade.await?;
        let (stream, leftover) = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => (UpgradedStream::Tcp(parts.io.into_inner()), parts.read_buf),
            Err(upgraded) => match upgraded.downcast::<TokioIo<ServerTlsStream>>() {
                Ok(parts) => (
                    UpgradedStream::Tls(Box::new(parts.io.into_inner())),
                    parts.read_buf,
                ),
                Err(upgraded) => (
                    UpgradedStream::Hyper(TokioIo::new(upgraded)),
                    Default::default(),
                ),
            },
        };
        let mut socket = WebSocket::new(stream, Role::Server, self.limits, &leftover);
        if let Some(params) = &self.deflate {
            let codec = PerMessageDeflate::new(Role::Server, params, &self.deflate_config);
            socket.protocol().enable_deflate(codec);
        }
        Ok(socket)
    }
}

/// Checks the request and prepares the 101 answer, without permessage-deflate.
pub fn upgrade<B>(
    request: &mut Request<B>,
    protocols: &[&str],
    limits: Limits,
) -> Result<PendingUpgrade, Refused> {
    upgrade_with_deflate(request, protocols, limits, DeflateConfig::default())
}

/// [`upgrade`], accepting the client's permessage-deflate offer when
/// `deflate.enabled` and an offer fits its limits; otherwise the connection
/// goes on uncompressed (declining an extension is not an error).
pub fn upgrade_with_deflate<B>(
    request: &mut Request<B>,
    protocols: &[&str],
    limits: Limits,
    deflate: DeflateConfig,
) -> Result<PendingUpgrade, Refused> {
    let accepted = handshake::check_request(request, protocols)?;
    let mut response = handshake::switching_protocols(&accepted);
    let offers = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok());
    let negotiated = deflate::negotiate(offers, &deflate).and_then(|(params, answer)| {
        let value = HeaderValue::from_str(&answer).ok()?;
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        Some(params)
    });
    Ok(PendingUpgrade {
        response,
        protocol: accepted.protocol,
        deflate: negotiated,
        deflate_config: deflate,
        on_upgrade: hyper::upgrade::on(request),
        limits,
    })
}
