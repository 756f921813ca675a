//! Test vectors of the game wire for the TypeScript client
//! (web/client/src/game): schemas in their canonical encoding with their
//! versions, a message with a field of every type at its extremes, the
//! bytes one player of a card match received with the state its replica
//! ends in, and what a client sends. The Node tests decode and re-encode
//! them byte for byte.
//!
//! The committed file must equal what this test generates; after a
//! deliberate change, regenerate it with
//! `HEARTH_BLESS=1 cargo test -p cards --test web_vectors`.

use std::sync::Arc;

use cards::Cards;
use hearth_game::{GameLine, GameOutput};
use hearth_replica::frame_acks::{FrameAcks, StateSender};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::{GameClientMessage, GameMove, RELIABLE_CHANNEL};
use hearth_replica::geometry::Pos;
use hearth_replica::schema::{KindSpec, MessageSpec, PropSpec, Scalar, Schema, Value, ValueType};
use serde_json::{json, Value as Json};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/client/test/game_vectors.json"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Values in JSON without losing 64-bit integers: integers as strings.
fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => json!(b),
        Value::Int(v) => json!(v.to_string()),
        Value::Str(s) => json!(s.as_ref()),
        Value::List(items) => Json::Array(items.iter().map(|v| json!(v.to_string())).collect()),
    }
}

fn every_type() -> Schema {
    let kind = KindSpec::new("gadget")
        .prop(PropSpec::new("on", ValueType::Bool))
        .prop(PropSpec::new("small", ValueType::int(-5, 5)))
        .prop(PropSpec::new("wide", ValueType::int(i64::MIN, i64::MAX)).owner_only())
        .prop(PropSpec::new("x", ValueType::fixed(100, -100_000, 100_000)))
        .prop(PropSpec::new("mood", ValueType::enumeration(&["calm", "angry"])).reliable())
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
        .prop(PropSpec::new("secret", ValueType::int(0, 9)).server_only());
    let all = MessageSpec::to_client("all")
        .field("on", ValueType::Bool)
        .field("small", ValueType::int(-5, 5))
        .field("wide", ValueType::int(i64::MIN, i64::MAX))
        .field("x", ValueType::fixed(100, -100_000, 100_000))
        .field("mood", ValueType::enumeration(&["calm", "angry"]))
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
        );
    let poke = MessageSpec::to_server("poke")
        .field("how", ValueType::int(0, 3))
        .rate(3, 1);
    Schema::new("every_type", vec![kind], vec![all, poke]).unwrap()
}

fn schema_vector(schema: &Schema) -> Json {
    json!({
        "game": schema.game(),
        "hex": hex(&schema.encode()),
        "version": schema.version(),
    })
}

