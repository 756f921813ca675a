//! A client's copy of the world: the actors it has been sent, its own
//! predicted position, and the moves the server has not yet confirmed.
//! Sans-IO: feed it what arrives on the world channels, send what it gives.

use std::collections::{BTreeMap, VecDeque};

use hearth_codec::DecodeError;

use crate::actor::{ActorId, ActorKind, Props};
use crate::geometry::Pos;
use crate::wire::{
    ChatScope, ClientState, Entered, Frame, Item, Move, Refusal, Reliable, MAX_MOVES,
};
use crate::zone::{Zone, ZoneSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaActor {
    pub kind: ActorKind,
    pub props: Props,
    /// The tick of its spawn: older frames do not apply to it.
    pub spawn_tick: u32,
}

/// What changed in the replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldEvent {
    Entered {
        zone: String,
        line: u32,
    },
    Spawned(ActorId),
    Updated(ActorId),
    Despawned(ActorId),
    Chat {
        scope: ChatScope,
        from: String,
        to: String,
        text: String,
    },
    Refused {
        about: Refusal,
        reason: String,
    },
    /// The server refused a move: the own position snapped back to `pos`.
    Corrected {
        pos: Pos,
    },
}

#[derive(Default)]
pub struct Replica {
    pub actors: BTreeMap<ActorId, ReplicaActor>,
    pub entered: Option<Entered>,
    zone: Option<Zone>,
    /// Predicted own position (the server's, plus moves not yet confirmed).
    pub position: Option<Pos>,
    pending: VecDeque<Move>,
    next_seq: u32,
    /// The newest frame applied completely; acknowledged to the server.
    pub ack_tick: u32,
    newest_frame: u32,
    /// Frames not acknowledged because they named an actor not yet spawned.
    pub frames_deferred: u64,
}

impl Replica {
    pub fn own_actor(&self) -> Option<ActorId> {
        self.entered.as_ref().map(|e| e.actor)
    }

    /// The actor with this name, if visible.
    pub fn find(&self, name: &str) -> Option<(&ActorId, &ReplicaActor)> {
        self.actors.iter().find(|(_, a)| &*a.props.name == name)
    }

    /// A message from the reliable world channel.
    pub fn apply_reliable(&mut self, bytes: &[u8]) -> Result<Vec<WorldEvent>, DecodeError> {
        let message = Reliable::decode(bytes)?;
        let mut events = Vec::new();
        for item in message.items {
            match item {
                Item::Entered(entered) => {
                    self.actors.clear();
                    self.pending.clear();
                    self.position = None;
                    self.newest_frame = 0;
                    self.ack_tick = 0;
                    self.zone = Zone::new(ZoneSpec {
                        name: entered.zone.clone(),
                        tick_hz: entered.tick_hz.clamp(1, 120),
                        speed: entered.speed.clamp(1, 100),
                        view_radius: entered.view_radius.clamp(1, 2048),
                        map: entered.map.clone(),
                        ..Zone::open_field("x", 3, 3).spec
                    })
                    .ok();
                    events.push(WorldEvent::Entered {
                        zone: entered.zone.clone(),
                        line: entered.line,
                    });
                    self.entered = Some(entered);
                }
                Item::Spawn { id, kind, props } => {
                    if Some(id) == self.own_actor() && self.position.is_none() {
                        self.position = Some(props.pos);
                    }
                    self.actors.insert(
                        id,
                        ReplicaActor {
                            kind,
                            props,
                            spawn_tick: message.tick,
                        },
                    );
                    events.push(WorldEvent::Spawned(id));
                }
                Item::Despawn { id } => {
                    if self.actors.remove(&id).is_some() {
                        events.push(WorldEvent::Despawned(id));
                    }
                }
                Item::Chat {
                    scope,
                    from,
                    to,
                    text,
                } => events.push(WorldEvent::Chat {
                    scope,
                    from,
                    to,
                    text,
                }),
                Item::Refused { about, reason } => {
                    events.push(WorldEvent::Refused { about, reason })
                }
            }
        }
        Ok(events)
    }

    /// A message from the state channel.
    pub fn apply_frame(&mut self, bytes: &[u8]) -> Result<Vec<WorldEvent>, DecodeError> {
        let frame = Frame::decode(bytes)?;
        let mut events = Vec::new();
        // A frame of another stay (the previous line's, or the next one's
        // arriving before its Entered) describes other actors.
        if self.entered.as_ref().is_none_or(|e| e.epoch != frame.epoch)
            || frame.tick <= self.newest_frame
        {
            return Ok(events);
        }
        self.newest_frame = frame.tick;
        let mut complete = true;
        for update in &frame.updates {
            match self.actors.get_mut(&update.id) {
                Some(actor) if actor.spawn_tick <= frame.tick => {
                    actor.props.apply(update.mask, &update.props);
                    events.push(WorldEvent::Updated(update.id));
                }
                _ => complete = false,
            }
        }
        if complete {
            self.ack_tick = frame.tick;
        } else {
            self.frames_deferred += 1;
        }
        while self
            .pending
            .front()
            .is_some_and(|m| m.seq <= frame.input_ack)
        {
            self.pending.pop_front();
        }
        if frame.corrected {
            self.pending.clear();
            self.position = Some(frame.own_pos);
            events.push(WorldEvent::Corrected { pos: frame.own_pos });
        } else if self.pending.is_empty() || self.position.is_none() {
            self.position = Some(frame.own_pos);
        }
        if let Some(id) = self.own_actor() {
            if let Some(own) = self.actors.get_mut(&id) {
                if own.props.pos != frame.own_pos {
                    own.props.pos = frame.own_pos;
                    events.push(WorldEvent::Updated(id));
                }
            }
        }
        Ok(events)
    }

    /// The zone entered last (its map, for walking and choosing targets).
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// In a zone and placed: predictions can start.
    pub fn is_ready(&self) -> bool {
        self.zone.is_some() && self.position.is_some()
    }

    /// One tick's walk towards `target` at the legal speed, stopping at
    /// walls (the client predicts; the server decides). `None` when there is
    /// nowhere to go.
    pub fn step_towards(&mut self, target: Pos) -> Option<Move> {
        let (zone, at) = (self.zone.as_ref()?, self.position?);
        let next = at.step_towards(target, zone.step_per_tick());
        if next == at || !zone.path_clear(at, next) {
            return None;
        }
        Some(self.moved_to(next))
    }

    /// Claims a position outright (no local check): how a cheating or
    /// buggy client would move.
    pub fn moved_to(&mut self, pos: Pos) -> Move {
        self.next_seq += 1;
        let step = Move {
            seq: self.next_seq,
            pos,
        };
        if self.pending.len() == 64 {
            self.pending.pop_front();
        }
        self.pending.push_back(step);
        self.position = Some(pos);
        step
    }

    /// The message to send on the state channel: the acknowledgement and the
    /// newest unconfirmed moves.
    pub fn state_message(&self) -> ClientState {
        let skip = self.pending.len().saturating_sub(MAX_MOVES);
        ClientState {
            epoch: self.entered.as_ref().map_or(0, |e| e.epoch),
            ack_tick: self.ack_tick,
            moves: self.pending.iter().skip(skip).copied().collect(),
        }
    }

    pub fn tick_hz(&self) -> u32 {
        self.entered.as_ref().map_or(20, |e| e.tick_hz.max(1))
    }
}
