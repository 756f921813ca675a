//! The opening handshake (RFC 6455 section 4): checking an upgrade request
//! on the server, and the client's request and response check.

use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use sha1::{Digest, Sha1};

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
pub const SUPPORTED_VERSION: &str = "13";

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// A valid upgrade request: what the 101 response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub accept: String,
    /// The first protocol the client offered that the server supports.
    pub protocol: Option<String>,
}

/// Why an upgrade request was refused, and the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub reason: &'static str,
}

impl Refused {
    /// The HTTP response for this refusal; 426 names the supported version.
    pub fn response(&self) -> Response<String> {
        let mut response = Response::new(format!("{}\n", self.reason));
        *response.status_mut() = self.status;
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(SUPPORTED_VERSION),
            );
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        response
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Checks an upgrade request against section 4.2.1.
pub fn check_request<B>(request: &Request<B>, protocols: &[&str]) -> Result<Accepted, Refused> {
    let refuse = |status, reason| Err(Refused { status, reason });
    if request.method() != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrades must use GET",
        );
    }
    let headers = request.headers();
    if !has_token(headers, header::UPGRADE, "websocket") {
        return refuse(StatusCode::BAD_REQUEST, "missing 'Upgrade: websocket'");
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return refuse(StatusCode::BAD_REQUEST, "missing 'Connection: Upgrade'");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(SUPPORTED_VERSION.as_bytes())
    {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version: this server speaks version 13",
        );
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if decoded.map(|k| k.len()) != Ok(16) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be 16 bytes in base64",
        );
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let mut protocol = None;
    for candidate in offered {
        if protocols.contains(&candidate) {
            protocol = Some(candidate.to_owned());
            break;
        }
    }
    Ok(Accepted {
        accept: accept_key(key.as_bytes()),
        protocol,
    })
}

/// The 101 Switching Protocols response for an accepted request.
pub fn switching_protocols(accepted: &Accepted) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accepted.accept).expect("base64 is a valid header value"),
    );
    if let Some(protocol) = &accepted.protocol {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).expect("protocol came from a header value"),
        );
    }
    response
}

/// A client's request: the bytes to write, and the key to check the answer
/// against. `extensions`: a `Sec-WebSocket-Extensions` offer, if any.
pub fn client_request(
    host: &str,
    path: &str,
    protocols: &[&str],
    extensions: Option<&str>,
) -> (Vec<u8>, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(&hearth_proto::os_seed()[..16]);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        request.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            protocols.join(", ")
        ));
    }
    if let Some(extensions) = extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    request.push_str("\r\n");
    (request.into_bytes(), key)
}

/// The server's 101 answer, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAnswer {
    /// Bytes the response headers took.
    pub header_len: usize,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The extensions the server accepted (`Sec-WebSocket-Extensions`).
    pub extensions: Option<String>,
}

/// Parses the server's answer from the front of `buf`. `Ok(None)`: incomplete.
pub fn parse_client_response(buf: &[u8], key: &str) -> Result<Option<ServerAnswer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed HTTP response to the upgrade: {e}")),
    };
    if response.code != Some(101) {
        return Err(format!(
            "server refused the WebSocket upgrade: {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let find = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    if find("sec-websocket-accept").as_deref() != Some(accept_key(key.as_bytes()).as_str()) {
        return Err("server sent a wrong Sec-WebSocket-Accept".to_owned());
    }
    let extensions = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
        .reduce(|a, b| format!("{a}, {b}"));
    Ok(Some(ServerAnswer {
        header_len: len,
        protocol: find("sec-websocket-protocol"),
        extensions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: &str) -> Request<()> {
        Request::builder()
            .method("GET")
            .uri("/ws")
            .header("Upgrade", "websocket")
            .header("Connection", "keep-alive, Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", version)
            .header("Sec-WebSocket-Protocol", "chat, hearth.v1")
            .body(())
            .unwrap()
    }

    #[test]
    fn the_rfc_example_key_gives_the_rfc_accept_value() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let accepted = check_request(&request("13"), &["hearth.v1"]).unwrap();
        assert_eq!(accepted.protocol.as_deref(), Some("hearth.v1"));
    }

    #[test]
    fn wrong_version_gets_426_naming_version_13() {
        let refused = check_request(&request("8"), &[]).unwrap_err();
        assert_eq!(refused.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(refused.response().headers()["sec-websocket-version"], "13");
        let mut post = request("13");
        *post.method_mut() = Method::POST;
        assert_eq!(
            check_request(&post, &[]).unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
