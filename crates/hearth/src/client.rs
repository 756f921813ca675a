//! `hearth client`: log in, send lines from stdin, print every event.

use std::time::Duration;

use hearth_client::{connect, Accounts, ChannelKind, ChannelSpec, Delivery, Event, Options};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(clap::Args)]
pub struct ClientArgs {
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
    /// Channel for the lines you type.
    #[arg(long, default_value_t = 2)]
    channel: u16,
    /// Send this message, wait for the echo or a few seconds, and exit.
    #[arg(long)]
    send: Option<String>,
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
    options.trusted_certificate = trusted;
    options.server_key = args.server_key;
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
    connection
        .open_channel(
            args.channel,
            ChannelSpec::new(ChannelKind::Game, Delivery::ReliableOrdered),
        )
        .await?;
    if let Some(message) = args.send {
        connection.send(args.channel, message.as_bytes()).await?;
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = connection.next_event() => match event {
                    Some(Event::Message { channel, payload }) => {
                        println!("message on {channel}: {}", String::from_utf8_lossy(&payload));
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
    println!(
        "joined; type lines to send them on channel {}, Ctrl-D to quit",
        args.channel
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => {
                    if let Err(e) = connection.send(args.channel, line.as_bytes()).await {
                        println!("not sent: {e}");
                    }
                }
                None => {
                    connection.close(0, "bye").await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Ok(());
                }
            },
            event = connection.next_event() => match event {
                Some(Event::Message { channel, payload }) => {
                    println!("message on {channel}: {}", String::from_utf8_lossy(&payload));
                }
                Some(Event::Closed(reason)) => {
                    println!("closed: {reason}");
                    return Ok(());
                }
                Some(event) => print_event(&event),
                None => return Ok(()),
            }
        }
    }
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
fn print_event(event: &Event) {
    match event {
        Event::Welcomed {
            session_id,
            map,
            ticket,
        } => println!(
            "welcomed: session {session_id:016x}, map {map}{}",
            ticket.map_or(String::new(), |t| format!(
                ", UDP ticket for port {}",
                t.port
            ))
        ),
        other => println!("event: {other:?}"),
    }
}
