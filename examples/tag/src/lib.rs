//! Tag: an arena game on Hearth's game API, built only on its public items.
//! Each player runs a runner that Hearth moves (the client predicts, the
//! server checks every move against the speed and the arena's walls, and
//! corrects); players see the runners within the view radius. Rounds last
//! [`ROUND_SECS`] (or [`Tag::round_secs`]): one runner is "it"; touching
//! another passes it on (no tag-backs for a second), and the tagged runner
//! respawns at a random spawn point. Every second not being it scores a
//! point, a tag scores [`TAG_POINTS`]; the best score of each player is kept
//! between sessions and shown to them alone (an owner-only property).
//!
//! Everything random comes from the line's seeded source, so a whole match
//! runs in a unit test and a snapshotted line resumes byte for byte.

/// A player that plays by itself (`tag play`, and the tests' clients), over
/// the generated bindings.
pub mod bot;
/// The game's typed client bindings, written by `hearth codegen --lang rust`
/// (regenerate: `HEARTH_BLESS=1 cargo test -p tag --test generated`).
pub mod generated;
/// `tag play`'s loop: a bot over a real session.
pub mod play;

/// The game's browser page (`web/page.html`, `web/page.ts` bundled by
/// `web/build.mjs` into `web/dist/page.js`), served at `/` by `tag serve`.
pub const PAGE: hearth_server::GamePage = hearth_server::GamePage::new(
    include_str!("../web/page.html"),
    include_str!("../web/dist/page.js"),
)
.with_style(include_str!("../web/page.css"));

use std::collections::BTreeMap;

use hearth_game::schema::{KindSpec, MessageSpec, Movement, PropSpec, Schema, Value, ValueType};
use hearth_game::{
    ActorId, Ctx, Game, KindId, MessageId, PlayerId, Pos, PropId, TimerId, Zone, ZoneSpec,
};
use serde::{Deserialize, Serialize};

/// Seconds a round lasts by default, and at most (the schema's bound for
/// `seconds_left`).
pub const ROUND_SECS: u32 = 60;
/// Seconds between rounds.
pub const INTERMISSION_SECS: u32 = 5;
/// Cells per second a runner may run.
pub const SPEED: u32 = 6;
/// Ticks per second.
pub const TICK_HZ: u32 = 20;
/// How close "it" must come to tag, in position units (0.8 cells).
pub const TOUCH: i64 = 80;
/// Points for a tag.
pub const TAG_POINTS: i64 = 5;
/// Ticks after a tag during which the new "it" cannot tag back the old.
const NO_TAG_BACK_TICKS: u64 = TICK_HZ as u64;
/// Longest name shown.
pub const MAX_NAME: u16 = 32;
/// Highest score a round can reach (capped there).
pub const MAX_SCORE: i64 = 1_000_000;
/// How far a player sees other runners, in cells.
pub const VIEW_RADIUS: u32 = 16;

/// The arena everyone plays in by default: walls around, pillars inside,
/// spawn points spread over it.
pub const ARENA: &str = "\
################################################
#S.............#...............#.............S.#
#..............#...............#...............#
#......##......................#......##.......#
#......##.............S...............##.......#
#..............................................#
#.......................##.....................#
#S..........#...........##...........#.......S.#
#...........#........................#.........#
#...........#####................#####.........#
#..............................................#
#.....S.................................S......#
#..............................................#
#.........#####................#####...........#
#.............#..........S.....#...............#
#.S...........#................#.............S.#
#......................##......................#
#......##..............##.............##.......#
#......##.............................##.......#
#..............#..............S.#..............#
#S.............#................#.............S#
################################################
";

/// The game: its arena, how many players a line holds and how long a round
/// lasts.
pub struct Tag {
    /// The arena's map, rows of cells as in `zones.toml` (`#` a wall, `S` a
    /// spawn point): see [`Tag::check`].
    pub map: String,
    pub line_capacity: usize,
    /// Seconds a round lasts, 1 to [`ROUND_SECS`] (outside, the nearest).
    pub round_secs: u32,
    /// How far a player sees, in cells.
    pub view_radius: u32,
}

impl Default for Tag {
    fn default() -> Self {
        Self {
            map: ARENA.to_owned(),
            line_capacity: 32,
            round_secs: ROUND_SECS,
            view_radius: VIEW_RADIUS,
        }
    }
}

impl Tag {
    /// An open square arena of `side` cells for `players` (the benchmark's
    /// crowd), with a spawn point every eight cells.
    pub fn crowd(side: usize, players: usize) -> Self {
        let mut map = String::new();
        for y in 0..side {
            for x in 0..side {
                let edge = x == 0 || y == 0 || x == side - 1 || y == side - 1;
                map.push(match edge {
                    true => '#',
                    false if x % 8 == 4 && y % 8 == 4 => 'S',
                    false => '.',
                });
            }
            map.push('\n');
        }
        Self {
            map,
            line_capacity: players,
            view_radius: 20,
            ..Self::default()
        }
    }

