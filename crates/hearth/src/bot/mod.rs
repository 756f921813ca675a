//! `hearth bot`: simulated players against a running server, for load tests
//! and rehearsals. Each bot logs in over its transport (UDP, TCP, WebSocket,
//! or a mix), enters the world, walks to random open cells and chats as its
//! behaviour says; a progress line shows the ramp, and a report (table or
//! `--json`) ends the run. The bots play the built-in world: they ask the
//! server's `/api/schema` first.

mod report;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_client::world::generated::{Message, SayScope, VERSION};
use hearth_client::world::{LightWorldClient, WorldClient, WorldUpdate};
use hearth_client::{connect, Accounts, Connection, Options};
use hearth_game::Rng;
use hearth_proto::Event;
use hearth_world::Pos;

use report::{reason_kind, Tally};

#[derive(clap::Args)]
pub struct BotArgs {
    /// Bots to run.
    #[arg(long, short = 'n', default_value_t = 10)]
    count: usize,
    /// Server host (the game port takes UDP and TCP, the web port WebSocket and the API).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 7777)]
    port: u16,
    #[arg(long, default_value_t = 8080)]
    web_port: u16,
    /// Transports, spread round robin over the bots: udp, tcp, ws, hearth (TCP then UDP).
    #[arg(long, value_delimiter = ',', default_value = "udp")]
    transport: Vec<Transport>,
    /// Seconds over which the bots start, evenly spread.
    #[arg(long, default_value_t = 5.0)]
    ramp: f64,
    /// Seconds the whole run lasts (ramp included); then every bot logs out.
    #[arg(long, default_value_t = 30.0)]
    secs: f64,
    /// Account names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "bot")]
    prefix: String,
    /// The bots' password (their accounts share it).
    #[arg(
        long,
        env = "HEARTH_BOT_PASSWORD",
        default_value = "hearth-bot-password",
        hide_env_values = true
    )]
    password: String,
    /// Register the accounts first (existing ones are used as they are).
    #[arg(long)]
    register: bool,
    /// Log in without accounts (the server must allow anonymous logins).
    #[arg(long, conflicts_with = "register")]
    anonymous: bool,
    /// Delete the bots' accounts at the end.
    #[arg(long)]
    cleanup: bool,
    /// A zone to travel to once in (default: where the game puts the bot).
    #[arg(long)]
    zone: Option<String>,
    /// What the bots do: idle (log in and stay), wander (walk to random
    /// nearby open cells), chatty (wander and chat).
    #[arg(long, value_enum, default_value = "wander")]
    behaviour: Behaviour,
    /// Seconds between a bot's walks (each bot jitters it).
    #[arg(long, default_value_t = 2.0)]
    move_every: f64,
    /// Seconds between a chatty bot's lines.
    #[arg(long, default_value_t = 10.0)]
    chat_every: f64,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Light bots: each keeps only what the protocol needs (the session,
    /// acknowledgements, its own moves, the world's messages) and no
    /// actor's properties, so that one core plays many more of them; the
    /// server sees the same traffic.
    #[arg(long)]
    light: bool,
    /// Seeds the bots' choices, so a run can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The network conditioner on each UDP bot (udp and hearth transports);
    /// each bot's randomness is its own, derived from --impair-seed.
    #[command(flatten)]
    impair: crate::impair_flags::ImpairFlags,
    /// The server's process id (on this machine): the report adds its CPU
    /// after the ramp and its largest resident memory, from /proc.
    #[arg(long)]
    watch_pid: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Udp,
    Tcp,
    Ws,
    Hearth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Behaviour {
    Idle,
    Wander,
    Chatty,
}

/// Live counters the progress line reads while the bots run.
#[derive(Default)]
struct Live {
    connected: usize,
    failed: usize,
    messages_in: u64,
    messages_out: u64,
}

pub async fn run(args: BotArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    anyhow::ensure!(
        !args.transport.is_empty(),
        "--transport needs at least one of udp, tcp, ws, hearth"
    );
    let raised = raise_open_file_limit();
    // Each bot holds a socket or two; say so before they fail for it.
    if raised < (args.count as u64) * 2 + 64 {
        eprintln!(
            "hearth bot: the open-file limit is {raised}; {} bots need about {}",
            args.count,
            args.count * 2 + 64
        );
    }
    crate::world_check::ensure_world(&Accounts::new(&web(&args)), "hearth bot").await?;
    let args = Arc::new(args);
    // What the bots themselves cost: a load generator that needs as much
    // CPU per player as the server cannot show the server's capacity.
    let own_cpu_before = watch::cpu_seconds(std::process::id());
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.secs);
    let ramp_ends = started + Duration::from_secs_f64(args.ramp.min(args.secs));
    let tally = Arc::new(Mutex::new(Tally {
        window: Some((ramp_ends, end)),
        ..Tally::default()
    }));
    let live = Arc::new(Mutex::new(Live::default()));
    let server = args
        .watch_pid
        .map(|pid| watch::ServerWatch::start(pid, ramp_ends))
        .transpose()?;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.count {
        let delay = Duration::from_secs_f64(args.ramp * index as f64 / args.count as f64);
        let (args, tally, live) = (args.clone(), tally.clone(), live.clone());
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            if Instant::now() < end {
                one_bot(index, &args, end, &tally, &live).await;
            }
        });
    }
    let progress = tokio::spawn(show_progress(args.count, live.clone(), started, end));
    while tasks.join_next().await.is_some() {}
    progress.abort();
    eprintln!();
    let elapsed = started.elapsed();
    if args.cleanup && !args.anonymous {
        let deleted = cleanup(&args).await;
        eprintln!("hearth bot: deleted {deleted} of {} accounts", args.count);
    }
    let tally = tally.lock().expect("not poisoned");
    let server = server.map(|watch| watch.finish(tally.connected));
    let own_cpu = own_cpu_before
        .zip(watch::cpu_seconds(std::process::id()))
        .map(|(before, after)| {
            let seconds = after - before;
            let per_bot_percent =
                seconds / elapsed.as_secs_f64().max(0.001) / tally.connected.max(1) as f64 * 100.0;
            serde_json::json!({ "seconds": seconds, "per_bot_percent_of_a_core": per_bot_percent, "light": args.light })
        });
    if tally
        .failed
        .keys()
        .any(|reason| reason.contains("too many attempts"))
    {
        eprintln!(
            "hearth bot: the server rate-limited registrations or logins from this address; for a load test \
             raise [accounts] register_burst / login_burst (or *_per_minute = 0) on the server{LOOPBACK_HINT}"
        );
    }
    let web_refused = |reason: &String| {
        reason.contains("too many connections") || reason.contains("Service Unavailable")
    };
    if tally.failed.keys().any(web_refused) {
        eprintln!(
            "hearth bot: the web port refused connections from this address; for a load test \
             raise [web] max_connections_per_address on the server{LOOPBACK_HINT}"
        );
    }
    if args.json {
        let mut report = tally.to_json(elapsed);
        if let Some(server) = server {
            report["server"] = server;
        }
        if let Some(own_cpu) = own_cpu {
            report["bots_cpu"] = own_cpu;
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        tally.print_table(elapsed);
        if let Some(server) = server {
            println!("server: {server}");
        }
        if let Some(own_cpu) = own_cpu {
            println!("the bots' own CPU: {own_cpu}");
        }
    }
    Ok(())
}

