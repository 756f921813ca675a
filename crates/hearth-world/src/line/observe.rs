//! Observers: whoever watches a whole line without being in it (the
//! server's line recordings). An observer knows every actor; each tick it
//! gets the spawns and despawns since the last, the line's chat, and one
//! frame with the full properties of every actor that changed, in the
//! world protocol's own messages, so any replay of a client's recording
//! plays it.

use std::collections::BTreeSet;

use super::*;

/// The actor id an observer's Entered names: nobody (observers have no actor).
pub const NO_ACTOR: ActorId = ActorId(u32::MAX);

pub(super) struct Observer {
    pub id: PlayerId,
    pub known: BTreeSet<ActorId>,
    pub queued: Vec<Item>,
}

impl Line {
    /// Starts an observer; returns its first message, to be recorded first:
    /// the line's Entered (no own actor, epoch 0) and a Spawn of every actor.
    pub fn observe(&mut self, id: PlayerId) -> Vec<u8> {
        self.unobserve(id);
        let spec = &self.config.zone.spec;
        let mut items = vec![Item::Entered(Entered {
            zone: spec.name.clone(),
            line: self.config.number,
            actor: NO_ACTOR,
            epoch: 0,
            tick_hz: spec.tick_hz,
            speed: spec.speed,
            view_radius: spec.view_radius,
            map: spec.map.clone(),
        })];
        let mut known = BTreeSet::new();
        for actor in &self.actors {
            known.insert(actor.id);
            items.push(Item::Spawn {
                id: actor.id,
                kind: actor.kind,
                props: actor.props.clone(),
            });
        }
        self.observers.push(Observer {
            id,
            known,
            queued: Vec::new(),
        });
        encode_reliable(self.tick, items)
    }

    pub fn unobserve(&mut self, id: PlayerId) {
        self.observers.retain(|o| o.id != id);
    }

    pub fn observer_count(&self) -> usize {
        self.observers.len()
    }

    /// Chat everyone in the line hears reaches the observers too.
    pub(super) fn observers_hear(&mut self, item: &Item) {
        for observer in &mut self.observers {
            observer.queued.push(item.clone());
        }
    }

    /// After a tick: each observer's spawns, despawns and chat, then a frame
    /// of every actor that changed in this tick.
    pub(super) fn replicate_observers(&mut self) {
        if self.observers.is_empty() {
            return;
        }
        let tick = self.tick;
        let present: BTreeSet<ActorId> = self.actors.iter().map(|a| a.id).collect();
        let updates: Vec<wire::Update> = self
            .actors
            .iter()
            .filter(|a| a.changed_tick == tick)
            .map(|a| wire::Update {
                id: a.id,
                mask: field::ALL,
                props: a.props.clone(),
            })
            .collect();
        let mut outputs = Vec::new();
        for observer in &mut self.observers {
            let mut items: Vec<Item> = observer
                .known
                .difference(&present)
                .map(|&id| Item::Despawn { id })
                .collect();
            for actor in self
                .actors
                .iter()
                .filter(|a| !observer.known.contains(&a.id))
            {
                items.push(Item::Spawn {
                    id: actor.id,
                    kind: actor.kind,
                    props: actor.props.clone(),
                });
            }
            items.append(&mut observer.queued);
            observer.known.clone_from(&present);
            if !items.is_empty() {
                outputs.push(LineOutput::Observed {
                    observer: observer.id,
                    channel: wire::RELIABLE_CHANNEL,
                    bytes: encode_reliable(tick, items),
                });
            }
            if !updates.is_empty() {
                let frame = Frame {
                    epoch: 0,
                    tick,
                    input_ack: 0,
                    own_pos: Pos::new(0, 0),
                    corrected: false,
                    updates: updates.clone(),
                };
                let mut bytes = Vec::new();
                frame.encode(&mut bytes);
                outputs.push(LineOutput::Observed {
                    observer: observer.id,
                    channel: wire::STATE_CHANNEL,
                    bytes,
                });
            }
        }
        self.outputs.extend(outputs);
    }
}

fn encode_reliable(tick: u32, items: Vec<Item>) -> Vec<u8> {
    let mut bytes = Vec::new();
    Reliable { tick, items }.encode(&mut bytes);
    bytes
}
