//! The web API's account calls, over `http://` or `https://`.
//!
//! One short HTTP/1.1 connection per call: account calls are rare (register,
//! login, refresh), and this keeps the SDK on hyper and rustls, which the game
//! connector needs anyway, instead of a second HTTP and TLS stack.

use std::time::Duration;

use bytes::Bytes;
use hearth_net::tls::ClientTls;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::Error;

/// Bounds one call: connect, TLS, request and response.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The API answers with small JSON documents.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TokenPair {
    pub account_id: i64,
    pub name: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    base: String,
    /// Where to send calls, or why `base` is not a usable URL (reported by
    /// every call, so that `new` stays infallible).
    target: Result<Target, String>,
}

#[derive(Debug, Clone)]
struct Target {
    /// Host and port to connect to, e.g. `example.com:443`.
    authority: String,
    /// Host to verify the certificate against (no port, no brackets).
    host: String,
    /// `Some` for `https://`.
    tls: Option<ClientTls>,
    /// Path prefix the API paths are appended to (empty, or e.g. `/game`).
    prefix: String,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: String,
    message: String,
}

impl Accounts {
    /// `base` is the web port's URL, e.g. `http://127.0.0.1:8080` or
    /// `https://game.example`; `https://` trusts the public web PKI.
    pub fn new(base: &str) -> Self {
        Self::build(base, ClientTls::webpki_roots())
    }

    /// Like [`Accounts::new`], but `https://` trusts only the certificates in
    /// `pem`: the server's own self-signed certificate, or a private CA.
    pub fn trusting(base: &str, pem: &[u8]) -> Result<Self, Error> {
        let accounts = Self::build(base, crate::trust(pem)?);
        if let Err(why) = &accounts.target {
            return Err(Error::Url {
                url: base.to_owned(),
                why: why.clone(),
            });
        }
        Ok(accounts)
    }

    fn build(base: &str, trust: ClientTls) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            base: base.to_owned(),
            target: Target::parse(base, trust),
        }
    }

    async fn call(&self, path: &str, body: serde_json::Value) -> Result<Bytes, Error> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// The game's schema the server runs (`GET /api/schema`), checked like
    /// any schema (its version is computed, not taken from the answer).
    pub async fn game_schema(&self) -> Result<hearth_replica::schema::Schema, Error> {
        let bytes = self.request(Method::GET, "/api/schema", None).await?;
        parse(&bytes)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Bytes, Error> {
        let target = self.target.as_ref().map_err(|why| Error::Url {
            url: self.base.clone(),
            why: why.clone(),
        })?;
        let unreachable = |reason: String| Error::Http {
            url: format!("{}{path}", self.base),
            reason,
        };
        let (status, bytes) =
            tokio::time::timeout(CALL_TIMEOUT, target.exchange(method, path, body))
                .await
                .map_err(|_| unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?
                .map_err(unreachable)?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => Error::Api {
                status,
                code: body.error,
                message: body.message,
            },
            Err(_) => Error::Api {
                status,
                code: "http".to_owned(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            },
        })
    }

    pub async fn register(&self, name: &str, password: &str) -> Result<i64, Error> {
        let bytes = self
            .call(
                "/api/register",
                json!({ "name": name, "password": password }),
            )
            .await?;
        let body: serde_json::Value = parse(&bytes)?;
        Ok(body["account_id"].as_i64().unwrap_or_default())
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<TokenPair, Error> {
        let bytes = self
            .call("/api/login", json!({ "name": name, "password": password }))
            .await?;
        parse(&bytes)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, Error> {
        let bytes = self
            .call("/api/refresh", json!({ "refresh_token": refresh_token }))
            .await?;
        parse(&bytes)
    }

    pub async fn logout(&self, token: &str) -> Result<(), Error> {
        self.call("/api/logout", json!({ "token": token })).await?;
        Ok(())
    }

    /// Deletes the account (its owner's name and password).
    pub async fn delete(&self, name: &str, password: &str) -> Result<(), Error> {
        self.call("/api/delete", json!({ "name": name, "password": password }))
            .await?;
        Ok(())
    }

    pub async fn change_password(&self, name: &str, old: &str, new: &str) -> Result<(), Error> {
        self.call(
            "/api/password",
            json!({ "name": name, "old_password": old, "new_password": new }),
        )
        .await?;
        Ok(())
    }
}

impl Target {
    fn parse(base: &str, trust: ClientTls) -> Result<Self, String> {
        let uri: Uri = base
            .parse()
            .map_err(|_| "expected http://HOST[:PORT] or https://HOST[:PORT]".to_owned())?;
        let (tls, default_port) = match uri.scheme_str() {
            Some("http") => (None, 80),
            Some("https") => (Some(trust), 443),
            _ => return Err("the scheme must be http or https".to_owned()),
        };
        let authority = uri.authority().ok_or_else(|| "give the host".to_owned())?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(default_port);
        Ok(Self {
            authority: format!("{host}:{port}"),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            tls,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// Sends one request (a JSON body when given) and reads the answer:
    /// status and body.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Bytes), String> {
        let builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.authority);
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string()))),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| e.to_string())?;
        match &self.tls {
            None => send(tcp, request).await,
            Some(tls) => {
                let stream = tls
                    .connect(&self.host, tcp)
                    .await
                    .map_err(|e| hearth_net::tls::handshake_failure(&self.host, &e))?;
                send(stream, request).await
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Api {
        status: 200,
        code: "bad_response".to_owned(),
        message: format!("the server's answer is not the expected JSON: {e}"),
    })
}

async fn send<S>(io: S, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_choose_tls_and_the_default_port() {
        let target = |base: &str| Accounts::new(base).target.unwrap();
        let plain = target("http://127.0.0.1:8080/");
        assert_eq!(plain.authority, "127.0.0.1:8080");
        assert!(plain.tls.is_none());
        let secure = target("https://game.example/hearth");
        assert_eq!(
            (
                secure.authority.as_str(),
                secure.host.as_str(),
                secure.prefix.as_str()
            ),
            ("game.example:443", "game.example", "/hearth")
        );
        assert!(secure.tls.is_some());
        let v6 = target("https://[::1]:8443");
        assert_eq!(
            (v6.authority.as_str(), v6.host.as_str()),
            ("[::1]:8443", "::1")
        );
        assert!(Accounts::new("ftp://x").target.is_err());
        assert!(Accounts::trusting("https://x", b"not a certificate").is_err());
    }
}
