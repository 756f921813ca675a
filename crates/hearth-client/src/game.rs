//! A player's session in a game served with `hearth_server::start_game`:
//! logged in for one version of the game's schema (a server that runs
//! another refuses the login, and says why), in once [`GameSession::join`]
//! returns, and gone at once on [`GameSession::leave`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_client::Error> {
//! use hearth_client::{game::GameSession, Event, Options};
//! # const VERSION: &str = "0123456789abcdef";
//! let mut session =
//!     GameSession::join("hearth://127.0.0.1:7777", Options::password("ann", "pw"), VERSION).await?;
//! while let Some(event) = session.next_event().await {
//!     if let Event::Message { channel, payload } = event {
//!         // apply it to the game's replica (channels 10 and 11) ...
//!     }
//! }
//! session.leave("done", std::time::Duration::from_secs(2)).await;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use crate::{connect, Connection, Error, Event, Options, SendError};

/// See the module's documentation.
pub struct GameSession {
    connection: Connection,
    /// Events that came with the login, before Joined (the game's first
    /// message may): [`GameSession::next_event`] gives them first.
    early: VecDeque<Event>,
}

impl GameSession {
    /// Connects to `url`, logs in with `options` as a client of the game's
    /// schema `version` (the bindings' `VERSION`; added to `options`'
    /// URL options as `?schema=`), and waits until the player is in the
    /// game. A refused login is [`Error::Session`] with the server's
    /// reason (text the server chose: escape it before showing it).
    pub async fn join(url: &str, mut options: Options, version: &str) -> Result<Self, Error> {
        options.options.push_str(&format!("?schema={version}"));
        let mut connection = connect(url, options).await?;
        let early = connection
            .wait_for(|event| *event == Event::Joined)
            .await
            .map_err(Error::Session)?;
        Ok(Self {
            connection,
            early: early.into(),
        })
    }

    /// The next event: first those that came with the login, then the
    /// connection's. `None` once the session is closed and the connector
    /// has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        match self.early.pop_front() {
            Some(event) => Some(event),
            None => self.connection.next_event().await,
        }
    }

    /// Sends `payload` on `channel` (the game's are 10, reliable, and 11,
    /// the state channel).
    pub async fn send(&self, channel: u16, payload: &[u8]) -> Result<(), SendError> {
        self.connection.send(channel, payload).await
    }

    /// The session's connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Closes the session with `reason` and waits, at most `wait`, for the
    /// goodbye to go out: a session merely dropped keeps the player in the
    /// game for the server's resume grace. Returns whether the session
    /// ended in time.
    pub async fn leave(mut self, reason: &str, wait: Duration) -> bool {
        self.connection.close(0, reason).await;
        tokio::time::timeout(wait, async {
            while let Some(event) = self.connection.next_event().await {
                if matches!(event, Event::Closed(_)) {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }
}
