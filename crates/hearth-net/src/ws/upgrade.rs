//! Server side of the upgrade inside a hyper (or axum) service: check the
//! request, answer 101, and hand back the WebSocket once hyper lets go of the
//! connection.

use http::{Request, Response};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use super::handshake::{self, Refused};
use super::{Limits, Role, WebSocket};

pub type UpgradedSocket = WebSocket<TokioIo<Upgraded>>;

/// A checked upgrade: send `response`, then await `socket`.
pub struct PendingUpgrade {
    pub response: Response<()>,
    pub protocol: Option<String>,
    on_upgrade: hyper::upgrade::OnUpgrade,
    limits: Limits,
}

impl PendingUpgrade {
    /// Resolves once hyper has sent the 101 and released the connection.
    pub async fn socket(self) -> Result<UpgradedSocket, hyper::Error> {
        let upgraded = self.on_upgrade.await?;
        Ok(WebSocket::new(
            TokioIo::new(upgraded),
            Role::Server,
            self.limits,
            &[],
        ))
    }
}

pub fn upgrade<B>(
    request: &mut Request<B>,
    protocols: &[&str],
    limits: Limits,
) -> Result<PendingUpgrade, Refused> {
    let accepted = handshake::check_request(request, protocols)?;
    Ok(PendingUpgrade {
        response: handshake::switching_protocols(&accepted),
        protocol: accepted.protocol,
        on_upgrade: hyper::upgrade::on(request),
        limits,
    })
}
