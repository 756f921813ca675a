//! One line, 1,000 moving players and 10,000 wandering NPCs at 20 Hz on one
//! core: tick time percentiles and world bytes per player per second, with
//! interest management and, for comparison, what sending every change of
//! every actor to every player would cost (the same delta encoding, no
//! relevancy), counted in the same run. Then the same world as a game on
//! the game API (`hearth_world::WorldGame`), with the same walks through
//! real client replicas, and the ratio of the two.
//!
//! `cargo bench -p hearth-world --bench tick` (HEARTH_BENCH_TICKS to change
//! the measured ticks).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hearth_world::actor::{field, Props};
use hearth_world::directory::NEW_PLAYER_VALUES;
use hearth_world::npc::Rng;
use hearth_world::wire::{self, ClientState, Move};
use hearth_world::{
    ActorId, Arrival, Line, LineConfig, LineInput, LineOutput, Pos, Zone, UNITS_PER_CELL,
};

const PLAYERS: u64 = 1_000;
const NPCS: u32 = 10_000;
const WARMUP_TICKS: usize = 100;

struct Figures {
    p50: u128,
    p99: u128,
    bytes_per_player_s: f64,
}

fn percentiles(mut durations: Vec<std::time::Duration>, bytes: u64, seconds: f64) -> Figures {
    durations.sort();
    let pct =
        |p: usize| durations[(durations.len() * p / 100).min(durations.len() - 1)].as_micros();
    Figures {
        p50: pct(50),
        p99: pct(99),
        bytes_per_player_s: bytes as f64 / PLAYERS as f64 / seconds,
    }
}

fn bench_zone() -> Zone {
    let mut spec = Zone::open_field("bench", 400, 400).spec;
    spec.npcs = NPCS;
    Zone::new(spec).expect("valid")
}

