//! Tag with 1,000 players in one arena at 20 Hz on one core, each walking
//! to random targets at the legal speed through its own client replica
//! (which predicts, sends its moves and acknowledges frames): the game
//! line's tick time and bytes per player per second, with Hearth's
//! movement checks, interest management, budgets and deltas on the game
//! API. Its peer, measured in the same run on the same field with the same
//! walks and the same byte budget: the built-in world (`hearth_world::WorldGame`,
//! no NPCs) in a `GameLine` of its own, a game on the same API whose
//! players only walk. The two lines tick in turn, one tick each, so that
//! whatever else the machine does falls on both alike; the ratio of their
//! figures is what tag's own rules and properties (the chase, the rounds,
//! the scores) cost over a game whose players only walk.
//!
//! `cargo bench -p tag --bench tick` (HEARTH_BENCH_TICKS to change the
//! measured ticks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{Entrance, Game, GameLine, GameOutput, Pos, Rng, Zone, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;
use hearth_world::WorldGame;

const PLAYERS: u64 = 1_000;
const SIDE: usize = 200;
const WARMUP_TICKS: usize = 100;
/// Tag's budget (the game API's default), given to the world's players too:
/// the world's own is larger.
const BYTES_PER_SECOND: u32 = 64_000;

struct Figures {
    p50: Duration,
    p99: Duration,
    bytes_per_player_s: f64,
}

/// Where each player walks next: a random spot of the field.
fn random_spot(rng: &mut Rng) -> Pos {
    let side = (SIDE as i64 - 2) * i64::from(UNITS_PER_CELL);
    Pos::new(
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
    )
}

/// A line of `G` with its players, each walking through its own client
/// replica; what its measured ticks came to.
struct Walked<G: Game> {
    zone: Zone,
    line: GameLine<G>,
    clients: Vec<GameReplica>,
    rng: Rng,
    targets: Vec<Pos>,
    /// How far a player walks a tick: the same on both lines.
    step: i64,
    durations: Vec<Duration>,
    bytes: u64,
}

impl<G: Game> Walked<G> {
    /// `entrance` says how each player enters (drawing from the walks'
    /// random source if it needs to).
    fn new(game: G, step: i64, entrance: impl Fn(u64, &mut Rng) -> Entrance) -> Self {
        let game = Arc::new(game);
        let zone = game.zones().remove(0);
        let mut line = GameLine::new(game, 1);
        let clients = (0..PLAYERS)
            .map(|_| GameReplica::new(line.schema().clone()))
            .collect();
        // Seeded alike on both lines: both have the same walks.
        let mut rng = Rng::new(2);
        let targets = (0..PLAYERS).map(|_| random_spot(&mut rng)).collect();
        for player in 0..PLAYERS {
            line.enter(entrance(player, &mut rng));
        }
        Self {
            zone,
            line,
            clients,
            rng,
            targets,
            step,
            durations: Vec::new(),
            bytes: 0,
        }
    }

    fn step(&mut self, measuring: bool) {
        let started = Instant::now();
        self.line.tick();
        let elapsed = started.elapsed();
        for output in self.line.drain_outputs() {
            if let GameOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                if measuring {
                    self.bytes += bytes.len() as u64;
                }
                let client = &mut self.clients[player as usize];
                match channel {
                    RELIABLE_CHANNEL => client.apply_reliable(&bytes).expect("valid"),
                    _ => client.apply_frame(&bytes).expect("valid"),
                }
                while client.poll_event().is_some() {}
            }
        }
        for (player, client) in self.clients.iter_mut().enumerate() {
            if let Some(at) = client.controlled().and_then(|own| client.position(own)) {
                let target = &mut self.targets[player];
                if at.distance(*target) < 50 {
                    *target = random_spot(&mut self.rng);
                }
                let next = at.step_towards(*target, self.step);
                if self.zone.path_clear(at, next) {
                    let _ = client.move_to(next);
                }
            }
            if let Some(state) = client.poll_ack() {
                self.line
                    .input(player as u64, STATE_CHANNEL, &state)
                    .expect("a valid state");
            }
        }
        if measuring {
            self.durations.push(elapsed);
        }
    }

    fn figures(mut self, measured: usize) -> Figures {
        assert_eq!(
            self.line.stats().moves_too_fast,
            0,
            "the walkers keep to the speed"
        );
        self.durations.sort();
        let pct = |p: usize| {
            self.durations[(self.durations.len() * p / 100).min(self.durations.len() - 1)]
        };
        let seconds = measured as f64 / f64::from(self.zone.spec.tick_hz);
        Figures {
            p50: pct(50),
            p99: pct(99),
            bytes_per_player_s: self.bytes as f64 / PLAYERS as f64 / seconds,
        }
    }
}

fn main() {
    let measured: usize = std::env::var("HEARTH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let field = Zone::open_field("bench", SIDE, SIDE);
    // Both walk at the built-in zone's legal speed (tag's is faster).
    let step = field.step_per_tick();
    let mut tag = Walked::new(
        tag::Tag::crowd(SIDE, PLAYERS as usize),
        step,
        |player, _| Entrance {
            player,
            name: format!("player-{player}"),
            ..Entrance::default()
        },
    );
    let world = WorldGame::new(vec![field]).expect("one zone");
    // The world's players appear at random spots of the field (where a
    // travel would put them), as they did on the built-in line this bench
    // used to compare with, rather than on the field's few spawn points.
    let mut world = Walked::new(world, step, |player, rng| Entrance {
        player,
        name: format!("player-{player}"),
        at: Some(random_spot(rng)),
        bytes_per_second: Some(BYTES_PER_SECOND),
        ..Entrance::default()
    });
    for tick in 0..WARMUP_TICKS + measured {
        let measuring = tick >= WARMUP_TICKS;
        world.step(measuring);
        tag.step(measuring);
    }
    let (tag, world) = (tag.figures(measured), world.figures(measured));
    for (name, f) in [
        ("tag (game API)", &tag),
        ("built-in world (game API)", &world),
    ] {
        println!(
            "{name}: players={PLAYERS} field={SIDE}x{SIDE} ticks={measured} tick_p50_us={} tick_p99_us={} bytes_per_player_s={:.0}",
            f.p50.as_micros(),
            f.p99.as_micros(),
            f.bytes_per_player_s
        );
    }
    println!(
        "tag against the built-in world: p50 {:.3}x, p99 {:.3}x, bytes {:.3}x",
        tag.p50.as_secs_f64() / world.p50.as_secs_f64().max(1e-9),
        tag.p99.as_secs_f64() / world.p99.as_secs_f64().max(1e-9),
        tag.bytes_per_player_s / world.bytes_per_player_s.max(1.0),
    );
    use hearth_figures::{figure, Better::Lower};
    let label = format!("{PLAYERS} players");
    let peer = "the built-in world on the game API";
    figure(
        "tag_tick",
        &format!("tag line tick p50, {label}"),
        "us",
        tag.p50.as_micros() as f64,
        Lower,
        Some((peer, world.p50.as_micros() as f64)),
    );
    figure(
        "tag_tick",
        &format!("tag line tick p99, {label}"),
        "us",
        tag.p99.as_micros() as f64,
        Lower,
        Some((peer, world.p99.as_micros() as f64)),
    );
    figure(
        "tag_tick",
        &format!("tag bytes per player per second, {label}"),
        "B/s",
        tag.bytes_per_player_s,
        Lower,
        Some((peer, world.bytes_per_player_s)),
    );
}
