//! `tag play`'s loop over a real session (the Rust SDK): what arrives goes
//! to the bot, which moves once a tick (a late tick is not made up with a
//! burst of moves, which the server would take as too fast), and its
//! acknowledgement, with its moves, goes back on the state channel; what
//! the bot sees is told as it happens, and where the runners in view are
//! once a second.

use std::time::Duration;

use hearth_client::game::GameSession;
use hearth_client::{Event, SendError};
use hearth_replica::game_replica::GameReplicaError;
use hearth_replica::game_wire::STATE_CHANNEL;
use tokio::time::{Instant, MissedTickBehavior};

use crate::bot::Bot;

/// Why the bot stopped playing before its time.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("a game message did not apply: {0}")]
    Replica(#[from] GameReplicaError),
    /// The server's reason, escaped (the server chose this text).
    #[error("the server closed the session: {0:?}")]
    Closed(String),
    #[error("the connection ended")]
    Ended,
    #[error("could not send: {0}")]
    Send(#[from] SendError),
}

/// Plays `bot` over `session` until `until` (or until the session ends),
/// giving each line the bot tells to `tell`.
pub async fn run(
    session: &mut GameSession,
    bot: &mut Bot,
    until: Option<Instant>,
    mut tell: impl FnMut(String),
) -> Result<(), PlayError> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / crate::TICK_HZ);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sightings = tokio::time::interval(Duration::from_secs(1));
    sightings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = session.next_event() => match event {
                Some(Event::Message { channel, payload }) => {
                    bot.receive(channel, &payload)?.into_iter().for_each(&mut tell);
                }
                Some(Event::Closed(reason)) => return Err(PlayError::Closed(reason.to_string())),
                None => return Err(PlayError::Ended),
                Some(_) => {}
            },
            _ = ticks.tick() => bot.decide(),
            _ = sightings.tick() => bot.sightings().into_iter().for_each(&mut tell),
            _ = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                return Ok(());
            }
        }
        if let Some(ack) = bot.poll_ack() {
            session.send(STATE_CHANNEL, &ack).await?;
        }
    }
}
