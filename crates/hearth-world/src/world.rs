//! A whole world in one place: the directory and every line, stepped
//! together. Tests and benchmarks run worlds this way; the server runs the
//! same directory and lines on tasks of their own.

use std::collections::BTreeMap;

use hearth_codec::DecodeError;

use crate::directory::{Action, Directory, DirectoryConfig, Join, JoinError, LineKey};
use crate::line::{Line, LineInput, LineOutput, PlayerId, SavedPlayer};
use crate::wire::{self, ClientState, Command};
use crate::zone::Zone;

/// A client message on a world channel, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    State(ClientState),
    Command(Command),
}

/// Why a client's world message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("channel {0} is not a world channel")]
    NotWorldChannel(u16),
    #[error("malformed world message: {0}")]
    Malformed(#[from] DecodeError),
}

/// Decodes what a client sent on `channel`.
pub fn decode_client(channel: u16, bytes: &[u8]) -> Result<ClientMessage, MessageError> {
    match channel {
        wire::STATE_CHANNEL => Ok(ClientMessage::State(ClientState::decode(bytes)?)),
        wire::RELIABLE_CHANNEL => Ok(ClientMessage::Command(Command::decode(bytes)?)),
        other => Err(MessageError::NotWorldChannel(other)),
    }
}

impl ClientMessage {
    pub fn into_input(self, player: PlayerId) -> LineInput {
        match self {
            ClientMessage::State(state) => LineInput::State { player, state },
            ClientMessage::Command(command) => LineInput::Command { player, command },
        }
    }
}

/// One message for one player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub player: PlayerId,
    pub channel: u16,
    pub bytes: Vec<u8>,
}

pub struct World {
    pub directory: Directory,
    lines: BTreeMap<LineKey, Line>,
    now_ms: u64,
    /// Messages for players, in order, until taken.
    pub outgoing: Vec<Outgoing>,
    /// Player states to write to the database, until taken.
    pub saves: Vec<SavedPlayer>,
}

impl World {
    pub fn new(zones: Vec<Zone>, config: DirectoryConfig) -> Self {
        let (directory, actions) = Directory::new(zones, config);
        let mut world = Self {
            directory,
            lines: BTreeMap::new(),
            now_ms: 0,
            outgoing: Vec::new(),
            saves: Vec::new(),
        };
        world.carry_out(actions);
        world
    }

    pub fn line(&self, key: LineKey) -> Option<&Line> {
        self.lines.get(&key)
    }

    pub fn line_mut(&mut self, key: LineKey) -> Option<&mut Line> {
        self.lines.get_mut(&key)
    }

    pub fn lines(&self) -> impl Iterator<Item = (&LineKey, &Line)> {
        self.lines.iter()
    }

    /// Where the player went (`None`: waiting for the session it replaced).
    pub fn join(&mut self, join: Join) -> Result<Option<LineKey>, JoinError> {
        let (key, actions) = self.directory.join(self.now_ms, join)?;
        self.carry_out(actions);
        Ok(key)
    }

    pub fn leave(&mut self, player: PlayerId) {
        let actions = self.directory.leave(player);
        self.carry_out(actions);
    }

    /// A message the client sent on a world channel.
    pub fn receive(
        &mut self,
        player: PlayerId,
        channel: u16,
        bytes: &[u8],
    ) -> Result<(), MessageError> {
        let input = decode_client(channel, bytes)?.into_input(player);
        if let Some(action) = self.directory.route(player, input) {
            self.carry_out(vec![action]);
        }
        Ok(())
    }

    pub fn announce(&mut self, text: &str) {
        let actions = self.directory.announce(text);
        self.carry_out(actions);
    }

    /// One tick of every line (all at one rate, for tests), at `now_ms`.
    pub fn step(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let keys: Vec<LineKey> = self.lines.keys().copied().collect();
        for key in keys {
            let line = self.lines.get_mut(&key).expect("listed");
            line.tick();
            let outputs: Vec<LineOutput> = line.drain_outputs().collect();
            for output in outputs {
                match output {
                    LineOutput::Send {
                        player,
                        channel,
                        bytes,
                    } => self.outgoing.push(Outgoing {
                        player,
                        channel,
                        bytes,
                    }),
                    other => {
                        let actions = self.directory.on_output(now_ms, key, other);
                        self.carry_out(actions);
                    }
                }
            }
        }
        let actions = self.directory.tick(now_ms);
        self.carry_out(actions);
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Open(key, config) => {
                    self.lines.insert(key, Line::new(config.0));
                }
                Action::Close(key) => {
                    self.lines.remove(&key);
                }
                Action::ToLine(key, input) => {
                    if let Some(line) = self.lines.get_mut(&key) {
                        line.input(input);
                    }
                }
                Action::Gone(saved) | Action::Save(saved) => self.saves.push(saved),
            }
        }
    }
}