    /// Whether the map makes an arena (cells of the legend, at least one
    /// spawn point, at most 1024 cells a side), and if not, why: a game with
    /// another map than [`ARENA`] checks it before it serves.
    pub fn check(&self) -> Result<(), hearth_replica::zone::ZoneError> {
        Zone::new(self.zone_spec()).map(|_| ())
    }

    fn zone_spec(&self) -> ZoneSpec {
        ZoneSpec {
            name: "arena".to_owned(),
            tick_hz: TICK_HZ,
            line_capacity: self.line_capacity as u32,
            empty_line_grace_secs: 60,
            npcs: 0,
            speed: SPEED,
            view_radius: self.view_radius,
            portals: Vec::new(),
            map: self.map.clone(),
        }
    }
}

/// What is kept for each player between sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub best: i64,
    pub rounds: u32,
}

/// Where the game is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Fewer than two players.
    Waiting = 0,
    Playing = 1,
    /// A round ended; the next starts after the intermission.
    Over = 2,
}

/// One arena's state.
#[derive(Debug, Serialize, Deserialize)]
pub struct Arena {
    ids: Ids,
    /// The round's actor: what everyone sees of it.
    round: ActorId,
    /// Each player's runner.
    runners: BTreeMap<PlayerId, ActorId>,
    phase: Phase,
    number: i64,
    /// Who is it, and who was before (and until which tick they are safe
    /// from being tagged back).
    it: Option<PlayerId>,
    safe: Option<(PlayerId, u64)>,
    seconds_left: i64,
    /// Seconds a round lasts here.
    round_secs: u32,
    /// The once-a-second timer of a round, or the intermission's.
    timer: Option<TimerId>,
}

/// The schema's handles, looked up once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ids {
    runner: KindId,
    name: PropId,
    score: PropId,
    it: PropId,
    best: PropId,
    round: KindId,
    number: PropId,
    phase: PropId,
    seconds_left: PropId,
    tagged: MessageId,
    round_over: MessageId,
    new_best: MessageId,
}

/// Timer tags.
const SECOND: u64 = 1;
const NEXT_ROUND: u64 = 2;

fn actor_ref() -> ValueType {
    ValueType::int(0, u32::MAX.into())
}

/// The schema a client of this game is built for.
pub fn schema() -> Schema {
    let runner = KindSpec::moving("runner", Movement::new(SPEED))
        .prop(PropSpec::new("name", ValueType::string(MAX_NAME)).reliable())
        .prop(PropSpec::new("score", ValueType::int(0, MAX_SCORE)).reliable())
        .prop(PropSpec::new("it", ValueType::Bool).reliable())
        .prop(
            PropSpec::new("best", ValueType::int(0, MAX_SCORE))
                .owner_only()
                .reliable(),
        );
    let round = KindSpec::new("round")
        .prop(PropSpec::new("number", ValueType::int(0, u32::MAX.into())).reliable())
        .prop(
            PropSpec::new(
                "phase",
                ValueType::enumeration(&["waiting", "playing", "over"]),
            )
            .reliable(),
        )
        .prop(PropSpec::new("seconds_left", ValueType::int(0, ROUND_SECS.into())).reliable());
    let messages = vec![
        MessageSpec::to_client("tagged")
            .field("it", actor_ref())
            .field("by", actor_ref()),
        MessageSpec::to_client("round_over")
            .field("winner", ValueType::string(MAX_NAME))
            .field("score", ValueType::int(0, MAX_SCORE)),
        MessageSpec::to_client("new_best").field("score", ValueType::int(0, MAX_SCORE)),
    ];
    Schema::new("tag", vec![runner, round], messages).expect("a valid schema")
}

impl Ids {
    fn look_up(ctx: &Ctx<'_, TagRecord>) -> Self {
        let runner = ctx.kind("runner").expect("declared");
        let round = ctx.kind("round").expect("declared");
        let prop = |kind, name| ctx.prop(kind, name).expect("declared");
        let message = |name| ctx.message(name).expect("declared");
        Ids {
            runner,
            name: prop(runner, "name"),
            score: prop(runner, "score"),
            it: prop(runner, "it"),
            best: prop(runner, "best"),
            round,
            number: prop(round, "number"),
            phase: prop(round, "phase"),
            seconds_left: prop(round, "seconds_left"),
            tagged: message("tagged"),
            round_over: message("round_over"),
            new_best: message("new_best"),
        }
    }
}

impl Game for Tag {
    type Line = Arena;
    type Player = TagRecord;

