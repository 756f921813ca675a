//! The default game's NPCs: they wander near home, rest, and wander again.

use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::geometry::{Pos, UNITS_PER_CELL};
use crate::zone::Zone;

/// The line's seeded random source: one implementation for the built-in
/// world and every game on the game API.
pub use hearth_game::Rng;

/// How far from home an NPC wanders, in cells.
const WANDER_CELLS: i64 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Npc {
    pub actor: ActorId,
    pub home: Pos,
    pub target: Pos,
    /// Resting until this tick.
    pub rest_until: u32,
    /// The facing towards `target`, worked out once per walk.
    #[serde(default)]
    pub heading: Option<u8>,
}

impl Npc {
    /// Where the NPC goes this tick (`None`: it stays).
    pub fn step(&mut self, at: Pos, tick: u32, zone: &Zone, rng: &mut Rng) -> Option<Pos> {
        if tick < self.rest_until {
            return None;
        }
        if at == self.target {
            let hz = i64::from(zone.spec.tick_hz);
            self.rest_until = tick + rng.range(hz, hz * 5) as u32;
            let reach = WANDER_CELLS * i64::from(UNITS_PER_CELL);
            let target = Pos::new(
                self.home.x + rng.range(-reach, reach) as i32,
                self.home.y + rng.range(-reach, reach) as i32,
            );
            if zone.path_clear(at, target) {
                self.target = target;
                self.heading = None;
            }
            return None;
        }
        // NPCs walk at half the players' legal speed.
        let next = at.step_towards(self.target, (zone.step_per_tick() / 2).max(1));
        if zone.blocked(next) {
            self.target = at;
            self.heading = None;
            return None;
        }
        Some(next)
    }
}
