//! `ws-echo ADDR`: Hearth's WebSocket layer as a plain echo server, for the
//! Autobahn suite and the benchmarks. The same upgrade check, frame codec and
//! driver as the gate on the web port; no session protocol on top.
//! permessage-deflate is accepted when offered (the gate's is off unless
//! configured); clients that do not offer it get plain frames.

use std::convert::Infallible;

use bytes::Bytes;
use hearth_bench::HttpResponse;
use hearth_net::ws::{self, DeflateConfig, Limits, Message};
use http_body_util::Full;
use hyper::Request;

async fn handle(mut request: Request<hyper::body::Incoming>) -> Result<HttpResponse, Infallible> {
    // Autobahn sends 16 MiB messages in case 9.
    let limits = Limits {
        max_message: 64 * 1024 * 1024,
    };
    // permessage-deflate when the client offers it (Autobahn cases 12 and 13).
    match ws::upgrade_with_deflate(&mut request, &[], limits, DeflateConfig::on()) {
        Ok(pending) => {
            let response = pending.response.clone().map(|()| Full::new(Bytes::new()));
            tokio::spawn(async move {
                if let Ok(socket) = pending.socket().await {
                    echo(socket).await;
                }
            });
            Ok(response)
        }
        Err(refused) => Ok(refused.response().map(|text| Full::new(Bytes::from(text)))),
    }
}

async fn echo(mut socket: ws::UpgradedSocket) {
    loop {
        match socket.recv().await {
            Ok(Some(message @ (Message::Text(_) | Message::Binary(_)))) => {
                // Queued, not flushed: `recv` writes before it next reads, so
                // a burst of messages is echoed in one write.
                if socket.protocol().send(&message).is_err() {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(hearth_bench::serve_hyper(addr, "ws-echo (hearth)", handle))
}
