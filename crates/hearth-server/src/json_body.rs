//! The body of every JSON POST endpoint, the players' and the
//! administrator's: refused unless it is declared JSON and, when a browser
//! says which page sent it, that page is this server's.
//!
//! Why: a web page on any other site can make its visitor's browser POST
//! to this server. A "simple" request (text/plain, a form, no type at all)
//! is sent without asking, so it could register accounts or spend
//! wrong-password guesses from the player's own address. Requiring
//! `Content-Type: application/json` makes the browser ask first (a CORS
//! preflight, which Hearth never grants), and a foreign `Origin` is
//! refused outright for the browsers and paths that send one anyway.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use serde::de::DeserializeOwned;

use crate::api_error::{refuse, ApiError};
use crate::web_state::WebState;

/// A JSON request body, checked as the module says.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<WebState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, ApiError> {
        let refused = |status, code, message: String| {
            state.api_errors.add(code);
            refuse(status, code, message)
        };
        if let Some(origin) = foreign_origin(request.headers()) {
            return Err(refused(
                StatusCode::FORBIDDEN,
                "foreign_origin",
                format!(
                    "this API serves this server's own pages, and the request came from a page \
                     of {origin:?}: call it from this server's pages or from a program \
                     (which sends no Origin)"
                ),
            ));
        }
        if let Err(sent) = declared_json(request.headers()) {
            return Err(refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "send the body as JSON with 'Content-Type: application/json' (this request \
                     declared {sent})"
                ),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| refuse(rejection.status(), "bad_body", rejection.body_text()))?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the request body is not the expected JSON: {e}"),
            )
        })
    }
}

/// Ok when the request declares JSON (parameters such as a charset
/// allowed); else what it declared, for the error.
fn declared_json(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err("no Content-Type".to_owned());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media_type = text.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!("{text:?}"))
    }
}

/// The request's `Origin` when it is present and names another site than
/// the one the request was sent to: its `Host`, or behind a proxy the
/// `X-Forwarded-Host` it passes on (a cross-site page cannot set that
/// header without the preflight Hearth never grants).
fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let hosts = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for host in hosts {
        if same_origin(&origin, host.trim()) {
            return None;
        }
    }
    Some(origin)
}

/// Whether `origin` (`scheme://host[:port]`, as browsers send it) is the
/// site at `host` (`host[:port]`, as in a Host header). The scheme is not
/// compared: behind a TLS proxy the server sees plain HTTP for an https
/// page. `null` (sandboxed frames, local files) is no site.
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let default_port = match origin.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return false,
    };
    let (Some(site), Ok(host)) = (origin.authority(), host.parse::<Authority>()) else {
        return false;
    };
    let plain = |authority: &Authority| !authority.as_str().contains('@');
    plain(site)
        && plain(&host)
        && site.host().eq_ignore_ascii_case(host.host())
        && site.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn only_json_is_json() {
        for json in ["application/json", "Application/JSON; charset=utf-8"] {
            assert_eq!(declared_json(&headers(&[("content-type", json)])), Ok(()));
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "text/plain; application/json",
        ] {
            assert!(declared_json(&headers(&[("content-type", other)])).is_err());
        }
        assert!(declared_json(&HeaderMap::new()).is_err(), "no type at all");
    }

    #[test]
    fn an_origin_is_this_server_only_with_its_host_and_port() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("https://Game.Example", "game.example:443"));
        assert!(same_origin("http://game.example", "game.example"));
        assert!(
            same_origin("https://game.example", "game.example"),
            "TLS proxy"
        );
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("https://evil.example", "game.example"));
        assert!(!same_origin("http://game.example.evil", "game.example"));
        assert!(!same_origin("null", "game.example"));
        assert!(!same_origin("http://x@game.example", "game.example"));
        assert!(!same_origin("file://game.example", "game.example"));
    }

    #[test]
    fn a_foreign_origin_is_named_and_no_origin_is_no_question() {
        let host = ("host", "game.example:8080");
        assert_eq!(foreign_origin(&headers(&[host])), None);
        assert_eq!(
            foreign_origin(&headers(&[host, ("origin", "http://game.example:8080")])),
            None
        );
        assert_eq!(
            foreign_origin(&headers(&[host, ("origin", "https://evil.example")])),
            Some("https://evil.example".to_owned())
        );
        // Behind a proxy that rewrote Host.
        let proxied = [
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "game.example"),
            ("origin", "https://game.example"),
        ];
        assert_eq!(foreign_origin(&headers(&proxied)), None);
    }
}