fn generate() -> Json {
    let every = every_type();
    let (all_index, all) = every.message("all").unwrap();
    let extremes: Vec<Vec<Value>> = vec![
        vec![
            Value::Bool(true),
            Value::Int(-5),
            Value::Int(i64::MIN),
            Value::Int(-100_000),
            Value::Int(1),
            Value::Str("héllo ✋".into()),
            Value::List(vec![-1, 0, 1 << 40].into()),
        ],
        vec![
            Value::Bool(false),
            Value::Int(5),
            Value::Int(i64::MAX),
            Value::Int(100_000),
            Value::Int(0),
            Value::Str("".into()),
            Value::List(vec![].into()),
        ],
    ];
    let messages: Vec<Json> = extremes
        .iter()
        .map(|values| {
            let mut body = Vec::new();
            all.encode(values, &mut body).unwrap();
            // As a one-item reliable message, tick 7.
            let mut bytes = Vec::new();
            hearth_replica::game_wire::put_reliable_header(&mut bytes, 7, 1);
            hearth_replica::game_wire::put_message(&mut bytes, all_index, &body);
            json!({
                "values": values.iter().map(value_json).collect::<Vec<_>>(),
                "hex": hex(&bytes),
            })
        })
        .collect();
    let mut poke = Vec::new();
    GameClientMessage::Message {
        index: every.message("poke").unwrap().0,
        values: vec![Value::Int(2)],
    }
    .encode(&every, &mut poke);
    let mut ack = Vec::new();
    GameClientMessage::Ack {
        tick: 300,
        earlier: 0b101,
    }
    .encode(&every, &mut ack);
    let mut moves = Vec::new();
    GameClientMessage::Moves {
        ack: 300,
        earlier: 0b11,
        moves: vec![
            GameMove {
                seq: 1,
                pos: Pos::new(150, 250),
            },
            GameMove {
                seq: 2,
                pos: Pos::new(250, 250),
            },
        ],
    }
    .encode(&every, &mut moves);
    // When a client acknowledges, and what it names: frames applied after
    // a line's start at tick 99, with gaps, and one beyond the mask.
    let applied = [100u64, 101, 103, 104, 105, 140, 141, 142, 143];
    let mut acks = FrameAcks::default();
    acks.restart(99);
    let sent: Vec<Json> = applied
        .iter()
        .map(|&tick| {
            acks.applied(tick);
            if !acks.due() {
                return Json::Null;
            }
            let (tick, earlier) = acks.take();
            let mut bytes = Vec::new();
            GameClientMessage::Ack { tick, earlier }.encode(&every, &mut bytes);
            json!(hex(&bytes))
        })
        .collect();

    // When a client sends its moves (at the poll after each, and with
    // every acknowledgement due) and which it resends: a walk, its end,
    // the server taking some, frames applied.
    let steps = [
        "restart 49",
        "move 100 100",
        "poll",
        "move 110 100",
        "poll",
        "move 120 100",
        "poll",
        "poll",
        "poll",
        "taken 2",
        "applied 50",
        "applied 51",
        "move 130 100",
        "applied 52",
        "poll",
        "taken 4",
        "move 140 100",
        "move 150 100",
        "move 160 100",
        "poll",
        "poll",
    ];
    let mut state = StateSender::default();
    let state_sent: Vec<Json> = steps
        .iter()
        .filter_map(|step| {
            let words: Vec<&str> = step.split(' ').collect();
            let number = |at: usize| words[at].parse::<i64>().unwrap();
            match words[0] {
                "restart" => state.acks.restart(number(1) as u64),
                "applied" => state.acks.applied(number(1) as u64),
                "taken" => {
                    state.taken(number(1) as u32);
                }
                "move" => state.push_move(Pos::new(number(1) as i32, number(2) as i32)),
                _ => return Some(state.poll(&every).map_or(Json::Null, |b| json!(hex(&b)))),
            }
            None
        })
        .collect();

    // A card match as player 1 receives it.
    let cards = Arc::new(cards::schema());
    let mut line = GameLine::new(Arc::new(Cards), 17);
    line.join(1, None);
    line.join(2, None);
    let mut replica = GameReplica::new(cards.clone());
    let mut received = Vec::new();
    for tick in 0..30 {
        if tick == 2 {
            let start = replica.message("start", vec![]).unwrap();
            line.input(1, RELIABLE_CHANNEL, &start).unwrap();
        }
        line.tick();
        for output in line.drain_outputs() {
            if let GameOutput::Send {
                player: 1,
                channel,
                bytes,
            } = output
            {
                match channel {
                    RELIABLE_CHANNEL => replica.apply_reliable(&bytes).unwrap(),
                    _ => replica.apply_frame(&bytes).unwrap(),
                }
                received.push(json!({ "channel": channel, "hex": hex(&bytes) }));
            }
        }
        if let Some(ack) = replica.poll_ack() {
            line.input(1, hearth_replica::game_wire::STATE_CHANNEL, &ack)
                .unwrap();
        }
    }
    let actors: Vec<Json> = replica
        .actors()
        .map(|(id, actor)| {
            json!({
                "id": id.0,
                "kind": actor.kind,
                "owned": actor.owned,
                "values": actor.values.iter().map(value_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "schemas": [schema_vector(&every), schema_vector(&cards)],
        "every_type_messages": messages,
        "client": {
            "poke": { "values": ["2"], "hex": hex(&poke) },
            "ack": { "tick": 300, "earlier": 0b101, "hex": hex(&ack) },
            "moves": {
                "ack": 300,
                "earlier": 0b11,
                "moves": [{ "seq": 1, "x": 150, "y": 250 }, { "seq": 2, "x": 250, "y": 250 }],
                "hex": hex(&moves),
            },
            "ack_sequence": { "restart": 99, "applied": applied, "sent": sent },
            "state_sequence": { "steps": steps, "sent": state_sent },
        },
        "match": { "received": received, "actors": actors },
    })
}

#[test]
fn the_committed_game_vectors_are_what_the_rust_side_generates() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(VECTORS, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(VECTORS).unwrap_or_default();
    assert!(
        committed == generated,
        "web/client/test/game_vectors.json is stale: run HEARTH_BLESS=1 cargo test -p cards --test web_vectors"
    );
}
