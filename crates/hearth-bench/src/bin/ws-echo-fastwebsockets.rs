//! `ws-echo-fastwebsockets ADDR`: the peer echo server built on fastwebsockets
//! (hyper upgrade, FragmentCollector), as in that crate's echo example.

use std::convert::Infallible;

use bytes::Bytes;
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use hearth_bench::HttpResponse;
use http_body_util::Full;
use hyper::Request;

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn upgrade(mut request: Request<hyper::body::Incoming>) -> Result<HttpResponse, Infallible> {
    match upgrade::upgrade(&mut request) {
        Ok((response, fut)) => {
            tokio::spawn(async move {
                let _ = echo(fut).await;
            });
            Ok(response.map(|_| Full::new(Bytes::new())))
        }
        Err(e) => {
            let mut response = HttpResponse::new(Full::new(Bytes::from(e.to_string())));
            *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
            Ok(response)
        }
    }
}

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(hearth_bench::serve_hyper(
        addr,
        "ws-echo (fastwebsockets)",
        upgrade,
    ))
}
