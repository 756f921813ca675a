//! Movement, interest, priority, budgets and dormancy for any game's moving
//! kinds, played through the client's own replica: moves within the kind's
//! speed are taken, faster ones, ones out of the zone and ones through a
//! wall are refused and the client corrected; a player sees moving actors
//! within the view radius only; a client's byte budget holds every tick
//! and what waits arrives later; idle actors cost nothing; a line
//! snapshotted mid-walk produces byte-identical outputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_game::schema::{KindSpec, Movement, PropSpec, Schema, ValueType};
use hearth_game::{
    ActorId, Ctx, Game, GameLine, GameOutput, PlayerId, Pos, Zone, ZoneSpec, UNITS_PER_CELL,
};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use serde::{Deserialize, Serialize};

/// Each player walks a runner; a flag stands still in the middle.
struct Field {
    bytes_per_second: u32,
    /// Where player N's runner starts: N-th entry, else the centre.
    starts: Vec<Pos>,
}

#[derive(Serialize, Deserialize)]
struct FieldLine {
    runners: BTreeMap<PlayerId, ActorId>,
}

const SPEED: u32 = 5;
const HZ: u32 = 20;
/// Legal movement per tick, in position units.
const STEP: i32 = (SPEED as i32 * UNITS_PER_CELL) / HZ as i32;

fn map() -> String {
    // 40 by 40 cells, walled, a wall across x = 20 from y = 0 to 9.
    let mut rows = Vec::new();
    for y in 0..40 {
        let row: String = (0..40)
            .map(|x| {
                if x == 0 || y == 0 || x == 39 || y == 39 || (x == 20 && y < 10) {
                    '#'
                } else if x == 5 && y == 5 {
                    'S'
                } else {
                    '.'
                }
            })
            .collect();
        rows.push(row);
    }
    rows.join("\n")
}

impl Game for Field {
    type Line = FieldLine;
    type Player = ();

    fn schema(&self) -> Schema {
        let runner = KindSpec::moving("runner", Movement::new(SPEED))
            .prop(PropSpec::new("score", ValueType::int(0, 100)).reliable());
        let flag = KindSpec::new("flag").prop(PropSpec::new("held", ValueType::Bool).reliable());
        Schema::new("field", vec![runner, flag], vec![]).unwrap()
    }

    fn tick_hz(&self) -> u32 {
        HZ
    }

    fn zones(&self) -> Vec<Zone> {
        vec![Zone::new(ZoneSpec {
            name: "field".into(),
            view_radius: 8,
            map: map(),
            ..toml_defaults()
        })
        .unwrap()]
    }

    fn view_radius(&self, _: Option<&Zone>) -> u32 {
        8
    }

    fn bytes_per_second(&self) -> u32 {
        self.bytes_per_second
    }

    fn line_capacity(&self, _: Option<&Zone>) -> usize {
        1000
    }

    fn new_line(&self, ctx: &mut Ctx<'_, ()>) -> FieldLine {
        let flag = ctx.kind("flag").unwrap();
        ctx.spawn(flag, None);
        FieldLine {
            runners: BTreeMap::new(),
        }
    }

    fn on_join(&self, line: &mut FieldLine, ctx: &mut Ctx<'_, ()>, player: PlayerId) {
        let runner = ctx.kind("runner").unwrap();
        let actor = ctx.spawn(runner, Some(player));
        let at = self
            .starts
            .get(player as usize)
            .copied()
            .unwrap_or(Pos::cell_centre(20, 20));
        ctx.place(actor, at).unwrap();
        ctx.control(player, Some(actor)).unwrap();
        line.runners.insert(player, actor);
    }

    fn on_leave(&self, line: &mut FieldLine, ctx: &mut Ctx<'_, ()>, player: PlayerId) {
        if let Some(actor) = line.runners.remove(&player) {
            ctx.despawn(actor);
        }
    }
}

fn toml_defaults() -> ZoneSpec {
    // Every field but the map at its zones.toml default.
    toml_like("name = \"x\"\nmap = \"S\"\n")
}