/// Appended to the advice on a per-address refusal: bots on the server's
/// machine meet one only when the server chose to limit loopback.
const LOOPBACK_HINT: &str = " (bots on the server's own machine are exempt \
                             unless it sets limit_loopback = true)";

fn url(args: &BotArgs, index: usize) -> String {
    let host = &args.host;
    match args.transport[index % args.transport.len()] {
        Transport::Udp => format!("udp://{host}:{}", args.port),
        Transport::Tcp => format!("tcp://{host}:{}", args.port),
        Transport::Hearth => format!("hearth://{host}:{}", args.port),
        Transport::Ws => format!("ws://{host}:{}/ws", args.web_port),
    }
}

/// A bot's client of the world: the full one (a replica of every actor in
/// view), or the light one (`--light`).
enum BotWorld {
    Full(WorldClient),
    Light(LightWorldClient),
}

impl BotWorld {
    async fn next(&mut self) -> Option<WorldUpdate> {
        match self {
            BotWorld::Full(world) => world.next().await,
            BotWorld::Light(world) => world.next().await,
        }
    }

    fn connection(&self) -> &Connection {
        match self {
            BotWorld::Full(world) => world.connection(),
            BotWorld::Light(world) => world.connection(),
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            BotWorld::Full(world) => world.is_ready(),
            BotWorld::Light(world) => world.is_ready(),
        }
    }

