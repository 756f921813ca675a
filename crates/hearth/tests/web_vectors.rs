//! Test vectors for the TypeScript client (web/client): the Rust encoders
//! produce every message type, a whole stream handshake with fixed keys and
//! sealed packets, and the Node tests (`npm test` in web/) decode and
//! re-encode them byte for byte. One spec, two implementations held to it.
//!
//! The committed file must equal what this test generates; after a
//! deliberate protocol change, regenerate it with
//! `HEARTH_BLESS=1 cargo test -p hearth --test web_vectors`.

use hearth_proto::bunch::{Bunch, ChannelKind, Delivery};
use hearth_proto::control::{ControlMessage, Credentials, UdpTicket};
use hearth_proto::crypto::{PacketKey, SessionKeys};
use hearth_proto::frame::Frame;
use hearth_proto::handshake::{AckBody, Mode};
use hearth_proto::stream_handshake::{stream_transcript, StreamHandshake, StreamRefusal};
use hearth_replica::game_wire::{put_reliable_header, GameItem, MAX_MAP_BYTES};
use hearth_world::zone::MAX_ZONE_SIDE;
use hearth_world::{Zone, ZoneSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/client/test/vectors.json"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(fill: u8) -> [u8; 32] {
    std::array::from_fn(|i| fill.wrapping_mul(31).wrapping_add(i as u8))
}

fn frame_vector(frame: Frame, value: Value) -> Value {
    let mut bytes = Vec::new();
    frame.encode(&mut bytes);
    json!({ "value": value, "hex": hex(&bytes) })
}

/// One stream handshake, server side computed here, plus packets sealed both ways.
fn handshake(mode: Mode, attach_secret: Option<[u8; 32]>, received: u64) -> Value {
    let client = StaticSecret::from(key(1));
    let ephemeral = StaticSecret::from(key(2));
    let identity = StaticSecret::from(key(3));
    let client_public = PublicKey::from(&client).to_bytes();
    let server_ephemeral = PublicKey::from(&ephemeral).to_bytes();
    let server_static = PublicKey::from(&identity).to_bytes();
    let hello = StreamHandshake::Hello {
        version: 2,
        mode,
        client_public,
    }
    .to_vec();
    let transcript = stream_transcript(2, &client_public, &server_ephemeral, &server_static, mode);
    let dh1 = ephemeral.diffie_hellman(&PublicKey::from(client_public));
    let dh2 = identity.diffie_hellman(&PublicKey::from(client_public));
    let keys = SessionKeys::derive(
        dh1.as_bytes(),
        dh2.as_bytes(),
        attach_secret.as_ref(),
        &transcript,
    );
    let session_id = match mode {
        Mode::New => 0x0123_4567_89ab_cdef,
        Mode::Attach { session_id } => session_id,
    };
    let sealed = AckBody {
        session_id,
        received,
    }
    .seal(&keys.confirm);
    let accept = StreamHandshake::Accept {
        version: 2,
        server_ephemeral,
        server_static,
        sealed,
    }
    .to_vec();
    let seal_all = |key: &[u8; 32], packets: &[&[u8]]| -> Vec<Value> {
        let key = PacketKey::new(key);
        packets
            .iter()
            .enumerate()
            .map(|(n, plain)| {
                let mut buffer = plain.to_vec();
                key.seal(n as u64, &mut buffer, 0);
                json!({ "plain": hex(plain), "sealed": hex(&buffer) })
            })
            .collect()
    };
    let mut hello_bunch = Vec::new();
    Frame::Bunch(Bunch {
        flags: hearth_proto::bunch::flags::RELIABLE,
        channel: 0,
        sequence: 0,
        part: 0,
        open: None,
        payload: &ControlMessage::Hello { version: 2 }.to_vec(),
    })
    .encode(&mut hello_bunch);
    json!({
        "clientSecret": hex(&key(1)),
        "serverEphemeralSecret": hex(&key(2)),
        "serverStaticSecret": hex(&key(3)),
        "attachSecret": attach_secret.map(|s| hex(&s)),
        "mode": match mode {
            Mode::New => json!({ "kind": "new" }),
            Mode::Attach { session_id } => json!({ "kind": "attach", "sessionId": session_id.to_string() }),
        },
        "hello": hex(&hello),
        "accept": hex(&accept),
        "transcript": hex(&transcript),
        "keys": { "c2s": hex(&keys.client_to_server), "s2c": hex(&keys.server_to_client), "confirm": hex(&keys.confirm) },
        "sessionId": session_id.to_string(),
        "received": received.to_string(),
        "clientPackets": seal_all(&keys.client_to_server, &[&hello_bunch, b"\x04\x00\x00\x03\xe8", b""]),
        "serverPackets": seal_all(&keys.server_to_client, &[b"\x05\x00\x00\x03\xe8\x03\x07", &[0x00; 40]]),
    })
}

