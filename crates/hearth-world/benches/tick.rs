//! One line of the built-in world, 1,000 players walking and 10,000 NPCs
//! wandering on a 400x400 field at 20 Hz on one core: the world as a game
//! on the game API (`hearth_world::WorldGame`) run by `hearth_game::GameLine`,
//! each player through a client replica that predicts its moves, sends
//! them and acknowledges frames. Measured over the ticks after a warm-up:
//! the line's tick time (p50, p99, max) and the bytes each player is sent
//! per second, with interest management.
//!
//! For comparison, what sending every change of every actor to every
//! player would cost (the same delta encoding, no relevancy), counted in
//! the same run: an observer of the whole line (`GameLine::observe`) is
//! sent exactly that, every actor's changes each tick, so it costs one
//! player with no interest management. It watches a twin of the measured
//! line, given the same joins and the same client inputs (a line is
//! deterministic, so the twin is the same world tick for tick), so that
//! the observer's replication stays out of the measured tick.
//!
//! `cargo bench -p hearth-world --bench tick` (HEARTH_BENCH_TICKS to change
//! the measured ticks).
//!
//! `HEARTH_BENCH_CROWD=N` measures a crowd instead: N players and no NPCs
//! on the crowd benchmark's 40 x 40 square, everyone in everyone's view
//! (view radius 60), which is what `hearth-bench`'s crowd benchmark costs
//! the line without the network: a quick way to see what a change to
//! replication does to a crowd. It prints the line's figures and no plot
//! points.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{Entrance, GameLine, GameOutput, Rng};
use hearth_replica::game_replica::GameReplica;
use hearth_world::{Pos, WorldGame, Zone, UNITS_PER_CELL};

const WARMUP_TICKS: usize = 100;

/// What one run measures: the world's line, or a crowd.
#[derive(Clone, Copy)]
struct Shape {
    players: u64,
    npcs: u32,
    side: usize,
    /// The zone's view radius in cells (`None`: the world's default).
    view_radius: Option<u32>,
}

impl Shape {
    const WORLD: Self = Self {
        players: 1_000,
        npcs: 10_000,
        side: 400,
        view_radius: None,
    };

    fn crowd(players: u64) -> Self {
        Self {
            players,
            npcs: 0,
            side: 40,
            view_radius: Some(60),
        }
    }

    fn zone(&self) -> Zone {
        let mut spec = Zone::open_field("bench", self.side, self.side).spec;
        spec.npcs = self.npcs;
        if let Some(radius) = self.view_radius {
            spec.view_radius = radius;
        }
        Zone::new(spec).expect("valid")
    }
}

/// Where each player appears and walks next: a random spot of the field.
fn random_spot(zone: &Zone, rng: &mut Rng) -> Pos {
    let side = i64::from(zone.width - 2) * i64::from(UNITS_PER_CELL);
    Pos::new(
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
    )
}

/// What the measured ticks came to.
#[derive(Default)]
struct Tally {
    durations: Vec<Duration>,
    /// Sent to the players, on both channels.
    bytes: u64,
    /// Sent to the observer of the twin line: every change of every actor.
    bytes_everything: u64,
}

struct Figures {
    p50: u128,
    p99: u128,
    max: u128,
    bytes_per_player_s: f64,
    /// What each player would be sent without interest management.
    bytes_per_player_s_everything: f64,
}

impl Tally {
    fn figures(mut self, players: u64, seconds: f64) -> Figures {
        self.durations.sort();
        let pct = |p: usize| {
            self.durations[(self.durations.len() * p / 100).min(self.durations.len() - 1)]
                .as_micros()
        };
        Figures {
            p50: pct(50),
            p99: pct(99),
            max: self.durations.last().map_or(0, |d| d.as_micros()),
            bytes_per_player_s: self.bytes as f64 / players as f64 / seconds,
            // The observer is one client: every player would be sent the same.
            bytes_per_player_s_everything: self.bytes_everything as f64 / seconds,
        }
    }
}

/// The world on the game API, its players walking through client
/// replicas, and its observed twin.
struct World {
    zone: Zone,
    line: GameLine<WorldGame>,
    /// The same line, fed the same; only its observer's bytes are kept.
    twin: GameLine<WorldGame>,
    clients: Vec<GameReplica>,
    rng: Rng,
    targets: Vec<Pos>,
    tally: Tally,
}

impl World {
    fn new(shape: Shape) -> Self {
        let zone = shape.zone();
        let game = Arc::new(WorldGame::new(vec![zone.clone()]).expect("one zone"));
        let new_line = || GameLine::new(game.clone(), 1).with_save_period(0);
        let (mut line, mut twin) = (new_line(), new_line());
        twin.observe().expect("the first observer");
        let clients = (0..=shape.players)
            .map(|_| GameReplica::new(line.schema().clone()))
            .collect();
        let mut rng = Rng::new(2);
        let targets = (0..=shape.players)
            .map(|_| random_spot(&zone, &mut rng))
            .collect();
        // Scattered over the field from the start (where a travel would put
        // them), not gathered at the spawn points, so that the warm-up
        // ends on a field that looks like the measured ticks.
        for player in 1..=shape.players {
            let entrance = Entrance {
                player,
                name: format!("player-{player}"),
                at: Some(random_spot(&zone, &mut rng)),
                ..Entrance::default()
            };
            line.enter(entrance.clone());
            twin.enter(entrance);
        }
        Self {
            zone,
            line,
            twin,
            clients,
            rng,
            targets,
            tally: Tally::default(),
        }
    }

