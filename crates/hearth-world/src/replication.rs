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

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::actor::{Actor, ActorId, Props};

/// Unacknowledged updates remembered per actor per client. Older ones are
/// forgotten (their fields stay sticky, so correctness holds; only the
/// chance to move the baseline to them is lost).
const MAX_PENDING: usize = 16;
/// Frames remembered per client for acknowledgement.
const MAX_SENT_FRAMES: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    tick: u32,
    mask: u8,
    props: Props,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ViewEntry {
    baseline: Props,
    baseline_tick: u32,
    pending: VecDeque<Pending>,
    sticky: u8,
    pub last_sent: u32,
    pub seen: u32,
}

impl ViewEntry {
    fn new(props: Props, tick: u32) -> Self {
        Self {
            baseline: props,
            baseline_tick: tick,
            pending: VecDeque::new(),
            sticky: 0,
            last_sent: tick,
            seen: tick,
        }
    }

    /// The client applied the frame of `tick` completely.
    fn acknowledge(&mut self, tick: u32) {
        while self.pending.front().is_some_and(|p| p.tick < tick) {
            self.pending.pop_front();
        }
        if let Some(acked) = self.pending.front().filter(|p| p.tick == tick) {
            self.baseline = acked.props.clone();
            self.baseline_tick = tick;
            self.pending.pop_front();
            self.sticky = self.pending.iter().fold(0, |mask, p| mask | p.mask);
        }
    }

    /// The fields to send for `actor` now, or 0 when the client has them.
    pub fn mask_for(&self, actor: &Actor) -> u8 {
        if actor.changed_tick <= self.baseline_tick && self.sticky == 0 {
            return 0;
        }
        actor.props.diff(&self.baseline) | self.sticky
    }

    fn sent(&mut self, tick: u32, mask: u8, props: &Props) {
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            tick,
            mask,
            props: props.clone(),
        });
        self.sticky |= mask;
        self.last_sent = tick;
    }
}

/// One client's replicated view of its line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientView {
    pub(crate) entries: HashMap<ActorId, ViewEntry>,
    acked_tick: u32,
    /// The actors each recent frame carried, for acknowledgements.
    sent: VecDeque<(u32, Vec<ActorId>)>,
}

impl ClientView {
    pub fn knows(&self, id: ActorId) -> bool {
        self.entries.contains_key(&id)
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

    /// The client applied frame `tick` completely. Acknowledgements of
    /// frames not sent, or older than one already taken, change nothing.
    pub fn acknowledge(&mut self, tick: u32) -> bool {
        if tick <= self.acked_tick {
            return false;
        }
        while self.sent.front().is_some_and(|(t, _)| *t < tick) {
            self.sent.pop_front();
        }
        if self.sent.front().is_none_or(|(t, _)| *t != tick) {
            return false;
        }
        let (_, actors) = self.sent.pop_front().expect("checked above");
        self.acked_tick = tick;
        for id in actors {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.acknowledge(tick);
            }
        }
        true
    }

    pub(crate) fn spawned(&mut self, id: ActorId, props: &Props, tick: u32) {
        self.entries.insert(id, ViewEntry::new(props.clone(), tick));
    }

    pub(crate) fn despawned(&mut self, id: ActorId) {
        self.entries.remove(&id);
    }

    /// Records a frame's updates (`(actor, mask, props)` each).
    pub(crate) fn frame_sent<'a>(
        &mut self,
        tick: u32,
        updates: impl Iterator<Item = (ActorId, u8, &'a Props)>,
    ) {
        let mut actors = Vec::new();
        for (id, mask, props) in updates {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.sent(tick, mask, props);
                actors.push(id);
            }
        }
        if self.sent.len() == MAX_SENT_FRAMES {
            self.sent.pop_front();
        }
        self.sent.push_back((tick, actors));
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
        view.spawned(start.id, &start.props, 1);
        let mut client = start.props.clone();

        // Tick 2: x moves to 5; the client receives and applies it.
        let a2 = actor(5, 2);
        let mask2 = view.entries[&a2.id].mask_for(&a2);
        assert_eq!(mask2, field::POS);
        view.frame_sent(2, [(a2.id, mask2, &a2.props)].into_iter());
        client.apply(mask2, &a2.props);

        // Tick 3: x moves back to 0 (equal to the baseline); the
        // acknowledgement of tick 2 is lost, so POS must still be sent.
        let a3 = actor(0, 3);
        let mask3 = view.entries[&a3.id].mask_for(&a3);
        assert_eq!(mask3, field::POS, "sticky: the client may hold x = 5");
        view.frame_sent(3, [(a3.id, mask3, &a3.props)].into_iter());
        client.apply(mask3, &a3.props);
        assert_eq!(client, a3.props);

        // The client acknowledges 3: the baseline is x = 0 and nothing more is sent.
        assert!(view.acknowledge(3));
        assert_eq!(view.entries[&a3.id].mask_for(&a3), 0);
        assert!(!view.acknowledge(3), "a repeated ack changes nothing");
        assert!(
            !view.acknowledge(99),
            "a frame never sent is not acknowledged"
        );
    }
}
