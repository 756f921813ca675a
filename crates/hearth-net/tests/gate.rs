//! The gates over real loopback sockets: TCP+UDP (seed 000), UDP only,
//! WebSocket, blocked UDP, resume after a dropped TCP connection, bad input,
//! slow readers (queue bytes, write timeout), a panic in the gate task, and
//! closes from either end while the other is still sending.

use std::net::SocketAddr;
use std::time::Duration;

use hearth_net::client::{ConnectConfig, Connection, Transport};
use hearth_net::gate::{self, CutReason, EchoHandler, GateConfig, GateEnd, GateHandle};
use hearth_proto::{ChannelKind, ChannelSpec, Delivery, Event, LinkKind, ServerIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

async fn echo_gate(configure: impl FnOnce(&mut GateConfig)) -> GateHandle {
    let mut config = GateConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..GateConfig::default()
    };
    configure(&mut config);
    gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        EchoHandler,
    )
    .await
    .unwrap()
}

async fn joined(config: ConnectConfig) -> (Connection, Vec<Event>) {
    let mut connection = Connection::connect(config).await.unwrap();
    let events = timeout(WAIT, connection.wait_for(|e| *e == Event::Joined))
        .await
        .expect("joined in time")
        .expect("joined");
    (connection, events)
}

/// A joined connection with a reliable game channel open on `channel`.
async fn joined_with_reliable_channel(config: ConnectConfig, channel: u16) -> Connection {
    let (connection, _) = joined(config).await;
    connection
        .open_channel(channel, reliable(ChannelKind::Game))
        .await
        .unwrap();
    connection
}

/// Sends `count` numbered messages on `channel` and waits for every echo,
/// returning the echoes in arrival order.
async fn echo_round(
    connection: &mut Connection,
    channel: u16,
    count: usize,
    size: usize,
) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for index in 0..count {
        let mut message = vec![(index % 251) as u8; size.max(4)];
        message[..4].copy_from_slice(&(index as u32).to_be_bytes());
        connection.send(channel, &message).await.unwrap();
        sent.push(message);
    }
    let mut echoed = Vec::new();
    while echoed.len() < count {
        match timeout(WAIT, connection.next_event())
            .await
            .expect("echo in time")
        {
            Some(Event::Message {
                channel: c,
                payload,
            }) if c == channel => echoed.push(payload),
            Some(Event::Closed(reason)) => panic!("closed: {reason}"),
            Some(_) => {}
            None => panic!("connection stopped"),
        }
    }
    assert_eq!(echoed, sent, "every message echoed once, in order");
    echoed
}

fn reliable(kind: ChannelKind) -> ChannelSpec {
    ChannelSpec::new(kind, Delivery::ReliableOrdered)
}