    /// The zone's map and where the bot is.
    fn place(&self) -> Option<(&hearth_world::Zone, Pos)> {
        match self {
            BotWorld::Full(world) => Some((world.zone()?, world.position()?)),
            BotWorld::Light(world) => Some((world.zone()?, world.position()?)),
        }
    }

    fn move_to(&mut self, target: Pos) {
        match self {
            BotWorld::Full(world) => world.move_to(target),
            BotWorld::Light(world) => world.move_to(target),
        }
    }

    async fn say(&mut self, scope: SayScope, to: &str, text: &str) {
        match self {
            BotWorld::Full(world) => world.say(scope, to, text).await,
            BotWorld::Light(world) => world.say(scope, to, text).await,
        }
    }

    async fn travel(&mut self, zone: &str) {
        match self {
            BotWorld::Full(world) => world.travel(zone).await,
            BotWorld::Light(world) => world.travel(zone).await,
        }
    }
}

/// Over `connection`, once in the world (placed, with its zone's map, in
/// `zone` if one was asked: a travel there once in): the world, or why not.
async fn enter(
    connection: Connection,
    zone: Option<&str>,
    light: bool,
) -> Result<BotWorld, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut world = match light {
        true => BotWorld::Light(LightWorldClient::new(connection)),
        false => BotWorld::Full(WorldClient::new(connection)),
    };
    let mut arrived = false;
    let mut travelled = false;
    loop {
        match tokio::time::timeout_at(deadline, world.next()).await {
            Ok(Some(WorldUpdate::Session(Event::Closed(reason)))) => {
                return Err(format!("login: {reason}"))
            }
            Ok(Some(WorldUpdate::Message(Message::Entered { zone: here }))) => {
                arrived = match zone {
                    Some(wanted) if here != wanted => {
                        if !travelled {
                            travelled = true;
                            world.travel(wanted).await;
                        }
                        false
                    }
                    _ => true,
                };
            }
            Ok(Some(WorldUpdate::Message(Message::Refused { reason, .. }))) if !arrived => {
                return Err(format!("travel: {reason}"))
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Err("login: not in the world within 15 s".to_owned()),
        }
        if arrived && world.is_ready() {
            return Ok(world);
        }
    }
}

fn web(args: &BotArgs) -> String {
    format!("http://{}:{}", args.host, args.web_port)
}