fn frames() -> Vec<Value> {
    let payload = b"payload";
    let bunch = |flags: u8, channel: u16, sequence: u64, part: u32, open| Bunch {
        flags,
        channel,
        sequence,
        part,
        open,
        payload,
    };
    use hearth_proto::bunch::flags::*;
    let bunch_value = |flags: u8,
                       channel: u16,
                       sequence: u64,
                       part: u32,
                       open: Option<(u8, u8)>| {
        let mut value = json!({ "flags": flags, "channel": channel, "sequence": sequence, "part": part, "payload": hex(payload) });
        if let Some((kind, delivery)) = open {
            value["open"] = json!({ "kind": kind, "delivery": delivery });
        }
        json!({ "type": "bunch", "bunch": value })
    };
    vec![
        frame_vector(Frame::Padding, json!({ "type": "padding" })),
        frame_vector(
            Frame::Kcp(&[1, 2, 3]),
            json!({ "type": "kcp", "bytes": "010203" }),
        ),
        frame_vector(
            Frame::Bunch(bunch(RELIABLE, 0, 0, 0, None)),
            bunch_value(RELIABLE, 0, 0, 0, None),
        ),
        frame_vector(
            Frame::Bunch(bunch(
                RELIABLE | OPEN,
                10,
                300,
                0,
                Some((ChannelKind::Game, Delivery::ReliableOrdered)),
            )),
            bunch_value(RELIABLE | OPEN, 10, 300, 0, Some((1, 0))),
        ),
        frame_vector(
            Frame::Bunch(bunch(
                RELIABLE | OPEN,
                11,
                5,
                0,
                Some((ChannelKind::Voice, Delivery::UnreliableSequenced)),
            )),
            bunch_value(RELIABLE | OPEN, 11, 5, 0, Some((2, 2))),
        ),
        frame_vector(
            Frame::Bunch(bunch(PARTIAL | PARTIAL_INITIAL, 32767, 1 << 40, 0, None)),
            bunch_value(PARTIAL | PARTIAL_INITIAL, 32767, 1 << 40, 0, None),
        ),
        frame_vector(
            Frame::Bunch(bunch(
                RELIABLE | PARTIAL | PARTIAL_FINAL | CLOSE,
                12,
                77,
                200,
                None,
            )),
            bunch_value(
                RELIABLE | PARTIAL | PARTIAL_FINAL | CLOSE,
                12,
                77,
                200,
                None,
            ),
        ),
        frame_vector(
            Frame::Ack { received: 123_456 },
            json!({ "type": "ack", "received": 123_456 }),
        ),
        frame_vector(
            Frame::Ping {
                sent_ms: 0xdead_beef,
            },
            json!({ "type": "ping", "sentMs": 0xdead_beef_u32 }),
        ),
        frame_vector(
            Frame::Pong { echo_ms: 7 },
            json!({ "type": "pong", "echoMs": 7 }),
        ),
        frame_vector(
            Frame::Close {
                code: 1,
                reason: "kicked by an administrator: spam ✋",
            },
            json!({ "type": "close", "code": 1, "reason": "kicked by an administrator: spam ✋" }),
        ),
        frame_vector(
            Frame::Resume {
                session_id: 0xfedc_ba98_7654_3210,
                received: 9,
            },
            json!({ "type": "resume", "sessionId": 0xfedc_ba98_7654_3210_u64.to_string(), "received": 9 }),
        ),
        frame_vector(
            Frame::Resumed { received: 130 },
            json!({ "type": "resumed", "received": 130 }),
        ),
    ]
}

