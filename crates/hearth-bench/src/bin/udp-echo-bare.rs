//! `udp-echo-bare ADDR`: a bare tokio UDP echo, the peer of `udp-echo`.

fn main() -> anyhow::Result<()> {
    let addr = hearth_bench::addr_arg();
    hearth_bench::runtime().block_on(async move {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        eprintln!(
            "udp-echo (bare) listening on udp://{}",
            socket.local_addr()?
        );
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, from) = socket.recv_from(&mut buf).await?;
            let _ = socket.send_to(&buf[..len], from).await;
        }
    })
}
