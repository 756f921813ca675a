//! `hearth client`: log in, enter the world, show what the player sees and
//! hears, take commands from stdin (or `--say` / `--watch` for scripts);
//! `--send` uses the echo service instead. It plays the built-in world on
//! whichever engine the server runs it (asked of the web API, `--web`): its
//! own (here), or the game API (`client_api`).

use std::time::Duration;

use hearth_client::world::{Update, WorldClient, WorldEvent};
use hearth_client::{connect, Accounts, ChannelKind, ChannelSpec, Delivery, Event, Options};
use hearth_world::wire::ChatScope;
use hearth_world::{Pos, UNITS_PER_CELL};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::terminal_text::escaped;

#[derive(clap::Args)]
pub struct ClientArgs {
    // The fields the game API's mode reads too are pub(crate).
    /// hearth://HOST:PORT (TCP then UDP), udp://, tcp://, ws://HOST:WEBPORT/ws or wss://.
    #[arg(default_value = "hearth://127.0.0.1:7777")]
    url: String,
    /// Account name.
    #[arg(long)]
    name: Option<String>,
    /// Password (or set HEARTH_PASSWORD).
    #[arg(long, env = "HEARTH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// An access token from /api/login instead of a password.
    #[arg(long)]
    token: Option<String>,
    /// Register the account first, through the web API.
    #[arg(long)]
    register: bool,
    /// The web API, for --register (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    web: String,
    /// Trust only this PEM certificate for wss:// and https:// (a server with
    /// a self-signed certificate); without it, the public web PKI is trusted.
    #[arg(long)]
    trust: Option<std::path::PathBuf>,
    /// The server key `hearth serve` printed (64 hex digits): the client
    /// refuses a server that cannot prove it holds this key, on every
    /// transport, so a man in the middle is detected. Without it the key is
    /// learned on connect (and printed, to pin next time).
    #[arg(long, env = "HEARTH_SERVER_KEY", value_parser = parse_server_key)]
    server_key: Option<[u8; 32]>,
    /// Channel for `--send`.
    #[arg(long, default_value_t = 2)]
    channel: u16,
    /// Send this message to the echo service, wait for the echo or a few
    /// seconds, and exit (no world).
    #[arg(long)]
    send: Option<String>,
    /// Where to enter: a zone of the server's zone file.
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// Which line of the zone (when it has room).
    #[arg(long)]
    pub(crate) line: Option<u32>,
    /// Say this in zone chat once in the world.
    #[arg(long)]
    pub(crate) say: Option<String>,
    /// Walk to this cell ("X,Y") once in the world.
    #[arg(long = "move", value_parser = parse_cell)]
    pub(crate) move_to: Option<Pos>,
    /// Print one line per world event for this many seconds, then exit
    /// (no stdin commands).
    #[arg(long)]
    pub(crate) watch: Option<f64>,
    #[command(flatten)]
    impair: crate::impair_flags::ImpairFlags,
    /// Record every world message received to this file (`hearth replay FILE`
    /// plays it back).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let trusted = match &args.trust {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the certificate to trust {}: {e}",
                path.display()
            )
        })?),
        None => None,
    };
    let mut options = match (&args.name, &args.password, &args.token) {
        (_, _, Some(token)) => Options::token(token),
        (Some(name), Some(password), None) => {
            if args.register {
                let accounts = match &trusted {
                    Some(pem) => Accounts::trusting(&args.web, pem)?,
                    None => Accounts::new(&args.web),
                };
                accounts.register(name, password).await?;
                println!("registered {name}");
            }
            Options::password(name, password)
        }
        _ => Options::anonymous(),
    };
    let accounts = match &trusted {
        Some(pem) => Accounts::trusting(&args.web, pem)?,
        None => Accounts::new(&args.web),
    };
    let engine = crate::engine::Engine::of(&accounts, "hearth client").await?;
    options.trusted_certificate = trusted;
    options.server_key = args.server_key;
    options.impair = args.impair.link(0);
    options.options = [
        ("zone", args.zone.clone()),
        ("line", args.line.map(|l| l.to_string())),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| format!("?{key}={v}")))
    .collect();
    if engine == crate::engine::Engine::GameApi {
        // The game API's login names the schema; the game picks the zone
        // (travel and a line change follow once in).
        options.options = format!("?schema={}", hearth_client::world_api::generated::VERSION);
    }
    let mut connection = connect(&args.url, options).await?;
    let events = connection
        .wait_for(|e| *e == Event::Joined)
        .await
        .map_err(|reason| anyhow::anyhow!("login failed: {reason}"))?;
    for event in events {
        print_event(&event);
    }
    if args.server_key.is_none() {
        if let Some(key) = connection.server_key().await {
            println!(
                "server key {} (pass --server-key to refuse any other server next time)",
                crate::hex(&key)
            );
        }
    }
    if let Some(message) = args.send {
        connection
            .open_channel(
                args.channel,
                ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered),
            )
            .await?;
        connection.send(args.channel, message.as_bytes()).await?;
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = connection.next_event() => match event {
                    Some(Event::Message { channel, payload }) => {
                        println!(
                            "message on {channel}: {}",
                            escaped(String::from_utf8_lossy(&payload))
                        );
                        break;
                    }
                    Some(event) => print_event(&event),
                    None => break,
                },
                () = &mut deadline => anyhow::bail!("no answer within 5 s"),
            }
        }
        connection.close(0, "bye").await;
        return Ok(());
    }
    let recording = match &args.record {
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| {
                anyhow::anyhow!("cannot create the recording {}: {e}", path.display())
            })?,
        ))),
        None => None,
    };
    if engine == crate::engine::Engine::GameApi {
        let mut world = hearth_client::world_api::WorldApiClient::new(connection);
        if let Some(out) = recording {
            world.record_to(out)?;
        }
        return crate::client_api::world_mode(world, &args).await;
    }
    let mut world = WorldClient::new(connection);
    if let Some(out) = recording {
        world.record_to(out)?;
    }
    world_mode(world, &args).await
}

