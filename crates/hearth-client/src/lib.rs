//! The Hearth client SDK.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_client::Error> {
//! use hearth_client::{connect, Accounts, Options};
//! let accounts = Accounts::new("http://127.0.0.1:8080");
//! accounts.register("alice", "correct horse").await?;
//! let tokens = accounts.login("alice", "correct horse").await?;
//! let mut connection = connect("hearth://127.0.0.1:7777", Options::token(&tokens.access_token)).await?;
//! connection.wait_for(|e| *e == hearth_client::Event::Joined).await.map_err(hearth_client::Error::Session)?;
//! # Ok(()) }
//! ```
//!
//! URLs choose the transport: `hearth://host:port` (TCP login, then UDP by
//! ticket, TCP alone when UDP is blocked), `udp://host:port`, `tcp://host:port`,
//! `ws://host:port/ws` and `wss://host:port/ws` (the web port, with TLS).
//! `wss://` and `https://` trust the public web PKI, or only the certificate
//! given in [`Options::trusted_certificate`] / [`Accounts::trusting`].
//!
//! A game on Hearth's game API: [`game::GameSession`] logs in for the game's
//! schema version and waits until the player is in; [`world::WorldClient`]
//! plays the built-in world (a game on the API like any other) with its
//! generated bindings.

mod accounts;
pub mod game;
pub mod world;

use std::net::SocketAddr;
use std::time::Duration;

use hearth_net::tls::ClientTls;

pub use accounts::{Accounts, TokenPair};
pub use hearth_net::client::{ConnectConfig, Connection, Transport};
pub use hearth_proto::{
    ChannelKind, ChannelSpec, CloseReason, Credentials, Delivery, Event, LinkKind, SendError,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad server URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Connect(#[from] hearth_net::client::ConnectError),
    #[error("{message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the web API at {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("the trusted certificate is not usable: {0}")]
    Certificate(#[from] hearth_net::tls::TlsError),
    #[error("session ended: {0}")]
    Session(String),
}

/// Who connects, and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub credentials: Credentials,
    pub player_name: String,
    /// UE-style URL options for the pre-login hook, e.g. `?Team=2`.
    pub options: String,
    /// Refuse a server that does not prove this key.
    pub server_key: Option<[u8; 32]>,
    /// In `hearth://`, how long UDP may take before settling on TCP.
    pub udp_wait: Duration,
    pub reconnect: bool,
    /// For `wss://`: trust only this certificate (PEM), e.g. the server's
    /// self-signed one; `None` trusts the public web PKI.
    pub trusted_certificate: Option<Vec<u8>>,
    /// Make the UDP link bad on purpose (the network conditioner), for
    /// rehearsing loss, lag and worse.
    pub impair: Option<hearth_net::conditioner::LinkImpairment>,
}

impl Options {
    pub fn password(account: &str, password: &str) -> Self {
        Self::with(Credentials::Password {
            account: account.to_owned(),
            password: password.to_owned(),
        })
    }

    pub fn token(token: &str) -> Self {
        Self::with(Credentials::Token(token.to_owned()))
    }

    pub fn anonymous() -> Self {
        Self::with(Credentials::Anonymous)
    }

    fn with(credentials: Credentials) -> Self {
        Self {
            credentials,
            player_name: String::new(),
            options: String::new(),
            server_key: None,
            udp_wait: Duration::from_secs(3),
            reconnect: true,
            trusted_certificate: None,
            impair: None,
        }
    }

    /// Trusts only `pem` for `wss://` (see [`Options::trusted_certificate`]).
    pub fn trusting(mut self, pem: &[u8]) -> Self {
        self.trusted_certificate = Some(pem.to_vec());
        self
    }
}

/// Roots that hold only the certificates in `pem`.
pub(crate) fn trust(pem: &[u8]) -> Result<ClientTls, Error> {
    Ok(ClientTls::trusting_pem(pem)?)
}

/// How a URL asks to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    /// `wss://`: WebSocket over TLS.
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
    /// The WebSocket path.
    pub path: String,
}

/// Splits a server URL into the transport, TLS, host:port and WebSocket path.
pub fn parse_url(url: &str) -> Result<Target, Error> {
    let bad = |why: &str| Error::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://HOST:PORT"))?;
    let (transport, tls) = match scheme {
        "hearth" => (Transport::Auto, false),
        "udp" => (Transport::Udp, false),
        "tcp" => (Transport::Tcp, false),
        "ws" => (Transport::WebSocket, false),
        "wss" => (Transport::WebSocket, true),
        _ => return Err(bad("the scheme must be hearth, udp, tcp, ws or wss")),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/ws"),
    };
    if authority
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(bad("give the port, e.g. 127.0.0.1:7777"));
    }
    Ok(Target {
        transport,
        tls,
        authority: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// Connects to the server at `url` and starts the login.
pub async fn connect(url: &str, options: Options) -> Result<Connection, Error> {
    let Target {
        transport,
        tls,
        authority,
        path,
    } = parse_url(url)?;
    let server: SocketAddr = tokio::net::lookup_host(&authority)
        .await
        .map_err(|source| Error::Resolve {
            host: authority.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| Error::Resolve {
            host: authority.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    let mut config = ConnectConfig::new(transport, server);
    config.ws_host = authority;
    config.ws_path = path;
    if tls {
        config.tls = Some(match &options.trusted_certificate {
            Some(pem) => trust(pem)?,
            None => ClientTls::webpki_roots(),
        });
    }
    config.udp_wait = options.udp_wait;
    config.reconnect = options.reconnect;
    config.protocol.credentials = options.credentials;
    config.protocol.player_name = options.player_name;
    config.protocol.options = options.options;
    config.protocol.server_key = options.server_key;
    config.impair = options.impair;
    Ok(Connection::connect(config).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_transport() {
        let ws = parse_url("ws://localhost:8080/ws").unwrap();
        assert_eq!(
            (
                ws.transport,
                ws.tls,
                ws.authority.as_str(),
                ws.path.as_str()
            ),
            (Transport::WebSocket, false, "localhost:8080", "/ws")
        );
        let wss = parse_url("wss://game.example:443").unwrap();
        assert_eq!(
            (wss.transport, wss.tls, wss.path.as_str()),
            (Transport::WebSocket, true, "/ws")
        );
        assert_eq!(
            parse_url("hearth://127.0.0.1:7777").unwrap().transport,
            Transport::Auto
        );
        assert_eq!(
            parse_url("udp://127.0.0.1:7777").unwrap().transport,
            Transport::Udp
        );
        assert!(parse_url("127.0.0.1:7777").is_err());
        assert!(parse_url("tcp://127.0.0.1").is_err());
        assert!(parse_url("https://x:1").is_err());
    }
}
