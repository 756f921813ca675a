//! What each client knows of the actors near it, and what to send it next.
//!
//! For every actor a client has been sent, the server keeps the state the
//! client last *acknowledged* (the baseline) and the updates sent since.
//! An update carries the properties that differ from the baseline plus every
//! property any unacknowledged update carried (`sticky`): whichever of those
//! updates the client applied or lost, applying this one leaves it with the
//! server's state exactly. Positions travel unreliable and sequenced, so a
//! lost update costs nothing but a resend of what still differs; an actor
//! that has not changed since the baseline is dormant and costs no bytes.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{field, Actor, ActorId, Props, VALUES};
use crate::geometry::Pos;

/// Frames remembered per client for acknowledgement (1.6 s at 20 Hz). An
/// acknowledgement of an older frame cannot move a baseline; the sticky
/// fields keep that correct, at the cost of resending them.
const MAX_SENT_FRAMES: usize = 32;

/// The fields one update carried (the name only when it changed, so the
/// common update copies no shared string).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SentUpdate {
    id: ActorId,
    mask: u8,
    facing: u8,
    pos: Pos,
    appearance: u32,
    values: [i32; VALUES],
    name: Option<Arc<str>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ViewEntry {
    pub id: ActorId,
    /// Chosen for a despawn this tick; removed at the end of it.
    pub despawn: bool,
    /// Where the actor was in the line's actor list at the last look (a
    /// hint: checked against the id before use).
    pub slot: u32,
    baseline: Props,
    baseline_tick: u32,
    /// The tick of this spawn: frames up to it that name the actor were
    /// about an earlier time it was in view, and their acknowledgements must
    /// not touch this baseline.
    born: u32,
    /// A superset of the fields sent since the baseline.
    sticky: u8,
    pub last_sent: u32,
}

impl ViewEntry {
    fn new(id: ActorId, props: Props, tick: u32, slot: u32) -> Self {
        Self {
            id,
            despawn: false,
            slot,
            baseline: props,
            baseline_tick: tick,
            born: tick,
            sticky: 0,
            last_sent: tick,
        }
    }

    /// The client applied `update`, sent at `tick`. Outside its mask the
    /// client held the baseline already (that is what the mask guarantees),
    /// so baseline + these fields is exactly what the client has now.
    fn acknowledge(&mut self, tick: u32, update: &SentUpdate) {
        if tick <= self.born {
            return;
        }
        let base = &mut self.baseline;
        if update.mask & field::POS != 0 {
            base.pos = update.pos;
        }
        if update.mask & field::FACING != 0 {
            base.facing = update.facing;
        }
        if let Some(name) = &update.name {
            base.name = name.clone();
        }
        if update.mask & field::APPEARANCE != 0 {
            base.appearance = update.appearance;
        }
        for i in 0..VALUES {
            if update.mask & (field::VALUE0 << i) != 0 {
                base.values[i] = update.values[i];
            }
        }
        self.baseline_tick = tick;
        if self.last_sent == tick {
            // Nothing went out after this update: the client is exactly at
            // the baseline. (Otherwise the sticky fields stay: a superset.)
            self.sticky = 0;
        }
    }

    /// The fields to send for `actor` now, or 0 when the client has them.
    pub fn mask_for(&self, actor: &Actor) -> u8 {
        if actor.changed_tick <= self.baseline_tick && self.sticky == 0 {
            return 0;
        }
        actor.props.diff(&self.baseline) | self.sticky
    }
}

/// One client's replicated view of its line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientView {
    /// Sorted by actor id, so a tick's near actors (sorted the same way)
    /// are matched in one sequential pass instead of a lookup each.
    pub(crate) entries: Vec<ViewEntry>,
    acked_tick: u32,
    /// What each recent frame carried, oldest first, for acknowledgements.
    sent: VecDeque<(u32, Vec<SentUpdate>)>,
    /// Emptied frame buffers, reused.
    #[serde(skip)]
    spare: Vec<Vec<SentUpdate>>,
}

impl ClientView {
    pub fn knows(&self, id: ActorId) -> bool {
        self.position(id).is_some()
    }

    fn position(&self, id: ActorId) -> Option<usize> {
        self.entries.binary_search_by_key(&id, |e| e.id).ok()
    }

    /// The actors the client has been sent, in id order.
    pub fn actors(&self) -> impl Iterator<Item = ActorId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn acked_tick(&self) -> u32 {
        self.acked_tick
    }

    fn recycle(&mut self, mut updates: Vec<SentUpdate>) {
        updates.clear();
        if self.spare.len() < 4 {
            self.spare.push(updates);
        }
    }

