//! `hearth client` against the world on the game API (`hearth serve
//! --world-engine game-api`): the same commands and the same lines printed
//! as against the built-in engine, over `hearth_client::world_api`.

use hearth_client::world_api::generated::{ChatScope, Message, Npc, Player, SayScope};
use hearth_client::world_api::{WorldApiClient, WorldApiUpdate};
use hearth_client::Event;
use hearth_replica::game_replica::GameReplica;
use hearth_world::Pos;

use crate::client::{cell_of, parse_cell, print_event, run_terminal, ClientArgs, Terminal, HELP};
use crate::terminal_text::escaped;

pub async fn world_mode(world: WorldApiClient, args: &ClientArgs) -> anyhow::Result<()> {
    let mut terminal = ApiTerminal {
        world,
        args,
        orders: Orders::default(),
    };
    run_terminal(&mut terminal, args.watch).await
}

/// The terminal's world on the game API, with the command line's orders
/// carried out once the player is in.
struct ApiTerminal<'a> {
    world: WorldApiClient,
    args: &'a ClientArgs,
    orders: Orders,
}

impl Terminal for ApiTerminal<'_> {
    type Update = WorldApiUpdate;

    async fn next_update(&mut self) -> Option<WorldApiUpdate> {
        self.world.next().await
    }

    async fn show(&mut self, update: WorldApiUpdate) -> bool {
        if !print_update(&update, self.world.replica(), self.world.position()) {
            return false;
        }
        self.orders
            .carry_out(&mut self.world, self.args, &update)
            .await;
        true
    }

    async fn command(&mut self, line: &str) -> bool {
        run_command(&mut self.world, line).await
    }

    async fn close(&self) {
        self.world.close(0, "bye").await;
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
        world: &mut WorldApiClient,
        args: &ClientArgs,
        update: &WorldApiUpdate,
    ) {
        let WorldApiUpdate::Message(Message::Entered { zone }) = update else {
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
async fn run_command(world: &mut WorldApiClient, line: &str) -> bool {
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

/// One line per event worth showing, as against the built-in engine, with
/// the player's own position where they are (`own`); false once the
/// session is over. Everything the server chose is escaped.
pub(crate) fn print_update(
    update: &WorldApiUpdate,
    replica: &GameReplica,
    own: Option<Pos>,
) -> bool {
    let at = |pos: Option<Pos>| pos.map(cell_of).unwrap_or((0.0, 0.0));
    match update {
        WorldApiUpdate::Entered => {}
        WorldApiUpdate::Message(Message::Entered { zone }) => {
            println!("entered {}", escaped(zone))
        }
        WorldApiUpdate::Spawned(id) => {
            let name = Player::get(replica, *id)
                .map(|p| p.name())
                .or_else(|| Npc::get(replica, *id).map(|n| n.name()));
            if let Some(name) = name {
                let (x, y) = at(replica.server_position(*id));
                println!("sees {} at {x:.1},{y:.1}", escaped(name));
            }
        }
        WorldApiUpdate::Despawned(id) => println!("lost sight of #{}", id.0),
        WorldApiUpdate::Moved(id) => {
            if let Some(player) = Player::get(replica, *id) {
                let (x, y) = at(replica.server_position(*id));
                println!("{} at {x:.1},{y:.1}", escaped(player.name()));
            }
        }
        WorldApiUpdate::Message(Message::Chat {
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
        WorldApiUpdate::Message(Message::Refused { about, reason }) => {
            println!("refused ({}): {}", about.name(), escaped(reason))
        }
        WorldApiUpdate::Corrected => {
            let (x, y) = at(own);
            println!("corrected by the server to {x:.1},{y:.1}");
        }
        WorldApiUpdate::Session(Event::Closed(reason)) => {
            println!("closed: {}", escaped(reason));
            return false;
        }
        WorldApiUpdate::Session(event) => print_event(event),
        WorldApiUpdate::Malformed(why) => println!("malformed world message: {}", escaped(why)),
    }
    true
}
