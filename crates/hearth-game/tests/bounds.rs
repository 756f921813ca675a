//! What one tick may send one player is bounded: a latecomer to a crowded
//! line gets its spawns in several messages of at most MAX_RELIABLE_BYTES,
//! and messages delivered to the whole zone obey the same per-player queue
//! as the game's own sends.

use std::sync::Arc;

use hearth_game::schema::{KindSpec, MessageSpec, PropSpec, Schema, Value, ValueType};
use hearth_game::{
    Ctx, Game, GameLine, GameOutput, MessageId, MAX_OUTBOX_BYTES, MAX_RELIABLE_BYTES,
};
use hearth_replica::game_replica::GameReplica;
use hearth_replica::game_wire::RELIABLE_CHANNEL;

/// A line of 2,000 signs, each with a kilobyte of text.
struct Signs;

impl Game for Signs {
    type Line = ();
    type Player = ();

    fn schema(&self) -> Schema {
        let sign =
            KindSpec::new("sign").prop(PropSpec::new("text", ValueType::string(1024)).reliable());
        let news = MessageSpec::to_client("news").field("text", ValueType::string(1024));
        Schema::new("signs", vec![sign], vec![news]).unwrap()
    }

    /// No budget to speak of: this is about the bound on one message.
    fn bytes_per_second(&self) -> u32 {
        u32::MAX
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) {
        let sign = ctx.kind("sign").unwrap();
        let text = ctx.prop(sign, "text").unwrap();
        for i in 0..2_000 {
            let actor = ctx.spawn(sign, None);
            let body: String =
                std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), 1000).collect();
            ctx.set(actor, text, Value::Str(body.into())).unwrap();
        }
    }
}

#[test]
fn a_crowded_line_reaches_a_latecomer_in_bounded_messages() {
    let mut line = GameLine::new(Arc::new(Signs), 1);
    line.join(1, None);
    line.tick();
    let messages: Vec<Vec<u8>> = line
        .drain_outputs()
        .filter_map(|o| match o {
            GameOutput::Send {
                channel: RELIABLE_CHANNEL,
                bytes,
                ..
            } => Some(bytes),
            _ => None,
        })
        .collect();
    assert!(
        messages.len() >= 8,
        "2 MB of spawns in {} messages",
        messages.len()
    );
    // A message ends at the first item past the bound: at most one sign more.
    assert!(messages
        .iter()
        .all(|m| m.len() <= MAX_RELIABLE_BYTES + 1100));
    let mut replica = GameReplica::new(Arc::new(Signs.schema()));
    for message in &messages {
        replica.apply_reliable(message).unwrap();
    }
    assert_eq!(replica.actors().count(), 2_000);
}

