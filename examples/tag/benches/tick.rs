//! Tag with 1,000 players in one arena at 20 Hz on one core, each walking
//! to random targets at the legal speed through its own client replica
//! (which predicts, sends its moves and acknowledges frames): the game
//! line's tick time and bytes per player per second, with Hearth's
//! movement checks, interest management, budgets and deltas on the game
//! API. Its peer, measured in the same run on the same field with the same
//! walks: the built-in world's line (hearth-world), which does the same
//! jobs for its fixed kind of actor without the game API.
//!
//! `cargo bench -p tag --bench tick` (HEARTH_BENCH_TICKS to change the
//! measured ticks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_game::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_game::{Game, GameLine, GameOutput, Pos, Rng, Zone, UNITS_PER_CELL};
use hearth_replica::game_replica::GameReplica;
use hearth_world::directory::NEW_PLAYER_VALUES;
use hearth_world::wire::{ClientState, Move};
use hearth_world::{Arrival, Line, LineConfig, LineInput, LineOutput};

const PLAYERS: u64 = 1_000;
const SIDE: usize = 200;
const WARMUP_TICKS: usize = 100;

struct Figures {
    p50: Duration,
    p99: Duration,
    bytes_per_player_s: f64,
}

fn percentiles(mut durations: Vec<Duration>, bytes: u64, measured: usize) -> Figures {
    durations.sort();
    let pct = |p: usize| durations[(durations.len() * p / 100).min(durations.len() - 1)];
    let seconds = measured as f64 / 20.0;
    Figures {
        p50: pct(50),
        p99: pct(99),
        bytes_per_player_s: bytes as f64 / PLAYERS as f64 / seconds,
    }
}

/// Where each player walks next: a random spot of the field.
fn random_spot(rng: &mut Rng) -> Pos {
    let side = (SIDE as i64 - 2) * i64::from(UNITS_PER_CELL);
    Pos::new(
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
        (i64::from(UNITS_PER_CELL) + rng.range(0, side)) as i32,
    )
}

fn tag_line(measured: usize, step: i64) -> Figures {
    let game = Arc::new(tag::Tag::crowd(SIDE, PLAYERS as usize));
    let zone = game.zones().remove(0);
    let mut line = GameLine::new(game.clone(), 1);
    let mut clients: Vec<GameReplica> = (0..PLAYERS)
        .map(|_| GameReplica::new(line.schema().clone()))
        .collect();
    let mut rng = Rng::new(2);
    let mut targets: Vec<Pos> = (0..PLAYERS).map(|_| random_spot(&mut rng)).collect();
    for player in 0..PLAYERS {
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
        for (player, client) in clients.iter_mut().enumerate() {
            if let Some(own) = client.controlled() {
                if let Some(at) = client.position(own) {
                    let target = &mut targets[player];
                    if at.distance(*target) < 50 {
                        *target = random_spot(&mut rng);
                    }
                    let next = at.step_towards(*target, step);
                    if zone.path_clear(at, next) {
                        let _ = client.move_to(next);
                    }
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
    assert_eq!(
        line.stats().moves_too_fast,
        0,
        "the walkers keep to the speed"
    );
    percentiles(durations, bytes, measured)
}

fn builtin_line(measured: usize, step: i64) -> Figures {
    let zone = Arc::new(Zone::open_field("bench", SIDE, SIDE));
    let mut line = Line::new(LineConfig {
        zone: zone.clone(),
        number: 1,
        seed: 1,
        save_every_ticks: 0,
    });
    let mut rng = Rng::new(2);
    let mut targets: Vec<Pos> = (0..PLAYERS).map(|_| random_spot(&mut rng)).collect();
    for player in 0..PLAYERS {
        line.input(LineInput::Enter(Arrival {
            player,
            account: None,
            name: format!("player-{player}"),
            at: Some(random_spot(&mut rng)),
            appearance: 1,
            values: NEW_PLAYER_VALUES,
            bytes_per_second: 64_000,
            epoch: 1,
            allowances: Default::default(),
        }));
    }
    let mut last_frame = vec![0u32; PLAYERS as usize];
    let mut seq = vec![0u32; PLAYERS as usize];
    let mut durations = Vec::with_capacity(measured);
    let mut bytes = 0u64;
    for tick in 0..WARMUP_TICKS + measured {
        for player in 0..PLAYERS {
            let Some(props) = line.player_props(player) else {
                continue;
            };
            let at = props.pos;
            let target = &mut targets[player as usize];
            if at.distance(*target) < 50 {
                *target = random_spot(&mut rng);
            }
            let next = at.step_towards(*target, step);
            let mut moves = Vec::new();
            if zone.path_clear(at, next) {
                let s = &mut seq[player as usize];
                *s += 1;
                moves.push(Move { seq: *s, pos: next });
            }
            line.input(LineInput::State {
                player,
                state: ClientState {
                    epoch: 1,
                    ack_tick: last_frame[player as usize],
                    moves,
                },
            });
        }
        let started = Instant::now();
        line.tick();
        let elapsed = started.elapsed();
        let now = line.tick_count();
        for output in line.drain_outputs() {
            if let LineOutput::Send {
                player,
                channel,
                bytes: payload,
            } = output
            {
                if tick >= WARMUP_TICKS {
                    bytes += payload.len() as u64;
                }
                if channel == hearth_world::wire::STATE_CHANNEL {
                    last_frame[player as usize] = now;
                }
            }
        }
        if tick >= WARMUP_TICKS {
            durations.push(elapsed);
        }
    }
    percentiles(durations, bytes, measured)
}

fn main() {
    let measured: usize = std::env::var("HEARTH_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    // Both walk at the built-in zone's legal speed (tag's is faster).
    let step = Zone::open_field("bench", SIDE, SIDE).step_per_tick();
    let builtin = builtin_line(measured, step);
    let tag = tag_line(measured, step);
    for (name, f) in [("tag (game API)", &tag), ("built-in world", &builtin)] {
        println!(
            "{name}: players={PLAYERS} field={SIDE}x{SIDE} ticks={measured} tick_p50_us={} tick_p99_us={} bytes_per_player_s={:.0}",
            f.p50.as_micros(),
            f.p99.as_micros(),
            f.bytes_per_player_s
        );
    }
    use hearth_figures::{figure, Better::Lower};
    let label = format!("{PLAYERS} players");
    figure(
        "tag_tick",
        &format!("tag line tick p50, {label}"),
        "us",
        tag.p50.as_micros() as f64,
        Lower,
        Some(("the built-in world's line", builtin.p50.as_micros() as f64)),
    );
    figure(
        "tag_tick",
        &format!("tag line tick p99, {label}"),
        "us",
        tag.p99.as_micros() as f64,
        Lower,
        Some(("the built-in world's line", builtin.p99.as_micros() as f64)),
    );
    figure(
        "tag_tick",
        &format!("tag bytes per player per second, {label}"),
        "B/s",
        tag.bytes_per_player_s,
        Lower,
        Some(("the built-in world's line", builtin.bytes_per_player_s)),
    );
}
