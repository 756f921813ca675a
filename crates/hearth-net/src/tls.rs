//! TLS for the web port (`https://`, `wss://`) with rustls on the ring
//! provider: the server's acceptor built from PEM files, and the client's
//! trust (the webpki roots, or one certificate given as PEM for self-signed
//! test setups).

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

/// The server side of a TLS connection on the web port.
pub type ServerTlsStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The client side of a `wss://` connection.
pub type ClientTlsStream = tokio_rustls::client::TlsStream<TcpStream>;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "no certificate found in the PEM data (expected a '-----BEGIN CERTIFICATE-----' block)"
    )]
    NoCertificate,
    #[error("the certificate PEM is not valid: {0}")]
    BadCertificate(String),
    #[error("no private key found in the PEM data (expected a '-----BEGIN PRIVATE KEY-----' block, PKCS#8, PKCS#1 or SEC1): {0}")]
    BadKey(String),
    #[error("the certificate and key do not make a usable TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// Accepts TLS connections with one certificate chain.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl ServerTls {
    /// `cert_pem`: the certificate chain, leaf first; `key_pem`: its private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(cert_pem)?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // The web port speaks HTTP/1.1 only (the WebSocket upgrade needs it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub async fn accept(&self, tcp: TcpStream) -> io::Result<ServerTlsStream> {
        self.acceptor.accept(tcp).await
    }
}

/// Which servers a client trusts.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trusts the public web PKI (Mozilla's root program, built in).
    pub fn webpki_roots() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(roots).expect("the ring provider supports the safe default versions")
    }

    /// Trusts the certificates in `pem` (and nothing else): a self-signed
    /// server certificate, or a private CA.
    pub fn trusting_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(pem)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        }
        Self::with_roots(roots)
    }

    fn with_roots(roots: RootCertStore) -> Result<Self, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration, for HTTP clients that take one.
    pub fn rustls_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// Runs the TLS handshake for `host` (a name or an IP address, without
    /// the port) over a connected socket.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> io::Result<ClientTlsStream> {
        let name = server_name(host)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// The name to verify the server's certificate against: `[::1]` and `::1`
/// are addresses, anything else a DNS name.
fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name: {e}"),
        )
    })
}

/// A failed client handshake in words, with what to do when the server's
/// certificate is not trusted.
pub fn handshake_failure(host: &str, error: &io::Error) -> String {
    let reason = error.to_string();
    let hint = if reason.contains("certificate") {
        " (the server's certificate is not trusted for this host: use a certificate from a \
         public CA for this name, or, for a self-signed test setup, give the client the \
         server's certificate to trust)"
    } else {
        ""
    };
    format!("TLS with {host} failed: {reason}{hint}")
}

/// `host` of `host:port`, keeping IPv6 brackets out.
pub fn host_of(authority: &str) -> &str {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_authorities_and_named_for_verification() {
        assert_eq!(host_of("example.com:8443"), "example.com");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("game.example").unwrap(),
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn pem_without_a_certificate_or_key_says_what_is_missing() {
        assert!(matches!(
            ClientTls::trusting_pem(b"not pem"),
            Err(TlsError::NoCertificate)
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let pem = cert.cert.pem();
        assert!(ClientTls::trusting_pem(pem.as_bytes()).is_ok());
        let err = ServerTls::from_pem(pem.as_bytes(), pem.as_bytes())
            .err()
            .expect("a certificate is not a key");
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(
            ServerTls::from_pem(pem.as_bytes(), cert.signing_key.serialize_pem().as_bytes())
                .is_ok()
        );
    }
}
