//! What each player receives each tick: the actors it lacks (spawned with
//! everything it may see), the reliable properties that changed, the
//! game's messages, the actors gone; and on the state channel the frame
//! properties that changed since the newest frame it acknowledged.
//!
//! Per client, Hearth keeps one number per actor it has (the tick of the
//! newest acknowledged frame that carried it) and the list of actors each
//! unacknowledged frame carried, at most [`MAX_IN_FLIGHT`] frames: memory
//! per client is bounded by the actors it sees, however far behind it falls.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use hearth_replica::game_wire::{
    put_frame_header, put_reliable_header, put_set, put_spawn, put_update,
};
use hearth_replica::schema::{Schema, Value};

use crate::ctx::KindMasks;
use crate::ids::{ActorId, PlayerId};
use crate::state::{ActorState, Core};

/// Unacknowledged frames remembered per client; older ones count as lost
/// (what they carried is sent again).
pub const MAX_IN_FLIGHT: usize = 64;

/// What one client has of the line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ClientView {
    /// The `Joined` item went out.
    joined_sent: bool,
    /// The actors the client was sent.
    entries: BTreeMap<ActorId, ViewEntry>,
    /// Frames sent and not acknowledged: their tick and the actors each
    /// carried.
    in_flight: VecDeque<(u64, Vec<ActorId>)>,
    /// Reliable properties that changed up to this tick have been sent.
    reliable_through: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ViewEntry {
    /// The client has every frame property as of this tick.
    acked: u64,
    /// The client's player owns the actor (and sees its owner-only
    /// properties).
    owned: bool,
}

impl ClientView {
    /// The client applied the frame of `tick`: the actors it carried are
    /// known to the client as of that tick. Older unacknowledged frames
    /// are lost (the client ignores frames older than one it applied).
    /// False when no such frame is in flight.
    pub fn acknowledge(&mut self, tick: u64) -> bool {
        let Some(at) = self.in_flight.iter().position(|(t, _)| *t == tick) else {
            return false;
        };
        let (_, carried) = self
            .in_flight
            .drain(..=at)
            .next_back()
            .expect("at least one");
        for id in carried {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.acked = entry.acked.max(tick);
            }
        }
        true
    }
}

/// Largest reliable message a tick sends one player (items beyond go in
/// further messages of the same tick): well under the session's message
/// limit, so a latecomer's spawns of a crowded line or a burst of the
/// game's messages is never refused by the session as one oversized
/// message (which would leave the client's replica behind for good).
pub const MAX_RELIABLE_BYTES: usize = 256 * 1024;

