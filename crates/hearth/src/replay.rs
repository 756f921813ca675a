//! `hearth replay FILE`: plays back what a client recorded (`hearth client
//! --record FILE`, or the server's recordings of a player or a line) into a
//! fresh replica, printing the world as the player saw it, at the recorded
//! pace or faster; pause, speed and seek from stdin. A recording starts
//! with the game's schema, and plays into that game's replica: the
//! built-in world's as the client prints it, any other game's as its
//! actors and messages.

use std::sync::Arc;
use std::time::Duration;

use hearth_client::world::{generated, update_of};
use hearth_replica::game_replica::{GameEvent, GameReplica};
use hearth_replica::game_wire::{RELIABLE_CHANNEL, STATE_CHANNEL};
use hearth_replica::record::{read_all, Record, SCHEMA_CHANNEL};
use hearth_replica::schema::Schema;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::terminal_text::escaped;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A recording made with `hearth client --record FILE`.
    file: std::path::PathBuf,
    /// Playback speed (2: twice as fast).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start this many seconds in (what came before is applied silently).
    #[arg(long, default_value_t = 0.0)]
    from: f64,
    /// Stop this many seconds in.
    #[arg(long)]
    to: Option<f64>,
}

const HELP: &str = "replay: type p (pause/play), s X (speed X), g S (go to S seconds), q (quit)";

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be above 0, not {}", args.speed);
    }
    let file = std::fs::File::open(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot open the recording {}: {e}", args.file.display()))?;
    let mut records = read_all(std::io::BufReader::new(file))?;
    let schema = match records.first() {
        Some(first) if first.channel == SCHEMA_CHANNEL => {
            let schema: Schema = serde_json::from_slice(&first.bytes)
                .map_err(|e| anyhow::anyhow!("the recording's game schema does not read: {e}"))?;
            println!(
                "a recording of the game {} (schema {})",
                escaped(schema.game()),
                schema.version()
            );
            records.remove(0);
            Arc::new(schema)
        }
        _ => anyhow::bail!(
            "the recording does not start with its game's schema: it was made by an older Hearth, whose world engine is gone"
        ),
    };
    let length = records.last().map_or(0, |r| r.micros);
    println!(
        "replaying {} messages over {:.1} s at {}x; {HELP}",
        records.len(),
        length as f64 / 1e6,
        args.speed
    );
    let mut player = Player::new(records, args.speed, schema);
    player.seek((args.from * 1e6) as u64);
    let stop_at = args.to.map(|s| (s * 1e6) as u64).unwrap_or(u64::MAX);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    while let Some(next) = player.next_micros() {
        if next > stop_at {
            break;
        }
        let wait = player.wait_for(next);
        tokio::select! {
            () = tokio::time::sleep(wait), if !player.paused => player.play_one(),
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if !player.command(line.trim()) {
                        return Ok(());
                    }
                }
                _ => stdin_open = false,
            },
            // Paused with stdin gone: nothing can resume it.
            else => break,
        }
    }
    println!("end of recording");
    Ok(())
}

/// What the recorded client had: the game's replica; `world`: it is the
/// built-in world's game (printed as the client prints it).
struct Seen {
    replica: GameReplica,
    world: bool,
}

impl Seen {
    fn new(schema: &Arc<Schema>) -> Self {
        Seen {
            replica: GameReplica::new(schema.clone()),
            world: schema.version() == generated::VERSION,
        }
    }
}

struct Player {
    records: Vec<Record>,
    at: usize,
    /// The game's schema, from the recording's first record.
    schema: Arc<Schema>,
    seen: Seen,
    speed: f64,
    paused: bool,
    /// Recording time shown last, and the wall clock then.
    shown: u64,
    shown_at: tokio::time::Instant,
}

impl Player {
    fn new(records: Vec<Record>, speed: f64, schema: Arc<Schema>) -> Self {
        Self {
            records,
            at: 0,
            seen: Seen::new(&schema),
            schema,
            speed,
            paused: false,
            shown: 0,
            shown_at: tokio::time::Instant::now(),
        }
    }