fn toml_like(text: &str) -> ZoneSpec {
    let zones = hearth_replica::zone::parse_zone_file(&format!("[[zone]]\n{text}")).unwrap();
    zones.into_iter().next().unwrap().spec
}

/// A line and every player's client replica, wired together.
struct Table {
    line: GameLine<Field>,
    clients: BTreeMap<PlayerId, GameReplica>,
    /// Bytes each player received, per tick, in the last tick.
    last_tick_bytes: BTreeMap<PlayerId, usize>,
    corrections: BTreeMap<PlayerId, u32>,
}

impl Table {
    fn new(game: Field) -> Self {
        Self {
            line: GameLine::new(Arc::new(game), 7),
            clients: BTreeMap::new(),
            last_tick_bytes: BTreeMap::new(),
            corrections: BTreeMap::new(),
        }
    }

    fn join(&mut self, player: PlayerId) {
        self.line.join(player, None);
        let schema = self.line.schema().clone();
        self.clients.insert(player, GameReplica::new(schema));
    }

    /// One tick, delivered to every client, and each client's answer.
    fn tick(&mut self) {
        self.line.tick();
        self.last_tick_bytes.clear();
        let outputs: Vec<GameOutput> = self.line.drain_outputs().collect();
        for output in outputs {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                *self.last_tick_bytes.entry(player).or_default() += bytes.len();
                let client = self.clients.get_mut(&player).unwrap();
                match channel {
                    RELIABLE_CHANNEL => client.apply_reliable(&bytes).unwrap(),
                    STATE_CHANNEL => client.apply_frame(&bytes).unwrap(),
                    other => panic!("channel {other}"),
                }
            }
        }
        for (player, client) in self.clients.iter_mut() {
            while let Some(event) = client.poll_event() {
                if let GameEvent::Corrected { .. } = event {
                    *self.corrections.entry(*player).or_default() += 1;
                }
            }
            if let Some(bytes) = client.poll_ack() {
                self.line.input(*player, STATE_CHANNEL, &bytes).unwrap();
            }
        }
    }

    fn client(&self, player: PlayerId) -> &GameReplica {
        &self.clients[&player]
    }

    fn own(&self, player: PlayerId) -> ActorId {
        self.line.state().runners[&player]
    }

    /// Player moves its runner by (dx, dy) units through its replica.
    fn step(&mut self, player: PlayerId, dx: i32, dy: i32) {
        let client = self.clients.get_mut(&player).unwrap();
        let own = client.controlled().expect("controls its runner");
        let at = client.position(own).unwrap();
        client.move_to(Pos::new(at.x + dx, at.y + dy)).unwrap();
    }

    /// What `viewer`'s client knows of `player`'s runner's position.
    fn seen(&self, viewer: PlayerId, player: PlayerId) -> Option<Pos> {
        self.client(viewer).server_position(self.own(player))
    }
}

fn field() -> Field {
    Field {
        bytes_per_second: 64_000,
        starts: vec![
            Pos::cell_centre(5, 5),
            Pos::cell_centre(6, 5),
            Pos::cell_centre(7, 5),
            Pos::cell_centre(35, 35),
        ],
    }
}

