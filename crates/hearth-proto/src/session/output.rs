//! What the application sends: channels, delivery modes, splitting into
//! bunches, and the link each goes on.

use std::time::Instant;

use super::*;

impl Session {
    /// Sends `payload` on an open channel with that channel's delivery mode.
    /// It leaves at the endpoint's next `poll_transmit` (see `defer_flush`).
    pub fn send(
        &mut self,
        now: Instant,
        channel: u16,
        payload: &[u8],
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        if payload.len() > self.config.max_message_size {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.config.max_message_size,
            });
        }
        let spec = self
            .channels
            .get(&channel)
            .ok_or(SendError::ChannelNotOpen(channel))?
            .spec;
        if spec.delivery.is_reliable() {
            if self.reliable_tx.unacked_bytes() + payload.len() > self.config.max_unacked_bytes {
                return Err(SendError::Backpressure);
            }
            self.send_reliable(channel, 0, None, payload, spec.prefer_stream);
        } else {
            match self.send_unreliable(channel, payload, spec.prefer_stream) {
                // A turn's sends filled the link's queue that the deferred
                // flush would have drained: drain it now, and the queue bounds
                // what cannot leave, not what one turn sends.
                Err(SendError::Backpressure) if self.flush_deferred.is_some() => {
                    self.flush(now, out);
                    self.send_unreliable(channel, payload, spec.prefer_stream)?;
                }
                other => other?,
            }
        }
        self.stats.messages_out += 1;
        self.defer_flush(now);
        Ok(())
    }

    pub(super) fn check_sendable(&self, channel: u16) -> Result<(), SendError> {
        match self.state {
            State::Closed | State::Draining { .. } => return Err(SendError::Closed),
            State::Active | State::Detached { .. } => {}
        }
        if !self.login.is_welcomed() {
            return Err(SendError::NotLoggedIn);
        }
        if channel == CONTROL_CHANNEL || channel > MAX_CHANNELS {
            return Err(SendError::BadChannel(channel));
        }
        Ok(())
    }

    /// Opens `channel` on both ends; the peer gets `Event::ChannelOpened`.
    pub fn open_channel(
        &mut self,
        now: Instant,
        channel: u16,
        spec: ChannelSpec,
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        if self.channels.contains_key(&channel) {
            return Err(SendError::ChannelAlreadyOpen(channel));
        }
        self.channels.insert(channel, Channel::new(spec));
        self.send_reliable(
            channel,
            flags::OPEN,
            Some((spec.kind, spec.delivery)),
            &[],
            spec.prefer_stream,
        );
        self.flush(now, out);
        Ok(())
    }

    pub fn close_channel(
        &mut self,
        now: Instant,
        channel: u16,
        out: &mut Outbox,
    ) -> Result<(), SendError> {
        self.check_sendable(channel)?;
        let spec = self
            .channels
            .remove(&channel)
            .ok_or(SendError::ChannelNotOpen(channel))?
            .spec;
        self.send_reliable(channel, flags::CLOSE, None, &[], spec.prefer_stream);
        self.flush(now, out);
        Ok(())
    }

    pub(crate) fn send_control(&mut self, message: &crate::control::ControlMessage) {
        let payload = message.to_vec();
        self.send_reliable(CONTROL_CHANNEL, 0, None, &payload, true);
    }

    pub(super) fn reliable_part_size(&self) -> usize {
        let kcp_mss = self.config.max_datagram
            - crate::link::DATAGRAM_OVERHEAD
            - crate::link::KCP_FRAME_OVERHEAD
            - hearth_kcp::HEADER_LEN;
        kcp_mss - BUNCH_OVERHEAD
    }

    pub(super) fn unreliable_part_size(&self) -> usize {
        self.config.max_datagram - crate::link::DATAGRAM_OVERHEAD - 1 - BUNCH_OVERHEAD
    }

    pub(super) fn route(&self, prefer_stream: bool) -> Option<LinkKind> {
        match (self.datagram.is_some(), self.stream.is_some()) {
            (true, true) if prefer_stream => Some(LinkKind::Stream),
            (true, _) => Some(LinkKind::Datagram),
            (false, true) => Some(LinkKind::Stream),
            (false, false) => None,
        }
    }

    pub(super) fn send_reliable(
        &mut self,
        channel: u16,
        extra: u8,
        open: Option<(ChannelKind, Delivery)>,
        payload: &[u8],
        prefer_stream: bool,
    ) {
        let route = self.route(prefer_stream);
        let parts = crate::reassembly::split(payload, self.reliable_part_size());
        let count = parts.len();
        for (index, part) in parts.into_iter().enumerate() {
            let sequence = self.reliable_tx.allocate();
            let bunch = Bunch {
                flags: flags::RELIABLE | extra | crate::reassembly::part_flags(index, count),
                channel,
                sequence,
                part: index as u32,
                open: if index == 0 { open } else { None },
                payload: part,
            };
            let mut encoded = Vec::with_capacity(bunch.encoded_len());
            bunch.encode(&mut encoded);
            if let Some(kind) = route {
                self.put_reliable_on(kind, &encoded);
            }
            // Kept until acknowledged, also when no link is up (resume sends it).
            self.reliable_tx.retain(sequence, encoded);
        }
    }

    pub(super) fn send_unreliable(
        &mut self,
        channel: u16,
        payload: &[u8],
        prefer_stream: bool,
    ) -> Result<(), SendError> {
        let Some(route) = self.route(prefer_stream) else {
            return Ok(()); // Unreliable traffic without a link is simply lost.
        };
        let parts = crate::reassembly::split(payload, self.unreliable_part_size());
        let count = parts.len();
        let needed: usize = payload.len() + count * (BUNCH_OVERHEAD + 1);
        let live = match route {
            LinkKind::Datagram => &self.datagram.as_ref().expect("routed").live,
            LinkKind::Stream => &self.stream.as_ref().expect("routed").live,
        };
        if live.queued_bytes + needed > crate::link::MAX_QUEUED_BYTES {
            return Err(SendError::Backpressure);
        }
        let state = self.channels.get_mut(&channel).expect("caller checked");
        let sequence = state.next_unreliable;
        state.next_unreliable += 1;
        let mut frames = Vec::with_capacity(count);
        for (index, part) in parts.into_iter().enumerate() {
            let bunch = Bunch {
                flags: crate::reassembly::part_flags(index, count),
                channel,
                sequence,
                part: index as u32,
                open: None,
                payload: part,
            };
            let mut frame = Vec::with_capacity(bunch.encoded_len() + 1);
            Frame::Bunch(bunch).encode(&mut frame);
            frames.push(frame);
        }
        let live = match route {
            LinkKind::Datagram => &mut self.datagram.as_mut().expect("routed").live,
            LinkKind::Stream => &mut self.stream.as_mut().expect("routed").live,
        };
        for frame in frames {
            live.enqueue(frame, usize::MAX);
        }
        Ok(())
    }
}
