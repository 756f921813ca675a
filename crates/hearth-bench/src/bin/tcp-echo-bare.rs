//! `tcp-echo-bare ADDR`: a bare tokio TCP echo, the peer of `tcp-echo`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!(
            "tcp-echo (bare) listening on tcp://{}",
            listener.local_addr()?
        );
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}
