//! `hearth client`: log in, enter the built-in world, show what the player
//! sees and hears, take commands from stdin (or `--say` / `--watch` for
//! scripts; the world's terminal is `client_world`); `--send` uses the echo
//! service instead.

use std::time::Duration;

use hearth_client::world::{generated, WorldClient};
use hearth_client::{connect, Accounts, ChannelKind, ChannelSpec, Delivery, Event, Options};
use hearth_world::{Pos, UNITS_PER_CELL};

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
    /// Go to this zone of the server's zone file once in (the game puts a
    /// player where they left off, or in its first zone).
    #[arg(long)]
    pub(crate) zone: Option<String>,
    /// Change to this line of the zone once there (when it has room).
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
    crate::world_check::ensure_world(&accounts, "hearth client").await?;
    options.trusted_certificate = trusted;
    options.server_key = args.server_key;
    options.impair = args.impair.link(0);
    // The login names the world's schema: a server of another version
    // refuses it with why. The game picks the zone (travel and a line
    // change follow once in).
    options.options = format!("?schema={}", generated::VERSION);
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
                    // The answer on the channel sent on ends the wait; the
                    // world's own messages (channel 10, the Joined) may come
                    // first, and are shown without ending it.
                    Some(Event::Message { channel, payload }) => {
                        println!(
                            "message on {channel}: {}",
                            escaped(String::from_utf8_lossy(&payload))
                        );
                        if channel == args.channel {
                            break;
                        }
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
    let mut world = WorldClient::new(connection);
    if let Some(path) = &args.record {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create the recording {}: {e}", path.display()))?;
        world.record_to(Box::new(std::io::BufWriter::new(file)))?;
    }
    crate::client_world::world_mode(world, &args).await
}

pub(crate) const HELP: &str = "commands: /move X Y  /say TEXT (zone)  /l TEXT (line)  /whisper NAME TEXT  /line N  /zone NAME  /who  /quit; a plain line is zone chat";

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