#[test]
fn legal_moves_are_taken_and_seen_by_a_neighbour_and_illegal_ones_corrected() {
    let mut t = Table::new(field());
    t.join(1);
    t.join(2);
    t.tick();
    t.tick();
    assert_eq!(t.client(1).controlled(), Some(t.own(1)));
    assert_eq!(t.seen(2, 1), Some(Pos::cell_centre(6, 5)));

    // Walk east at the legal speed for a second: taken, and player 2 sees it.
    for _ in 0..HZ {
        t.step(1, STEP, 0);
        t.tick();
    }
    for _ in 0..3 {
        t.tick();
    }
    let walked = Pos::new(
        Pos::cell_centre(6, 5).x + STEP * HZ as i32,
        Pos::cell_centre(6, 5).y,
    );
    assert_eq!(t.seen(2, 1), Some(walked));
    assert_eq!(t.client(1).position(t.own(1)), Some(walked));
    assert_eq!(t.client(1).pending_moves(), 0, "every move acknowledged");
    assert_eq!(t.line.stats().moves_accepted, u64::from(HZ));
    assert_eq!(t.corrections.get(&1), None);

    // Three times the speed: refused, the client snaps back.
    t.step(1, STEP * 8, 0);
    assert_ne!(t.client(1).position(t.own(1)), Some(walked), "predicted");
    for _ in 0..3 {
        t.tick();
    }
    assert_eq!(t.line.stats().moves_too_fast, 1);
    assert_eq!(t.corrections.get(&1), Some(&1));
    assert_eq!(t.client(1).position(t.own(1)), Some(walked), "corrected");
    assert_eq!(t.seen(2, 1), Some(walked));

    // Through the wall at x = 20 (the runner is at x = 11.5): walk to the
    // wall's face at the legal speed; the step into it is refused.
    let mut refused = 0;
    for _ in 0..(HZ * 3) {
        t.step(1, STEP, 0);
        t.tick();
        refused = t.line.stats().moves_blocked;
        if refused > 0 {
            break;
        }
    }
    assert_eq!(refused, 1, "a move into the wall is refused");
    for _ in 0..3 {
        t.tick();
    }
    let at = t.client(1).position(t.own(1)).unwrap();
    assert!(at.x < 20 * UNITS_PER_CELL, "still west of the wall: {at:?}");
    assert_eq!(
        t.seen(2, 1),
        None,
        "12 cells from player 2: out of its view"
    );

    // Out of the zone: refused.
    let client = t.clients.get_mut(&1).unwrap();
    client.move_to(Pos::new(-5, at.y)).unwrap_or(());
    for _ in 0..3 {
        t.tick();
    }
    assert!(t.line.stats().moves_out_of_bounds + t.line.stats().moves_too_fast >= 2);
}

#[test]
fn players_see_moving_actors_within_the_view_radius_only() {
    let mut t = Table::new(field());
    for player in [1, 3] {
        t.join(player);
    }
    t.tick();
    t.tick();
    // Player 1 at (6, 5), player 3 at (35, 35): far apart. Each sees its
    // own runner and the flag, which does not move.
    assert_eq!(t.seen(1, 3), None);
    assert_eq!(t.seen(3, 1), None);
    assert_eq!(t.line.in_view(1), Some(2));
    assert_eq!(t.client(3).actors().count(), 2);

    // Player 3 walks towards player 1 until each sees the other.
    let mut ticks = 0;
    while t.seen(1, 3).is_none() {
        t.step(3, -STEP / 2, -STEP / 2);
        t.tick();
        ticks += 1;
        assert!(ticks < 2000, "never came into view");
    }
    let at = t.client(3).position(t.own(3)).unwrap();
    let distance = at.distance(Pos::cell_centre(6, 5));
    assert!(
        // Who is near is asked every fourth tick.
        distance <= 8 * i64::from(UNITS_PER_CELL) + 4 * i64::from(STEP),
        "seen from {distance} units"
    );
    // Player 3's own pass comes within the next four ticks.
    for _ in 0..4 {
        t.tick();
    }
    assert!(t.seen(3, 1).is_some());

    // And walks back out: player 1's client drops it beyond the view
    // radius and a quarter, not at the radius itself.
    let mut last_seen = at;
    while t.seen(1, 3).is_some() {
        last_seen = t.client(3).position(t.own(3)).unwrap();
        t.step(3, STEP / 2, STEP / 2);
        t.tick();
        ticks += 1;
        assert!(ticks < 4000, "never left the view");
    }
    let distance = last_seen.distance(Pos::cell_centre(6, 5));
    assert!(
        distance > 9 * i64::from(UNITS_PER_CELL),
        "dropped at {distance} units: inside the hysteresis"
    );
    assert_eq!(t.client(1).actors().count(), 2);
}