fn control() -> Vec<Value> {
    let nonce = [7u8; 16];
    let messages = [
        (
            ControlMessage::Hello { version: 2 },
            json!({ "type": "hello", "version": 2 }),
        ),
        (
            ControlMessage::Challenge { nonce },
            json!({ "type": "challenge", "nonce": hex(&nonce) }),
        ),
        (
            ControlMessage::Login {
                nonce,
                credentials: Credentials::Password {
                    account: "alice".into(),
                    password: "correct horse".into(),
                },
                player_name: "Ålice".into(),
                options: "?zone=town?line=2".into(),
            },
            json!({ "type": "login", "nonce": hex(&nonce), "credentials": { "kind": "password", "account": "alice", "password": "correct horse" }, "playerName": "Ålice", "options": "?zone=town?line=2" }),
        ),
        (
            ControlMessage::Login {
                nonce,
                credentials: Credentials::Token("tok.en".into()),
                player_name: String::new(),
                options: String::new(),
            },
            json!({ "type": "login", "nonce": hex(&nonce), "credentials": { "kind": "token", "token": "tok.en" }, "playerName": "", "options": "" }),
        ),
        (
            ControlMessage::Login {
                nonce,
                credentials: Credentials::Anonymous,
                player_name: "guest".into(),
                options: String::new(),
            },
            json!({ "type": "login", "nonce": hex(&nonce), "credentials": { "kind": "anonymous" }, "playerName": "guest", "options": "" }),
        ),
        (
            ControlMessage::Welcome {
                map: "meadow".into(),
                session_id: 42,
                resume_token: key(4),
                ticket: None,
                server_key: key(5),
            },
            json!({ "type": "welcome", "map": "meadow", "sessionId": "42", "resumeToken": hex(&key(4)), "serverKey": hex(&key(5)) }),
        ),
        (
            ControlMessage::Welcome {
                map: "town".into(),
                session_id: u64::MAX,
                resume_token: key(6),
                ticket: Some(UdpTicket {
                    session_id: u64::MAX,
                    secret: key(7),
                    port: 7777,
                }),
                server_key: key(8),
            },
            json!({ "type": "welcome", "map": "town", "sessionId": u64::MAX.to_string(), "resumeToken": hex(&key(6)),
                    "ticket": { "sessionId": u64::MAX.to_string(), "secret": hex(&key(7)), "port": 7777 }, "serverKey": hex(&key(8)) }),
        ),
        (
            ControlMessage::NetSpeed {
                bytes_per_second: 100_000,
            },
            json!({ "type": "netSpeed", "bytesPerSecond": 100_000 }),
        ),
        (ControlMessage::Join, json!({ "type": "join" })),
        (ControlMessage::Joined, json!({ "type": "joined" })),
        (
            ControlMessage::Failure {
                code: 4,
                reason: "this server requires an account".into(),
            },
            json!({ "type": "failure", "code": 4, "reason": "this server requires an account" }),
        ),
    ];
    messages
        .into_iter()
        .map(|(message, value)| json!({ "value": value, "hex": hex(&message.to_vec()) }))
        .collect()
}

fn stream_answers() -> Vec<Value> {
    [
        (
            StreamHandshake::Reject {
                version: 2,
                reason: StreamRefusal::UnknownSession,
            },
            json!({ "kind": "reject", "version": 2, "reason": 1 }),
        ),
        (
            StreamHandshake::Reject {
                version: 2,
                reason: StreamRefusal::TooManyFromAddress,
            },
            json!({ "kind": "reject", "version": 2, "reason": 4 }),
        ),
        (
            StreamHandshake::VersionMismatch {
                server_version: 2,
                client_version: 1,
            },
            json!({ "kind": "versionMismatch", "serverVersion": 2, "clientVersion": 1 }),
        ),
    ]
    .into_iter()
    .map(|(p, v)| json!({ "value": v, "hex": hex(&p.to_vec()) }))
    .collect()
}