    fn next_micros(&self) -> Option<u64> {
        self.records.get(self.at).map(|r| r.micros)
    }

    fn wait_for(&self, micros: u64) -> Duration {
        let due =
            Duration::from_secs_f64(micros.saturating_sub(self.shown) as f64 / 1e6 / self.speed);
        (self.shown_at + due).saturating_duration_since(tokio::time::Instant::now())
    }

    fn apply(&mut self, show: bool) {
        let record = &self.records[self.at];
        self.at += 1;
        let (channel, bytes) = (record.channel, &record.bytes);
        let Seen { replica, world } = &mut self.seen;
        let applied = match channel {
            RELIABLE_CHANNEL => replica.apply_reliable(bytes),
            STATE_CHANNEL => replica.apply_frame(bytes),
            _ => Ok(()),
        };
        if let Err(error) = applied {
            println!("damaged message in the recording: {error}");
        }
        while let Some(event) = replica.poll_event() {
            if !show {
                continue;
            }
            if *world {
                if let Some(update) = update_of(&event) {
                    let own = replica.controlled().and_then(|me| replica.position(me));
                    crate::client_world::print_update(&update, replica, own);
                }
            } else {
                print_game_event(&event, replica);
            }
        }
    }

    fn play_one(&mut self) {
        let micros = self.records[self.at].micros;
        self.apply(true);
        self.shown = micros;
        self.shown_at = tokio::time::Instant::now();
    }

    /// Applies everything before `micros` silently (from the start when going back).
    fn seek(&mut self, micros: u64) {
        if micros < self.shown || self.at == 0 {
            self.at = 0;
            self.seen = Seen::new(&self.schema);
        }
        while self.next_micros().is_some_and(|t| t < micros) {
            self.apply(false);
        }
        self.shown = micros;
        self.shown_at = tokio::time::Instant::now();
    }

    /// A typed command; false to quit.
    fn command(&mut self, line: &str) -> bool {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "q" => return false,
            "p" => {
                self.paused = !self.paused;
                // Playing on from where it paused, not catching up.
                self.shown_at = tokio::time::Instant::now();
                println!("{}", if self.paused { "paused" } else { "playing" });
            }
            "s" => match rest.trim().parse::<f64>() {
                Ok(speed) if speed > 0.0 && speed.is_finite() => {
                    self.speed = speed;
                    self.shown_at = tokio::time::Instant::now();
                    println!("speed {speed}x");
                }
                _ => println!("usage: s X (a speed above 0)"),
            },
            "g" => match rest.trim().parse::<f64>() {
                Ok(seconds) if seconds >= 0.0 => {
                    self.seek((seconds * 1e6) as u64);
                    println!("at {seconds:.1} s");
                }
                _ => println!("usage: g SECONDS"),
            },
            _ => println!("{HELP}"),
        }
        true
    }
}

/// An event of a game this build knows no more of than its schema: its
/// actors by kind and its messages by name.
fn print_game_event(event: &GameEvent, replica: &GameReplica) {
    let schema = replica.schema();
    let kind = |id| {
        replica
            .actor(id)
            .map(|a| escaped(&schema.kinds()[usize::from(a.kind)].name).to_string())
            .unwrap_or_default()
    };
    match event {
        GameEvent::Joined { tick_hz } => println!("joined ({tick_hz} ticks a second)"),
        GameEvent::Spawned { id } => println!("spawned {} #{}", kind(*id), id.0),
        GameEvent::Despawned { id } => println!("gone #{}", id.0),
        GameEvent::Message { index, values } => {
            let name = &schema.messages()[usize::from(*index)].name;
            println!("{}: {}", escaped(name), escaped(&format!("{values:?}")));
        }
        GameEvent::Controlling { id: Some(id) } => println!("steering #{}", id.0),
        _ => {}
    }
}
