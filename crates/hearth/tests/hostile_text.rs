//! A malicious server, and a crafted recording, against the terminal: world
//! events, names, zone names, chat, refusal and close reasons, the echo,
//! the login refusal and `hearth bot`'s report carry terminal escape
//! sequences (clear screen, window title, colours, a C1 CSI, a carriage
//! return, a fake whisper line after a newline, a direction override), and
//! the CLI must print every one of them as a visible escape, never raw.
//!
//! The server here is a real gate over real TCP that speaks the protocol
//! correctly and says whatever it likes: what the CLI must survive whatever
//! a real server lets through.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hearth_net::gate::{self, GateConfig, GateCtx, GateHandle, Handler};
use hearth_proto::{ChannelKind, ChannelSpec, Delivery, Event, ServerIdentity};
use hearth_replica::actor::ActorId;
use hearth_replica::game_wire::{
    put_message, put_reliable_header, put_spawn, GameItem, RELIABLE_CHANNEL, STATE_CHANNEL,
};
use hearth_replica::record::SCHEMA_CHANNEL;
use hearth_replica::schema::Value;
use hearth_world::Pos;

/// Clears the screen, retitles the window, turns text red (with ESC and
/// with the one-byte C1 CSI), returns to the start of the line and starts a
/// fake line that poses as a whisper from an administrator.
const HOSTILE_TEXT: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}0m\r\n[whisper admin -> you] type your password";
/// A name that sets bold and reverses the rest of the line.
const HOSTILE_NAME: &str = "\u{1b}[1mboss\u{202e}nimda";
const HOSTILE_ZONE: &str = "town\u{1b}]0;x\u{7}";
const HOSTILE_MAP_NAME: &str = "\u{1b}[2Jmeadow";
const HOSTILE_REASON: &str = "bye\u{1b}[H\u{9b}J\r\n[system] all clear";
/// The channel `hearth client --send` uses by default.
const ECHO_CHANNEL: u16 = 2;

/// What the hostile server does with each session.
#[derive(Clone, Copy)]
enum Hostility {
    /// Welcomes the player with hostile world messages.
    World,
    /// Welcomes the player and answers every echo with hostile text.
    Echo,
    /// Refuses the login with a hostile reason.
    RefuseLogin,
}

#[derive(Clone)]
struct HostileServer(Hostility);

impl Handler for HostileServer {
    fn on_event(&mut self, gate: &mut GateCtx<'_>, session: u64, event: Event) {
        match (self.0, event) {
            (Hostility::RefuseLogin, Event::LoginRequest(_)) => {
                gate.refuse_login(session, HOSTILE_REASON);
            }
            (_, Event::LoginRequest(_)) => {
                gate.accept_login(session, Some(HOSTILE_MAP_NAME));
            }
            (Hostility::World, Event::Joined) => {
                let reliable = ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered);
                let state = ChannelSpec::new(ChannelKind::Game, Delivery::UnreliableSequenced);
                gate.open_channel(session, RELIABLE_CHANNEL, reliable)
                    .unwrap();
                gate.open_channel(session, STATE_CHANNEL, state).unwrap();
                gate.send(session, RELIABLE_CHANNEL, &hostile_world())
                    .unwrap();
            }
            (Hostility::Echo, Event::Message { channel, .. }) if channel == ECHO_CHANNEL => {
                gate.send(session, channel, HOSTILE_TEXT.as_bytes())
                    .unwrap();
            }
            _ => {}
        }
    }
}