    fn schema(&self) -> Schema {
        schema()
    }

    fn tick_hz(&self) -> u32 {
        TICK_HZ
    }

    fn zones(&self) -> Vec<Zone> {
        vec![Zone::new(self.zone_spec()).expect("the arena's map is valid (Tag::check)")]
    }

    fn new_line(&self, ctx: &mut Ctx<'_, TagRecord>) -> Arena {
        let ids = Ids::look_up(ctx);
        let round = ctx.spawn(ids.round, None);
        Arena {
            ids,
            round,
            runners: BTreeMap::new(),
            phase: Phase::Waiting,
            number: 0,
            it: None,
            safe: None,
            seconds_left: 0,
            round_secs: self.round_secs.clamp(1, ROUND_SECS),
            timer: None,
        }
    }

    fn on_join(&self, arena: &mut Arena, ctx: &mut Ctx<'_, TagRecord>, player: PlayerId) {
        let ids = arena.ids.clone();
        let runner = ctx.spawn(ids.runner, Some(player));
        let name = short(ctx.name(player).unwrap_or(""));
        ctx.set(runner, ids.name, Value::Str(name.into()))
            .expect("a short name");
        let best = ctx.player_data(player).map_or(0, |r| r.best);
        ctx.set_int(runner, ids.best, best.clamp(0, MAX_SCORE))
            .expect("in range");
        let at = random_spawn(ctx);
        ctx.place(runner, at)
            .expect("spawn points are in the arena");
        ctx.control(player, Some(runner)).expect("a runner moves");
        arena.runners.insert(player, runner);
        if arena.phase == Phase::Waiting && arena.runners.len() >= 2 {
            arena.intermission(ctx);
        }
    }

    fn on_leave(&self, arena: &mut Arena, ctx: &mut Ctx<'_, TagRecord>, player: PlayerId) {
        let Some(runner) = arena.runners.remove(&player) else {
            return;
        };
        ctx.despawn(runner);
        if arena.runners.len() < 2 {
            arena.wait(ctx);
        } else if arena.it == Some(player) {
            arena.it = None;
            arena.choose_it(ctx);
        }
    }

    fn on_tick(&self, arena: &mut Arena, ctx: &mut Ctx<'_, TagRecord>) {
        if arena.phase == Phase::Playing {
            arena.check_tag(ctx);
        }
    }

    fn on_timer(&self, arena: &mut Arena, ctx: &mut Ctx<'_, TagRecord>, timer: TimerId, tag: u64) {
        if arena.timer != Some(timer) {
            return;
        }
        arena.timer = None;
        match tag {
            NEXT_ROUND => arena.start_round(ctx),
            SECOND => arena.second(ctx),
            _ => {}
        }
    }
}

/// A spawn point of the arena, from the line's random source.
fn random_spawn(ctx: &mut Ctx<'_, TagRecord>) -> Pos {
    let spawns = ctx.zone().map(|z| z.spawns.clone()).unwrap_or_default();
    if spawns.is_empty() {
        return Pos::cell_centre(1, 1);
    }
    let at = ctx.rng().range(0, spawns.len() as i64) as usize;
    spawns[at]
}

impl Arena {
    fn set_phase(&mut self, ctx: &mut Ctx<'_, TagRecord>, phase: Phase) {
        self.phase = phase;
        ctx.set_int(self.round, self.ids.phase, phase as i64)
            .expect("a phase");
    }