/// Encodes this tick's messages for `player`: (reliable messages, frame).
pub(crate) fn replicate<P>(
    core: &mut Core<P>,
    schema: &Schema,
    masks: &[KindMasks],
    player_id: PlayerId,
) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let tick = core.tick;
    let Some(player) = core.players.get_mut(&player_id) else {
        return (Vec::new(), None);
    };
    let actors = &core.actors;
    let view = &mut player.view;
    let mut items = Vec::new();
    // Where each item (or the game's queued messages, as one unit) ends in
    // `items`, and how many items it holds: a tick's items are split into
    // messages of at most MAX_RELIABLE_BYTES at these boundaries.
    let mut units: Vec<(usize, usize)> = Vec::new();

    if !view.joined_sent {
        view.joined_sent = true;
        hearth_replica::game_wire::GameItem::Joined {
            version: schema.version().to_owned(),
            tick_hz: core.tick_hz,
        }
        .encode(schema, &|_| None, &mut items);
        units.push((items.len(), 1));
    }

    // Reliable properties of actors the client already has, then the
    // spawns (with everything), so that a Set never precedes its Spawn.
    let mut frame_body = Vec::new();
    let mut carried = Vec::new();
    let mut gone = Vec::new();
    for (id, entry) in view.entries.iter() {
        let Some(actor) = actors.get(id) else {
            gone.push(*id);
            continue;
        };
        let kind = &masks[usize::from(actor.kind)];
        let visible = kind.everyone | if entry.owned { kind.owner } else { 0 };
        let reliable = changed_since(actor, kind.reliable & visible, view.reliable_through);
        if reliable != 0 {
            put_set(
                &mut items,
                &schema.kinds()[usize::from(actor.kind)],
                *id,
                reliable,
                &actor.values,
            );
            units.push((items.len(), 1));
        }
        if actor.frame_changed > entry.acked {
            let frame = changed_since(actor, kind.frame & visible, entry.acked);
            if frame != 0 {
                put_update(
                    &mut frame_body,
                    &schema.kinds()[usize::from(actor.kind)],
                    *id,
                    frame,
                    &actor.values,
                );
                carried.push(*id);
            }
        }
    }
    for (id, actor) in actors.iter() {
        if view.entries.contains_key(id) {
            continue;
        }
        let owned = actor.owner == Some(player_id);
        let kind = &masks[usize::from(actor.kind)];
        let visible = kind.everyone | if owned { kind.owner } else { 0 };
        put_spawn(
            &mut items,
            schema,
            actor.kind,
            *id,
            owned,
            not_default(actor, visible, &kind.defaults),
            &actor.values,
        );
        units.push((items.len(), 1));
        // The spawn carries every property as of this tick.
        view.entries.insert(*id, ViewEntry { acked: tick, owned });
    }
    items.extend_from_slice(&player.outbox);
    if player.outbox_items > 0 {
        units.push((items.len(), player.outbox_items as usize));
    }
    player.outbox.clear();
    player.outbox_items = 0;
    for id in gone {
        view.entries.remove(&id);
        hearth_replica::game_wire::GameItem::Despawn { id }.encode(schema, &|_| None, &mut items);
        units.push((items.len(), 1));
    }
    view.reliable_through = tick;

    let mut reliable = Vec::new();
    let (mut start, mut from, mut count) = (0usize, 0usize, 0usize);
    for (at, &(end, items_in_unit)) in units.iter().enumerate() {
        if count > 0 && end - from > MAX_RELIABLE_BYTES {
            reliable.push(reliable_message(tick, count, &items[from..start]));
            from = start;
            count = 0;
        }
        count += items_in_unit;
        start = end;
        if at + 1 == units.len() {
            reliable.push(reliable_message(tick, count, &items[from..end]));
        }
    }
    let frame = (!carried.is_empty()).then(|| {
        let mut bytes = Vec::with_capacity(frame_body.len() + 12);
        put_frame_header(&mut bytes, tick, carried.len());
        bytes.extend_from_slice(&frame_body);
        if view.in_flight.len() >= MAX_IN_FLIGHT {
            view.in_flight.pop_front();
        }
        view.in_flight.push_back((tick, carried));
        bytes
    });
    let sent = reliable.iter().map(Vec::len).sum::<usize>() + frame.as_ref().map_or(0, Vec::len);
    core.stats.bytes_out += sent as u64;
    (reliable, frame)
}

/// The properties in `candidates` that changed after `tick`.
fn changed_since(actor: &ActorState, candidates: u64, tick: u64) -> u64 {
    let mut mask = 0;
    let mut rest = candidates;
    while rest != 0 {
        let index = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if actor.changed[index] > tick {
            mask |= 1 << index;
        }
    }
    mask
}

/// The properties in `candidates` whose value is not their type's default
/// (a client starts every property at its default).
fn not_default(actor: &ActorState, candidates: u64, defaults: &[Value]) -> u64 {
    let mut mask = 0;
    let mut rest = candidates;
    while rest != 0 {
        let index = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if actor.values[index] != defaults[index] {
            mask |= 1 << index;
        }
    }
    mask
}

fn reliable_message(tick: u64, count: usize, items: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(items.len() + 10);
    put_reliable_header(&mut bytes, tick, count);
    bytes.extend_from_slice(items);
    bytes
}
