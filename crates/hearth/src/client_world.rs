//! `hearth client` in the built-in world: what the player sees and hears
//! printed a line each, typed commands (or the command line's orders) sent,
//! over `hearth_client::world`.

use hearth_client::world::generated::{ChatScope, Message, Npc, Player, SayScope};
use hearth_client::world::{WorldClient, WorldUpdate};
use hearth_client::Event;
use hearth_replica::game_replica::GameReplica;
use hearth_world::Pos;

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{cell_of, parse_cell, print_event, ClientArgs, HELP};
use crate::terminal_text::escaped;

/// `--watch SECONDS` (print updates, then leave), or commands from stdin
/// until `/quit`, the end of stdin or of the session.
pub async fn world_mode(world: WorldClient, args: &ClientArgs) -> anyhow::Result<()> {
    let mut terminal = WorldTerminal {
        world,
        args,
        orders: Orders::default(),
    };
    if let Some(seconds) = args.watch {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
        while let Ok(Some(update)) = tokio::time::timeout_at(deadline, terminal.world.next()).await
        {
            if !terminal.show(update).await {
                return Ok(());
            }
        }
    } else {
        println!("in the world; {HELP}");
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line? {
                    Some(line) if run_command(&mut terminal.world, line.trim()).await => {}
                    _ => break,
                },
                update = terminal.world.next() => match update {
                    Some(update) => {
                        if !terminal.show(update).await {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                }
            }
        }
    }
    terminal.world.close(0, "bye").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// The terminal's world, with the command line's orders carried out once
/// the player is in.
struct WorldTerminal<'a> {
    world: WorldClient,
    args: &'a ClientArgs,
    orders: Orders,
}

impl WorldTerminal<'_> {
    /// Prints one update and carries out the orders it allows; false once
    /// the session is over.
    async fn show(&mut self, update: WorldUpdate) -> bool {
        if !print_update(&update, self.world.replica(), self.world.position()) {
            return false;
        }
        self.orders
            .carry_out(&mut self.world, self.args, &update)
            .await;
        true
    }
}

/// The command line's orders (`--zone`, `--line`, `--say`, `--move`),
/// carried out once in: the game picks where a player enters (their saved
/// place), so `--zone` is a travel there, and the rest waits until the
/// player is in that zone.
#[derive(Default)]
struct Orders {
    travelled: bool,
    done: bool,
}

impl Orders {
    async fn carry_out(
        &mut self,
        world: &mut WorldClient,
        args: &ClientArgs,
        update: &WorldUpdate,
    ) {
        let WorldUpdate::Message(Message::Entered { zone }) = update else {
            return;
        };
        if self.done {
            return;
        }
        if let Some(wanted) = args.zone.as_deref().filter(|wanted| *wanted != zone) {
            if !self.travelled {
                self.travelled = true;
                world.travel(wanted).await;
            }
            return;
        }
        self.done = true;
        if let Some(line) = args.line {
            world.switch_line(line).await;
        }
        if let Some(text) = &args.say {
            world.say(SayScope::Zone, "", text).await;
        }
        if let Some(cell) = args.move_to {
            world.move_to(cell);
        }
    }
}

/// Runs one typed command; false to quit.
async fn run_command(world: &mut WorldClient, line: &str) -> bool {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match command {
        "" => {}
        "/quit" => return false,
        "/move" => match parse_cell(&rest.replace(' ', ",")) {
            Ok(cell) => world.move_to(cell),
            Err(why) => println!("{why}"),
        },
        "/say" => world.say(SayScope::Zone, "", rest).await,
        "/l" => world.say(SayScope::Line, "", rest).await,
        "/whisper" | "/w" => match rest.split_once(' ') {
            Some((to, text)) => world.say(SayScope::Whisper, to, text).await,
            None => println!("usage: /whisper NAME TEXT"),
        },
        "/line" => match rest.parse() {
            Ok(line) => world.switch_line(line).await,
            Err(_) => println!("usage: /line N"),
        },
        "/zone" => world.travel(rest).await,
        "/who" => {
            let replica = world.replica();
            for (name, at) in Player::all(replica)
                .map(|p| (p.name(), replica.server_position(p.id())))
                .chain(Npc::all(replica).map(|n| (n.name(), replica.server_position(n.id()))))
            {
                if let Some(at) = at {
                    let (x, y) = cell_of(at);
                    println!("  {} at {x:.1},{y:.1}", escaped(name));
                }
            }
        }
        other if other.starts_with('/') => {
            println!("unknown command {}; {HELP}", escaped(other))
        }
        _ => world.say(SayScope::Zone, "", line).await,
    }
    true
}

/// One line per event worth showing, with the player's own position where
/// they are (`own`); false once the session is over. Everything the server
/// chose is escaped.
pub(crate) fn print_update(update: &WorldUpdate, replica: &GameReplica, own: Option<Pos>) -> bool {
    let at = |pos: Option<Pos>| pos.map(cell_of).unwrap_or((0.0, 0.0));
    match update {
        WorldUpdate::Entered => {}
        WorldUpdate::Message(Message::Entered { zone }) => {
            println!("entered {}", escaped(zone))
        }
        WorldUpdate::Spawned(id) => {
            let name = Player::get(replica, *id)
                .map(|p| p.name())
                .or_else(|| Npc::get(replica, *id).map(|n| n.name()));
            if let Some(name) = name {
                let (x, y) = at(replica.server_position(*id));
                println!("sees {} at {x:.1},{y:.1}", escaped(name));
            }
        }
        WorldUpdate::Despawned(id) => println!("lost sight of #{}", id.0),
        WorldUpdate::Moved(id) => {
            if let Some(player) = Player::get(replica, *id) {
                let (x, y) = at(replica.server_position(*id));
                println!("{} at {x:.1},{y:.1}", escaped(player.name()));
            }
        }
        WorldUpdate::Message(Message::Chat {
            scope,
            from,
            to,
            text,
        }) => {
            let (from, to, text) = (escaped(from), escaped(to), escaped(text));
            match scope {
                ChatScope::System => println!("[system] {text}"),
                ChatScope::Whisper => println!("[whisper {from} -> {to}] {text}"),
                ChatScope::Zone => println!("[zone] {from}: {text}"),
                ChatScope::Line => println!("[line] {from}: {text}"),
            }
        }
        WorldUpdate::Message(Message::Refused { about, reason }) => {
            println!("refused ({}): {}", about.name(), escaped(reason))
        }
        WorldUpdate::Corrected => {
            let (x, y) = at(own);
            println!("corrected by the server to {x:.1},{y:.1}");
        }
        WorldUpdate::Session(Event::Closed(reason)) => {
            println!("closed: {}", escaped(reason));
            return false;
        }
        WorldUpdate::Session(event) => print_event(event),
        WorldUpdate::Malformed(why) => println!("malformed world message: {}", escaped(why)),
    }
    true
}