    /// Fewer than two players: no round.
    fn wait(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel(timer);
        }
        self.set_it(ctx, None);
        self.set_phase(ctx, Phase::Waiting);
    }

    fn intermission(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel(timer);
        }
        self.timer = Some(ctx.after(INTERMISSION_SECS * TICK_HZ, NEXT_ROUND));
    }

    fn start_round(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        if self.runners.len() < 2 {
            self.wait(ctx);
            return;
        }
        let ids = self.ids.clone();
        self.number += 1;
        ctx.set_int(self.round, ids.number, self.number)
            .expect("in range");
        for runner in self.runners.values().copied().collect::<Vec<_>>() {
            ctx.set_int(runner, ids.score, 0).expect("in range");
            let at = random_spawn(ctx);
            ctx.place(runner, at)
                .expect("spawn points are in the arena");
        }
        self.it = None;
        self.safe = None;
        self.choose_it(ctx);
        self.seconds_left = i64::from(self.round_secs);
        ctx.set_int(self.round, ids.seconds_left, self.seconds_left)
            .expect("in range");
        self.set_phase(ctx, Phase::Playing);
        self.timer = Some(ctx.after(TICK_HZ, SECOND));
    }

    /// A random runner becomes it.
    fn choose_it(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        let players: Vec<PlayerId> = self.runners.keys().copied().collect();
        if players.is_empty() {
            return;
        }
        let chosen = players[ctx.rng().range(0, players.len() as i64) as usize];
        self.set_it(ctx, Some(chosen));
    }

    fn set_it(&mut self, ctx: &mut Ctx<'_, TagRecord>, it: Option<PlayerId>) {
        if let Some(old) = self.it.and_then(|p| self.runners.get(&p)) {
            ctx.set_bool(*old, self.ids.it, false).expect("a flag");
        }
        self.it = it;
        if let Some(new) = it.and_then(|p| self.runners.get(&p)) {
            ctx.set_bool(*new, self.ids.it, true).expect("a flag");
        }
    }

    /// Once a second of a round: a point to everyone not it, and the clock.
    fn second(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        for (player, runner) in self.runners.clone() {
            if Some(player) != self.it {
                self.add_score(ctx, runner, 1);
            }
        }
        self.seconds_left -= 1;
        ctx.set_int(self.round, self.ids.seconds_left, self.seconds_left.max(0))
            .expect("in range");
        if self.seconds_left <= 0 {
            self.finish(ctx);
        } else {
            self.timer = Some(ctx.after(TICK_HZ, SECOND));
        }
    }

    fn add_score(&self, ctx: &mut Ctx<'_, TagRecord>, runner: ActorId, points: i64) {
        let score = ctx.get_int(runner, self.ids.score).unwrap_or(0);
        ctx.set_int(runner, self.ids.score, (score + points).min(MAX_SCORE))
            .expect("capped");
    }

    /// It touches the nearest runner within reach (not the one who just
    /// tagged it): that runner is it now, and respawns.
    fn check_tag(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        let Some(it) = self.it else { return };
        let Some(&it_runner) = self.runners.get(&it) else {
            return;
        };
        let Some(at) = ctx.position(it_runner) else {
            return;
        };
        let tick = ctx.tick();
        let safe = self.safe.filter(|(_, until)| tick < *until).map(|(p, _)| p);
        let owners: BTreeMap<ActorId, PlayerId> =
            self.runners.iter().map(|(p, a)| (*a, *p)).collect();
        let touched = ctx
            .near(at, TOUCH)
            .into_iter()
            .filter_map(|actor| owners.get(&actor).map(|p| (*p, actor)))
            .find(|(player, _)| *player != it && Some(*player) != safe);
        let Some((victim, victim_runner)) = touched else {
            return;
        };
        self.add_score(ctx, it_runner, TAG_POINTS);
        self.set_it(ctx, Some(victim));
        self.safe = Some((it, tick + NO_TAG_BACK_TICKS));
        let respawn = random_spawn(ctx);
        ctx.place(victim_runner, respawn)
            .expect("spawn points are in the arena");
        let _ = ctx.send_to_line(
            self.ids.tagged,
            &[
                Value::Int(i64::from(victim_runner.0)),
                Value::Int(i64::from(it_runner.0)),
            ],
        );
    }

    /// The round's end: the winner is told to everyone, bests are kept.
    fn finish(&mut self, ctx: &mut Ctx<'_, TagRecord>) {
        let ids = self.ids.clone();
        let mut winner: Option<(i64, PlayerId)> = None;
        for (player, runner) in self.runners.clone() {
            let score = ctx.get_int(runner, ids.score).unwrap_or(0);
            if winner.is_none_or(|(best, _)| score > best) {
                winner = Some((score, player));
            }
            let improved = ctx.player_data_mut(player).and_then(|record| {
                record.rounds = record.rounds.saturating_add(1);
                (score > record.best).then(|| {
                    record.best = score;
                    score
                })
            });
            if let Some(best) = improved {
                ctx.set_int(runner, ids.best, best).expect("in range");
                let _ = ctx.send(player, ids.new_best, &[Value::Int(best)]);
            }
        }
        if let Some((score, player)) = winner {
            let name = short(ctx.name(player).unwrap_or(""));
            let _ = ctx.send_to_line(
                ids.round_over,
                &[Value::Str(name.into()), Value::Int(score)],
            );
        }
        self.set_it(ctx, None);
        self.set_phase(ctx, Phase::Over);
        self.intermission(ctx);
    }

    /// Where the game is (for tests and tools).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The player who is it.
    pub fn it(&self) -> Option<PlayerId> {
        self.it
    }

    /// Each player's runner.
    pub fn runner(&self, player: PlayerId) -> Option<ActorId> {
        self.runners.get(&player).copied()
    }

    /// Rounds started so far.
    pub fn round_number(&self) -> i64 {
        self.number
    }
}

/// A name cut to at most [`MAX_NAME`] bytes, at a character boundary.
fn short(name: &str) -> String {
    let mut end = name.len().min(usize::from(MAX_NAME));
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
