//! Chat rules: what a message may contain, how fast a player may talk, and
//! the game's hook to filter or refuse a message.

use serde::{Deserialize, Serialize};

mod text;

pub use text::check_text;

/// The game's say on a chat message, after Hearth's own checks passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatVerdict {
    Allow,
    /// Deliver this text instead (a word filter, say).
    Replace(String),
    /// Refuse, telling the sender why.
    Refuse(String),
}

/// The game's chat hook; called on the line's tick, so keep it quick.
pub trait ChatHook: Send + Sync {
    fn check(&self, from: &str, scope: ChatScope, text: &str) -> ChatVerdict;
}

/// Where a chat message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChatScope {
    /// Every line of the sender's zone.
    Zone = 0,
    /// The sender's line.
    Line = 1,
    /// One player, by name.
    Whisper = 2,
    /// From the server (announcements).
    System = 3,
}

/// Messages a player may send at once, then one more per second.
pub const CHAT_BURST: u32 = 5;

/// `text` cut to at most `max` bytes at a character boundary: every text
/// the server puts in an item fits the limits clients decode with.
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