pub(crate) const HELP: &str = "commands: /move X Y  /say TEXT (zone)  /l TEXT (line)  /whisper NAME TEXT  /line N  /zone NAME  /who  /quit; a plain line is zone chat";

/// A world as the terminal plays it, on either engine: its updates
/// printed, typed commands run.
pub(crate) trait Terminal {
    type Update;
    async fn next_update(&mut self) -> Option<Self::Update>;
    /// Prints one update (and acts on it if it must); false once the
    /// session is over.
    async fn show(&mut self, update: Self::Update) -> bool;
    /// Runs one typed command; false to quit.
    async fn command(&mut self, line: &str) -> bool;
    async fn close(&self);
}

/// `--watch SECONDS` (print updates, then leave), or commands from stdin
/// until `/quit`, the end of stdin or of the session: the same on both
/// engines.
pub(crate) async fn run_terminal(
    terminal: &mut impl Terminal,
    watch: Option<f64>,
) -> anyhow::Result<()> {
    if let Some(seconds) = watch {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
        while let Ok(Some(update)) = tokio::time::timeout_at(deadline, terminal.next_update()).await
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
                    Some(line) if terminal.command(line.trim()).await => {}
                    _ => break,
                },
                update = terminal.next_update() => match update {
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
    terminal.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

impl Terminal for WorldClient {
    type Update = Update;

    async fn next_update(&mut self) -> Option<Update> {
        self.next().await
    }

    async fn show(&mut self, update: Update) -> bool {
        print_update(&update, self.replica())
    }

    async fn command(&mut self, line: &str) -> bool {
        run_command(self, line).await
    }

    async fn close(&self) {
        WorldClient::close(self, 0, "bye").await;
    }
}

async fn world_mode(mut world: WorldClient, args: &ClientArgs) -> anyhow::Result<()> {
    if let Some(text) = &args.say {
        world.say_zone(text).await;
    }
    if let Some(cell) = args.move_to {
        world.move_to(cell);
    }
    run_terminal(&mut world, args.watch).await
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
        "/say" => world.say_zone(rest).await,
        "/l" => world.say_line(rest).await,
        "/whisper" | "/w" => match rest.split_once(' ') {
            Some((to, text)) => world.whisper(to, text).await,
            None => println!("usage: /whisper NAME TEXT"),
        },
        "/line" => match rest.parse() {
            Ok(line) => world.switch_line(line).await,
            Err(_) => println!("usage: /line N"),
        },
        "/zone" => world.travel(rest).await,
        "/who" => {
            for actor in world.replica().actors.values() {
                let (x, y) = cell_of(actor.props.pos);
                println!("  {} at {x:.1},{y:.1}", escaped(&actor.props.name));
            }
        }
        other if other.starts_with('/') => {
            println!("unknown command {}; {HELP}", escaped(other))
        }
        _ => world.say_zone(line).await,
    }
    true
}

pub(crate) fn cell_of(pos: Pos) -> (f64, f64) {
    (
        f64::from(pos.x) / f64::from(UNITS_PER_CELL),
        f64::from(pos.y) / f64::from(UNITS_PER_CELL),
    )
}

/// "X,Y" in cells (the centre of that cell).
pub(crate) fn parse_cell(text: &str) -> Result<Pos, String> {
    let (x, y) = text
        .split_once(',')
        .ok_or_else(|| format!("a cell is X,Y (for example 12,8), not {text:?}"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<i32>()
            .map_err(|_| format!("a cell is two whole numbers X,Y, not {text:?}"))
    };
    Ok(Pos::cell_centre(parse(x)?, parse(y)?))
}

/// One line per event worth showing; false once the session is over.
/// Everything the server chose (names, text, reasons) is shown escaped.
pub(crate) fn print_update(update: &Update, replica: &hearth_world::Replica) -> bool {
    let name = |id| {
        replica.actors.get(&id).map_or_else(
            || format!("#{}", id.0),
            |a| escaped(&a.props.name).to_string(),
        )
    };
    match update {
        Update::World(WorldEvent::Entered { zone, line }) => {
            println!("entered {} line {line}", escaped(zone))
        }
        Update::World(WorldEvent::Spawned(id)) => {
            let (x, y) = cell_of(replica.actors[id].props.pos);
            println!("sees {} at {x:.1},{y:.1}", name(*id));
        }
        Update::World(WorldEvent::Despawned(id)) => println!("lost sight of #{}", id.0),
        Update::World(WorldEvent::Updated(id)) => {
            if replica
                .actors
                .get(id)
                .is_some_and(|a| a.kind == hearth_world::ActorKind::Player)
            {
                let (x, y) = cell_of(replica.actors[id].props.pos);
                println!("{} at {x:.1},{y:.1}", name(*id));
            }
        }
        Update::World(WorldEvent::Chat {
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
        Update::World(WorldEvent::Refused { about, reason }) => {
            println!("refused ({about:?}): {}", escaped(reason))
        }
        Update::World(WorldEvent::Corrected { pos }) => {
            let (x, y) = cell_of(*pos);
            println!("corrected by the server to {x:.1},{y:.1}");
        }
        Update::Session(Event::Closed(reason)) => {
            println!("closed: {}", escaped(reason));
            return false;
        }
        Update::Session(event) => print_event(event),
        Update::Malformed(why) => println!("malformed world message: {}", escaped(why)),
    }
    true
}

fn parse_server_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let wrong =
        || format!("a server key is 64 hex digits (as `hearth serve` prints it), not {text:?}");
    if text.len() != 64 || !text.is_ascii() {
        return Err(wrong());
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| wrong())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| wrong())?;
    }
    Ok(key)
}

/// One line per event; the UDP ticket's secret is not printed.
pub(crate) fn print_event(event: &Event) {
    match event {
        Event::Welcomed {
            session_id,
            map,
            ticket,
        } => println!(
            "welcomed: session {session_id:016x}, map {}{}",
            escaped(map),
            ticket.map_or(String::new(), |t| format!(
                ", UDP ticket for port {}",
                t.port
            ))
        ),
        // Escaped again: how a type's Debug shows the strings inside it is
        // up to that type (a derived one escapes them, a written one may not).
        other => println!("event: {}", escaped(format!("{other:?}"))),
    }
}
