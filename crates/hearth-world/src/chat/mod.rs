//! Chat rules: what a message may contain, how fast a player may talk, and
//! the game's hook to filter or refuse a message.

use serde::{Deserialize, Serialize};

use crate::wire::ChatScope;

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

/// Messages a player may send at once, then one more per second.
pub const CHAT_BURST: u32 = 5;
const MILLI: u32 = 1000;

/// A token bucket counted in ticks, so it is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatBucket {
    milli_tokens: u32,
}

impl Default for ChatBucket {
    fn default() -> Self {
        Self {
            milli_tokens: CHAT_BURST * MILLI,
        }
    }
}

impl ChatBucket {
    /// One tick of a line ticking `tick_hz` times a second went by.
    pub fn refill(&mut self, tick_hz: u32) {
        self.milli_tokens = (self.milli_tokens + MILLI / tick_hz.max(1)).min(CHAT_BURST * MILLI);
    }

    pub fn take(&mut self) -> bool {
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_one_a_second() {
        let mut bucket = ChatBucket::default();
        assert!((0..CHAT_BURST).all(|_| bucket.take()));
        assert!(!bucket.take());
        for _ in 0..19 {
            bucket.refill(20);
        }
        assert!(!bucket.take(), "19 ticks at 20 Hz is not yet a second");
        bucket.refill(20);
        assert!(bucket.take());
    }
}