    /// The client applied frame `tick` completely. Acknowledgements of
    /// frames not sent, or older than one already taken, change nothing.
    pub fn acknowledge(&mut self, tick: u32) -> bool {
        if tick <= self.acked_tick {
            return false;
        }
        while self.sent.front().is_some_and(|(t, _)| *t < tick) {
            let (_, old) = self.sent.pop_front().expect("front exists");
            self.recycle(old);
        }
        if self.sent.front().is_none_or(|(t, _)| *t != tick) {
            return false;
        }
        let (_, updates) = self.sent.pop_front().expect("checked above");
        self.acked_tick = tick;
        // Both in id order: one forward walk, no searching.
        let mut at = 0;
        for update in &updates {
            while at < self.entries.len() && self.entries[at].id < update.id {
                at += 1;
            }
            match self.entries.get_mut(at) {
                Some(entry) if entry.id == update.id => entry.acknowledge(tick, update),
                _ => {}
            }
        }
        self.recycle(updates);
        true
    }

    /// Ends a tick's changes: drops the despawned entries, adds the
    /// spawned ones (`(actor, props)`), keeps the order.
    pub(crate) fn settle<'a>(
        &mut self,
        tick: u32,
        spawned: impl Iterator<Item = (ActorId, &'a Props, u32)>,
    ) {
        if self.entries.iter().any(|e| e.despawn) {
            self.entries.retain(|e| !e.despawn);
        }
        let before = self.entries.len();
        self.entries
            .extend(spawned.map(|(id, props, slot)| ViewEntry::new(id, props.clone(), tick, slot)));
        if self.entries.len() != before {
            self.entries.sort_unstable_by_key(|e| e.id);
        }
    }

    /// Records a frame's updates (`(entry index, mask, props)` each).
    pub(crate) fn frame_sent<'a>(
        &mut self,
        tick: u32,
        updates: impl Iterator<Item = (usize, u8, &'a Props)>,
    ) {
        let mut record = self.spare.pop().unwrap_or_default();
        for (at, mask, props) in updates {
            if let Some(entry) = self.entries.get_mut(at) {
                let id = entry.id;
                entry.sticky |= mask;
                entry.last_sent = tick;
                record.push(SentUpdate {
                    id,
                    mask,
                    facing: props.facing,
                    pos: props.pos,
                    appearance: props.appearance,
                    values: props.values,
                    name: (mask & field::NAME != 0).then(|| props.name.clone()),
                });
            }
        }
        if self.sent.len() == MAX_SENT_FRAMES {
            let (_, old) = self.sent.pop_front().expect("full");
            self.recycle(old);
        }
        self.sent.push_back((tick, record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{field, ActorKind};
    use crate::geometry::Pos;

    fn actor(x: i32, tick: u32) -> Actor {
        Actor {
            id: ActorId(1),
            kind: ActorKind::Npc,
            props: Props {
                pos: Pos::new(x, 0),
                facing: 0,
                name: "n".into(),
                appearance: 0,
                values: [0; 4],
            },
            changed_tick: tick,
        }
    }

    /// Whatever subset of updates the client applies (in order), applying the
    /// next one leaves it with the server's state.
    #[test]
    fn a_lost_update_that_moved_a_field_back_is_still_corrected() {
        let mut view = ClientView::default();
        let start = actor(0, 1);
        view.settle(1, [(start.id, &start.props, 0)].into_iter());
        let mut client = start.props.clone();

        // Tick 2: x moves to 5; the client receives and applies it.
        let a2 = actor(5, 2);
        let mask2 = view.entries[0].mask_for(&a2);
        assert_eq!(mask2, field::POS);
        view.frame_sent(2, [(0, mask2, &a2.props)].into_iter());
        client.apply(mask2, &a2.props);

        // Tick 3: x moves back to 0 (equal to the baseline); the
        // acknowledgement of tick 2 is lost, so POS must still be sent.
        let a3 = actor(0, 3);
        let mask3 = view.entries[0].mask_for(&a3);
        assert_eq!(mask3, field::POS, "sticky: the client may hold x = 5");
        view.frame_sent(3, [(0, mask3, &a3.props)].into_iter());
        client.apply(mask3, &a3.props);
        assert_eq!(client, a3.props);

        // The client acknowledges 3: the baseline is x = 0 and nothing more is sent.
        assert!(view.acknowledge(3));
        assert_eq!(view.entries[0].mask_for(&a3), 0);
        assert!(!view.acknowledge(3), "a repeated ack changes nothing");
        assert!(
            !view.acknowledge(99),
            "a frame never sent is not acknowledged"
        );
    }
}
