//! `ws-echo-tungstenite ADDR`: the peer echo server built on tokio-tungstenite.

use futures_util::{SinkExt, StreamExt};

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!(
            "ws-echo (tokio-tungstenite) listening on ws://{}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    })
}
