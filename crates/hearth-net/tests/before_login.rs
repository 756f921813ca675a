//! Every way to reach the game before login, over a real TCP connection to
//! the gate, by a client that completes the stream key agreement properly
//! (as any attacker with a socket can) and then misbehaves inside the sealed
//! stream: channel opens, messages, and floods of empty parts. The session is
//! closed and counted, and nothing reaches the application.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hearth_net::gate::{self, GateConfig, GateCtx, GateHandle, Handler};
use hearth_proto::bunch::{flags, Bunch, ChannelKind, Delivery};
use hearth_proto::control::ControlMessage;
use hearth_proto::frame::Frame;
use hearth_proto::handshake::Mode;
use hearth_proto::stream_handshake::{StreamCrypto, StreamOpener};
use hearth_proto::{DropReason, Event, ServerIdentity};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

const WAIT: Duration = Duration::from_secs(10);

/// Counts what reached the application; accepts every login.
#[derive(Clone)]
struct Witness {
    game_events: Arc<AtomicU64>,
}

impl Handler for Witness {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match event {
            Event::LoginRequest(_) => {
                gate.accept_login(session, None);
            }
            Event::Message { .. } | Event::ChannelOpened { .. } => {
                self.game_events.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

async fn witnessed_gate() -> (GateHandle, Arc<AtomicU64>) {
    let game_events = Arc::new(AtomicU64::new(0));
    let config = GateConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..GateConfig::default()
    };
    let handler = Witness {
        game_events: game_events.clone(),
    };
    let identity = ServerIdentity::generate(hearth_proto::os_seed());
    let gate = gate::start(config, identity, handler).await.unwrap();
    (gate, game_events)
}

/// A TCP connection that completed the stream key agreement by hand.
struct SealedTcp {
    reader: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    writer: OwnedWriteHalf,
    crypto: StreamCrypto,
}

/// One TCP frame: 4-byte big-endian length, then the packet.
async fn write_frame(writer: &mut OwnedWriteHalf, packet: &[u8]) -> std::io::Result<()> {
    let mut frame = (packet.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(packet);
    writer.write_all(&frame).await
}

impl SealedTcp {
    async fn connect(gate: &GateHandle) -> Self {
        let stream = TcpStream::connect(gate.tcp_addr.unwrap()).await.unwrap();
        let (read, mut writer) = stream.into_split();
        let mut reader = FramedRead::new(read, LengthDelimitedCodec::new());
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(hearth_proto::os_seed());
        let opener = StreamOpener::new(&mut rng, Mode::New);
        write_frame(&mut writer, &opener.hello()).await.unwrap();
        let answer = timeout(WAIT, reader.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let opened = opener
            .finish(&answer, Some(&gate.public_key), None)
            .unwrap();
        Self {
            reader,
            writer,
            crypto: opened.crypto,
        }
    }

    async fn send(&mut self, plaintext: &[u8]) -> std::io::Result<()> {
        let mut packet = plaintext.to_vec();
        self.crypto.seal(&mut packet);
        write_frame(&mut self.writer, &packet).await
    }

    /// Reads until the server closes the connection; false on timeout.
    async fn closed_by_server(&mut self) -> bool {
        timeout(WAIT, async {
            while let Some(Ok(_)) = self.reader.next().await {}
        })
        .await
        .is_ok()
    }
}

fn reliable_bunch(channel: u16, sequence: u64, extra: u8, payload: &[u8]) -> Vec<u8> {
    let open = (extra & flags::OPEN != 0).then_some((ChannelKind::Game, Delivery::ReliableOrdered));
    let mut frame = Vec::new();
    Frame::Bunch(Bunch {
        flags: flags::RELIABLE | extra,
        channel,
        sequence,
        part: 0,
        open,
        payload,
    })
    .encode(&mut frame);
    frame
}

fn hello() -> Vec<u8> {
    let payload = ControlMessage::Hello {
        version: hearth_proto::PROTOCOL_VERSION,
    }
    .to_vec();
    reliable_bunch(0, 0, 0, &payload)
}

async fn drops(gate: &GateHandle, reason: DropReason) -> u64 {
    gate.endpoint_stats().await.unwrap().drops.get(reason)
}

#[tokio::test]
async fn channel_opens_and_messages_before_login_close_the_session() {
    let (gate, game_events) = witnessed_gate().await;
    let attempts: [(&str, Vec<u8>); 3] = [
        ("open", reliable_bunch(5, 1, flags::OPEN, &[])),
        ("reliable", reliable_bunch(5, 1, 0, b"reach the game")),
        ("unreliable", {
            let mut frame = Vec::new();
            Frame::Bunch(Bunch {
                flags: 0,
                channel: 5,
                sequence: 0,
                part: 0,
                open: None,
                payload: b"reach the game",
            })
            .encode(&mut frame);
            frame
        }),
    ];
    let count = attempts.len() as u64;
    // All at once, as an attacker would.
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(what, frame)| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut client = SealedTcp::connect(&gate).await;
                let mut packet = hello();
                packet.extend_from_slice(&frame);
                client.send(&packet).await.unwrap();
                assert!(client.closed_by_server().await, "{what}: connection closed");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(drops(&gate, DropReason::BeforeLogin).await, count);
    assert_eq!(
        game_events.load(Ordering::Relaxed),
        0,
        "nothing reached the game"
    );
    let sessions = gate.session_count();
    assert_eq!(sessions, 0);
}

/// Resident set of this process (server and clients), from /proc.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn floods_of_empty_parts_before_login_cost_bounded_memory() {
    let (gate, game_events) = witnessed_gate().await;
    let before = rss_kib();
    // Eight connections at once, each sending 8 MiB of empty reliable partial
    // bunches with distinct part indices on the control channel before any
    // login (parts of one message take consecutive sequence numbers).
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut client = SealedTcp::connect(&gate).await;
                let mut sent = 0usize;
                let mut part = 0u32;
                while sent < 8 << 20 {
                    let mut packet = Vec::new();
                    while packet.len() < 60_000 {
                        let initial = if part == 0 { flags::PARTIAL_INITIAL } else { 0 };
                        let mut frame = Vec::new();
                        Frame::Bunch(Bunch {
                            flags: flags::RELIABLE | flags::PARTIAL | initial,
                            channel: 0,
                            sequence: u64::from(part),
                            part,
                            open: None,
                            payload: &[],
                        })
                        .encode(&mut frame);
                        packet.extend_from_slice(&frame);
                        part += 1;
                    }
                    sent += packet.len();
                    if client.send(&packet).await.is_err() {
                        break;
                    }
                }
                sent
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let parts: usize = gate
        .query_each(|ctx| {
            ctx.session_ids()
                .into_iter()
                .filter_map(|id| ctx.session(id).map(|s| s.buffered_parts()))
                .sum::<usize>()
        })
        .await
        .unwrap()
        .into_iter()
        .sum();
    let grew = rss_kib().saturating_sub(before);
    println!(
        "sent {} MiB of empty parts; RSS grew {grew} KiB",
        total >> 20
    );
    assert_eq!(parts, 0, "no empty part is held");
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
    assert_eq!(game_events.load(Ordering::Relaxed), 0);
}
