//! The WebSocket connection state machine, sans-IO: bytes in, messages out,
//! and the bytes to write (pongs, close replies, our own frames) queued in `out`.

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::PerMessageDeflate;
use super::frame::{self, opcode, FrameHeader};
use super::{Message, WsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Masks every frame it sends, refuses masked frames.
    Client,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message after fragments are joined (and inflated, for a
    /// compressed one).
    pub max_message: usize,
}

/// The largest frame of a compressed message: deflate may grow data that
/// does not compress by a little (zlib's deflateBound: about n/4096 + 13
/// bytes), and a message of the full size must still get through.
fn max_compressed_frame(max_message: usize) -> u64 {
    max_message as u64 + max_message as u64 / 1024 + 64
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseState {
    Open,
    /// We sent Close and wait for the peer's.
    Sent,
    /// Both directions are done: the transport should be closed.
    Done,
}

/// A message being assembled from fragments.
struct Fragmented {
    text: bool,
    /// permessage-deflate: `data` holds what its frames inflated to so far.
    compressed: bool,
    data: Vec<u8>,
    /// Bytes of `data` already known to be valid UTF-8 (text only); lets an
    /// invalid text message fail at the fragment that breaks it.
    utf8_checked: usize,
}

/// UTF-8 checking of a text frame whose payload has only partly arrived, so
/// an invalid message fails as soon as the bad byte is in (fail fast).
#[derive(Default)]
struct PartialText {
    /// Payload bytes of the pending frame already checked.
    checked: usize,
    /// A character cut at the end of what was checked.
    tail: Vec<u8>,
}

pub struct Protocol {
    role: Role,
    limits: Limits,
    fragmented: Option<Fragmented>,
    partial_text: PartialText,
    close: CloseState,
    /// Bytes waiting to be written to the transport.
    pub out: Vec<u8>,
    mask_state: u64,
    /// permessage-deflate, once negotiated; boxed: most connections have none.
    deflate: Option<Box<PerMessageDeflate>>,
}

impl Protocol {
    pub fn new(role: Role, limits: Limits) -> Self {
        // Masks only need to be unpredictable to scripts in the browser threat
        // model (section 10.3): a random start per connection and a xorshift
        // stream suffice.
        let seed: [u8; 8] = hearth_proto::os_seed()[..8].try_into().expect("8 bytes");
        Self {
            role,
            limits,
            fragmented: None,
            partial_text: PartialText::default(),
            close: CloseState::Open,
            out: Vec::with_capacity(256),
            mask_state: u64::from_ne_bytes(seed) | 1,
            deflate: None,
        }
    }

    /// Turns on permessage-deflate as negotiated in the opening handshake;
    /// from then on RSV1 marks a compressed message.
    pub fn enable_deflate(&mut self, deflate: PerMessageDeflate) {
        self.deflate = Some(Box::new(deflate));
    }

    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Changes the largest message accepted from now on.
    pub fn set_max_message(&mut self, bytes: usize) {
        self.limits.max_message = bytes;
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// True once both sides have closed, or we failed the connection: the
    /// driver flushes `out` and closes the transport.
    pub fn is_done(&self) -> bool {
        self.close == CloseState::Done
    }

    pub fn is_closing(&self) -> bool {
        self.close != CloseState::Open
    }

    /// Takes the next complete message from the front of `buf`, consuming the
    /// bytes it used. `Ok(None)`: more input is needed. Control frames are
    /// answered here (ping with pong, close with close) and also reported.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            if self.close == CloseState::Done {
                buf.clear();
                return Ok(None);
            }
            let allowed_rsv = if self.deflate.is_some() {
                frame::RSV1
            } else {
                0
            };
            let Some(header) = frame::parse_header(buf, allowed_rsv)? else {
                return Ok(None);
            };
            self.check_mask(&header)?;
            let compressed = self.is_compressed(&header)?;
            let too_big = if compressed {
                // The inflated size is checked while inflating.
                header.payload_len > max_compressed_frame(self.limits.max_message)
            } else {
                let buffered = self.fragmented.as_ref().map_or(0, |f| f.data.len()) as u64;
                header.payload_len + buffered > self.limits.max_message as u64
            };
            if too_big {
                return Err(WsError::TooBig {
                    limit: self.limits.max_message,
                });
            }
            let total = header.header_len + header.payload_len as usize;
            if buf.len() < total {
                if !compressed {
                    self.check_partial_text(&header, &buf[header.header_len..])?;
                }
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            self.partial_text = PartialText::default();
            buf.advance(header.header_len);
            let mut payload = buf.split_to(header.payload_len as usize);
            if let Some(key) = header.mask {
                frame::apply_mask(&mut payload, key, 0);
            }
            if let Some(message) = self.on_frame(&header, payload, compressed)? {
                return Ok(Some(message));
            }
        }
    }

    /// Whether the frame's payload is deflate data (RFC 7692 section 6.1:
    /// RSV1 on a message's first frame marks the whole message; on a
    /// continuation or control frame it is an error).
    fn is_compressed(&self, header: &FrameHeader) -> Result<bool, WsError> {
        let rsv1 = header.rsv & frame::RSV1 != 0;
        match header.opcode {
            opcode::TEXT | opcode::BINARY => Ok(rsv1),
            _ if rsv1 && header.opcode == opcode::CONTINUATION => Err(WsError::Protocol(
                "RSV1 set on a continuation frame: permessage-deflate marks only a message's first frame",
            )),
            _ if rsv1 => Err(WsError::Protocol("RSV1 set on a control frame")),
            opcode::CONTINUATION => Ok(self.fragmented.as_ref().is_some_and(|f| f.compressed)),
            _ => Ok(false),
        }
    }

    fn check_partial_text(&mut self, header: &FrameHeader, payload: &[u8]) -> Result<(), WsError> {
        let text = match header.opcode {
            opcode::TEXT => self.fragmented.is_none(),
            opcode::CONTINUATION => self.fragmented.as_ref().is_some_and(|f| f.text),
            _ => false,
        };
        let partial = &mut self.partial_text;
        if !text || payload.len() <= partial.checked {
            return Ok(());
        }
        if partial.checked == 0 && header.opcode == opcode::CONTINUATION {
            if let Some(fragmented) = &self.fragmented {
                partial.tail = fragmented.data[fragmented.utf8_checked..].to_vec();
            }
        }
        let mut chunk = std::mem::take(&mut partial.tail);
        let start = chunk.len();
        chunk.extend_from_slice(&payload[partial.checked..]);
        if let Some(key) = header.mask {
            frame::apply_mask(&mut chunk[start..], key, partial.checked);
        }
        partial.checked = payload.len();
        match std::str::from_utf8(&chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                partial.tail = chunk[e.valid_up_to()..].to_vec();
                Ok(())
            }
            Err(_) => Err(WsError::InvalidUtf8),
        }
    }

    fn check_mask(&self, header: &FrameHeader) -> Result<(), WsError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => Err(WsError::Protocol("client frames must be masked")),
            (Role::Client, true) => Err(WsError::Protocol("server frames must not be masked")),
            _ => Ok(()),
        }
    }

    fn on_frame(
        &mut self,
        header: &FrameHeader,
        payload: BytesMut,
        compressed: bool,
    ) -> Result<Option<Message>, WsError> {
        match header.opcode {
            opcode::PING => {
                if self.close == CloseState::Open {
                    self.write_frame(true, opcode::PONG, &payload);
                }
                Ok(Some(Message::Ping(payload.freeze())))
            }
            opcode::PONG => Ok(Some(Message::Pong(payload.freeze()))),
            opcode::CLOSE => self.on_close(payload).map(Some),
            opcode::TEXT | opcode::BINARY => {
                if self.fragmented.is_some() {
                    return Err(WsError::Protocol(
                        "a new message started before the fragmented one finished",
                    ));
                }
                let text = header.opcode == opcode::TEXT;
                if header.fin && !compressed {
                    return finished(text, payload.freeze()).map(Some);
                }
                let data = if compressed {
                    let mut data = Vec::new();
                    self.inflate(&payload, &mut data, header.fin)?;
                    data
                } else {
                    payload.into()
                };
                if header.fin {
                    return finished(text, Bytes::from(data)).map(Some);
                }
                let mut fragmented = Fragmented {
                    text,
                    compressed,
                    data,
                    utf8_checked: 0,
                };
                fragmented.check_utf8()?;
                self.fragmented = Some(fragmented);
                Ok(None)
            }
            opcode::CONTINUATION => {
                let Some(fragmented) = self.fragmented.as_mut() else {
                    return Err(WsError::Protocol(
                        "continuation frame without a message to continue",
                    ));
                };
                if fragmented.compressed {
                    let Some(deflate) = self.deflate.as_mut() else {
                        return Err(WsError::Protocol(
                            "compressed frame without permessage-deflate",
                        ));
                    };
                    deflate.inflate(
                        &payload,
                        &mut fragmented.data,
                        self.limits.max_message,
                        header.fin,
                    )?;
                } else {
                    fragmented.data.extend_from_slice(&payload);
                }
                fragmented.check_utf8()?;
                if !header.fin {
                    return Ok(None);
                }
                let done = self.fragmented.take().expect("checked above");
                finished(done.text, Bytes::from(done.data)).map(Some)
            }
            _ => unreachable!("parse_header rejects reserved opcodes"),
        }
    }

    fn inflate(&mut self, payload: &[u8], out: &mut Vec<u8>, fin: bool) -> Result<(), WsError> {
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(WsError::Protocol(
                "compressed frame without permessage-deflate",
            ));
        };
        deflate.inflate(payload, out, self.limits.max_message, fin)
    }

    fn on_close(&mut self, payload: BytesMut) -> Result<Message, WsError> {
        let parsed = match payload.len() {
            0 => None,
            1 => return Err(WsError::Protocol("close frame with a one-byte payload")),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !close_code_is_valid(code) {
                    return Err(WsError::Protocol("close frame with an invalid status code"));
                }
                let reason = std::str::from_utf8(&payload[2..])
                    .map_err(|_| WsError::InvalidUtf8)?
                    .to_owned();
                Some((code, reason))
            }
        };
        if self.close == CloseState::Open {
            // Echo the status code, as section 5.5.1 suggests.
            let code = parsed.as_ref().map_or(1000, |(code, _)| *code);
            self.write_frame(true, opcode::CLOSE, &code.to_be_bytes());
        }
        self.close = CloseState::Done;
        Ok(Message::Close(parsed))
    }

    /// Queues a message. Refused once we have started closing.
    pub fn send(&mut self, message: &Message) -> Result<(), WsError> {
        if self.close != CloseState::Open {
            return Err(WsError::Closed);
        }
        match message {
            Message::Text(bytes) => self.write_message(opcode::TEXT, bytes)?,
            Message::Binary(bytes) => self.write_message(opcode::BINARY, bytes)?,
            Message::Ping(bytes) => self.write_control(opcode::PING, bytes)?,
            Message::Pong(bytes) => self.write_control(opcode::PONG, bytes)?,
            Message::Close(reason) => {
                let (code, text) = reason
                    .as_ref()
                    .map_or((1000, ""), |(c, t)| (*c, t.as_str()));
                self.close_with(code, text);
            }
        }
        Ok(())
    }

    /// Queues a binary message from a borrowed slice (the echo/gate hot path).
    pub fn send_binary(&mut self, payload: &[u8]) -> Result<(), WsError> {
        if self.close != CloseState::Open {
            return Err(WsError::Closed);
        }
        self.write_message(opcode::BINARY, payload)
    }

    /// A data message in one frame, compressed when permessage-deflate is on
    /// and the message is large enough to gain from it.
    fn write_message(&mut self, op: u8, payload: &[u8]) -> Result<(), WsError> {
        let Some(deflate) = self.deflate.as_mut() else {
            self.write_frame(true, op, payload);
            return Ok(());
        };
        let mut compressed = deflate.take_scratch();
        let result = deflate.compress(payload, &mut compressed);
        match result {
            Ok(true) => self.write_frame_rsv(true, frame::RSV1, op, &compressed),
            Ok(false) => self.write_frame(true, op, payload),
            Err(_) => {}
        }
        if let Some(deflate) = self.deflate.as_mut() {
            deflate.return_scratch(compressed);
        }
        result.map(|_| ())
    }

    fn write_control(&mut self, op: u8, payload: &[u8]) -> Result<(), WsError> {
        if payload.len() > frame::MAX_CONTROL_PAYLOAD {
            return Err(WsError::Protocol("control frame payload over 125 bytes"));
        }
        self.write_frame(true, op, payload);
        Ok(())
    }

    /// Starts the close handshake (or fails the connection, after an error)
    /// with a status code and a reason trimmed to fit a control frame.
    pub fn close_with(&mut self, code: u16, reason: &str) {
        if self.close != CloseState::Open {
            return;
        }
        let mut end = reason.len().min(frame::MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.write_frame(true, opcode::CLOSE, &payload);
        self.close = CloseState::Sent;
    }

    /// After a decode error: queue the matching close frame; the transport
    /// should be closed once `out` is flushed.
    pub fn fail(&mut self, error: &WsError) {
        self.close_with(error.close_code(), &error.to_string());
        self.close = CloseState::Done;
    }

    fn write_frame(&mut self, fin: bool, op: u8, payload: &[u8]) {
        self.write_frame_rsv(fin, 0, op, payload);
    }

    fn write_frame_rsv(&mut self, fin: bool, rsv: u8, op: u8, payload: &[u8]) {
        match self.role {
            Role::Server => {
                frame::write_header(&mut self.out, fin, rsv, op, None, payload.len());
                self.out.extend_from_slice(payload);
            }
            Role::Client => {
                let key = self.next_mask();
                frame::write_header(&mut self.out, fin, rsv, op, Some(key), payload.len());
                let start = self.out.len();
                self.out.extend_from_slice(payload);
                frame::apply_mask(&mut self.out[start..], key, 0);
            }
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_ne_bytes()
    }
}

impl Fragmented {
    fn check_utf8(&mut self) -> Result<(), WsError> {
        if !self.text {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.utf8_checked..]) {
            Ok(_) => self.utf8_checked = self.data.len(),
            // A character cut at the fragment boundary is fine until the end.
            Err(e) if e.error_len().is_none() => self.utf8_checked += e.valid_up_to(),
            Err(_) => return Err(WsError::InvalidUtf8),
        }
        Ok(())
    }
}

