//! What each player receives each tick: relevancy on the grid, deltas
//! against acknowledged state, priorities, and the per-tick byte budget.

use super::*;

/// Buffers reused from tick to tick, so a warm line does not allocate them.
#[derive(Default)]
pub(super) struct Scratch {
    near: Vec<Near>,
    candidates: Vec<Candidate>,
    frame: Vec<u8>,
    /// (view entry, actor index, mask).
    updates: Vec<(u32, u32, u8)>,
    spawns: Vec<u32>,
    despawns: Vec<u32>,
}

/// An actor within a player's view radius this tick.
#[derive(Clone, Copy)]
struct Near {
    id: ActorId,
    index: u32,
    distance2: i64,
}

#[derive(Clone, Copy)]
struct Candidate {
    /// Filled in only when the budget forces a choice.
    priority: u64,
    staleness: u32,
    /// -1: the player's own actor.
    distance2: i64,
    /// Index in the line's actors.
    actor: u32,
    /// Index in the view's entries, or `SPAWN`.
    entry: u32,
    mask: u8,
    cost: u32,
}

impl Line {
    pub(super) fn rebuild_grid(&mut self) {
        let zone = &self.config.zone;
        if self.grid.is_empty_shape() {
            // Buckets half the view radius wide: a query's square then
            // overlaps little beyond the circle it stands for.
            self.grid = Grid::new(
                zone.width,
                zone.height,
                (zone.spec.view_radius as i32 / 2).max(4),
            );
        }
        self.grid.clear();
        for (i, actor) in self.actors.iter().enumerate() {
            self.grid.insert(i as u32, actor.props.pos);
        }
    }

