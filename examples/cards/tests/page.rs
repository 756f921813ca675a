//! A game's own page (`hearth_server::start_game_with_page`): the card
//! server serves `cards::PAGE` at `/`, its script at `/game-page.js` and
//! its stylesheet at `/game-page.css`, with the very security headers the
//! built-in pages get; a game server without a page and the built-in server
//! serve the built-in page at `/` as before, and no game page.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use cards::Cards;
use hearth_server::{Config, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(label: &str) -> Config {
    let dir =
        std::env::temp_dir().join(format!("hearth-cards-page-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Config {
        port: 0,
        web_port: 0,
        data_dir: dir,
        ..Config::default()
    }
}

struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A plain HTTP/1.1 GET over a socket.
async fn get(web: SocketAddr, path: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(web).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

const PAGE_HEADERS: [&str; 4] = [
    "content-type",
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
];

#[tokio::test]
async fn a_game_serves_its_own_page_with_the_built_in_pages_headers_and_one_without_a_page_none() {
    let with_page: Running =
        hearth_server::start_game_with_page(config("with"), Cards, cards::PAGE)
            .await
            .unwrap();
    let without_page = hearth_server::start_game(config("without"), Cards)
        .await
        .unwrap();
    let builtin = hearth_server::start(config("builtin")).await.unwrap();

    let page = get(with_page.web, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, cards::PAGE.html());
    assert!(page
        .body
        .contains("<script src=\"/game-page.js\"></script>"));
    let built_in = get(builtin.web, "/").await;
    assert_eq!(built_in.status, 200);
    assert!(
        built_in.body.contains("<title>Hearth</title>"),
        "{}",
        built_in.body
    );
    assert_ne!(built_in.body, page.body);
    for name in PAGE_HEADERS {
        assert!(
            page.headers.contains_key(name),
            "{name}: {:?}",
            page.headers
        );
        assert_eq!(page.headers.get(name), built_in.headers.get(name), "{name}");
    }
    assert!(page.headers["content-security-policy"].contains("script-src 'self'"));
    // A game without a page: no page at `/` (the world's page would not play
    // it), and a word on what to use instead.
    let none = get(without_page.web, "/").await;
    assert_eq!(none.status, 404);
    assert!(
        none.body.contains("runs the game cards without a page"),
        "{}",
        none.body
    );

    let script = get(with_page.web, "/game-page.js").await;
    assert_eq!(script.status, 200);
    assert_eq!(script.body, cards::PAGE.script());
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers["x-content-type-options"], "nosniff");
    let style = get(with_page.web, "/game-page.css").await;
    assert_eq!(style.status, 200);
    assert_eq!(Some(style.body.as_str()), cards::PAGE.style());
    assert_eq!(style.headers["content-type"], "text/css; charset=utf-8");
    for path in ["/game-page.js", "/game-page.css"] {
        assert_eq!(get(without_page.web, path).await.status, 404, "{path}");
    }
    // The built-in world's page is a game page like the cards' one.
    assert_eq!(get(builtin.web, "/game-page.js").await.status, 200);
    // The built-in pages' stylesheet, which the card page uses too, is served on every server.
    assert_eq!(get(with_page.web, "/assets/style.css").await.status, 200);

    with_page.shutdown("done").await;
    without_page.shutdown("done").await;
    builtin.shutdown("done").await;
}