#[test]
fn a_crowd_stays_within_each_clients_budget_and_everyone_arrives() {
    // 150 runners on 30 cells: everyone in everyone's view, and a budget of
    // 800 bytes a tick, far less than one tick's spawns.
    let starts: Vec<Pos> = (0..150)
        .map(|i| Pos::cell_centre(17 + (i % 6), 18 + (i / 6) % 5))
        .collect();
    let mut t = Table::new(Field {
        bytes_per_second: 800 * HZ,
        starts,
    });
    for player in 0..150 {
        t.join(player);
    }
    for tick in 0..200u32 {
        // Everyone shuffles, so frames always have updates to send.
        for player in 0..150u64 {
            let own = t.client(player).controlled();
            if own.is_some_and(|own| t.client(player).position(own).is_some()) {
                let dx = if (tick + player as u32) % 2 == 0 {
                    STEP / 2
                } else {
                    -STEP / 2
                };
                t.step(player, dx, 0);
            }
        }
        t.tick();
        if tick == 0 {
            // The first tick carries Joined with the map (1.6 KB), which
            // goes whatever the budget.
            continue;
        }
        for (player, bytes) in &t.last_tick_bytes {
            // The first spawn goes whatever its size; a spawn is small here.
            assert!(
                *bytes <= 800 + 64,
                "player {player}: {bytes} bytes in one tick"
            );
        }
    }
    assert!(t.line.stats().deferred > 0, "the budget deferred something");
    for player in 0..150 {
        assert_eq!(
            t.client(player).actors().count(),
            151,
            "player {player} has every runner and the flag"
        );
    }
}

#[test]
fn idle_actors_cost_nothing_once_acknowledged() {
    let mut t = Table::new(field());
    for player in [0, 1, 2] {
        t.join(player);
    }
    for _ in 0..5 {
        t.tick();
    }
    for _ in 0..20 {
        t.tick();
        assert!(
            t.last_tick_bytes.is_empty(),
            "sent {:?} while nothing moved",
            t.last_tick_bytes
        );
    }
    t.step(0, STEP, 0);
    t.tick();
    // The move left with the tick's acknowledgements; the next tick takes it.
    t.tick();
    assert!(
        t.last_tick_bytes.len() >= 3,
        "the move reached everyone: {:?}",
        t.last_tick_bytes
    );
}

#[test]
fn a_line_snapshotted_mid_walk_produces_byte_identical_outputs() {
    let game = Arc::new(field());
    let mut line = GameLine::new(game.clone(), 3);
    let mut clients: BTreeMap<PlayerId, GameReplica> = BTreeMap::new();
    for player in [0, 1, 2, 3] {
        line.join(player, None);
        clients.insert(player, GameReplica::new(line.schema().clone()));
    }
    let script = |line: &mut GameLine<Field>,
                  clients: &mut BTreeMap<PlayerId, GameReplica>,
                  tick: u32|
     -> Vec<GameOutput> {
        for (player, client) in clients.iter_mut() {
            if let Some(own) = client.controlled() {
                if let Some(at) = client.position(own) {
                    let dx = if tick % 7 == *player as u32 {
                        STEP * 4
                    } else {
                        STEP
                    };
                    client.move_to(Pos::new(at.x + dx, at.y)).unwrap();
                }
            }
        }
        line.tick();
        let outputs: Vec<GameOutput> = line.drain_outputs().collect();
        for output in &outputs {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                let client = clients.get_mut(player).unwrap();
                if *channel == RELIABLE_CHANNEL {
                    client.apply_reliable(bytes).unwrap();
                } else {
                    client.apply_frame(bytes).unwrap();
                }
            }
        }
        for (player, client) in clients.iter_mut() {
            if let Some(bytes) = client.poll_ack() {
                line.input(*player, STATE_CHANNEL, &bytes).unwrap();
            }
        }
        outputs
    };
    for tick in 0..30 {
        script(&mut line, &mut clients, tick);
    }
    let snapshot = line.snapshot();
    let mut restored = GameLine::restore(game, &snapshot).unwrap();
    let mut restored_clients = clients.clone();
    for tick in 30..90 {
        let a = script(&mut line, &mut clients, tick);
        let b = script(&mut restored, &mut restored_clients, tick);
        assert_eq!(a, b, "tick {tick}");
    }
    assert!(
        line.stats().moves_too_fast > 0,
        "the script was corrected too"
    );
}
