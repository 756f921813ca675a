//! The game host's side of the cluster's relay: the lines' messages for
//! other nodes' lines and players go out, what other nodes' lines sent
//! comes in, and the relay is told which players' names are here (so that
//! messages by name for them are routed to this node).

use hearth_cluster::relay::{Incoming, Outgoing};
use hearth_game::{Game, LinesOutput, RelayedError};

use super::Host;

impl<G: Game> Host<G> {
    /// A player entered the game here: messages by name for them come to
    /// this node.
    pub(super) fn relay_present(&mut self, player: u64, name: String) {
        if let Some(relay) = &self.relay {
            relay.present(&name);
            self.relay_names.insert(player, name);
        }
    }

    /// A player left the game here (their last save is being written).
    pub(super) fn relay_absent(&mut self, player: u64) {
        if let (Some(relay), Some(name)) = (&self.relay, self.relay_names.remove(&player)) {
            relay.absent(&name);
        }
    }

    /// What the lines produced for other nodes.
    pub(super) fn send_to_other_nodes(&mut self, output: LinesOutput) {
        let Some(relay) = &self.relay else {
            return;
        };
        match output {
            LinesOutput::ToZoneElsewhere {
                zone,
                message,
                body,
            } => {
                relay.send(Outgoing::Zone {
                    zone,
                    message: message.index(),
                    body,
                });
            }
            LinesOutput::ToNamedElsewhere {
                sender,
                name,
                message,
                body,
            } => {
                let sent = relay.send(Outgoing::Named {
                    sender,
                    name: name.clone(),
                    message: message.index(),
                    body,
                });
                if !sent {
                    self.lines.undelivered(sender, name);
                }
            }
            _ => {}
        }
    }

    /// What another node sent: checked by the lines against the game's
    /// schema before any client sees it; what they refuse is counted as
    /// malformed.
    pub(super) fn relayed(&mut self, incoming: Incoming) {
        let refused = match incoming {
            Incoming::Zone {
                zone,
                message,
                body,
            } => self.lines.deliver_to_zone(&zone, message, &body).err(),
            Incoming::Named {
                name,
                message,
                body,
                answer,
            } => match self.lines.deliver_to_named(&name, message, &body) {
                Ok(delivered) => {
                    answer.answer(delivered);
                    None
                }
                Err(error) => {
                    answer.answer(false);
                    Some(error)
                }
            },
            // Held to the rules an announcement made on this node is.
            Incoming::Announce { text } => match hearth_world::chat::check_text(&text) {
                Ok(text) if text.len() <= hearth_world::game::MAX_CHAT => {
                    self.lines.announce(text);
                    None
                }
                _ => Some(RelayedError::Undecodable(
                    "announcement".into(),
                    "it breaks the chat's text rules".into(),
                )),
            },
            Incoming::Undelivered { sender, name } => {
                self.lines.undelivered(sender, name);
                None
            }
        };
        if let (Some(error), Some(relay)) = (refused, &self.relay) {
            relay
                .counters
                .malformed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%error, "a message from another node was refused");
        }
    }
}
