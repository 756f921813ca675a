//! The bindings of a schema with every type, every visibility and names
//! that collide with each language's words, committed (Rust:
//! tests/generated/every_type.rs; TypeScript:
//! web/client/test/every_type.generated.ts), regenerated here and compared.
//! The Rust is compiled into this test and read on a replica fed by the
//! generic wire; the TypeScript is type-checked by `tsc` in web/ and used
//! by web/client/test/codegen.test.ts.
//!
//! After a deliberate change of the generator, regenerate them with
//! `HEARTH_BLESS=1 cargo test -p hearth-codegen --test generated`.

use std::io::Write;
use std::process::{Command, Stdio};

use hearth_replica::actor::ActorId;
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{
    put_frame_header, put_reliable_header, put_update, FrameHeader, GameItem,
};
use hearth_replica::schema::{
    KindSpec, MessageSpec, PropSpec, Scalar, Schema, Value, ValueError, ValueType,
};

// A client uses what it needs of its bindings, not every item.
#[allow(dead_code)]
#[path = "generated/every_type.rs"]
mod every_type;

use every_type::{
    AllMood, Gadget, GadgetMood, GadgetMoods, Message, Message_, TuneMood, TuneMoods,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const RUST: &str = "crates/hearth-codegen/tests/generated/every_type.rs";
const TYPESCRIPT: &str = "web/client/test/every_type.generated.ts";
/// Where the generated TypeScript finds the client library.
const TS_IMPORT: &str = "../src/index.js";

fn every_type() -> Schema {
    let moods = || ValueType::enumeration(&["calm", "angry", "sleepy"]);
    let path = || {
        ValueType::list(
            Scalar::Fixed {
                scale: 10,
                min: -50,
                max: 50,
            },
            4,
        )
    };
    let huge = || ValueType::fixed(1000, -(1 << 60), 1 << 60);
    let gadget = KindSpec::new("gadget")
        .prop(PropSpec::new("on", ValueType::Bool))
        .prop(PropSpec::new("small", ValueType::int(-5, 5)))
        .prop(PropSpec::new("wide", ValueType::int(i64::MIN, i64::MAX)).owner_only())
        .prop(PropSpec::new("x", ValueType::fixed(100, -100_000, 100_000)))
        // Collides with `x`'s raw reading.
        .prop(PropSpec::new("x_raw", ValueType::int(0, 9)))
        .prop(PropSpec::new("mood", moods()).reliable())
        .prop(PropSpec::new("label", ValueType::string(16)).reliable())
        .prop(PropSpec::new(
            "bag",
            ValueType::list(
                Scalar::Int {
                    min: -1,
                    max: 1 << 40,
                },
                4,
            ),
        ))
        .prop(PropSpec::new("secret", ValueType::int(0, 9)).server_only())
        .prop(PropSpec::new("flags", ValueType::list(Scalar::Bool, 8)))
        .prop(PropSpec::new(
            "moods",
            ValueType::list(
                Scalar::Enum {
                    variants: vec!["calm".into(), "self".into()],
                },
                3,
            ),
        ))
        .prop(PropSpec::new("path", path()).owner_only().reliable())
        .prop(PropSpec::new("type", ValueType::int(0, 3)))
        .prop(PropSpec::new("id", ValueType::Bool))
        .prop(PropSpec::new("huge", huge()));
    // Its name is the Rust binding's own `Message` enum's.
    let message = KindSpec::new("message")
        .prop(PropSpec::new("default", ValueType::string(8)))
        .prop(PropSpec::new("new", ValueType::int(0, 1)));
    let all = MessageSpec::to_client("all")
        .field("on", ValueType::Bool)
        .field("small", ValueType::int(-5, 5))
        .field("wide", ValueType::int(i64::MIN, i64::MAX))
        .field("x", ValueType::fixed(100, -100_000, 100_000))
        .field("mood", moods())
        .field("label", ValueType::string(16))
        .field(
            "bag",
            ValueType::list(
                Scalar::Int {
                    min: -1,
                    max: 1 << 40,
                },
                4,
            ),
        )
        .field("flags", ValueType::list(Scalar::Bool, 8))
        .field("path", path())
        .field("huge", huge());
    let poke = MessageSpec::to_server("poke")
        .field("how", ValueType::int(0, 3))
        .rate(3, 1);
    let tune = MessageSpec::to_server("tune")
        .field("x", ValueType::fixed(100, -100_000, 100_000))
        .field("mood", moods())
        .field("label", ValueType::string(16))
        .field("path", path())
        .field(
            "moods",
            ValueType::list(
                Scalar::Enum {
                    variants: vec!["calm".into(), "self".into()],
                },
                3,
            ),
        )
        .field("wide", ValueType::int(i64::MIN, i64::MAX))
        .field("flags", ValueType::list(Scalar::Bool, 8))
        .field("huge", huge())
        // Hides the Rust helper of the same name unless renamed.
        .field("raw_value", ValueType::int(0, 1));
    let ping = MessageSpec::to_server("ping");
    let type_ = MessageSpec::to_client("type")
        .field("type", ValueType::int(0, 1))
        .field("self", ValueType::Bool);
    let nothing = MessageSpec::to_client("nothing");
    Schema::new(
        "every_type",
        vec![gadget, message],
        vec![all, poke, tune, ping, type_, nothing],
    )
    .unwrap()
}

/// Every name as long as a schema allows, and as many fields as a message
/// may have: the widest lines the Rust generator writes.
fn long_names() -> Schema {
    let long = |i: usize| format!("{}{i:02}", "n".repeat(30));
    let mut kind = KindSpec::new(&long(0));
    let mut to_server = MessageSpec::to_server(&long(1));
    let mut to_client = MessageSpec::to_client(&long(2));
    let variants: Vec<String> = (0..3).map(long).collect();
    for i in 0..32 {
        let ty = match i % 6 {
            0 => ValueType::fixed(u32::MAX, i64::MIN, i64::MAX),
            1 => ValueType::Enum {
                variants: variants.clone(),
            },
            2 => ValueType::list(
                Scalar::Enum {
                    variants: variants.clone(),
                },
                256,
            ),
            3 => ValueType::list(
                Scalar::Fixed {
                    scale: u32::MAX,
                    min: i64::MIN,
                    max: i64::MAX,
                },
                256,
            ),
            4 => ValueType::string(1024),
            _ => ValueType::int(i64::MIN, 0),
        };
        kind = kind.prop(PropSpec::new(&long(i), ty.clone()));
        to_server = to_server.field(&long(i), ty.clone());
        to_client = to_client.field(&long(i), ty);
    }
    let short_client = MessageSpec::to_client("s").field("a", ValueType::Bool);
    let short_server = MessageSpec::to_server("t").field("a", ValueType::Bool);
    Schema::new(
        "long",
        vec![kind],
        vec![to_server, to_client, short_client, short_server],
    )
    .unwrap()
}

/// `generated` must be what `path` holds (or is written there when
/// blessing).
fn check_committed(path: &str, generated: &str) {
    let file = format!("{ROOT}/{path}");
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(&file, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "{path} is stale: run HEARTH_BLESS=1 cargo test -p hearth-codegen --test generated"
    );
}

/// What rustfmt, with the workspace's settings, makes of `code`.
fn rustfmt(code: &str) -> String {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--config-path"])
        .arg(format!("{ROOT}/rustfmt.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rustfmt runs (rustup component add rustfmt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "rustfmt refused the generated code: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn first_difference(a: &str, b: &str) -> String {
    let line = a.lines().zip(b.lines()).position(|(x, y)| x != y);
    match line {
        Some(at) => format!(
            "line {}:\n  generated: {}\n  rustfmt:   {}",
            at + 1,
            a.lines().nth(at).unwrap(),
            b.lines().nth(at).unwrap()
        ),
        None => "the lengths differ".to_owned(),
    }
}

#[test]
fn the_committed_every_type_bindings_are_what_the_generator_writes() {
    check_committed(RUST, &hearth_codegen::rust(&every_type()));
    check_committed(
        TYPESCRIPT,
        &hearth_codegen::typescript(&every_type(), TS_IMPORT),
    );
}

#[test]
fn generated_rust_is_already_formatted() {
    for schema in [every_type(), long_names()] {
        let generated = hearth_codegen::rust(&schema);
        let formatted = rustfmt(&generated);
        assert!(
            generated == formatted,
            "{}: rustfmt would change {}",
            schema.game(),
            first_difference(&generated, &formatted)
        );
    }
}

const GADGET: u16 = 0;
const GIZMO_KIND: u16 = 1;
const ALL: u16 = 0;
const TYPE: u16 = 4;
const NOTHING: u16 = 5;

/// Every property of a gadget, by index (the server-only `secret` too).
fn gadget_state() -> Vec<Value> {
    vec![
        Value::Bool(true),
        Value::Int(-5),
        Value::Int(i64::MIN),
        Value::Int(-100_000),
        Value::Int(9),
        Value::Int(1),
        Value::Str("héllo".into()),
        Value::List(vec![-1, 0, 1 << 40].into()),
        Value::Int(7),
        Value::List(vec![1, 0, 1].into()),
        Value::List(vec![1, 0].into()),
        Value::List(vec![-50, 5, 50].into()),
        Value::Int(3),
        Value::Bool(true),
        Value::Int(-(1 << 60)),
    ]
}

/// The values of `mask`'s bits, in order: what a Spawn or Set carries.
fn masked(state: &[Value], mask: u64) -> Vec<Value> {
    (0..state.len())
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| state[i].clone())
        .collect()
}

/// Everything but the server-only `secret` (bit 8), or only what everyone
/// sees (not `wide` and `path` either).
const OWNED_MASK: u64 = 0x7fff & !(1 << 8);
const OTHERS_MASK: u64 = OWNED_MASK & !(1 << 2) & !(1 << 11);

fn reliable(schema: &Schema, tick: u64, items: &[GameItem], kinds: &[(ActorId, u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    put_reliable_header(&mut out, tick, items.len());
    let kind_of = |id: ActorId| {
        kinds
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, k)| *k)
    };
    for item in items {
        item.encode(schema, &kind_of, &mut out);
    }
    out
}

/// A replica made by the bindings, fed by the generic wire: gadget 1 owned,
/// gadget 2 someone else's, a `message` actor, and a message of each kind
/// from the server.
fn fed_replica() -> GameReplica {
    let schema = every_type::schema();
    let mut replica = every_type::replica();
    let state = gadget_state();
    let all = vec![
        Value::Bool(true),
        Value::Int(-5),
        Value::Int(i64::MIN),
        Value::Int(-100_000),
        Value::Int(1),
        Value::Str("héllo".into()),
        Value::List(vec![-1, 0, 1 << 40].into()),
        Value::List(vec![1, 0, 1].into()),
        Value::List(vec![-50, 5, 50].into()),
        Value::Int(-(1 << 60)),
    ];
    let items = vec![
        GameItem::Joined {
            version: every_type::VERSION.to_owned(),
            tick_hz: 20,
            map: String::new(),
            view_radius: 20,
            speeds: schema
                .kinds()
                .iter()
                .map(|k| k.movement.map_or(0, |m| m.speed))
                .collect(),
            entry: 1,
        },
        GameItem::Spawn {
            id: ActorId(1),
            kind: GADGET,
            owned: true,
            mask: OWNED_MASK,
            values: masked(&state, OWNED_MASK),
        },
        GameItem::Spawn {
            id: ActorId(2),
            kind: GADGET,
            owned: false,
            mask: OTHERS_MASK,
            values: masked(&state, OTHERS_MASK),
        },
        GameItem::Spawn {
            id: ActorId(3),
            kind: GIZMO_KIND,
            owned: false,
            mask: 0b11,
            values: vec![Value::Str("dflt".into()), Value::Int(1)],
        },
        GameItem::Message {
            index: ALL,
            values: all,
        },
        GameItem::Message {
            index: TYPE,
            values: vec![Value::Int(1), Value::Bool(true)],
        },
        GameItem::Message {
            index: NOTHING,
            values: vec![],
        },
    ];
    replica
        .apply_reliable(&reliable(&schema, 1, &items, &[]))
        .unwrap();
    replica
}

#[test]
fn typed_accessors_read_what_the_generic_replica_holds() {
    let replica = fed_replica();
    let mine = Gadget::get(&replica, ActorId(1)).unwrap();
    assert_eq!(mine.id(), ActorId(1));
    assert!(mine.owned());
    assert!(mine.on());
    assert_eq!(mine.small(), -5i8);
    assert_eq!(mine.wide(), i64::MIN);
    assert_eq!(mine.x(), -1000.0);
    assert_eq!(mine.x_raw2(), -100_000i32);
    assert_eq!(mine.x_raw(), 9u8);
    assert_eq!(mine.mood(), GadgetMood::Angry);
    assert_eq!(mine.mood().name(), "angry");
    assert_eq!(mine.label(), "héllo");
    assert_eq!(mine.bag(), vec![-1i64, 0, 1 << 40]);
    assert_eq!(mine.flags(), vec![true, false, true]);
    assert_eq!(mine.moods(), vec![GadgetMoods::Self_, GadgetMoods::Calm]);
    assert_eq!(mine.path(), vec![-5.0, 0.5, 5.0]);
    assert_eq!(mine.path_raw(), vec![-50i8, 5, 50]);
    assert_eq!(mine.type_(), 3u8);
    assert!(mine.id_());
    assert_eq!(mine.huge(), -1_152_921_504_606_846.976);
    assert_eq!(mine.huge_raw(), -(1i64 << 60));

    // Someone else's: owner-only properties keep their type's default.
    let theirs = Gadget::get(&replica, ActorId(2)).unwrap();
    assert!(!theirs.owned());
    assert_eq!((theirs.wide(), theirs.path()), (0, vec![]));
    assert_eq!(theirs.small(), -5);

    let other_kind = Message_::get(&replica, ActorId(3)).unwrap();
    assert_eq!((other_kind.default(), other_kind.new()), ("dflt", 1));
    // An id of another kind, or none, is not a gadget.
    assert!(Gadget::get(&replica, ActorId(3)).is_none());
    assert!(Gadget::get(&replica, ActorId(9)).is_none());
    let ids: Vec<ActorId> = Gadget::all(&replica).map(|g| g.id()).collect();
    assert_eq!(ids, vec![ActorId(1), ActorId(2)]);
    assert_eq!(GadgetMood::from_index(2), Some(GadgetMood::Sleepy));
    assert_eq!(GadgetMood::from_index(3), None);
}

#[test]
fn accessors_follow_frames_and_sets() {
    let schema = every_type::schema();
    let mut replica = fed_replica();
    let mut state = gadget_state();
    state[3] = Value::Int(12_345);
    state[0] = Value::Bool(false);
    let mut frame = Vec::new();
    put_frame_header(
        &mut frame,
        FrameHeader {
            tick: 2,
            input_ack: 0,
            corrected: false,
            entry: 1,
        },
        1,
    );
    put_update(&mut frame, &schema.kinds()[0], ActorId(1), 0b1001, &state);
    replica.apply_frame(&frame).unwrap();
    let set = GameItem::Set {
        id: ActorId(1),
        mask: 1 << 5 | 1 << 6,
        values: vec![Value::Int(2), Value::Str("bye".into())],
    };
    let kinds = [(ActorId(1), GADGET)];
    replica
        .apply_reliable(&reliable(&schema, 3, &[set], &kinds))
        .unwrap();
    let mine = Gadget::get(&replica, ActorId(1)).unwrap();
    assert!(!mine.on());
    assert_eq!((mine.x(), mine.x_raw2()), (123.45, 12_345));
    assert_eq!((mine.mood(), mine.label()), (GadgetMood::Sleepy, "bye"));
}

#[test]
fn messages_from_the_server_decode_to_the_typed_enum() {
    let mut replica = fed_replica();
    let mut decoded = Vec::new();
    while let Some(event) = replica.poll_event() {
        decoded.extend(Message::decode(&event));
    }
    assert_eq!(
        decoded,
        vec![
            Message::All {
                on: true,
                small: -5,
                wide: i64::MIN,
                x: -1000.0,
                x_raw: -100_000,
                mood: AllMood::Angry,
                label: "héllo".into(),
                bag: vec![-1, 0, 1 << 40],
                flags: vec![true, false, true],
                path: vec![-5.0, 0.5, 5.0],
                path_raw: vec![-50, 5, 50],
                huge: -1_152_921_504_606_846.976,
                huge_raw: -(1 << 60),
            },
            Message::Type {
                type_: 1,
                self_: true
            },
            Message::Nothing,
        ]
    );
}

#[test]
fn messages_to_the_server_are_the_generic_replicas_bytes() {
    let replica = fed_replica();
    let typed = every_type::tune(
        &replica,
        -1000.0,
        TuneMood::Angry,
        "hi",
        &[-5.0, 0.54, 5.0],
        &[TuneMoods::Self_, TuneMoods::Calm],
        i64::MIN,
        &[true, false],
        -1_152_921_504_606_846.976,
        1,
    )
    .unwrap();
    let generic = replica
        .message(
            "tune",
            vec![
                Value::Int(-100_000),
                Value::Int(1),
                Value::Str("hi".into()),
                Value::List(vec![-50, 5, 50].into()),
                Value::List(vec![1, 0].into()),
                Value::Int(i64::MIN),
                Value::List(vec![1, 0].into()),
                Value::Int(-(1 << 60)),
                Value::Int(1),
            ],
        )
        .unwrap();
    assert_eq!(typed, generic);
    assert_eq!(
        every_type::poke(&replica, 3).unwrap(),
        replica.message("poke", vec![Value::Int(3)]).unwrap()
    );
    assert_eq!(
        every_type::ping(&replica).unwrap(),
        replica.message("ping", vec![]).unwrap()
    );
}

#[test]
fn values_a_message_cannot_carry_are_refused_naming_the_field() {
    let replica = fed_replica();
    assert_eq!(
        every_type::poke(&replica, 4),
        Err(ValueError::Type {
            at: "poke.how".into(),
            value: Value::Int(4)
        })
    );
    let tune = |x: f64, path: &[f64]| {
        every_type::tune(&replica, x, TuneMood::Calm, "", path, &[], 0, &[], 0.0, 0)
    };
    let refused_at = |result: Result<Vec<u8>, ValueError>| match result {
        Err(ValueError::Type { at, .. }) => at,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(refused_at(tune(f64::NAN, &[])), "tune.x");
    assert_eq!(refused_at(tune(1e300, &[])), "tune.x");
    assert_eq!(refused_at(tune(1000.01, &[])), "tune.x");
    assert_eq!(refused_at(tune(0.0, &[0.0, f64::INFINITY])), "tune.path");
    assert_eq!(refused_at(tune(0.0, &[5.1])), "tune.path");
    assert!(
        tune(999.994, &[4.96]).is_ok(),
        "rounded to the nearest step"
    );
}

#[test]
#[should_panic(expected = "make it with replica()")]
fn a_replica_of_another_schema_is_refused() {
    let other = Schema::new("other", vec![KindSpec::new("gadget")], vec![]).unwrap();
    let replica = GameReplica::new(std::sync::Arc::new(other));
    let _ = Gadget::get(&replica, ActorId(1));
}
