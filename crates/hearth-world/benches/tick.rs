//! One line, 1,000 moving players and 10,000 wandering NPCs at 20 Hz on one
//! core: tick time percentiles and world bytes per player per second, with
//! interest management and, for comparison, what sending every change of
//! every actor to every player would cost (the same delta encoding, no
//! relevancy), counted in the same run.
//!
//! Beside it, the same world as a game on the game API
//! (`hearth_world::WorldGame`): the same zone, NPCs and walks, each player
//! through a client replica that predicts its moves and acknowledges
//! frames. The two lines tick in turn, one tick each, so that whatever
//! else the machine does falls on both alike; the ratio of their figures
//! is the goal (within 1.05x).
//!
//! `cargo bench -p hearth-world --bench tick` (HEARTH_BENCH_TICKS to change
//! the measured ticks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{GameLine, GameOutput};
use hearth_replica::game_replica::GameReplica;
use hearth_world::actor::{field, Props};
use hearth_world::directory::NEW_PLAYER_VALUES;
use hearth_world::npc::Rng;
use hearth_world::wire::{self, ClientState, Move};
use hearth_world::{
    ActorId, Arrival, Line, LineConfig, LineInput, LineOutput, Pos, WorldGame, Zone, UNITS_PER_CELL,
};

const PLAYERS: u64 = 1_000;
const NPCS: u32 = 10_000;
const WARMUP_TICKS: usize = 100;

fn bench_zone() -> Zone {
    let mut spec = Zone::open_field("bench", 400, 400).spec;
    spec.npcs = NPCS;
    Zone::new(spec).expect("valid")
}

/// Where each player walks next: a random spot of the field.
fn random_spot(zone: &Zone, rng: &mut Rng) -> Pos {
    let side = i64::from(zone.width - 2) * i64::from(UNITS_PER_CELL);
    Pos::new(
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
    )
}

/// What one line's measured ticks came to.
#[derive(Default)]
struct Tally {
    durations: Vec<Duration>,
    bytes: u64,
}

struct Figures {
    p50: u128,
    p99: u128,
    max: u128,
    bytes_per_player_s: f64,
}

impl Tally {
    fn figures(mut self, seconds: f64) -> Figures {
        self.durations.sort();
        let pct = |p: usize| {
            self.durations[(self.durations.len() * p / 100).min(self.durations.len() - 1)]
                .as_micros()
        };
        Figures {
            p50: pct(50),
            p99: pct(99),
            max: self.durations.last().map_or(0, |d| d.as_micros()),
            bytes_per_player_s: self.bytes as f64 / PLAYERS as f64 / seconds,
        }
    }
}

/// The built-in world's line, its players walking through `LineInput`s.
struct Builtin {
    zone: Arc<Zone>,
    line: Line,
    rng: Rng,
    targets: Vec<Pos>,
    last_frame: Vec<u32>,
    seq: Vec<u32>,
    tally: Tally,
    /// What the same ticks would have sent without interest management.
    bytes_everything: u64,
    /// The actors' properties before the tick (all but the name, which the
    /// default game never changes), in a reused buffer so that recording
    /// them disturbs the measured tick as little as possible.
    before: Vec<(ActorId, Pos, u8, u32, [i32; 4])>,
}

impl Builtin {
    fn new() -> Self {
        let zone = Arc::new(bench_zone());
        let mut line = Line::new(LineConfig {
            zone: zone.clone(),
            number: 1,
            seed: 1,
            save_every_ticks: 0,
        });
        let mut rng = Rng::new(2);
        let mut targets = vec![Pos::new(0, 0); PLAYERS as usize + 1];
        for player in 1..=PLAYERS {
            line.input(LineInput::Enter(Arrival {
                player,
                account: None,
                name: format!("player-{player}"),
                at: Some(random_spot(&zone, &mut rng)),
                appearance: 1,
                values: NEW_PLAYER_VALUES,
                bytes_per_second: 100_000,
                epoch: 1,
                allowances: Default::default(),
            }));
            targets[player as usize] = random_spot(&zone, &mut rng);
        }
        Self {
            zone,
            line,
            rng,
            targets,
            last_frame: vec![0; PLAYERS as usize + 1],
            seq: vec![0; PLAYERS as usize + 1],
            tally: Tally::default(),
            bytes_everything: 0,
            before: Vec::new(),
        }
    }