#[tokio::test]
async fn tcp_login_udp_ticket_then_tcp_kcp_and_raw_udp_channels_at_once() {
    let gate = echo_gate(|_| {}).await;
    let config = ConnectConfig::new(Transport::Auto, gate.tcp_addr.unwrap());
    let (mut connection, _) = joined(config).await;
    timeout(
        WAIT,
        connection.wait_for(|e| *e == Event::LinkUp(LinkKind::Datagram)),
    )
    .await
    .unwrap()
    .expect("UDP bound by ticket");
    connection
        .open_channel(1, reliable(ChannelKind::Data).on_stream())
        .await
        .unwrap();
    connection
        .open_channel(2, reliable(ChannelKind::Game))
        .await
        .unwrap();
    connection
        .open_channel(
            3,
            ChannelSpec::new(ChannelKind::Voice, Delivery::Unreliable),
        )
        .await
        .unwrap();
    echo_round(&mut connection, 1, 200, 3000).await;
    echo_round(&mut connection, 2, 200, 3000).await;
    // Raw UDP on loopback: nothing should be lost, but allow it to be.
    for index in 0..50u8 {
        connection.send(3, &[index; 100]).await.unwrap();
    }
    let mut raw = 0;
    while raw < 45 {
        match timeout(Duration::from_secs(3), connection.next_event()).await {
            Ok(Some(Event::Message { channel: 3, .. })) => raw += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    assert!(raw >= 45, "raw UDP echoes: {raw}");
    let stats = connection.stats().await.unwrap();
    assert!(stats.packets_in > 0);
    let endpoint = gate.endpoint_stats().await.unwrap();
    assert_eq!(endpoint.handshakes_completed, 1, "one UDP attach handshake");
}

#[tokio::test]
async fn blocked_udp_falls_back_to_tcp_and_no_message_is_lost() {
    // The ticket names a UDP port where a socket swallows everything: UDP is
    // "blocked" the way a firewall blocks it, silently.
    let black_hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let hole_port = black_hole.local_addr().unwrap().port();
    let gate = echo_gate(|c| c.protocol.udp_ticket_port = Some(hole_port)).await;
    let mut config = ConnectConfig::new(Transport::Auto, gate.tcp_addr.unwrap());
    config.udp_wait = Duration::from_secs(2);
    let mut connection = joined_with_reliable_channel(config, 2).await;
    // Sent while UDP is still being tried, and after it was given up.
    echo_round(&mut connection, 2, 100, 500).await;
    timeout(
        WAIT,
        connection.wait_for(|e| *e == Event::DatagramUnavailable),
    )
    .await
    .unwrap()
    .unwrap();
    echo_round(&mut connection, 2, 100, 500).await;
    drop(black_hole);
}

#[tokio::test]
async fn udp_only_login_reaches_the_same_session_api() {
    let gate = echo_gate(|_| {}).await;
    let config = ConnectConfig::new(Transport::Udp, gate.udp_addr.unwrap());
    let (mut connection, events) = joined(config).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Welcomed { ticket: None, .. })));
    connection
        .open_channel(2, reliable(ChannelKind::Game))
        .await
        .unwrap();
    echo_round(&mut connection, 2, 300, 2000).await;
    // A message bigger than a datagram, split into partial bunches.
    echo_round(&mut connection, 2, 3, 200_000).await;
}

