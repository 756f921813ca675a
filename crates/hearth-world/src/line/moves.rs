//! Movement: the players' moves validated on the tick, the NPCs' walks,
//! and portals.

use super::*;

impl Line {
    pub(super) fn client_state(&mut self, player: PlayerId, state: ClientState) {
        let zone = self.config.zone.clone();
        let Some(p) = self.players.get_mut(&player) else {
            return;
        };
        if state.epoch != p.epoch {
            // From the player's previous line (datagrams overtake the news
            // of a move): its acks and moves mean nothing here.
            self.stats.stale_states += 1;
            return;
        }
        if state.ack_tick != 0
            && !p.view.acknowledge(state.ack_tick)
            && state.ack_tick > p.view.acked_tick()
        {
            self.stats.bad_acks += 1;
        }
        let actor = p.actor;
        let Some(index) = self.index.get(&actor).copied() else {
            return;
        };
        let mut pos = self.actors[index as usize].props.pos;
        let start = pos;
        let mut facing = self.actors[index as usize].props.facing;
        let first_new = p.last_seq;
        for m in state.moves.iter().filter(|m| m.seq > first_new) {
            if m.seq <= p.last_seq {
                continue;
            }
            let verdict = if !zone.in_bounds(m.pos) {
                Err(MoveRejection::OutOfBounds)
            } else if pos.distance_ceil(m.pos) > p.allowance {
                Err(MoveRejection::TooFast)
            } else if !zone.path_clear(pos, m.pos) {
                Err(MoveRejection::Blocked)
            } else {
                Ok(())
            };
            p.last_seq = m.seq;
            p.moved = true;
            match verdict {
                Ok(()) => {
                    p.allowance -= pos.distance_ceil(m.pos);
                    if m.pos != pos {
                        facing = pos.facing_towards(m.pos);
                    }
                    pos = m.pos;
                    self.stats.moves_accepted += 1;
                }
                Err(why) => {
                    match why {
                        MoveRejection::TooFast => self.stats.rejected_too_fast += 1,
                        MoveRejection::OutOfBounds => self.stats.rejected_out_of_bounds += 1,
                        MoveRejection::Blocked => self.stats.rejected_blocked += 1,
                    }
                    // The later moves were predicted from the refused one:
                    // take them as processed; the client replays nothing and
                    // snaps to the position the frame carries.
                    p.corrected = true;
                    p.last_seq = state.moves.last().map_or(m.seq, |last| last.seq.max(m.seq));
                    break;
                }
            }
        }
        if pos != start {
            p.dirty = true;
            let tick = self.tick;
            let a = &mut self.actors[index as usize];
            a.props.pos = pos;
            a.props.facing = facing;
            a.changed_tick = tick;
        }
    }

    pub(super) fn move_npcs(&mut self) {
        let zone = self.config.zone.clone();
        let tick = self.tick;
        for npc in &mut self.npcs {
            let Some(&index) = self.index.get(&npc.actor) else {
                continue;
            };
            let actor = &mut self.actors[index as usize];
            if let Some(next) = npc.step(actor.props.pos, tick, &zone, &mut self.rng) {
                let (from, target) = (actor.props.pos, npc.target);
                actor.props.facing = *npc
                    .heading
                    .get_or_insert_with(|| from.facing_towards(target));
                actor.props.pos = next;
                actor.changed_tick = tick;
            }
        }
    }

    pub(super) fn check_portals(&mut self) {
        if self.config.zone.spec.portals.is_empty() {
            return;
        }
        for p in self.players.values_mut().filter(|p| p.moved) {
            let pos = self.actors[self.index[&p.actor] as usize].props.pos;
            if let Some(portal) = self.config.zone.portal_at(pos) {
                self.outputs.push(LineOutput::WantsZone {
                    player: p.id,
                    zone: portal.to.clone(),
                    at: Some(Pos::cell_centre(portal.arrive[0], portal.arrive[1])),
                });
            }
        }
    }
}