/// The built-in world as a game on the game API, the same crowd walking the
/// same way, each player through a client replica that predicts its moves
/// and acknowledges frames.
fn game_api(measured: usize) -> Figures {
    use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
    use hearth_game::{GameLine, GameOutput};
    use hearth_replica::game_replica::GameReplica;
    let zone = bench_zone();
    let step = zone.step_per_tick();
    let hz = f64::from(zone.spec.tick_hz);
    let mut line = GameLine::new(Arc::new(hearth_world::WorldGame::new(zone.clone())), 1)
        .with_save_period(0);
    let mut clients: Vec<GameReplica> = (0..=PLAYERS)
        .map(|_| GameReplica::new(line.schema().clone()))
        .collect();
    let mut rng = Rng::new(2);
    let side = i64::from(zone.width - 2) * i64::from(UNITS_PER_CELL);
    let random_spot = |rng: &mut Rng| {
        Pos::new(
            (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
            (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        )
    };
    let mut targets: Vec<Pos> = (0..=PLAYERS).map(|_| random_spot(&mut rng)).collect();
    for player in 1..=PLAYERS {
        line.join_as(player, &format!("player-{player}"), None);
    }
    let mut durations = Vec::with_capacity(measured);
    let mut bytes = 0u64;
    for tick in 0..WARMUP_TICKS + measured {
        let started = Instant::now();
        line.tick();
        let elapsed = started.elapsed();
        for output in line.drain_outputs() {
            if let GameOutput::Send {
                player,
                channel,
                bytes: payload,
            } = output
            {
                if tick >= WARMUP_TICKS {
                    bytes += payload.len() as u64;
                }
                let client = &mut clients[player as usize];
                match channel {
                    RELIABLE_CHANNEL => client.apply_reliable(&payload).expect("valid"),
                    _ => client.apply_frame(&payload).expect("valid"),
                }
                while client.poll_event().is_some() {}
            }
        }
        for (player, client) in clients.iter_mut().enumerate().skip(1) {
            if let Some(at) = client.controlled().and_then(|own| client.position(own)) {
                let target = &mut targets[player];
                if at.distance(*target) < 50 {
                    *target = random_spot(&mut rng);
                }
                let next = at.step_towards(*target, step);
                if zone.path_clear(at, next) {
                    let _ = client.move_to(next);
                }
            }
            if let Some(state) = client.poll_ack() {
                line.input(player as u64, STATE_CHANNEL, &state)
                    .expect("a valid state");
            }
        }
        if tick >= WARMUP_TICKS {
            durations.push(elapsed);
        }
    }
    assert_eq!(line.stats().moves_too_fast, 0, "the walkers keep to the speed");
    assert_eq!(line.actor_count(), (PLAYERS + u64::from(NPCS)) as usize);
    percentiles(durations, bytes, measured as f64 / hz)
}

fn main() {
    let measured: usize = std::env::var("HEARTH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let zone = Arc::new(bench_zone());
    let hz = u64::from(zone.spec.tick_hz);
    let mut line = Line::new(LineConfig {
        zone: zone.clone(),
        number: 1,
        seed: 1,
        save_every_ticks: 0,
    });
    let mut rng = Rng::new(2);
    let side = i64::from(zone.width - 2) * i64::from(UNITS_PER_CELL);
    let random_spot = |rng: &mut Rng| {
        Pos::new(
            (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
            (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        )
    };
    let mut targets = HashMap::new();
    for player in 1..=PLAYERS {
        line.input(LineInput::Enter(Arrival {
            player,
            account: None,
            name: format!("player-{player}"),
            at: Some(random_spot(&mut rng)),
            appearance: 1,
            values: NEW_PLAYER_VALUES,
            bytes_per_second: 100_000,
            epoch: 1,
            allowances: Default::default(),
        }));
        targets.insert(player, random_spot(&mut rng));
    }
    let mut last_frame: HashMap<u64, u32> = HashMap::new();
    let mut seq: HashMap<u64, u32> = HashMap::new();
    let mut durations = Vec::with_capacity(measured);
    let mut bytes_out = 0u64;
    let mut bytes_everything = 0u64;
    // The actors' properties before the tick (all but the name, which the
    // default game never changes), in a reused buffer so that recording them
    // disturbs the measured tick as little as possible.
    let mut before: Vec<(ActorId, Pos, u8, u32, [i32; 4])> = Vec::new();
    for tick in 0..WARMUP_TICKS + measured {
        let measuring = tick >= WARMUP_TICKS;
        // Each player acknowledges its newest frame and walks on.
        for player in 1..=PLAYERS {
            let Some(props) = line.player_props(player) else {
                continue;
            };
            let at = props.pos;
            let target = targets.get_mut(&player).expect("every player has one");
            if at.distance(*target) < 50 {
                *target = random_spot(&mut rng);
            }
            let next = at.step_towards(*target, zone.step_per_tick());
            let mut moves = Vec::new();
            if zone.path_clear(at, next) {
                let s = seq.entry(player).or_default();
                *s += 1;
                moves.push(Move { seq: *s, pos: next });
            }
            line.input(LineInput::State {
                player,
                state: ClientState {
                    epoch: 1,
                    ack_tick: last_frame.get(&player).copied().unwrap_or(0),
                    moves,
                },
            });
        }
        if measuring {
            before.clear();
            before.extend(line.actors().iter().map(|a| {
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
                    bytes_out += bytes.len() as u64;
                }
                if channel == wire::STATE_CHANNEL {
                    last_frame.insert(player, now_tick);
                }
            }
        }
        if measuring {
            durations.push(elapsed);
            // Without interest management every player would get every
            // actor's changes: the sum of this tick's update sizes.
            let mut everything = 0u64;
            for (slot, actor) in line.actors().iter().enumerate() {
                let old = before.get(slot).filter(|b| b.0 == actor.id).map(
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
                        everything += (1
                            + hearth_codec::varint_len(u64::from(actor.id.0))
                            + wire::props_len(mask, &actor.props))
                            as u64;
                    }
                } else {
                    everything += (3 + wire::props_len(field::ALL, &actor.props)) as u64;
                }
            }
            bytes_everything += everything * PLAYERS;
        }
    }
    durations.sort();
    let pct =
        |p: usize| durations[(durations.len() * p / 100).min(durations.len() - 1)].as_micros();
    let seconds = measured as f64 / hz as f64;
    let per_player = bytes_out as f64 / PLAYERS as f64 / seconds;
    let per_player_everything = bytes_everything as f64 / PLAYERS as f64 / seconds;
    println!(
        "players={PLAYERS} npcs={NPCS} ticks={measured} tick_p50_us={} tick_p99_us={} tick_max_us={} bytes_per_player_s={:.0} bytes_per_player_s_no_interest={:.0} interest_saving={:.1}x",
        pct(50),
        pct(99),
        durations.last().map_or(0, |d| d.as_micros()),
        per_player,
        per_player_everything,
        per_player_everything / per_player.max(1.0),
    );
    use hearth_figures::{figure, Better::Lower};
    let players = format!("{PLAYERS} players, {NPCS} NPCs");
    figure(
        "tick",
        &format!("world tick p50, {players}"),
        "us",
        pct(50) as f64,
        Lower,
        None,
    );
    figure(
        "tick",
        &format!("world tick p99, {players}"),
        "us",
        pct(99) as f64,
        Lower,
        Some(("the 10 ms budget", 10_000.0)),
    );
    figure(
        "tick",
        "bytes per player per second with interest management",
        "B/s",
        per_player,
        Lower,
        Some(("every actor to every player", per_player_everything)),
    );
    let builtin = Figures {
        p50: pct(50),
        p99: pct(99),
        bytes_per_player_s: per_player,
    };
    let game = game_api(measured);
    println!(
        "game API: players={PLAYERS} npcs={NPCS} ticks={measured} tick_p50_us={} tick_p99_us={} bytes_per_player_s={:.0}",
        game.p50, game.p99, game.bytes_per_player_s
    );
    println!(
        "game API against the built-in line: p50 {:.3}x, p99 {:.3}x, bytes {:.3}x (goal: within 1.05x)",
        game.p50 as f64 / builtin.p50.max(1) as f64,
        game.p99 as f64 / builtin.p99.max(1) as f64,
        game.bytes_per_player_s / builtin.bytes_per_player_s.max(1.0),
    );
    figure(
        "tick",
        &format!("built-in world on the game API, tick p50, {players}"),
        "us",
        game.p50 as f64,
        Lower,
        Some(("the built-in line", builtin.p50 as f64)),
    );
    figure(
        "tick",
        &format!("built-in world on the game API, tick p99, {players}"),
        "us",
        game.p99 as f64,
        Lower,
        Some(("the built-in line", builtin.p99 as f64)),
    );
    println!(
        "goal: p99 tick under 10000 us ({}), interest management saving at least 10x ({})",
        if pct(99) < 10_000 { "met" } else { "NOT met" },
        if per_player_everything / per_player.max(1.0) >= 10.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