    /// Decides and encodes what `player` receives this tick, within its budget.
    pub(super) fn replicate(&mut self, id: PlayerId) {
        let tick = self.tick;
        let view_in = self.config.zone.view_radius_units();
        // Hysteresis: an actor leaves the view a quarter further out than it
        // enters, so one walking along the edge does not flap.
        let view_out = view_in + view_in / 4;
        let Some(player) = self.players.get_mut(&id) else {
            return;
        };
        let own = player.actor;
        let centre = self.actors[self.index[&own] as usize].props.pos;
        let mut scratch = std::mem::take(&mut self.scratch);
        let actors = &self.actors;
        let view = &mut player.view;

        scratch.candidates.clear();
        scratch.despawns.clear();
        // Who is near is asked of the grid every fourth tick (staggered by
        // player), or at once for a player with nothing in view; in between,
        // only the actors already in view are looked at. A newcomer is
        // spawned up to three ticks (150 ms at 20 Hz) later; updates and
        // despawns are not delayed.
        let relevancy_pass = view.entries.is_empty() || (tick ^ id as u32) % RELEVANCY_PERIOD == 0;
        if relevancy_pass {
            // The actors in range, in id order like the view's entries.
            scratch.near.clear();
            self.grid.for_each_near(centre, view_out, |index| {
                let actor = &actors[index as usize];
                let distance2 = actor.props.pos.distance_squared(centre);
                if distance2 <= view_out * view_out || actor.id == own {
                    scratch.near.push(Near {
                        id: actor.id,
                        index,
                        distance2,
                    });
                }
            });
            scratch.near.sort_unstable_by_key(|n| n.id);

            // One pass over both: known and near (update?), near only
            // (spawn?), known only (despawn).
            let mut near = scratch.near.iter().peekable();
            for (at, entry) in view.entries.iter_mut().enumerate() {
                while let Some(n) = near.next_if(|n| n.id < entry.id) {
                    if n.distance2 <= view_in * view_in || n.id == own {
                        scratch
                            .candidates
                            .push(spawn_candidate(&actors[n.index as usize], n, own));
                    }
                }
                match near.next_if(|n| n.id == entry.id) {
                    Some(n) => {
                        entry.slot = n.index;
                        consider_update(
                            &mut scratch.candidates,
                            entry,
                            at,
                            n,
                            &actors[n.index as usize],
                            own,
                            tick,
                            view_in,
                        )
                    }
                    None => scratch.despawns.push(at as u32),
                }
            }
            for n in near {
                if n.distance2 <= view_in * view_in || n.id == own {
                    scratch
                        .candidates
                        .push(spawn_candidate(&actors[n.index as usize], n, own));
                }
            }
        } else {
            for (at, entry) in view.entries.iter_mut().enumerate() {
                let index = match actors.get(entry.slot as usize) {
                    Some(actor) if actor.id == entry.id => entry.slot,
                    // The actor moved in the list (another left) or is gone.
                    _ => match self.index.get(&entry.id) {
                        Some(&index) => {
                            entry.slot = index;
                            index
                        }
                        None => {
                            scratch.despawns.push(at as u32);
                            continue;
                        }
                    },
                };
                let actor = &actors[index as usize];
                let distance2 = actor.props.pos.distance_squared(centre);
                if distance2 > view_out * view_out && actor.id != own {
                    scratch.despawns.push(at as u32);
                    continue;
                }
                let n = Near {
                    id: actor.id,
                    index,
                    distance2,
                };
                consider_update(
                    &mut scratch.candidates,
                    entry,
                    at,
                    &n,
                    actor,
                    own,
                    tick,
                    view_in,
                );
            }
        }

        // Spend the budget: despawns, queued items, then updates and spawns
        // by priority. The frame header and the reliable message's header
        // are reserved first.
        let mut left = player.budget as i64 - FRAME_HEADER_MAX as i64 - RELIABLE_HEADER_MAX as i64;
        let mut items: Vec<Item> = Vec::new();
        for &at in &scratch.despawns {
            let entry = &mut view.entries[at as usize];
            let cost = 1 + hearth_codec::varint_len(u64::from(entry.id.0)) as i64;
            if cost > left {
                break;
            }
            left -= cost;
            entry.despawn = true;
            items.push(Item::Despawn { id: entry.id });
        }
        let most = player.budget as i64 - FRAME_HEADER_MAX as i64 - RELIABLE_HEADER_MAX as i64;
        while let Some(item) = player.queued.front() {
            let cost = item.encoded_len() as i64;
            if cost > most {
                // It would never fit this player's budget: dropped (and
                // counted) rather than blocking everything behind it.
                player.queued.pop_front();
                self.stats.items_dropped += 1;
                continue;
            }
            if cost > left {
                break;
            }
            left -= cost;
            items.push(player.queued.pop_front().expect("front exists"));
        }
        // Priority decides only when the budget cannot take everything.
        let wanted: i64 = scratch.candidates.iter().map(|c| i64::from(c.cost)).sum();
        if wanted > left {
            for c in &mut scratch.candidates {
                c.priority = priority(c.staleness, c.distance2);
            }
            scratch
                .candidates
                .sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.actor.cmp(&b.actor)));
        }
        scratch.updates.clear();
        scratch.spawns.clear();
        let mut misses = 0;
        for candidate in &scratch.candidates {
            if i64::from(candidate.cost) > left {
                misses += 1;
                if misses > 16 {
                    break;
                }
                continue;
            }
            left -= i64::from(candidate.cost);
            if candidate.entry == SPAWN {
                scratch.spawns.push(candidate.actor);
            } else {
                scratch
                    .updates
                    .push((candidate.entry, candidate.actor, candidate.mask));
            }
        }
        // Updates go out in id order (entries are), which compresses no
        // worse and keeps the output deterministic.
        scratch.updates.sort_unstable_by_key(|u| u.0);
        for &index in &scratch.spawns {
            let actor = &actors[index as usize];
            items.push(Item::Spawn {
                id: actor.id,
                kind: actor.kind,
                props: actor.props.clone(),
            });
        }

        let mut sent = 0u64;
        if !items.is_empty() {
            let mut bytes = Vec::new();
            Reliable { tick, items }.encode(&mut bytes);
            sent += bytes.len() as u64;
            self.outputs.push(LineOutput::Send {
                player: id,
                channel: wire::RELIABLE_CHANNEL,
                bytes,
            });
        }
        if !scratch.updates.is_empty() || player.moved || player.corrected {
            let frame = Frame {
                epoch: player.epoch,
                tick,
                input_ack: player.last_seq,
                own_pos: centre,
                corrected: player.corrected,
                updates: Vec::new(),
            };
            scratch.frame.clear();
            frame.encode_header(&mut scratch.frame, scratch.updates.len());
            for &(_, index, mask) in &scratch.updates {
                let actor = &actors[index as usize];
                scratch.frame.put_varint(u64::from(actor.id.0));
                scratch.frame.push(mask);
                wire::put_props(&mut scratch.frame, mask, &actor.props);
            }
            view.frame_sent(
                tick,
                scratch
                    .updates
                    .iter()
                    .map(|&(at, index, mask)| (at as usize, mask, &actors[index as usize].props)),
            );
            sent += scratch.frame.len() as u64;
            self.outputs.push(LineOutput::Send {
                player: id,
                channel: wire::STATE_CHANNEL,
                bytes: scratch.frame.clone(),
            });
            player.moved = false;
            player.corrected = false;
        }
        view.settle(
            tick,
            scratch.spawns.iter().map(|&index| {
                let actor = &actors[index as usize];
                (actor.id, &actor.props, index)
            }),
        );
        player.bytes_out += sent;
        self.stats.bytes_out += sent;
        self.scratch = scratch;
    }
}

