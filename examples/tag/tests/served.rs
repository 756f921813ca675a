//! Tag served by Hearth's server over real sockets: two bots through the
//! SDK's `GameSession` (one over TCP and UDP, one over WebSocket), each
//! driven by `tag::play::run` as `tag play` drives it, share a small arena
//! and see each other run where the server has them; a client built for
//! another version of the schema is refused when it joins, with the
//! server's reason; leaving is confirmed at once.

mod common;

use std::time::Duration;

use hearth_client::game::GameSession;
use hearth_client::{Accounts, Options};
use hearth_replica::geometry::Pos;
use hearth_server::{Config, Running};
use tag::bot::Bot;
use tag::generated::Runner;
use tag::Tag;
use tokio::time::Instant;

const PASSWORD: &str = "correct horse";

async fn serve(label: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("hearth-tag-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        ..Config::default()
    };
    let game = Tag {
        map: common::SMALL.to_owned(),
        ..Tag::default()
    };
    hearth_server::start_game_with_page(config, game, tag::PAGE)
        .await
        .expect("tag serves")
}

/// Where the bot last saw the runner named `name`, as the server has it.
fn seen_at(bot: &Bot, name: &str) -> Option<Pos> {
    let runner = Runner::all(bot.replica()).find(|r| r.name() == name)?;
    bot.replica().server_position(runner.id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_over_real_sockets_see_each_other_run() {
    let server = serve("run").await;
    let accounts = Accounts::new(&server.web_url());
    for name in ["ann", "ben"] {
        accounts.register(name, PASSWORD).await.unwrap();
    }
    let hearth = format!("hearth://{}", server.game_tcp);
    let ws = format!("ws://{}/ws", server.web);

    // A client of another version of the game is refused, and told why.
    let refused = GameSession::join(
        &hearth,
        Options::password("ann", PASSWORD),
        "0123456789abcdef",
    )
    .await
    .err()
    .expect("another schema is refused");
    assert!(
        matches!(&refused, hearth_client::Error::Session(why) if why.contains(tag::generated::VERSION)),
        "{refused}"
    );

    let mut ann = GameSession::join(
        &hearth,
        Options::password("ann", PASSWORD),
        tag::generated::VERSION,
    )
    .await
    .unwrap();
    let mut ben = GameSession::join(
        &ws,
        Options::password("ben", PASSWORD),
        tag::generated::VERSION,
    )
    .await
    .unwrap();
    let (mut ann_bot, mut ben_bot) = (Bot::new(0), Bot::new(4));
    let (mut ann_said, mut ben_said) = (Vec::new(), Vec::new());
    let until = Some(Instant::now() + Duration::from_secs(3));
    let (a, b) = tokio::join!(
        tag::play::run(&mut ann, &mut ann_bot, until, |line| ann_said.push(line)),
        tag::play::run(&mut ben, &mut ben_bot, until, |line| ben_said.push(line)),
    );
    a.unwrap();
    b.unwrap();

    for (bot, said, other) in [(&ann_bot, &ann_said, "ben"), (&ben_bot, &ben_said, "ann")] {
        let said = said.join("\n");
        assert!(said.starts_with("in the arena: 14 by 10 cells"), "{said}");
        // The other came into view, then was told where it ran, a cell at a time.
        let told: Vec<&str> = said
            .lines()
            .filter(|l| l.starts_with(&format!("{other} is at ")))
            .collect();
        assert!(told.len() >= 2, "{other} seen running: {said}");
        // Where the bot has it is where the other's own client last heard
        // from the server (give or take the few ticks the two lag apart).
        let theirs = if other == "ann" { &ann_bot } else { &ben_bot };
        let own = theirs.replica().controlled().unwrap();
        let there = theirs.replica().server_position(own).unwrap();
        let seen = seen_at(bot, other).unwrap();
        assert!(
            seen.distance(there) <= 5 * 30,
            "{other} seen at {seen:?}, at {there:?} by its own server"
        );
        assert_eq!(bot.corrections(), 0, "an honest bot is never corrected");
    }
    // Leaving is confirmed at once.
    assert!(ann.leave("done", Duration::from_secs(2)).await);
    assert!(ben.leave("done", Duration::from_secs(2)).await);
}
