//! The channel table of one session.

use crate::bunch::{ChannelKind, Delivery};

/// How the application wants a channel to behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    pub delivery: Delivery,
    /// Send on the stream link (TCP) even when a datagram link is up, as the
    /// seed's "channel 0 over TCP" does; otherwise datagram first.
    pub prefer_stream: bool,
}

impl ChannelSpec {
    pub fn new(kind: ChannelKind, delivery: Delivery) -> Self {
        Self {
            kind,
            delivery,
            prefer_stream: false,
        }
    }

    pub fn on_stream(mut self) -> Self {
        self.prefer_stream = true;
        self
    }
}

pub(crate) struct Channel {
    pub spec: ChannelSpec,
    pub next_unreliable: u64,
    pub newest_delivered: Option<u64>,
}

impl Channel {
    pub fn new(spec: ChannelSpec) -> Self {
        Self {
            spec,
            next_unreliable: 0,
            newest_delivered: None,
        }
    }
}
