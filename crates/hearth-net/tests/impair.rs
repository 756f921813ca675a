//! The impairing relay over real loopback sockets: loss at its rate in each
//! direction, lag on every packet, and the books balanced.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hearth_net::impair::{Relay, RelayConfig};
use tokio::net::UdpSocket;

async fn echo_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..len], from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_applies_in_each_direction_and_the_books_balance() {
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), echo_server().await);
    config.upstream = "loss=30".parse().unwrap();
    config.downstream = "loss=30".parse().unwrap();
    config.seed = 42;
    let relay = Relay::start(config).await.unwrap();
    let client = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    client.connect(relay.local_addr).await.unwrap();
    // Echoes are read while sending, so the client's socket buffer never
    // overflows: every loss is the relay's.
    let receiver = client.clone();
    let counting = tokio::spawn(async move {
        let mut got = 0u32;
        let mut buf = [0u8; 64];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), receiver.recv(&mut buf)).await
        {
            got += 1;
        }
        got
    });
    let sent = 2_000u32;
    // Paced, so that no socket buffer on the way overflows either.
    for i in 0..sent {
        client.send(&i.to_be_bytes()).await.unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = counting.await.unwrap();
    // 70 % of 70 % come back.
    let share = f64::from(got) / f64::from(sent);
    let stats = relay.stop();
    assert!(
        (0.44..0.54).contains(&share),
        "{got} of {sent} echoed ({share:.2}): {stats:?}"
    );
    assert_eq!(stats.upstream.received, u64::from(sent));
    assert_eq!(
        stats.upstream.delivered,
        stats.upstream.received - stats.upstream.dropped
    );
    assert_eq!(stats.downstream.received, stats.upstream.delivered);
    assert_eq!(stats.downstream.delivered, u64::from(got));
}

#[tokio::test]
async fn lag_delays_every_round_trip_by_both_directions() {
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), echo_server().await);
    config.upstream = "lag=30".parse().unwrap();
    config.downstream = "lag=20,jitter=10".parse().unwrap();
    let relay = Relay::start(config).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(relay.local_addr).await.unwrap();
    let mut buf = [0u8; 64];
    for i in 0..10u32 {
        let sent = Instant::now();
        client.send(&i.to_be_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
            .await
            .expect("echoed")
            .unwrap();
        let rtt = sent.elapsed();
        assert!(
            rtt >= Duration::from_millis(50),
            "round trip {rtt:?} under the 50 ms of lag"
        );
        assert!(rtt < Duration::from_millis(500), "round trip {rtt:?}");
    }
}

#[tokio::test]
async fn impairments_change_at_run_time_and_addresses_can_change() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let relay = Relay::start(RelayConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        server_addr,
    ))
    .await
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(relay.local_addr).await.unwrap();
    let exchange = |n: u8| {
        let (client, server) = (&client, &server);
        async move {
            client.send(&[n]).await.unwrap();
            tokio::time::timeout(Duration::from_millis(300), server.recv_from(&mut [0u8; 64]))
                .await
                .ok()
                .map(|r| r.unwrap().1)
        }
    };
    let first = exchange(1).await.expect("a clean link delivers");
    // UDP blocked: nothing gets through.
    relay.set_impairments("loss=100".parse().unwrap(), "loss=100".parse().unwrap());
    assert_eq!(exchange(2).await, None);
    // Unblocked, and from a new address, as after a NAT rebinding.
    relay.set_impairments(Default::default(), Default::default());
    relay.change_addresses();
    let after = exchange(3).await.expect("delivered again");
    assert_ne!(first, after, "the server sees the client move");
}