#[tokio::test]
async fn a_reliable_echo_leaves_the_gate_in_the_datagram_that_acknowledges_its_request() {
    let gate = echo_gate(|_| {}).await;
    let config = ConnectConfig::new(Transport::Udp, gate.udp_addr.unwrap());
    let mut connection = joined_with_reliable_channel(config, 2).await;
    echo_round(&mut connection, 2, 1, 64).await;
    let sent = |gate: &GateHandle| {
        gate.metrics()
            .udp_datagrams_out
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = sent(&gate);
    const ECHOES: u64 = 40;
    for _ in 0..ECHOES {
        echo_round(&mut connection, 2, 1, 64).await;
    }
    let per_echo = (sent(&gate) - before) as f64 / ECHOES as f64;
    // The echo handler replies while the gate delivers the request's events,
    // before it polls for transmits: the KCP acknowledgement and the echo
    // share a datagram. Flushed as the request was read, they took two.
    // (The slack is for a heartbeat or an acknowledgement of the client's.)
    assert!(per_echo < 1.25, "{per_echo:.2} gate datagrams per echo");
}

#[tokio::test]
async fn websocket_login_over_an_upgraded_connection() {
    let gate = echo_gate(|c| c.udp = None).await;
    let web = serve_ws_gate(gate.clone()).await;
    let config = ConnectConfig::new(Transport::WebSocket, web);
    let mut connection = joined_with_reliable_channel(config, 2).await;
    echo_round(&mut connection, 2, 200, 1000).await;
    assert_eq!(
        gate.metrics()
            .ws_accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// A tiny hyper server doing what hearth-server's web port does for `/ws`.
async fn serve_ws_gate(gate: GateHandle) -> SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let gate = gate.clone();
            tokio::spawn(async move {
                let service =
                    service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                        let gate = gate.clone();
                        async move {
                            let limits = hearth_net::ws::Limits { max_message: 65536 };
                            let response =
                                match hearth_net::ws::upgrade(&mut request, &["hearth.v1"], limits)
                                {
                                    Ok(pending) => {
                                        let response =
                                            pending.response.clone().map(|()| String::new());
                                        tokio::spawn(async move {
                                            if let Ok(socket) = pending.socket().await {
                                                gate.accept_websocket(socket, peer);
                                            }
                                        });
                                        response
                                    }
                                    Err(refused) => refused.response(),
                                };
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_dropped_tcp_connection_is_resumed_without_losing_messages() {
    let gate = echo_gate(|c| c.udp = None).await;
    let mut config = ConnectConfig::new(Transport::Tcp, gate.tcp_addr.unwrap());
    config.protocol.session.heartbeat_interval = Duration::from_millis(200);
    let mut connection = joined_with_reliable_channel(config, 2).await;
    echo_round(&mut connection, 2, 50, 100).await;
    connection.drop_stream().await;
    timeout(WAIT, connection.wait_for(|e| *e == Event::Resumed))
        .await
        .unwrap()
        .expect("resumed over a new TCP connection");
    echo_round(&mut connection, 2, 50, 100).await;
}

#[tokio::test]
async fn a_client_that_connects_and_never_speaks_is_dropped() {
    let gate = echo_gate(|c| c.first_frame_timeout = Duration::from_millis(300)).await;
    let mut stream = tokio::net::TcpStream::connect(gate.tcp_addr.unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "connection ended");
    assert_eq!(gate.metrics().cuts(CutReason::SilentConnection), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_beyond_the_pending_cap_are_closed_at_once() {
    // Connections that have not sent a first packet belong to no shard yet:
    // the gate bounds them all together by the pending-stream cap.
    let gate = echo_gate(|c| {
        c.protocol.max_pending_streams = 8;
        c.first_frame_timeout = Duration::from_secs(4);
    })
    .await;
    let tcp = gate.tcp_addr.unwrap();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
    }
    // Each connection either is closed within a second or waits.
    let checks: Vec<_> = silent
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                let read = timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
                (matches!(read, Ok(Ok(0)) | Ok(Err(_))), stream)
            })
        })
        .collect();
    let mut closed = 0;
    let mut waiting = Vec::new();
    for check in checks {
        let (was_closed, stream) = check.await.unwrap();
        if was_closed {
            closed += 1;
        } else {
            waiting.push(stream);
        }
    }
    assert_eq!(closed, 12, "all but the cap's 8 closed at once");
    assert_eq!(gate.metrics().cuts(CutReason::Overloaded), 12);
    // A place freed is a place for a client that speaks.
    drop(waiting.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut connection, _) = joined(ConnectConfig::new(Transport::Tcp, tcp)).await;
    connection
        .open_channel(2, reliable(ChannelKind::Game))
        .await
        .unwrap();
    echo_round(&mut connection, 2, 5, 50).await;
}

#[tokio::test]
async fn oversized_and_malformed_frames_close_only_that_connection() {
    let gate = echo_gate(|_| {}).await;
    let tcp = gate.tcp_addr.unwrap();
    // A length prefix far over the maximum: refused before the body arrives.
    let mut oversized = tokio::net::TcpStream::connect(tcp).await.unwrap();
    oversized
        .write_all(&(10_000_000u32).to_be_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(
        timeout(WAIT, oversized.read(&mut buf)).await.unwrap(),
        Ok(0) | Err(_)
    ));
    // A well-framed packet of garbage: a protocol error for that session only.
    let mut garbage = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let mut frame = Vec::new();
    hearth_net::framing::write_frame(&mut frame, &[0xFF; 40]);
    garbage.write_all(&frame).await.unwrap();
    let mut rest = Vec::new();
    let _ = timeout(WAIT, garbage.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert_eq!(gate.metrics().cuts(CutReason::OversizedFrame), 1);
    // A real client is unaffected.
    let (mut connection, _) = joined(ConnectConfig::new(Transport::Tcp, tcp)).await;
    connection
        .open_channel(2, reliable(ChannelKind::Game))
        .await
        .unwrap();
    echo_round(&mut connection, 2, 10, 100).await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_heartbeat_timeout() {
    let gate = echo_gate(|c| {
        c.udp = None;
        c.protocol.session.idle_timeout = Duration::from_millis(800);
        c.protocol.session.heartbeat_interval = Duration::from_millis(200);
        c.protocol.session.resume_grace = Duration::from_millis(400);
    })
    .await;
    // Log in by driving the sans-IO client by hand, then stop answering while
    // the TCP connection stays open: only the heartbeat can notice.
    let (mut stream, _client) = manual_tcp_login(gate.tcp_addr.unwrap()).await;
    let went_silent = std::time::Instant::now();
    let opened = gate.endpoint_stats().await.unwrap().sessions_opened;
    assert_eq!(opened, 1);
    // Keep the socket open and read nothing that matters until the server closes it.
    let mut sink = vec![0u8; 4096];
    loop {
        match timeout(Duration::from_secs(5), stream.read(&mut sink))
            .await
            .expect("server gave up in time")
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let waited = went_silent.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "not before the idle timeout: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "within timeout + interval: {waited:?}"
    );
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_refused_and_counted() {
    // Loopback is exempt by default (bots on this machine); hold it to the cap here.
    let gate = echo_gate(|c| {
        c.max_streams_per_ip = 2;
        c.protocol.limit_loopback = true;
    })
    .await;
    let tcp = gate.tcp_addr.unwrap();
    let _first = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let _second = tokio::net::TcpStream::connect(tcp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(tcp).await.unwrap();
    let mut buf = [0u8; 8];
    assert!(matches!(
        timeout(WAIT, third.read(&mut buf)).await.unwrap(),
        Ok(0) | Err(_)
    ));
    assert_eq!(gate.metrics().cuts(CutReason::TooManyFromAddress), 1);
}

#[tokio::test]
async fn loopback_connections_pass_the_per_address_limit_unless_limited() {
    let gate = echo_gate(|c| c.max_streams_per_ip = 2).await;
    let tcp = gate.tcp_addr.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gate.metrics().cuts(CutReason::TooManyFromAddress), 0);
    assert_eq!(
        gate.metrics()
            .streams_open
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
}

/// Logs in over TCP by driving the sans-IO client directly, so a test can
/// then make the client misbehave (stop reading, stop answering).
async fn manual_tcp_login(addr: SocketAddr) -> (tokio::net::TcpStream, hearth_proto::Client) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let now = std::time::Instant::now();
    let mut client = hearth_proto::Client::new(Default::default(), now, [7; 32]);
    client.connect_stream(now);
    let mut inbound = bytes::BytesMut::new();
    let mut codec = hearth_net::framing::codec(65536);
    loop {
        while let Some(transmit) = client.poll_transmit() {
            if let hearth_proto::Transmit::Stream { bytes, .. } = transmit {
                let mut frame = Vec::new();
                hearth_net::framing::write_frame(&mut frame, &bytes);
                stream.write_all(&frame).await.unwrap();
            }
        }
        while let Some(event) = client.poll_event() {
            if event == Event::Joined {
                return (stream, client);
            }
        }
        timeout(WAIT, stream.read_buf(&mut inbound))
            .await
            .unwrap()
            .unwrap();
        while let Some(packet) =
            tokio_util::codec::Decoder::decode(&mut codec, &mut inbound).unwrap()
        {
            client.handle_stream(std::time::Instant::now(), &packet);
        }
    }
}

/// Sends a flood to every player that joins.
#[derive(Clone)]
struct Flood;

impl gate::Handler for Flood {
    fn on_event(&mut self, gate: &mut gate::GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => {
                gate.accept_login(session, None);
            }
            Event::Joined => {
                gate.open_channel(session, 5, reliable(ChannelKind::Data))
                    .unwrap();
                let chunk = vec![0xAB; 60_000];
                for _ in 0..800 {
                    if gate.send(session, 5, &chunk).is_err() {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

/// A gate whose handler floods every player, and a player logged in over
/// TCP that then reads nothing more (its socket stays open). Returns when the
/// gate has cut the link as a slow consumer, with the time that took.
async fn flood_a_client_that_stops_reading(configure: impl FnOnce(&mut GateConfig)) -> Duration {
    let mut config = GateConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..GateConfig::default()
    };
    // Let the session queue far more than the kernel's socket buffers hold.
    config.protocol.session.max_unacked_bytes = 64 << 20;
    configure(&mut config);
    let gate = gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        Flood,
    )
    .await
    .unwrap();
    let (_stream, _client) = manual_tcp_login(gate.tcp_addr.unwrap()).await;
    let started = std::time::Instant::now();
    while gate.metrics().cuts(CutReason::SlowConsumer) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "slow consumer not detected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_after = started.elapsed();
    let detached = gate.session_count();
    assert_eq!(
        detached, 1,
        "the session waits for a resume; only the link went"
    );
    cut_after
}

#[tokio::test]
async fn a_client_that_stops_reading_fills_its_byte_bound_and_loses_its_link() {
    // Only the byte bound can trip: plenty of packets allowed, no write timeout in reach.
    flood_a_client_that_stops_reading(|c| {
        c.stream_queue_bytes = 1 << 20;
        c.stream_write_timeout = Duration::from_secs(60);
    })
    .await;
}

#[tokio::test]
async fn a_write_the_client_does_not_read_is_cut_at_the_write_timeout() {
    // The queue holds the whole flood, so only the blocked write can trip.
    let cut_after = flood_a_client_that_stops_reading(|c| {
        c.stream_queue_bytes = 256 << 20;
        c.stream_write_timeout = Duration::from_millis(500);
    })
    .await;
    assert!(
        cut_after < Duration::from_secs(3),
        "cut within the write timeout and some slack: {cut_after:?}"
    );
}

/// Panics at the first login, as a buggy game handler would.
#[derive(Clone)]
struct PanicsAtLogin;

impl gate::Handler for PanicsAtLogin {
    fn on_event(&mut self, _gate: &mut gate::GateCtx<'_>, _session: u64, event: Event) {
        if let Event::LoginRequest(_) = event {
            panic!("handler bug: no map loaded");
        }
    }
}

#[tokio::test]
async fn a_panic_in_the_gate_task_is_reported_and_releases_the_port() {
    let config = GateConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..GateConfig::default()
    };
    let gate = gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        PanicsAtLogin,
    )
    .await
    .unwrap();
    assert_eq!(gate.end(), None, "running");
    let tcp = gate.tcp_addr.unwrap();
    let _player = Connection::connect(ConnectConfig::new(Transport::Tcp, tcp))
        .await
        .unwrap();
    let end = timeout(WAIT, gate.ended()).await.expect("the gate ended");
    assert_eq!(end, GateEnd::Panicked("handler bug: no map loaded".into()));
    assert_eq!(
        end.to_string(),
        "a gate shard panicked: handler bug: no map loaded"
    );
    assert_eq!(gate.end(), Some(end));
    for shard in 0..gate.shard_count() {
        assert!(
            gate.run_on_shard(shard, |_| {}).await.is_err(),
            "commands fail at once, on every shard"
        );
    }
    timeout(WAIT, async {
        while std::net::TcpListener::bind(tcp).is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the game port is released");
}

#[tokio::test]
async fn a_dropped_tcp_link_comes_back_while_udp_carries_the_session() {
    let gate = echo_gate(|_| {}).await;
    let mut config = ConnectConfig::new(Transport::Auto, gate.tcp_addr.unwrap());
    config.protocol.session.heartbeat_interval = Duration::from_millis(200);
    let (mut connection, events) = joined(config).await;
    let id = events
        .iter()
        .find_map(|e| match e {
            Event::Welcomed { session_id, .. } => Some(*session_id),
            _ => None,
        })
        .unwrap();
    timeout(
        WAIT,
        connection.wait_for(|e| *e == Event::LinkUp(LinkKind::Datagram)),
    )
    .await
    .unwrap()
    .unwrap();
    connection
        .open_channel(1, reliable(ChannelKind::Data).on_stream())
        .await
        .unwrap();
    connection
        .open_channel(2, reliable(ChannelKind::Game))
        .await
        .unwrap();
    echo_round(&mut connection, 1, 20, 100).await;
    connection.drop_stream().await;
    // Messages keep flowing (over UDP) while the stream is re-established.
    echo_round(&mut connection, 2, 50, 100).await;
    echo_round(&mut connection, 1, 50, 100).await;
    timeout(WAIT, async {
        loop {
            let links = gate
                .query_on(id, move |ctx| {
                    ctx.session(id)
                        .map(|s| (s.has_link(LinkKind::Stream), s.has_link(LinkKind::Datagram)))
                })
                .await
                .unwrap();
            if links == Some((true, true)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the session has its TCP link back, beside UDP");
    assert!(
        gate.metrics()
            .tcp_accepted
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn shutdown_releases_the_ports() {
    let gate = echo_gate(|_| {}).await;
    let (tcp, udp) = (gate.tcp_addr.unwrap(), gate.udp_addr.unwrap());
    gate.shutdown("test over").await;
    assert_eq!(timeout(WAIT, gate.ended()).await.unwrap(), GateEnd::Stopped);
    let started = std::time::Instant::now();
    loop {
        let rebound =
            std::net::TcpListener::bind(tcp).is_ok() && std::net::UdpSocket::bind(udp).is_ok();
        if rebound {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ports still held after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kicks a player at its tenth message.
#[derive(Clone, Default)]
struct KickAtTenth(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl gate::Handler for KickAtTenth {
    fn on_event(&mut self, gate: &mut gate::GateCtx<'_>, session: u64, event: Event) {
        if let Event::LoginRequest(_) = event {
            gate.accept_login(session, None);
            return;
        }
        let messages = &self.0;
        let is_message = matches!(event, Event::Message { .. });
        if is_message && messages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 10 {
            gate.close(session, hearth_proto::close_code::KICKED, "too chatty");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_closed_while_it_is_sending_still_learns_why() {
    // The gate closes the connection while the client's messages still
    // arrive: without a graceful close the kernel resets it and the Close
    // frame is lost, or the client drops it with the link.
    for _ in 0..5 {
        let config = GateConfig {
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..GateConfig::default()
        };
        let gate = gate::start(
            config,
            ServerIdentity::generate(hearth_proto::os_seed()),
            KickAtTenth::default(),
        )
        .await
        .unwrap();
        let mut config = ConnectConfig::new(Transport::Tcp, gate.tcp_addr.unwrap());
        config.reconnect = false;
        let (mut connection, _) = joined(config).await;
        connection
            .open_channel(2, reliable(ChannelKind::Game))
            .await
            .unwrap();
        for index in 0..200u32 {
            if connection.send(2, &index.to_be_bytes()).await.is_err() {
                break;
            }
        }
        let closed = timeout(WAIT, async {
            loop {
                match connection.next_event().await {
                    Some(Event::Closed(reason)) => return reason,
                    Some(_) => {}
                    None => panic!("the connection stopped without a Closed"),
                }
            }
        })
        .await
        .expect("told in time");
        assert_eq!(
            closed,
            hearth_proto::CloseReason::Kicked {
                reason: "too chatty".into()
            }
        );
    }
}

/// Sends every player that joins 3 MB at once, as a map download would.
#[derive(Clone)]
struct Download;

impl gate::Handler for Download {
    fn on_event(&mut self, gate: &mut gate::GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => {
                gate.accept_login(session, None);
            }
            Event::Joined => {
                gate.open_channel(session, 5, reliable(ChannelKind::Data))
                    .unwrap();
                for _ in 0..200 {
                    gate.send(session, 5, &[0xCD; 16_000]).unwrap();
                }
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_closes_while_the_gate_sends_ends_its_session_at_once() {
    closes_while_the_gate_sends(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_closes_while_the_gate_sends_ends_its_session_at_once() {
    closes_while_the_gate_sends(Transport::WebSocket).await;
}

async fn closes_while_the_gate_sends(transport: Transport) {
    // The client's Close is its last frame, written while the gate's data
    // still arrives: the session ends then, not a resume grace later. Both
    // ends race to drop the connection (the client as soon as its Close is
    // out, the gate when it reads the end after it). The race this guards:
    // the gate's write to a connection whose task had ended used to close
    // the stream at once, dropping the Close still queued behind it.
    let config = GateConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..GateConfig::default()
    };
    let gate = gate::start(
        config,
        ServerIdentity::generate(hearth_proto::os_seed()),
        Download,
    )
    .await
    .unwrap();
    let server = match transport {
        Transport::WebSocket => serve_ws_gate(gate.clone()).await,
        _ => gate.tcp_addr.unwrap(),
    };
    for _ in 0..5 {
        let mut config = ConnectConfig::new(transport, server);
        config.reconnect = false;
        let (mut connection, _) = joined(config).await;
        timeout(
            WAIT,
            connection.wait_for(|e| matches!(e, Event::Message { channel: 5, .. })),
        )
        .await
        .unwrap()
        .expect("the download starts");
        connection
            .close(hearth_proto::close_code::NORMAL, "bye")
            .await;
        let started = std::time::Instant::now();
        while gate.session_count() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the session waits for a resume: the Close never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
