//! Test vectors of the game wire with movement for the TypeScript client
//! (web/client/src/game): what one player of a tag match received (frames
//! with input acks and a correction, Control, the map in Joined), the moves
//! its client made after each tick and the exact bytes it sent back, and
//! the state its replica ends in. The Node test replays them through the
//! TypeScript replica, making the same moves, and must send the same bytes.
//!
//! The committed file must equal what this test generates; after a
//! deliberate change, regenerate it with
//! `HEARTH_BLESS=1 cargo test -p tag --test web_vectors`.

mod common;

use common::Arena;
use hearth_game::GameOutput;
use hearth_replica::schema::Value;
use serde_json::{json, Value as Json};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/client/test/tag_vectors.json"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => json!(b),
        Value::Int(v) => json!(v.to_string()),
        Value::Str(s) => json!(s.as_ref()),
        Value::List(items) => Json::Array(items.iter().map(|v| json!(v.to_string())).collect()),
    }
}

fn generate() -> Json {
    let mut arena = Arena::new(4);
    arena.join(1, "ann", None);
    arena.join(2, "ben", None);
    // Player 2 cheats for a few ticks: its client is corrected.
    let mut ticks = Vec::new();
    for tick in 0..(tag::INTERMISSION_SECS * tag::TICK_HZ + 40) {
        let step = if (30..34).contains(&tick) {
            tag::bot::STEP * 3
        } else {
            tag::bot::STEP
        };
        arena.clients.get_mut(&2).unwrap().set_step(step);
        arena.line.tick();
        let outputs: Vec<GameOutput> = arena.line.drain_outputs().collect();
        let mut received = Vec::new();
        for output in &outputs {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                arena
                    .clients
                    .get_mut(player)
                    .unwrap()
                    .receive(*channel, bytes)
                    .unwrap();
                if *player == 2 {
                    received.push(json!({ "channel": channel, "hex": hex(bytes) }));
                }
            }
        }
        let mut moves = Vec::new();
        let mut sent = None;
        for (player, client) in arena.clients.iter_mut() {
            client.decide();
            if *player == 2 {
                if let Some(to) = client.last_move() {
                    moves.push(json!([to.x, to.y]));
                }
            }
            if let Some(bytes) = client.poll_ack() {
                if *player == 2 {
                    sent = Some(hex(&bytes));
                }
                arena
                    .line
                    .input(*player, hearth_replica::game_wire::STATE_CHANNEL, &bytes)
                    .unwrap();
            }
        }
        ticks.push(json!({ "received": received, "moves": moves, "sent": sent }));
    }
    let client = &arena.clients[&2];
    assert!(client.corrections() > 0, "the vectors hold a correction");
    let actors: Vec<Json> = client
        .replica()
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
    let own = client.replica().controlled().unwrap();
    let at = client.replica().position(own).unwrap();
    json!({
        "schema": hex(&tag::schema().encode()),
        "ticks": ticks,
        "actors": actors,
        "controlled": own.0,
        "position": [at.x, at.y],
        "corrections": client.corrections(),
    })
}

#[test]
fn the_committed_tag_vectors_are_what_the_rust_side_generates() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("HEARTH_BLESS").is_some() {
        std::fs::write(VECTORS, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(VECTORS).unwrap_or_default();
    assert!(
        committed == generated,
        "web/client/test/tag_vectors.json is stale: run HEARTH_BLESS=1 cargo test -p tag --test web_vectors"
    );
}