/// The map legend cell at (x, y) of the bounds vectors' maps: every kind of
/// cell, in a pattern that a decoder mixing up rows and columns would not
/// reproduce. web/client/test/vectors.test.ts builds the same maps.
fn pattern_cell(x: usize, y: usize) -> char {
    ['#', '~', '.', 'S', 'P'][(x * 7 + y * 3) % 5]
}

fn pattern_map(width: usize, height: usize) -> String {
    let mut map = String::with_capacity((width + 1) * height);
    for y in 0..height {
        map.extend((0..width).map(|x| pattern_cell(x, y)));
        map.push('\n');
    }
    map
}

/// A reliable message of the built-in world's game joining a line of a
/// zone with `map`: its bytes and the value the TypeScript client decodes.
fn joining(map: String) -> (Vec<u8>, Value) {
    let schema = hearth_world::world_schema();
    let value = json!({ "tick": 1, "version": schema.version(), "tickHz": 20, "viewRadius": 24,
        "speeds": [5, 2], "entry": 1, "map": &map });
    let mut bytes = Vec::new();
    put_reliable_header(&mut bytes, 1, 1);
    GameItem::Joined {
        version: schema.version().to_owned(),
        tick_hz: 20,
        map,
        view_radius: 24,
        speeds: vec![5, 2],
        entry: 1,
    }
    .encode(&schema, &|_| None, &mut bytes);
    (bytes, value)
}

/// Whether the server would accept `map` as a zone's map (the client
/// accepts exactly the maps whose size the server would).
fn server_accepts(map: &str) -> bool {
    Zone::new(ZoneSpec {
        map: map.to_owned(),
        ..Zone::open_field("meadow", 3, 3).spec
    })
    .is_ok()
}

/// What the web client must accept and refuse of a server: the largest map
/// (given by its pattern and the SHA-256 of its message, 2 MB as hex being
/// too much for a committed file), and maps a cell too wide or too tall.
fn bounds() -> Value {
    let largest = pattern_map(MAX_ZONE_SIDE, MAX_ZONE_SIDE);
    assert_eq!(
        largest.len(),
        MAX_MAP_BYTES,
        "the largest map fills MAX_MAP_BYTES"
    );
    assert!(server_accepts(&largest));
    let (bytes, _) = joining(largest);
    let mut refused_maps = Vec::new();
    for (width, height) in [(MAX_ZONE_SIDE + 1, 1), (1, MAX_ZONE_SIDE + 1)] {
        let map = pattern_map(width, height);
        assert!(!server_accepts(&map), "{width} by {height}");
        let (bytes, value) = joining(map);
        refused_maps
            .push(json!({ "width": width, "height": height, "value": value, "hex": hex(&bytes) }));
    }
    json!({
        "maxZoneSide": MAX_ZONE_SIDE,
        "maxMap": MAX_MAP_BYTES,
        "largestMap": {
            "width": MAX_ZONE_SIDE,
            "height": MAX_ZONE_SIDE,
            "bytes": bytes.len(),
            "sha256": hex(&Sha256::digest(&bytes)),
        },
        "refusedMaps": refused_maps,
    })
}

fn vectors() -> Value {
    json!({
        "comment": "Generated by crates/hearth/tests/web_vectors.rs: HEARTH_BLESS=1 cargo test -p hearth --test web_vectors",
        "handshakes": [
            handshake(Mode::New, None, 0),
            handshake(Mode::Attach { session_id: 0x0123_4567_89ab_cdef }, Some(key(9)), 17),
        ],
        "streamAnswers": stream_answers(),
        "frames": frames(),
        "control": control(),
        "bounds": bounds(),
    })
}

#[test]
fn the_typescript_client_vectors_are_current() {
    let generated = serde_json::to_string_pretty(&vectors()).expect("serializable") + "\n";
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(VECTORS, &generated).expect("write the vectors");
        return;
    }
    let committed = std::fs::read_to_string(VECTORS).unwrap_or_default();
    assert!(
        committed == generated,
        "web/client/test/vectors.json is not what the Rust encoders produce: after a deliberate \
         protocol change run `HEARTH_BLESS=1 cargo test -p hearth --test web_vectors`, then \
         make the TypeScript client pass `npm test` in web/ again"
    );
}
