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
//! `ws://host:port/ws` (the web port).

mod accounts;

use std::net::SocketAddr;
use std::time::Duration;

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
    #[error("cannot reach the web API: {0}")]
    Http(#[from] reqwest::Error),
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
        }
    }
}

/// Splits a server URL into the transport, host:port and WebSocket path.
pub fn parse_url(url: &str) -> Result<(Transport, String, String), Error> {
    let bad = |why: &str| Error::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://HOST:PORT"))?;
    let transport = match scheme {
        "hearth" => Transport::Auto,
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "ws" => Transport::WebSocket,
        "wss" => return Err(bad("wss:// needs TLS, which this client does not speak yet: put a TLS proxy in front or use ws:// on a trusted network")),
        _ => return Err(bad("the scheme must be hearth, udp, tcp or ws")),
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
    Ok((transport, authority.to_owned(), path.to_owned()))
}

/// Connects to the server at `url` and starts the login.
pub async fn connect(url: &str, options: Options) -> Result<Connection, Error> {
    let (transport, authority, path) = parse_url(url)?;
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
    config.udp_wait = options.udp_wait;
    config.reconnect = options.reconnect;
    config.protocol.credentials = options.credentials;
    config.protocol.player_name = options.player_name;
    config.protocol.options = options.options;
    config.protocol.server_key = options.server_key;
    Ok(Connection::connect(config).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_transport() {
        let (t, a, p) = parse_url("ws://localhost:8080/ws").unwrap();
        assert_eq!(
            (t, a.as_str(), p.as_str()),
            (Transport::WebSocket, "localhost:8080", "/ws")
        );
        assert_eq!(
            parse_url("hearth://127.0.0.1:7777").unwrap().0,
            Transport::Auto
        );
        assert_eq!(parse_url("udp://127.0.0.1:7777").unwrap().0, Transport::Udp);
        assert!(parse_url("127.0.0.1:7777").is_err());
        assert!(parse_url("tcp://127.0.0.1").is_err());
        assert!(parse_url("wss://x:1")
            .unwrap_err()
            .to_string()
            .contains("TLS"));
    }
}