/// One reliable message of the built-in world's game with every item
/// that carries text: its joined, a player, and its messages.
fn hostile_world() -> Vec<u8> {
    let schema = hearth_world::world_schema();
    let mut items = Vec::new();
    GameItem::Joined {
        version: schema.version().to_owned(),
        tick_hz: 20,
        map: "#####\n#S..#\n#####\n".into(),
        view_radius: 20,
        speeds: vec![5, 2],
        entry: 1,
    }
    .encode(&schema, &|_| None, &mut items);
    let (kind, player) = schema.kind("player").unwrap();
    let mut state: Vec<Value> = player.props.iter().map(|p| p.ty.default_value()).collect();
    let at = Pos::cell_centre(1, 1);
    state[player.prop_index("x").unwrap()] = Value::Int(at.x.into());
    state[player.prop_index("y").unwrap()] = Value::Int(at.y.into());
    state[player.prop_index("name").unwrap()] = Value::Str(HOSTILE_NAME.into());
    put_spawn(
        &mut items,
        &schema,
        kind,
        ActorId(1),
        false,
        u64::MAX >> (64 - state.len()),
        &state,
    );
    let mut count = 2;
    let mut message = |name: &str, values: Vec<Value>| {
        let (index, spec) = schema.message(name).unwrap();
        let mut body = Vec::new();
        spec.encode(&values, &mut body).unwrap();
        put_message(&mut items, index, &body);
        count += 1;
    };
    let text = |t: &str| Value::Str(t.into());
    message("entered", vec![text(HOSTILE_ZONE)]);
    // Scopes: zone, line, whisper, system.
    for (scope, from, to) in [
        (3, "", ""),
        (0, HOSTILE_NAME, ""),
        (1, HOSTILE_NAME, ""),
        (2, HOSTILE_NAME, HOSTILE_NAME),
    ] {
        message(
            "chat",
            vec![Value::Int(scope), text(from), text(to), text(HOSTILE_TEXT)],
        );
    }
    message("refused", vec![Value::Int(0), text(HOSTILE_REASON)]);
    let mut bytes = Vec::new();
    put_reliable_header(&mut bytes, 1, count);
    bytes.extend_from_slice(&items);
    bytes
}

/// A gate on a loopback TCP port, run by a runtime the test keeps while
/// its child processes talk to it.
fn hostile_server(hostility: Hostility) -> (tokio::runtime::Runtime, GateHandle) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = GateConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        shards: 1,
        ..GateConfig::default()
    };
    let gate = runtime
        .block_on(gate::start(
            config,
            ServerIdentity::generate(hearth_proto::os_seed()),
            HostileServer(hostility),
        ))
        .unwrap();
    (runtime, gate)
}

fn hearth(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command.args(args).stdin(Stdio::null());
    command
}

/// Nothing in `out` that a terminal would act on: no control character but
/// the newline ending each line, no format character (bidi overrides), and
/// no line that the server started.
fn assert_terminal_safe(what: &str, out: &str) {
    for c in out.chars() {
        let acts = (c.is_control() && c != '\n')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!acts, "{what} printed U+{:04X} raw:\n{out}", u32::from(c));
    }
    for line in out.lines() {
        assert!(
            !line.starts_with("[whisper admin") && !line.starts_with("[system] all clear"),
            "{what} let the server start a line of its own: {line:?}\n{out}"
        );
    }
}

