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
        let sign = KindSpec::new("sign")
            .without_movement()
            .prop(PropSpec::new("text", ValueType::string(1024)).reliable());
        let news = MessageSpec::to_client("news").field("text", ValueType::string(1024));
        Schema::new("signs", vec![sign], vec![news]).unwrap()
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