#[test]
fn zone_messages_obey_each_players_queue() {
    let mut line = GameLine::new(Arc::new(Signs), 1);
    line.join(1, None);
    line.tick();
    line.drain_outputs().for_each(drop);
    let news = Signs.schema().message("news").unwrap().0;
    let mut body = Vec::new();
    Signs.schema().messages()[usize::from(news)]
        .encode(&[Value::Str("x".repeat(1000).into())], &mut body)
        .unwrap();
    // Another line's zone message, far more of it than one tick may queue.
    let message = zone_message_id(news);
    for _ in 0..5_000 {
        line.deliver_to_line(message, &body);
    }
    assert!(line.stats().messages_out_dropped > 4_000);
    line.tick();
    let sent: usize = line
        .drain_outputs()
        .map(|o| match o {
            GameOutput::Send { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    assert!(sent <= MAX_OUTBOX_BYTES + 1024, "{sent} bytes in one tick");
}

/// A `MessageId` as the host gets it from a `ToZone` output of another line.
fn zone_message_id(index: u16) -> MessageId {
    struct Herald;
    impl Game for Herald {
        type Line = ();
        type Player = ();
        fn schema(&self) -> Schema {
            Signs.schema()
        }
        fn new_line(&self, _: &mut Ctx<'_, ()>) {}
        fn on_join(&self, _: &mut (), ctx: &mut Ctx<'_, ()>, _: u64) {
            let news = ctx.message("news").unwrap();
            ctx.send_to_zone(news, &[Value::Str("hi".into())]).unwrap();
        }
    }
    let mut herald = GameLine::new(Arc::new(Herald), 1);
    herald.join(1, None);
    herald.tick();
    let id = herald
        .drain_outputs()
        .find_map(|o| match o {
            GameOutput::ToZone { message, .. } => Some(message),
            _ => None,
        })
        .unwrap();
    assert_eq!(id.index(), index);
    id
}

/// A tick counter that wrapped made every later change look older than what
/// the clients had: the tick is 64 bits, and a line restored far along its
/// life keeps replicating (a snapshot edited to a tick past 2^32).
#[test]
fn a_line_past_the_32_bit_tick_keeps_replicating() {
    struct Counter;
    impl Game for Counter {
        type Line = hearth_game::ActorId;
        type Player = ();
        fn schema(&self) -> Schema {
            let dial = KindSpec::new("dial")
                .prop(PropSpec::new("frame", ValueType::int(0, 1 << 40)))
                .prop(PropSpec::new("kept", ValueType::int(0, 1 << 40)).reliable());
            Schema::new("counter", vec![dial], vec![]).unwrap()
        }
        fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> hearth_game::ActorId {
            let dial = ctx.kind("dial").unwrap();
            ctx.spawn(dial, None)
        }
        fn on_tick(&self, actor: &mut hearth_game::ActorId, ctx: &mut Ctx<'_, ()>) {
            let dial = ctx.kind("dial").unwrap();
            let tick = ctx.tick() as i64 % (1 << 40);
            for name in ["frame", "kept"] {
                let prop = ctx.prop(dial, name).unwrap();
                ctx.set_int(*actor, prop, tick).unwrap();
            }
        }
    }
    let mut line = GameLine::new(Arc::new(Counter), 1);
    line.join(1, None);
    let mut replica = GameReplica::new(Arc::new(Counter.schema()));
    let mut seen = Vec::new();
    for step in 0..10 {
        if step == 2 {
            // Far along the line's life: every tick the view holds is moved
            // there too, as if the line had run that long.
            let mut snapshot: serde_json::Value = serde_json::from_slice(&line.snapshot()).unwrap();
            let far = u64::from(u32::MAX) - 3 - line.tick_count();
            shift_ticks(&mut snapshot["core"], far);
            line = GameLine::restore(Arc::new(Counter), &serde_json::to_vec(&snapshot).unwrap())
                .unwrap();
        }
        line.tick();
        for output in line.drain_outputs() {
            if let GameOutput::Send { channel, bytes, .. } = output {
                if channel == RELIABLE_CHANNEL {
                    replica.apply_reliable(&bytes).unwrap();
                } else {
                    replica.apply_frame(&bytes).unwrap();
                }
            }
        }
        if let Some(ack) = replica.poll_ack() {
            line.input(1, hearth_replica::game_wire::STATE_CHANNEL, &ack)
                .unwrap();
        }
        let actor = replica.actors().next().map(|(id, _)| id);
        if let Some(actor) = actor {
            seen.push((
                replica.value(actor, "frame").cloned(),
                replica.value(actor, "kept").cloned(),
            ));
        }
    }
    let last = line.tick_count();
    assert!(last > u64::from(u32::MAX), "{last}");
    assert_eq!(
        seen.last().unwrap(),
        &(Some(Value::Int(last as i64)), Some(Value::Int(last as i64))),
        "{seen:?}"
    );
}

/// Adds `by` to every tick a snapshot's core holds.
fn shift_ticks(core: &mut serde_json::Value, by: u64) {
    let add = |v: &mut serde_json::Value| *v = (v.as_u64().unwrap() + by).into();
    add(&mut core["tick"]);
    for actor in core["actors"].as_object_mut().unwrap().values_mut() {
        add(&mut actor["frame_changed"]);
        for changed in actor["changed"].as_array_mut().unwrap() {
            add(changed);
        }
    }
    for player in core["players"].as_object_mut().unwrap().values_mut() {
        let view = &mut player["view"];
        add(&mut view["reliable_through"]);
        for entry in view["entries"].as_array_mut().unwrap() {
            add(&mut entry["acked"]);
        }
        for frame in view["in_flight"].as_array_mut().unwrap() {
            add(frame);
        }
        for bucket in player["buckets"].as_array_mut().unwrap() {
            add(&mut bucket["at_tick"]);
        }
    }
}