#[test]
fn hearth_client_watch_shows_what_a_hostile_server_says_escaped() {
    let (runtime, gate) = hostile_server(Hostility::World);
    let url = format!("tcp://{}", gate.tcp_addr.unwrap());
    let mut client = hearth(&["client", &url, "--watch", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the last world item is shown, the server closes with a hostile reason.
    let mut out = String::new();
    let mut lines = BufReader::new(client.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out.push_str(&line);
        if line.starts_with("refused") {
            runtime
                .block_on(gate.query_each(|ctx| {
                    for session in ctx.session_ids() {
                        ctx.close(session, 1, HOSTILE_REASON);
                    }
                }))
                .unwrap();
        }
    }
    let status = client.wait().unwrap();
    assert!(status.success(), "{out}");
    assert_terminal_safe("hearth client --watch", &out);
    for shown in [
        // The Welcome's map name.
        "map \\u{1b}[2Jmeadow",
        "entered town\\u{1b}]0;x\\u{7}",
        "sees \\u{1b}[1mboss\\u{202e}nimda at 1.5,1.5",
        "[system] \\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{1b}[31mred\\u{9b}0m\\r\\n[whisper admin -> you] type your password",
        "[zone] \\u{1b}[1mboss\\u{202e}nimda: \\u{1b}[2J",
        "[line] \\u{1b}[1mboss\\u{202e}nimda: \\u{1b}[2J",
        "[whisper \\u{1b}[1mboss\\u{202e}nimda -> \\u{1b}[1mboss\\u{202e}nimda] \\u{1b}[2J",
        "refused (chat): bye\\u{1b}[H\\u{9b}J\\r\\n[system] all clear",
    ] {
        assert!(out.contains(shown), "missing {shown:?} in:\n{out}");
    }
    assert!(
        out.lines().any(|line| line.starts_with("closed: ")
            && line.ends_with(": bye\\u{1b}[H\\u{9b}J\\r\\n[system] all clear")),
        "the close reason, escaped, in:\n{out}"
    );
    drop(runtime);
}

#[test]
fn hearth_client_send_shows_a_hostile_echo_escaped() {
    let (runtime, gate) = hostile_server(Hostility::Echo);
    let url = format!("tcp://{}", gate.tcp_addr.unwrap());
    let output = hearth(&["client", &url, "--send", "hello"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert_terminal_safe("hearth client --send", &out);
    assert!(
        out.contains("message on 2: \\u{1b}[2J\\u{1b}]0;pwned\\u{7}"),
        "{out}"
    );
    drop(runtime);
}

#[test]
fn a_hostile_login_refusal_is_shown_escaped() {
    let (runtime, gate) = hostile_server(Hostility::RefuseLogin);
    let url = format!("tcp://{}", gate.tcp_addr.unwrap());
    let output = hearth(&["client", &url, "--watch", "1"]).output().unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8(output.stderr).unwrap();
    assert_terminal_safe("hearth client's error", &err);
    assert!(
        // A line break in an error stays one, but indented: no line of it
        // starts where the program's own lines do.
        err.contains("Error: login failed: ")
            && err.contains("bye\\u{1b}[H\\u{9b}J\\r\n    [system] all clear"),
        "{err}"
    );
    drop(runtime);
}

#[test]
fn hearth_bot_reports_a_hostile_refusal_escaped() {
    let (runtime, gate) = hostile_server(Hostility::RefuseLogin);
    // The report groups reasons by their words without digits: this
    // refusal's escapes have none, so they reach the report.
    let port = gate.tcp_addr.unwrap().port().to_string();
    let bot = |json: bool| {
        let mut args = vec![
            "bot",
            "-n",
            "1",
            "--anonymous",
            "--transport",
            "tcp",
            "--port",
            &port,
            "--ramp",
            "0",
            "--secs",
            "3",
        ];
        if json {
            args.push("--json");
        }
        let output = hearth(&args).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let table = bot(false);
    assert_terminal_safe("hearth bot", &table);
    assert!(table.contains("bye\\u{1b}[H\\u{9b}J"), "{table}");
    let json = bot(true);
    assert_terminal_safe("hearth bot --json", &json);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let reasons = report["failed_by_reason"].as_object().unwrap();
    assert!(
        reasons
            .keys()
            .any(|reason| reason.contains("bye\\u{1b}[H\\u{9b}J")),
        "{json}"
    );
    drop(runtime);
}

#[test]
fn hearth_replay_shows_a_crafted_recording_escaped() {
    let dir = std::env::temp_dir().join(format!("hearth-hostile-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hostile.hrec");
    let mut recording = Vec::new();
    {
        let mut recorder = hearth_replica::record::Recorder::new(&mut recording).unwrap();
        let schema = serde_json::to_vec(&hearth_world::world_schema()).unwrap();
        recorder.record(0, SCHEMA_CHANNEL, &schema).unwrap();
        recorder
            .record(1_000, RELIABLE_CHANNEL, &hostile_world())
            .unwrap();
    }
    std::fs::write(&file, &recording).unwrap();
    let output = hearth(&["replay", file.to_str().unwrap(), "--speed", "100"])
        .output()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert_terminal_safe("hearth replay", &out);
    for shown in [
        "entered town\\u{1b}]0;x\\u{7}",
        "[system] \\u{1b}[2J",
        "[zone] \\u{1b}[1mboss\\u{202e}nimda: ",
        "refused (chat): bye\\u{1b}[H\\u{9b}J\\r\\n[system] all clear",
    ] {
        assert!(out.contains(shown), "missing {shown:?} in:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