async fn one_bot(
    index: usize,
    args: &BotArgs,
    end: Instant,
    tally: &Mutex<Tally>,
    live: &Mutex<Live>,
) {
    let name = format!("{}{index}", args.prefix);
    let began = Instant::now();
    tally.lock().expect("not poisoned").started += 1;
    let fail = |reason: String| {
        *tally
            .lock()
            .expect("not poisoned")
            .failed
            .entry(reason_kind(&reason))
            .or_default() += 1;
        live.lock().expect("not poisoned").failed += 1;
    };
    if args.register {
        // A busy or rate-limiting server says when to try again: a real
        // client waits that long, so does a bot (until the run ends).
        loop {
            match Accounts::new(&web(args))
                .register(&name, &args.password)
                .await
            {
                Ok(_) => break,
                Err(e) if e.to_string().contains("taken") => break,
                Err(e) => match retry_after(&e.to_string()) {
                    Some(wait) if Instant::now() + wait < end => tokio::time::sleep(wait).await,
                    _ => return fail(format!("register: {e}")),
                },
            }
        }
    }
    let mut options = if args.anonymous {
        Options::anonymous()
    } else {
        Options::password(&name, &args.password)
    };
    // A server of another version of the world refuses the login with why.
    options.options = format!("?schema={VERSION}");
    options.impair = args.impair.link(index as u64);
    let mut world = loop {
        let connection = match connect(&url(args, index), options.clone()).await {
            Ok(c) => c,
            Err(e) => return fail(format!("connect: {e}")),
        };
        // In the world once the zone arrived and the bot was placed.
        let why = match enter(connection, args.zone.as_deref(), args.light).await {
            Ok(world) => break world,
            Err(why) => why,
        };
        match retry_after(&why) {
            Some(wait) if Instant::now() + wait < end => tokio::time::sleep(wait).await,
            _ => return fail(why),
        }
    };
    {
        let mut t = tally.lock().expect("not poisoned");
        t.connected += 1;
        t.record_login(began.elapsed());
    }
    live.lock().expect("not poisoned").connected += 1;
    play(index, args, end, &mut world, tally, live).await;
    world.connection().close(0, "the bot run is over").await;
}

