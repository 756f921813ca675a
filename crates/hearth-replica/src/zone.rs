//! Zones: maps with bounds, walls, spawn points and portals, read from a data
//! file (TOML with an ASCII map per zone) or built in code.
//!
//! Map legend: `#` wall, `~` water (both blocked), `.` floor, `S` a spawn
//! point (floor), `P` a portal's cell (floor; where it leads is in the
//! zone's `[[zone.portal]]` list). Rows may differ in length; missing cells
//! are walls.

use serde::{Deserialize, Serialize};

use crate::geometry::{Pos, UNITS_PER_CELL};

/// Largest zone side, in cells: positions stay far from `i32` overflow and
/// a zone's wall bitmap stays under 128 KiB.
pub const MAX_ZONE_SIDE: usize = 1024;
/// Fastest walking speed a zone may set, in cells per second.
pub const MAX_ZONE_SPEED: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("the zone file is not valid TOML: {0}")]
    Toml(String),
    #[error("the zone file defines no zone: add a [[zone]] table")]
    NoZones,
    #[error("zone {0:?} is defined twice: zone names must be unique")]
    Duplicate(String),
    #[error("zone {zone:?}: {why}")]
    Invalid { zone: String, why: String },
}

/// One portal: stepping on `at` takes a player to `to`, arriving at `arrive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSpec {
    pub at: [i32; 2],
    pub to: String,
    pub arrive: [i32; 2],
}

/// A zone as written in the data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub name: String,
    /// Ticks per second of every line of this zone.
    #[serde(default = "defaults::tick_hz")]
    pub tick_hz: u32,
    /// Players per line; when every line is full a new one opens.
    #[serde(default = "defaults::line_capacity")]
    pub line_capacity: u32,
    /// An empty extra line (any but line 1) closes after this long.
    #[serde(default = "defaults::empty_line_grace_secs")]
    pub empty_line_grace_secs: u32,
    /// Wandering NPCs in each line.
    #[serde(default)]
    pub npcs: u32,
    /// Fastest legal walking speed, in cells per second.
    #[serde(default = "defaults::speed")]
    pub speed: u32,
    /// How far a player sees other actors, in cells.
    #[serde(default = "defaults::view_radius")]
    pub view_radius: u32,
    #[serde(default)]
    pub portals: Vec<PortalSpec>,
    pub map: String,
}

mod defaults {
    pub fn tick_hz() -> u32 {
        20
    }
    pub fn line_capacity() -> u32 {
        50
    }
    pub fn empty_line_grace_secs() -> u32 {
        30
    }
    pub fn speed() -> u32 {
        5
    }
    pub fn view_radius() -> u32 {
        20
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneFile {
    #[serde(default)]
    zone: Vec<ZoneSpec>,
}

/// Reads every zone of a zone file.
pub fn parse_zone_file(text: &str) -> Result<Vec<Zone>, ZoneError> {
    let file: ZoneFile = toml::from_str(text).map_err(|e| ZoneError::Toml(e.to_string()))?;
    if file.zone.is_empty() {
        return Err(ZoneError::NoZones);
    }
    let mut zones: Vec<Zone> = Vec::with_capacity(file.zone.len());
    for spec in file.zone {
        if zones.iter().any(|z| z.spec.name == spec.name) {
            return Err(ZoneError::Duplicate(spec.name));
        }
        zones.push(Zone::new(spec)?);
    }
    for zone in &zones {
        for portal in &zone.spec.portals {
            let Some(target) = zones.iter().find(|z| z.spec.name == portal.to) else {
                return Err(zone.invalid(format!(
                    "a portal leads to {:?}, which the file does not define",
                    portal.to
                )));
            };
            if target.blocked_cell(portal.arrive[0], portal.arrive[1]) {
                return Err(zone.invalid(format!(
                    "a portal arrives in {:?} at {:?}, which is a wall or outside the map",
                    portal.to, portal.arrive
                )));
            }
        }
    }
    Ok(zones)
}

/// A zone ready to play: its spec plus the parsed map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub spec: ZoneSpec,
    pub width: i32,
    pub height: i32,
    blocked: Vec<u64>,
    pub spawns: Vec<Pos>,
}

impl Zone {
    pub fn new(spec: ZoneSpec) -> Result<Self, ZoneError> {
        let map = spec.map.clone();
        let rows: Vec<&str> = map
            .lines()
            .map(str::trim_end)
            .filter(|row| !row.is_empty())
            .collect();
        let height = rows.len();
        let width = rows
            .iter()
            .map(|row| row.chars().count())
            .max()
            .unwrap_or(0);
        let mut zone = Zone {
            width: width as i32,
            height: height as i32,
            blocked: vec![u64::MAX; (width * height).div_ceil(64)],
            spawns: Vec::new(),
            spec,
        };
        if width == 0 || width > MAX_ZONE_SIDE || height > MAX_ZONE_SIDE {
            return Err(zone.invalid(format!(
                "the map must be 1 to {MAX_ZONE_SIDE} cells on each side (it is {width} by {height})"
            )));
        }
        for (y, row) in rows.iter().enumerate() {
            for (x, cell) in row.chars().enumerate() {
                let open = match cell {
                    '#' | '~' => false,
                    '.' | 'P' => true,
                    'S' => {
                        zone.spawns.push(Pos::cell_centre(x as i32, y as i32));
                        true
                    }
                    other => {
                        return Err(zone.invalid(format!(
                            "unknown map cell {other:?} at column {x}, row {y} (use # ~ . S P)"
                        )))
                    }
                };
                if open {
                    let index = y * width + x;
                    zone.blocked[index / 64] &= !(1 << (index % 64));
                }
            }
        }
        zone.validate()?;
        Ok(zone)
    }