    fn step(&mut self, measuring: bool) {
        let started = Instant::now();
        self.line.tick();
        let elapsed = started.elapsed();
        self.twin.tick();
        for output in self.twin.drain_outputs() {
            if let GameOutput::Observed { bytes, .. } = output {
                if measuring {
                    self.tally.bytes_everything += bytes.len() as u64;
                }
            }
        }
        for output in self.line.drain_outputs() {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                if measuring {
                    self.tally.bytes += bytes.len() as u64;
                }
                let client = &mut self.clients[player as usize];
                match channel {
                    RELIABLE_CHANNEL => client.apply_reliable(&bytes).expect("valid"),
                    _ => client.apply_frame(&bytes).expect("valid"),
                }
                while client.poll_event().is_some() {}
            }
        }
        for (player, client) in self.clients.iter_mut().enumerate().skip(1) {
            if let Some(at) = client.controlled().and_then(|own| client.position(own)) {
                let target = &mut self.targets[player];
                if at.distance(*target) < 50 {
                    *target = random_spot(&self.zone, &mut self.rng);
                }
                let next = at.step_towards(*target, self.zone.step_per_tick());
                if self.zone.path_clear(at, next) {
                    let _ = client.move_to(next);
                }
            }
            if let Some(state) = client.poll_ack() {
                self.line
                    .input(player as u64, STATE_CHANNEL, &state)
                    .expect("a valid state");
                self.twin
                    .input(player as u64, STATE_CHANNEL, &state)
                    .expect("a valid state");
            }
        }
        if measuring {
            self.tally.durations.push(elapsed);
        }
    }
}

fn main() {
    let measured: usize = std::env::var("HEARTH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let crowd: Option<u64> = std::env::var("HEARTH_BENCH_CROWD")
        .ok()
        .and_then(|v| v.parse().ok());
    let shape = crowd.map_or(Shape::WORLD, Shape::crowd);
    let Shape {
        players,
        npcs,
        side,
        ..
    } = shape;
    let mut world = World::new(shape);
    for tick in 0..WARMUP_TICKS + measured {
        world.step(tick >= WARMUP_TICKS);
    }
    let (stats, twin) = (world.line.stats(), world.twin.stats());
    // In the world's field the walkers keep to the speed; a crowd's few
    // too fast are printed (a client that jumps is corrected).
    if crowd.is_none() {
        assert_eq!(stats.moves_too_fast, 0, "the walkers keep to the speed");
    }
    assert_eq!(
        world.line.actor_count(),
        (players + u64::from(npcs)) as usize
    );
    // Otherwise the observer watched another world than the one measured.
    assert_eq!(
        (twin.bytes_out, twin.moves_accepted, twin.bad_acks),
        (stats.bytes_out, stats.moves_accepted, stats.bad_acks),
        "the twin line is the measured line tick for tick"
    );
    let seconds = measured as f64 / f64::from(world.zone.spec.tick_hz);
    let f = world.tally.figures(players, seconds);
    let interest_saving = f.bytes_per_player_s_everything / f.bytes_per_player_s.max(1.0);
    println!(
        "world on the game API: players={players} npcs={npcs} field={side}x{side} ticks={measured} tick_p50_us={} tick_p99_us={} tick_max_us={} bytes_per_player_s={:.0} bytes_per_player_s_no_interest={:.0} interest_saving={interest_saving:.1}x deferred_per_tick={} paused_per_tick={} moves_too_fast={}",
        f.p50,
        f.p99,
        f.max,
        f.bytes_per_player_s,
        f.bytes_per_player_s_everything,
        stats.deferred / (WARMUP_TICKS + measured) as u64,
        stats.frames_paused / (WARMUP_TICKS + measured) as u64,
        stats.moves_too_fast,
    );
    if crowd.is_some() {
        // A crowd's units go only to clients that know every actor in
        // them: how many each client knows says how much they can be used.
        let known: usize = world
            .clients
            .iter()
            .skip(1)
            .map(|client| client.actors().count())
            .sum();
        println!(
            "crowd: actors each client knows {:.1} of {}, shared updates per tick {}",
            known as f64 / players as f64,
            players,
            stats.shared_updates / (WARMUP_TICKS + measured) as u64,
        );
        return;
    }
    use hearth_figures::{figure, Better::Lower};
    let players = format!("{players} players, {npcs} NPCs");
    figure(
        "tick",
        &format!("world tick p50, {players}"),
        "us",
        f.p50 as f64,
        Lower,
        None,
    );
    figure(
        "tick",
        &format!("world tick p99, {players}"),
        "us",
        f.p99 as f64,
        Lower,
        Some(("the 5 ms goal", 5_000.0)),
    );
    figure(
        "tick",
        "bytes per player per second with interest management",
        "B/s",
        f.bytes_per_player_s,
        Lower,
        Some((
            "every actor to every player",
            f.bytes_per_player_s_everything,
        )),
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal: p99 tick under 5000 us ({}), interest management saving at least 10x ({})",
        met(f.p99 < 5_000),
        met(interest_saving >= 10.0),
    );
}