fn finished(text: bool, data: Bytes) -> Result<Message, WsError> {
    if text {
        if std::str::from_utf8(&data).is_err() {
            return Err(WsError::InvalidUtf8);
        }
        Ok(Message::Text(data))
    } else {
        Ok(Message::Binary(data))
    }
}

/// Section 7.4: codes a peer may send. 1005, 1006 and 1015 are for reports
/// only; 1004 and 1016..=2999 are reserved; 3000..=4999 are for libraries and
/// applications.
pub fn close_code_is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut client = Protocol::new(Role::Client, Limits::default());
        client.write_frame(fin, op, payload);
        client.out
    }

    fn decode_all(server: &mut Protocol, bytes: &[u8]) -> Result<Vec<Message>, WsError> {
        let mut buf = BytesMut::from(bytes);
        let mut messages = Vec::new();
        while let Some(m) = server.decode(&mut buf)? {
            messages.push(m);
        }
        Ok(messages)
    }

    #[test]
    fn fragments_join_with_a_ping_between_them_and_the_ping_is_answered() {
        let mut server = Protocol::new(Role::Server, Limits::default());
        let mut wire = client_frame(false, opcode::TEXT, "héll".as_bytes());
        wire.extend(client_frame(true, opcode::PING, b"p"));
        wire.extend(client_frame(
            true,
            opcode::CONTINUATION,
            "o wörld".as_bytes(),
        ));
        let messages = decode_all(&mut server, &wire).unwrap();
        assert_eq!(messages[0], Message::Ping(Bytes::from_static(b"p")));
        assert_eq!(messages[1], Message::Text(Bytes::from("héllo wörld")));
        assert_eq!(server.out, vec![0x8A, 1, b'p'], "unmasked pong");
    }

    #[test]
    fn every_split_point_of_the_input_gives_the_same_messages() {
        let mut wire = client_frame(true, opcode::BINARY, &[7u8; 300]);
        wire.extend(client_frame(true, opcode::TEXT, b"hello"));
        for split in 0..wire.len() {
            let mut server = Protocol::new(Role::Server, Limits::default());
            let mut buf = BytesMut::from(&wire[..split]);
            let mut got = Vec::new();
            while let Some(m) = server.decode(&mut buf).unwrap() {
                got.push(m);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(m) = server.decode(&mut buf).unwrap() {
                got.push(m);
            }
            assert_eq!(got.len(), 2, "split at {split}");
        }
    }

    #[test]
    fn invalid_utf8_fails_at_the_fragment_that_breaks_it() {
        let mut server = Protocol::new(Role::Server, Limits::default());
        let wire = client_frame(false, opcode::TEXT, &[0xCE, 0xBA, 0xF8]);
        assert_eq!(decode_all(&mut server, &wire), Err(WsError::InvalidUtf8));
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    }

    #[test]
    fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
        let mut server = Protocol::new(Role::Server, Limits::default());
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xED, 0xA0, 0x80]);
        payload.extend_from_slice(&[b'a'; 100]);
        let wire = client_frame(true, opcode::TEXT, &payload);
        let mut buf = BytesMut::from(&wire[..6 + 8]);
        assert_eq!(
            server.decode(&mut buf),
            Ok(None),
            "valid so far, incomplete"
        );
        buf.extend_from_slice(&wire[14..6 + 13]);
        assert_eq!(server.decode(&mut buf), Err(WsError::InvalidUtf8));
        // A valid message split at every byte still decodes.
        let good = client_frame(true, opcode::TEXT, "héllo wörld κόσμε".as_bytes());
        let mut server = Protocol::new(Role::Server, Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for byte in &good {
            buf.extend_from_slice(&[*byte]);
            if let Some(message) = server.decode(&mut buf).unwrap() {
                got = Some(message);
            }
        }
        assert_eq!(got, Some(Message::Text(Bytes::from("héllo wörld κόσμε"))));
    }

    #[test]
    fn unmasked_client_frames_and_oversized_messages_are_refused() {
        let mut server = Protocol::new(Role::Server, Limits { max_message: 100 });
        assert!(decode_all(&mut server, &[0x82, 0x01, 0x00]).is_err());
        let wire = client_frame(true, opcode::BINARY, &[0u8; 101]);
        let mut server = Protocol::new(Role::Server, Limits { max_message: 100 });
        assert_eq!(
            decode_all(&mut server, &wire),
            Err(WsError::TooBig { limit: 100 })
        );
    }

    fn deflating(role: Role, limits: Limits) -> Protocol {
        use crate::ws::deflate::{DeflateConfig, Params};
        let params = Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let mut protocol = Protocol::new(role, limits);
        protocol.enable_deflate(PerMessageDeflate::new(role, &params, &DeflateConfig::on()));
        protocol
    }

    #[test]
    fn compressed_messages_round_trip_both_ways_and_only_large_ones_are_compressed() {
        let mut client = deflating(Role::Client, Limits::default());
        let mut server = deflating(Role::Server, Limits::default());
        let long = "the hearth keeps the fire; ".repeat(40);
        for _ in 0..3 {
            client
                .send(&Message::Text(Bytes::from(long.clone())))
                .unwrap();
        }
        client.send_binary(b"tiny").unwrap();
        assert_eq!(client.out[0], 0x80 | frame::RSV1 | opcode::TEXT);
        assert!(client.out.len() < long.len(), "{} bytes", client.out.len());
        let wire = std::mem::take(&mut client.out);
        let got = decode_all(&mut server, &wire).unwrap();
        assert_eq!(got.len(), 4);
        for message in &got[..3] {
            assert_eq!(message, &Message::Text(Bytes::from(long.clone())));
        }
        assert_eq!(got[3], Message::Binary(Bytes::from_static(b"tiny")));
        let tiny_frame = &wire[wire.len() - 10..];
        assert_eq!(tiny_frame[0], 0x80 | opcode::BINARY, "4 bytes go out plain");
        // And back: the server compresses, unmasked.
        server
            .send(&Message::Binary(Bytes::from(long.clone())))
            .unwrap();
        assert_eq!(server.out[0], 0x80 | frame::RSV1 | opcode::BINARY);
        let back = decode_all(&mut client, &std::mem::take(&mut server.out)).unwrap();
        assert_eq!(back, vec![Message::Binary(Bytes::from(long))]);
    }

    #[test]
    fn a_compressed_message_may_be_fragmented_around_a_ping() {
        let mut peer = deflating(Role::Client, Limits::default());
        let text = "κόσμε hearth ".repeat(30);
        let mut compressed = Vec::new();
        let deflate = peer.deflate.as_mut().unwrap();
        assert!(deflate.compress(text.as_bytes(), &mut compressed).unwrap());
        let (first, rest) = compressed.split_at(compressed.len() / 2);
        peer.write_frame_rsv(false, frame::RSV1, opcode::TEXT, first);
        peer.write_frame(true, opcode::PING, b"p");
        peer.write_frame(true, opcode::CONTINUATION, rest);
        let mut server = deflating(Role::Server, Limits::default());
        let got = decode_all(&mut server, &peer.out).unwrap();
        assert_eq!(got[0], Message::Ping(Bytes::from_static(b"p")));
        assert_eq!(got[1], Message::Text(Bytes::from(text)));
    }

    #[test]
    fn rsv1_is_refused_unless_negotiated_and_only_allowed_on_a_first_data_frame() {
        let rsv1 = |op: u8, fin: bool, payload: &[u8]| {
            let mut client = Protocol::new(Role::Client, Limits::default());
            client.write_frame_rsv(fin, frame::RSV1, op, payload);
            client.out
        };
        let mut plain = Protocol::new(Role::Server, Limits::default());
        let error = decode_all(&mut plain, &rsv1(opcode::BINARY, true, &[0])).unwrap_err();
        assert_eq!(error.close_code(), 1002);
        let mut server = deflating(Role::Server, Limits::default());
        let error = decode_all(&mut server, &rsv1(opcode::PING, true, b"")).unwrap_err();
        assert_eq!(error.close_code(), 1002);
        let mut server = deflating(Role::Server, Limits::default());
        let mut wire = rsv1(opcode::BINARY, false, &[]);
        wire.extend(rsv1(opcode::CONTINUATION, true, &[0]));
        let error = decode_all(&mut server, &wire).unwrap_err();
        assert_eq!(error.close_code(), 1002);
        let mut server = deflating(Role::Server, Limits::default());
        let error = decode_all(&mut server, &rsv1(opcode::BINARY, true, &[0xff; 8])).unwrap_err();
        assert_eq!(error.close_code(), 1007, "not deflate data");
    }

    #[test]
    fn compressed_text_is_utf8_checked_after_inflating() {
        let mut peer = deflating(Role::Client, Limits::default());
        let mut bad = vec![b'a'; 100];
        bad.extend_from_slice(&[0xED, 0xA0, 0x80]);
        let mut compressed = Vec::new();
        assert!(peer
            .deflate
            .as_mut()
            .unwrap()
            .compress(&bad, &mut compressed)
            .unwrap());
        peer.write_frame_rsv(true, frame::RSV1, opcode::TEXT, &compressed);
        let mut server = deflating(Role::Server, Limits::default());
        assert_eq!(
            decode_all(&mut server, &peer.out),
            Err(WsError::InvalidUtf8)
        );
    }

    #[test]
    fn a_compressed_message_inflating_past_the_limit_fails_with_1009() {
        let mut peer = deflating(Role::Client, Limits::default());
        peer.send_binary(&vec![0u8; 4 * 1024 * 1024]).unwrap();
        assert!(
            peer.out.len() < 16 * 1024,
            "{} bytes on the wire",
            peer.out.len()
        );
        let limit = 64 * 1024;
        let mut server = deflating(Role::Server, Limits { max_message: limit });
        let error = decode_all(&mut server, &peer.out).unwrap_err();
        assert_eq!(error, WsError::TooBig { limit });
        assert_eq!(error.close_code(), 1009);
    }

    #[test]
    fn close_is_echoed_once_and_invalid_codes_are_protocol_errors() {
        let mut server = Protocol::new(Role::Server, Limits::default());
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let messages =
            decode_all(&mut server, &client_frame(true, opcode::CLOSE, &payload)).unwrap();
        assert_eq!(messages, vec![Message::Close(Some((1000, "bye".into())))]);
        assert_eq!(server.out, vec![0x88, 2, 0x03, 0xE8]);
        assert!(server.is_done());
        for code in [0u16, 999, 1004, 1005, 1006, 1016, 2999, 5000] {
            let mut server = Protocol::new(Role::Server, Limits::default());
            let frame = client_frame(true, opcode::CLOSE, &code.to_be_bytes());
            assert!(decode_all(&mut server, &frame).is_err(), "code {code}");
        }
    }
}