/// The bot's life in the world until `end`.
async fn play(
    index: usize,
    args: &BotArgs,
    end: Instant,
    world: &mut BotWorld,
    tally: &Mutex<Tally>,
    live: &Mutex<Live>,
) {
    let mut rng = Rng::new(args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64);
    let jitter = |rng: &mut Rng, every: f64| {
        Duration::from_secs_f64(every * (0.5 + rng.range(0, 1000) as f64 / 1000.0))
    };
    let mut next_move = Instant::now() + jitter(&mut rng, args.move_every);
    let mut next_chat = Instant::now() + jitter(&mut rng, args.chat_every);
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    let (mut last_in, mut last_out, mut last_bytes_in) = (0, 0, 0);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let wake = [end, next_move, next_chat, next_sample]
            .into_iter()
            .min()
            .expect("four");
        match tokio::time::timeout(wake - now, world.next()).await {
            Ok(Some(WorldUpdate::Session(Event::Closed(reason)))) => {
                *tally
                    .lock()
                    .expect("not poisoned")
                    .errors
                    .entry(reason_kind(&format!("closed: {reason}")))
                    .or_default() += 1;
                break;
            }
            Ok(Some(WorldUpdate::Malformed(why))) => {
                *tally
                    .lock()
                    .expect("not poisoned")
                    .errors
                    .entry(reason_kind(&format!("malformed: {why}")))
                    .or_default() += 1;
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
        let now = Instant::now();
        if args.behaviour != Behaviour::Idle && now >= next_move {
            next_move = now + jitter(&mut rng, args.move_every);
            if let Some(target) = random_open_cell_near(world, &mut rng) {
                world.move_to(target);
                tally.lock().expect("not poisoned").moves += 1;
            }
        }
        if args.behaviour == Behaviour::Chatty && now >= next_chat {
            next_chat = now + jitter(&mut rng, args.chat_every);
            let text = format!("bot {index} says hello #{}", rng.range(0, 1_000_000));
            world.say(SayScope::Zone, "", &text).await;
            tally.lock().expect("not poisoned").chats += 1;
        }
        if now >= next_sample {
            next_sample = now + Duration::from_secs(1);
            if let Some(stats) = world.connection().stats().await {
                let mut t = tally.lock().expect("not poisoned");
                if let Some(rtt) = stats.rtt.smoothed {
                    t.record_rtt(rtt);
                }
                if t.after_ramp(now) {
                    t.record_after_ramp(stats.rtt.latest, stats.bytes_in - last_bytes_in);
                }
                last_bytes_in = stats.bytes_in;
                let mut l = live.lock().expect("not poisoned");
                l.messages_in += stats.messages_in - last_in;
                l.messages_out += stats.messages_out - last_out;
                (last_in, last_out) = (stats.messages_in, stats.messages_out);
            }
        }
    }
    if let Some(stats) = world.connection().stats().await {
        let mut t = tally.lock().expect("not poisoned");
        t.messages_in += stats.messages_in;
        t.messages_out += stats.messages_out;
        t.bytes_in += stats.bytes_in;
        t.bytes_out += stats.bytes_out;
    }
}

/// An open cell within five cells of the bot, if one turns up in a few tries.
fn random_open_cell_near(world: &BotWorld, rng: &mut Rng) -> Option<Pos> {
    let (zone, at) = world.place()?;
    let (cx, cy) = at.cell();
    for _ in 0..8 {
        let (x, y) = (cx + rng.range(-5, 6) as i32, cy + rng.range(-5, 6) as i32);
        let target = Pos::cell_centre(x, y);
        if !zone.blocked(target) && zone.path_clear(at, target) {
            return Some(target);
        }
    }
    None
}

/// A progress line rewritten in place on a terminal, a line every five
/// seconds otherwise (logs, CI).
async fn show_progress(count: usize, live: Arc<Mutex<Live>>, started: Instant, end: Instant) {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let mut previous = (0, 0);
    let mut previous_at = Instant::now();
    let mut beat = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (connected, failed, messages) = {
            let l = live.lock().expect("not poisoned");
            (l.connected, l.failed, (l.messages_in, l.messages_out))
        };
        beat += 1;
        if !terminal && beat % 5 != 0 {
            continue;
        }
        let width = 30;
        let filled = (connected + failed) * width / count.max(1);
        let left = end.saturating_duration_since(Instant::now()).as_secs();
        eprint!(
            "{}[{}{}] connected {connected}/{count} failed {failed}  in {} msg/s out {} msg/s  {:.0} s, {left} s left   {}",
            if terminal { "\r" } else { "" },
            "#".repeat(filled),
            ".".repeat(width - filled),
            per_second(messages.0 - previous.0, previous_at),
            per_second(messages.1 - previous.1, previous_at),
            started.elapsed().as_secs_f64(),
            if terminal { "" } else { "\n" }
        );
        previous = messages;
        previous_at = Instant::now();
    }
}

/// When a refusal says "try again in N s", how long to wait (N s, and a
/// little jitter so that refused bots do not all come back at once).
fn retry_after(reason: &str) -> Option<Duration> {
    let rest = &reason[reason.find("try again in ")? + "try again in ".len()..];
    let seconds: u64 = rest.split_whitespace().next()?.parse().ok()?;
    let jitter = u64::from(std::process::id() ^ reason.len() as u32) % 500;
    Some(Duration::from_secs(seconds) + Duration::from_millis(jitter))
}

/// A count since `since`, per second.
fn per_second(count: u64, since: Instant) -> u64 {
    (count as f64 / since.elapsed().as_secs_f64().max(0.001)).round() as u64
}

async fn cleanup(args: &BotArgs) -> usize {
    let accounts = Accounts::new(&web(args));
    let mut deleted = 0;
    for index in 0..args.count {
        if accounts
            .delete(&format!("{}{index}", args.prefix), &args.password)
            .await
            .is_ok()
        {
            deleted += 1;
        }
    }
    deleted
}

/// Raises the soft open-file limit to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            }
        }
        limit.rlim_cur
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}