    fn step(&mut self, measuring: bool) {
        let (zone, line) = (&self.zone, &mut self.line);
        // Each player acknowledges its newest frame and walks on.
        for player in 1..=PLAYERS {
            let Some(props) = line.player_props(player) else {
                continue;
            };
            let at = props.pos;
            let target = &mut self.targets[player as usize];
            if at.distance(*target) < 50 {
                *target = random_spot(zone, &mut self.rng);
            }
            let next = at.step_towards(*target, zone.step_per_tick());
            let mut moves = Vec::new();
            if zone.path_clear(at, next) {
                let s = &mut self.seq[player as usize];
                *s += 1;
                moves.push(Move { seq: *s, pos: next });
            }
            line.input(LineInput::State {
                player,
                state: ClientState {
                    epoch: 1,
                    ack_tick: self.last_frame[player as usize],
                    moves,
                },
            });
        }
        if measuring {
            self.before.clear();
            self.before.extend(line.actors().iter().map(|a| {
                (
                    a.id,
                    a.props.pos,
                    a.props.facing,
                    a.props.appearance,
                    a.props.values,
                )
            }));
        }
        let started = Instant::now();
        line.tick();
        let elapsed = started.elapsed();
        let now_tick = line.tick_count();
        for output in line.drain_outputs() {
            if let LineOutput::Send {
                player,
                channel,
                bytes,
            } = output
            {
                if measuring {
                    self.tally.bytes += bytes.len() as u64;
                }
                if channel == wire::STATE_CHANNEL {
                    self.last_frame[player as usize] = now_tick;
                }
            }
        }
        if !measuring {
            return;
        }
        self.tally.durations.push(elapsed);
        // Without interest management every player would get every actor's
        // changes: the sum of this tick's update sizes.
        let mut everything = 0u64;
        for (slot, actor) in line.actors().iter().enumerate() {
            let old = self.before.get(slot).filter(|b| b.0 == actor.id).map(
                |&(_, pos, facing, appearance, values)| Props {
                    pos,
                    facing,
                    name: actor.props.name.clone(),
                    appearance,
                    values,
                },
            );
            if let Some(old) = old {
                let mask = actor.props.diff(&old);
                if mask != 0 {
                    everything +=
                        (1 + hearth_codec::varint_len(u64::from(actor.id.0))
                            + wire::props_len(mask, &actor.props)) as u64;
                }
            } else {
                everything += (3 + wire::props_len(field::ALL, &actor.props)) as u64;
            }
        }
        self.bytes_everything += everything * PLAYERS;
    }
}

/// The same world as a game on the game API, its players walking through
/// client replicas.
struct OnTheApi {
    zone: Zone,
    line: GameLine<WorldGame>,
    clients: Vec<GameReplica>,
    rng: Rng,
    targets: Vec<Pos>,
    tally: Tally,
}

impl OnTheApi {
    fn new() -> Self {
        let zone = bench_zone();
        let game = WorldGame::new(vec![zone.clone()]).expect("one zone");
        let mut line = GameLine::new(Arc::new(game), 1).with_save_period(0);
        let clients = (0..=PLAYERS)
            .map(|_| GameReplica::new(line.schema().clone()))
            .collect();
        let mut rng = Rng::new(2);
        let targets = (0..=PLAYERS)
            .map(|_| random_spot(&zone, &mut rng))
            .collect();
        for player in 1..=PLAYERS {
            line.join_as(player, &format!("player-{player}"), None);
        }
        Self {
            zone,
            line,
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
    let mut builtin = Builtin::new();
    let mut api = OnTheApi::new();
    for tick in 0..WARMUP_TICKS + measured {
        let measuring = tick >= WARMUP_TICKS;
        builtin.step(measuring);
        api.step(measuring);
    }
    assert_eq!(
        api.line.stats().moves_too_fast,
        0,
        "the walkers keep to the speed"
    );
    assert_eq!(api.line.actor_count(), (PLAYERS + u64::from(NPCS)) as usize);
    let seconds = measured as f64 / f64::from(builtin.zone.spec.tick_hz);
    let per_player_everything = builtin.bytes_everything as f64 / PLAYERS as f64 / seconds;
    let builtin = builtin.tally.figures(seconds);
    let game = api.tally.figures(seconds);
    println!(
        "players={PLAYERS} npcs={NPCS} ticks={measured} tick_p50_us={} tick_p99_us={} tick_max_us={} bytes_per_player_s={:.0} bytes_per_player_s_no_interest={:.0} interest_saving={:.1}x",
        builtin.p50,
        builtin.p99,
        builtin.max,
        builtin.bytes_per_player_s,
        per_player_everything,
        per_player_everything / builtin.bytes_per_player_s.max(1.0),
    );
    println!(
        "on the game API: players={PLAYERS} npcs={NPCS} ticks={measured} tick_p50_us={} tick_p99_us={} tick_max_us={} bytes_per_player_s={:.0}",
        game.p50, game.p99, game.max, game.bytes_per_player_s
    );
    println!(
        "on the game API against the built-in line: p50 {:.3}x, p99 {:.3}x, bytes {:.3}x (goal: within 1.05x)",
        game.p50 as f64 / builtin.p50.max(1) as f64,
        game.p99 as f64 / builtin.p99.max(1) as f64,
        game.bytes_per_player_s / builtin.bytes_per_player_s.max(1.0),
    );
    use hearth_figures::{figure, Better::Lower};
    let players = format!("{PLAYERS} players, {NPCS} NPCs");
    figure(
        "tick",
        &format!("world tick p50, {players}"),
        "us",
        builtin.p50 as f64,
        Lower,
        None,
    );
    figure(
        "tick",
        &format!("world tick p99, {players}"),
        "us",
        builtin.p99 as f64,
        Lower,
        Some(("the 10 ms budget", 10_000.0)),
    );
    figure(
        "tick",
        "bytes per player per second with interest management",
        "B/s",
        builtin.bytes_per_player_s,
        Lower,
        Some(("every actor to every player", per_player_everything)),
    );
    figure(
        "tick",
        &format!("world on the game API, tick p50, {players}"),
        "us",
        game.p50 as f64,
        Lower,
        Some(("the built-in line", builtin.p50 as f64)),
    );
    figure(
        "tick",
        &format!("world on the game API, tick p99, {players}"),
        "us",
        game.p99 as f64,
        Lower,
        Some(("the built-in line", builtin.p99 as f64)),
    );
    println!(
        "goal: p99 tick under 10000 us ({}), interest management saving at least 10x ({})",
        if builtin.p99 < 10_000 {
            "met"
        } else {
            "NOT met"
        },
        if per_player_everything / builtin.bytes_per_player_s.max(1.0) >= 10.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