    /// The zone a client draws from a map a server sent (a game's
    /// `Joined`): its bounds and walls, which is what a client checks its
    /// moves against; every other setting at its default.
    pub fn from_map(map: &str) -> Result<Self, ZoneError> {
        Self::new(ZoneSpec {
            name: "joined".to_owned(),
            tick_hz: defaults::tick_hz(),
            line_capacity: defaults::line_capacity(),
            empty_line_grace_secs: defaults::empty_line_grace_secs(),
            npcs: 0,
            speed: defaults::speed(),
            view_radius: defaults::view_radius(),
            portals: Vec::new(),
            map: map.to_owned(),
        })
    }

    /// An open field of `width` by `height` cells with a wall around it and
    /// spawn points spread over it: for tests and benchmarks.
    pub fn open_field(name: &str, width: usize, height: usize) -> Self {
        let mut map = String::with_capacity((width + 1) * height);
        for y in 0..height {
            for x in 0..width {
                let edge = x == 0 || y == 0 || x == width - 1 || y == height - 1;
                let spawn =
                    !edge && ((x % 16 == 8 && y % 16 == 8) || (x == width / 2 && y == height / 2));
                map.push(match (edge, spawn) {
                    (true, _) => '#',
                    (false, true) => 'S',
                    _ => '.',
                });
            }
            map.push('\n');
        }
        Zone::new(ZoneSpec {
            name: name.to_owned(),
            tick_hz: defaults::tick_hz(),
            line_capacity: defaults::line_capacity(),
            empty_line_grace_secs: defaults::empty_line_grace_secs(),
            npcs: 0,
            speed: defaults::speed(),
            view_radius: defaults::view_radius(),
            portals: Vec::new(),
            map,
        })
        .expect("an open field is a valid zone")
    }

    fn validate(&self) -> Result<(), ZoneError> {
        let spec = &self.spec;
        if spec.name.is_empty()
            || spec.name.len() > 32
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(self.invalid("a zone name is 1 to 32 letters, digits, - or _".into()));
        }
        if !(1..=120).contains(&spec.tick_hz) {
            return Err(self.invalid("tick_hz must be 1 to 120".into()));
        }
        if !(1..=100_000).contains(&spec.line_capacity) {
            return Err(self.invalid("line_capacity must be 1 to 100000".into()));
        }
        if !(1..=MAX_ZONE_SPEED).contains(&spec.speed) {
            return Err(self.invalid(format!(
                "speed must be 1 to {MAX_ZONE_SPEED} cells per second"
            )));
        }
        if !(1..=MAX_ZONE_SIDE as u32 * 2).contains(&spec.view_radius) {
            return Err(self.invalid("view_radius must be 1 to 2048 cells".into()));
        }
        if spec.npcs > 100_000 {
            return Err(self.invalid("at most 100000 NPCs per line".into()));
        }
        if self.spawns.is_empty() {
            return Err(self.invalid("the map has no spawn point: mark at least one cell S".into()));
        }
        for portal in &spec.portals {
            if self.blocked_cell(portal.at[0], portal.at[1]) {
                return Err(self.invalid(format!(
                    "the portal at {:?} is on a wall or outside the map",
                    portal.at
                )));
            }
        }
        Ok(())
    }