/// `Candidate::entry` of a spawn.
const SPAWN: u32 = u32::MAX;
/// Ticks between a player's relevancy passes (grid queries).
const RELEVANCY_PERIOD: u32 = 4;

/// Adds an update of a known, near actor when one is due: far actors are
/// refreshed less often (Unreal's update frequency by relevance), every 2nd
/// tick beyond half the view radius and every 4th beyond three quarters.
#[allow(clippy::too_many_arguments)]
fn consider_update(
    candidates: &mut Vec<Candidate>,
    entry: &crate::replication::ViewEntry,
    at: usize,
    near: &Near,
    actor: &Actor,
    own: ActorId,
    tick: u32,
    view_in: i64,
) {
    let period = if near.id == own || near.distance2 * 4 <= view_in * view_in {
        1
    } else if near.distance2 * 16 <= view_in * view_in * 9 {
        2
    } else {
        4
    };
    if tick.wrapping_sub(entry.last_sent) < period {
        return;
    }
    let mut mask = entry.mask_for(actor);
    if actor.id == own {
        // The frame header carries the own position.
        mask &= !field::POS;
    }
    if mask == 0 {
        return;
    }
    candidates.push(Candidate {
        priority: 0,
        staleness: tick.saturating_sub(entry.last_sent) + 1,
        distance2: if actor.id == own { -1 } else { near.distance2 },
        actor: near.index,
        entry: at as u32,
        mask,
        cost: (hearth_codec::varint_len(u64::from(actor.id.0))
            + 1
            + wire::props_len(mask, &actor.props)) as u32,
    });
}

fn spawn_candidate(actor: &Actor, near: &Near, own: ActorId) -> Candidate {
    Candidate {
        priority: 0,
        // A spawn waits as if eight ticks stale: ahead of fresh updates of
        // actors at the same distance, behind long-starved ones.
        staleness: 8,
        distance2: if near.id == own { -1 } else { near.distance2 },
        actor: near.index,
        entry: SPAWN,
        mask: field::ALL,
        cost: (2
            + hearth_codec::varint_len(u64::from(actor.id.0))
            + wire::props_len(field::ALL, &actor.props)) as u32,
    }
}

/// Largest frame header: type, tick, input ack, position, flag, count.
const FRAME_HEADER_MAX: usize = 1 + 5 + 5 + 10 + 1 + 5;
/// Largest reliable message header: tick and item count.
const RELIABLE_HEADER_MAX: usize = 5 + 5;

/// Stale and near first; the player's own actor (`distance2` -1) before
/// everything.
fn priority(staleness: u32, distance2: i64) -> u64 {
    if distance2 < 0 {
        return u64::MAX;
    }
    let cells = crate::geometry::isqrt(distance2) / i64::from(crate::geometry::UNITS_PER_CELL);
    u64::from(staleness.min(1 << 20)) * 1_000_000 / (cells as u64 + 1)
}