    fn invalid(&self, why: String) -> ZoneError {
        ZoneError::Invalid {
            zone: self.spec.name.clone(),
            why,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Walls, water and everything outside the map are blocked.
    pub fn blocked_cell(&self, cx: i32, cy: i32) -> bool {
        if cx < 0 || cy < 0 || cx >= self.width || cy >= self.height {
            return true;
        }
        let index = (cy * self.width + cx) as usize;
        self.blocked[index / 64] & (1 << (index % 64)) != 0
    }

    pub fn blocked(&self, pos: Pos) -> bool {
        let (cx, cy) = pos.cell();
        self.blocked_cell(cx, cy)
    }

    /// Whether a straight walk from `from` to `to` stays on open cells: every
    /// cell the segment touches is open, and where it passes exactly through
    /// a corner, both cells beside the corner are open too (no squeezing
    /// between two walls that touch diagonally).
    pub fn path_clear(&self, from: Pos, to: Pos) -> bool {
        let unit = i64::from(UNITS_PER_CELL);
        let (mut cx, mut cy) = from.cell();
        let (end_x, end_y) = to.cell();
        if self.blocked_cell(cx, cy) {
            return false;
        }
        let dx = i64::from(to.x) - i64::from(from.x);
        let dy = i64::from(to.y) - i64::from(from.y);
        let step_x: i32 = if dx > 0 { 1 } else { -1 };
        let step_y: i32 = if dy > 0 { 1 } else { -1 };
        // The walk crosses the next vertical grid line after travelling
        // (boundary_x - from.x) / dx of the way, the next horizontal one after
        // (boundary_y - from.y) / dy: compare the two fractions by
        // cross-multiplying, in integers.
        let boundary =
            |cell: i32, step: i32| i64::from(if step > 0 { cell + 1 } else { cell }) * unit;
        let cells =
            (i64::from(end_x) - i64::from(cx)).abs() + (i64::from(end_y) - i64::from(cy)).abs();
        for _ in 0..cells {
            let to_x = if dx == 0 {
                None
            } else {
                Some((boundary(cx, step_x) - i64::from(from.x)).abs())
            };
            let to_y = if dy == 0 {
                None
            } else {
                Some((boundary(cy, step_y) - i64::from(from.y)).abs())
            };
            let order = match (to_x, to_y) {
                (Some(tx), Some(ty)) => (i128::from(tx) * i128::from(dy.abs()))
                    .cmp(&(i128::from(ty) * i128::from(dx.abs()))),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => return true,
            };
            match order {
                std::cmp::Ordering::Less => cx += step_x,
                std::cmp::Ordering::Greater => cy += step_y,
                std::cmp::Ordering::Equal => {
                    if self.blocked_cell(cx + step_x, cy) || self.blocked_cell(cx, cy + step_y) {
                        return false;
                    }
                    cx += step_x;
                    cy += step_y;
                }
            }
            if self.blocked_cell(cx, cy) {
                return false;
            }
            if (cx, cy) == (end_x, end_y) {
                break;
            }
        }
        true
    }

    /// Inside the map's rectangle (walls or not).
    pub fn in_bounds(&self, pos: Pos) -> bool {
        pos.x >= 0
            && pos.y >= 0
            && pos.x < self.width * UNITS_PER_CELL
            && pos.y < self.height * UNITS_PER_CELL
    }

    /// The portal whose cell holds `pos`, if any.
    pub fn portal_at(&self, pos: Pos) -> Option<&PortalSpec> {
        let (cx, cy) = pos.cell();
        self.spec.portals.iter().find(|p| p.at == [cx, cy])
    }

    /// Movement per tick at the legal speed, in position units.
    pub fn step_per_tick(&self) -> i64 {
        i64::from(self.spec.speed) * i64::from(UNITS_PER_CELL) / i64::from(self.spec.tick_hz)
    }

    pub fn view_radius_units(&self) -> i64 {
        i64::from(self.spec.view_radius) * i64::from(UNITS_PER_CELL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walls_block_and_paths_do_not_cross_them() {
        let zone = Zone::new(ZoneSpec {
            map: "#####\n#S#.#\n#.#.#\n#...#\n#####\n".into(),
            ..Zone::open_field("t", 4, 4).spec
        })
        .unwrap();
        let left = Pos::cell_centre(1, 1);
        let right = Pos::cell_centre(3, 1);
        assert!(zone.blocked(Pos::cell_centre(2, 1)));
        assert!(!zone.path_clear(left, right), "through the wall");
        assert!(zone.path_clear(left, Pos::cell_centre(1, 3)));
        assert!(zone.blocked(Pos::new(-1, 50)), "outside is blocked");
        // Two walls touching at a corner: no squeezing between them.
        let corner = Zone::new(ZoneSpec {
            map: "S#\n#.\n".into(),
            ..Zone::open_field("t", 4, 4).spec
        })
        .unwrap();
        assert!(
            !corner.path_clear(Pos::new(90, 90), Pos::new(110, 110)),
            "through the corner"
        );
        assert!(
            !corner.path_clear(Pos::new(95, 99), Pos::new(105, 101)),
            "grazing past it"
        );
        // Every cell on the way is checked, however short the hops.
        assert!(!zone.path_clear(Pos::new(190, 150), Pos::new(310, 150)));
        assert!(zone.path_clear(Pos::new(110, 110), Pos::new(190, 390)));
    }

    #[test]
    fn bad_zone_files_say_what_is_wrong() {
        let no_spawn = "[[zone]]\nname = \"a\"\nmap = \"...\"\n";
        assert!(parse_zone_file(no_spawn)
            .unwrap_err()
            .to_string()
            .contains("spawn"));
        let bad_portal = "[[zone]]\nname = \"a\"\nmap = \"S.\"\n[[zone.portals]]\nat = [1, 0]\nto = \"b\"\narrive = [0, 0]\n";
        assert!(parse_zone_file(bad_portal)
            .unwrap_err()
            .to_string()
            .contains("\"b\""));
        assert!(matches!(
            parse_zone_file("zone = 3"),
            Err(ZoneError::Toml(_))
        ));
        let bad_cell = "[[zone]]\nname = \"a\"\nmap = \"S?\"\n";
        assert!(parse_zone_file(bad_cell)
            .unwrap_err()
            .to_string()
            .contains("'?'"));
    }
}
