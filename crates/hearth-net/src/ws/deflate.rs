//! permessage-deflate (RFC 7692), sans-IO: the negotiation of its parameters
//! in `Sec-WebSocket-Extensions`, and the per-message compressor and
//! decompressor that [`Protocol`](super::Protocol) runs on messages whose
//! first frame carries RSV1.
//!
//! Off by default ([`DeflateConfig::enabled`]): game messages are small and
//! mostly binary, so compressing them costs more CPU than it saves bytes. It
//! pays for text-heavy traffic (JSON, chat, pages) where clients ask for it.
//!
//! Memory is bounded. The LZ77 window of both directions is capped by
//! [`DeflateConfig::max_window_bits`], and the codecs are only allocated when
//! a message first needs them (a connection that never sends or receives a
//! compressed message pays nothing). Inflating stops as soon as the message passes
//! [`Limits::max_message`](super::Limits), so a small "bomb" (megabytes of
//! zeros in a few kilobytes) fails with 1009 holding at most the limit.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{Role, WsError};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION: &str = "permessage-deflate";

/// Section 7.2.1: a sync flush ends with an empty stored block whose last
/// four bytes the sender removes and the receiver appends again.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib (and zlib-rs, through flate2) cannot run raw deflate with a 256-byte
/// window: 9 bits is the smallest codec window. An inflater with a larger
/// window than the sender's reads its stream all the same; a deflater must
/// not exceed what was negotiated, so a negotiated 8 means we send messages
/// uncompressed (RSV1 is per message: that is always allowed).
const MIN_CODEC_BITS: u8 = 9;

/// Output grows by at least this much at a time while inflating.
const INFLATE_CHUNK: usize = 16 * 1024;

/// The compression scratch buffer kept between messages; a larger one (after
/// a big message) is freed so an idle connection does not hold it.
const KEEP_SCRATCH: usize = 64 * 1024;

/// What this end agrees to. The server answers offers only when `enabled`;
/// the client offers only when `enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    pub enabled: bool,
    /// The largest LZ77 window, as a power of two (8..=15), that either
    /// direction may use. Measured with zlib-rs, a compressor takes about
    /// 370 KiB at 15 and 245 KiB at 9 (its hash tables dominate), a
    /// decompressor about 46 KiB. Below 15, offers that do not let the
    /// server limit the client's window (no `client_max_window_bits`) are
    /// declined.
    pub max_window_bits: u8,
    /// Messages shorter than this go out uncompressed: a few dozen bytes
    /// of game state barely shrink, and each compressed message costs a
    /// flush block and CPU.
    pub min_size: usize,
    /// zlib level, 0..=9. 2 by default: on 4 KiB JSON messages (zlib-rs)
    /// it took a quarter of level 6's CPU (22 against 89 us a message)
    /// for 13 % more bytes; level 1 halves the CPU again for 50 % more.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_window_bits: 15,
            min_size: 64,
            level: 2,
        }
    }
}

impl DeflateConfig {
    /// The same, switched on.
    pub fn on() -> Self {
        Self {
            enabled: true,
            ..Self::default()
        }
    }

    fn window_cap(&self) -> u8 {
        self.max_window_bits.clamp(8, 15)
    }
}

/// The negotiated parameters (section 7.1), named as on the wire: `server_*`
/// is the server-to-client direction whichever end we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    /// 8..=15.
    pub server_max_window_bits: u8,
    /// 8..=15.
    pub client_max_window_bits: u8,
}

/// One `permessage-deflate` element, its parameters checked for syntax,
/// duplicates and range (section 7.1). `None` fields were absent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Element {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only an offer may do that).
    client_max_window_bits: Option<Option<u8>>,
}

/// Server side: the first acceptable `permessage-deflate` offer among the
/// request's `Sec-WebSocket-Extensions` values, and the header value that
/// accepts it. `None`: decline (deflate disabled, nothing offered, or every
/// offer malformed or unacceptable); the connection goes on uncompressed.
pub fn negotiate<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<(Params, String)> {
    if !config.enabled {
        return None;
    }
    let cap = config.window_cap();
    for value in header_values {
        for extension in split_outside_quotes(value, ',') {
            let mut parts = split_outside_quotes(extension, ';').into_iter();
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case(EXTENSION) {
                continue;
            }
            // A malformed offer is declined; a later one may still do.
            let Some(offer) = parse_element(parts) else {
                continue;
            };
            if let Some(accepted) = accept_offer(&offer, cap) {
                return Some(accepted);
            }
        }
    }
    None
}

fn accept_offer(offer: &Element, cap: u8) -> Option<(Params, String)> {
    let client_max_window_bits = match offer.client_max_window_bits {
        // The client may then use a 32 KiB window, which our cap forbids
        // (section 7.1.2.2: we may not ask for less unless it says it can).
        None if cap < 15 => return None,
        None => 15,
        Some(hint) => hint.unwrap_or(15).min(cap),
    };
    let server_max_window_bits = offer.server_max_window_bits.unwrap_or(15).min(cap);
    let params = Params {
        server_no_context_takeover: offer.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    };
    let mut response = EXTENSION.to_owned();
    if params.server_no_context_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    // Section 7.1.2.1: echoed when offered (same or smaller), and allowed
    // unasked to announce a smaller window than the default.
    if offer.server_max_window_bits.is_some() || server_max_window_bits < 15 {
        response.push_str(&format!(
            "; server_max_window_bits={server_max_window_bits}"
        ));
    }
    if client_max_window_bits < 15 {
        response.push_str(&format!(
            "; client_max_window_bits={client_max_window_bits}"
        ));
    }
    Some((params, response))
}

/// Client side: the `Sec-WebSocket-Extensions` value to offer, if enabled.
pub fn client_offer(config: &DeflateConfig) -> Option<String> {
    if !config.enabled {
        return None;
    }
    let cap = config.window_cap();
    Some(if cap < 15 {
        format!("{EXTENSION}; client_max_window_bits={cap}; server_max_window_bits={cap}")
    } else {
        format!("{EXTENSION}; client_max_window_bits")
    })
}

/// Client side: checks the server's answer to [`client_offer`]. An error
/// fails the connection (RFC 6455 section 9.1: the server may only accept
/// what was offered).
pub fn accept_response(value: &str, config: &DeflateConfig) -> Result<Params, String> {
    let refuse = |why: &str| {
        Err(format!(
            "server answered {value:?} to our deflate offer: {why}"
        ))
    };
    if !config.enabled {
        return refuse("we offered no extension");
    }
    let cap = config.window_cap();
    let elements = split_outside_quotes(value, ',');
    if elements.len() != 1 {
        return refuse("only one extension was offered");
    }
    let mut parts = split_outside_quotes(elements[0], ';').into_iter();
    if !parts
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(EXTENSION)
    {
        return refuse("not the extension we offered");
    }
    let Some(response) = parse_element(parts) else {
        return refuse("malformed or repeated parameters");
    };
    let server_max_window_bits = match response.server_max_window_bits {
        Some(bits) if bits > cap => return refuse("a server window above the one we allowed"),
        Some(bits) => bits,
        None if cap < 15 => return refuse("server_max_window_bits missing though we offered it"),
        None => 15,
    };
    let client_max_window_bits = match response.client_max_window_bits {
        Some(None) => return refuse("client_max_window_bits needs a value in a response"),
        Some(Some(bits)) => bits.min(cap),
        None => cap,
    };
    Ok(Params {
        server_no_context_takeover: response.server_no_context_takeover,
        client_no_context_takeover: response.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    })
}

/// Parses `name[=value]` parameters; `None` on any unknown, repeated or
/// out-of-range one.
fn parse_element<'a>(params: impl Iterator<Item = &'a str>) -> Option<Element> {
    let mut element = Element::default();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param.trim(), None),
        };
        let flag = |seen: &mut bool| (!*seen && value.is_none()).then(|| *seen = true);
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => flag(&mut element.server_no_context_takeover)?,
            "client_no_context_takeover" => flag(&mut element.client_no_context_takeover)?,
            "server_max_window_bits" => {
                if element.server_max_window_bits.is_some() {
                    return None;
                }
                element.server_max_window_bits = Some(window_bits(value.as_deref()?)?);
            }
            "client_max_window_bits" => {
                if element.client_max_window_bits.is_some() {
                    return None;
                }
                element.client_max_window_bits = Some(match value.as_deref() {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    Some(element)
}

/// Section 7.1.2: a decimal integer from 8 to 15 without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    (8u8..=15).find(|bits| bits.to_string() == value)
}

/// A token as is, or a quoted-string unescaped (RFC 7230 section 3.2.6).
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        let token = !value.is_empty() && value.bytes().all(is_token_byte);
        return token.then(|| value.to_owned());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits on `sep` where it is not inside a quoted-string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The compressor and decompressor of one connection.
pub struct PerMessageDeflate {
    deflater: Deflater,
    inflater: Inflater,
}

impl PerMessageDeflate {
    pub fn new(role: Role, params: &Params, config: &DeflateConfig) -> Self {
        let (ours, theirs) = match role {
            Role::Server => (
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
            ),
            Role::Client => (
                (
                    params.client_max_window_bits,
                    params.client_no_context_takeover,
                ),
                (
                    params.server_max_window_bits,
                    params.server_no_context_takeover,
                ),
            ),
        };
        Self {
            deflater: Deflater {
                codec: None,
                window_bits: ours.0,
                reset_each_message: ours.1,
                level: config.level.min(9),
                min_size: config.min_size,
                scratch: Vec::new(),
            },
            inflater: Inflater {
                codec: None,
                window_bits: theirs.0.max(MIN_CODEC_BITS),
                reset_each_message: theirs.1,
                ended: false,
            },
        }
    }

    /// Compresses a whole message into `out` (cleared first), without the
    /// four-byte tail. `Ok(false)`: send this one uncompressed.
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<bool, WsError> {
        self.deflater.compress(message, out)
    }

    /// Inflates one frame of a compressed message onto `out`; `fin` ends the
    /// message. Fails with [`WsError::TooBig`] as soon as `out` would pass
    /// `limit`, and with [`WsError::BadDeflate`] on data that is not deflate.
    pub fn inflate(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        fin: bool,
    ) -> Result<(), WsError> {
        self.inflater.inflate(payload, out, limit)?;
        if fin {
            self.inflater.finish(out, limit)?;
        }
        Ok(())
    }

    /// The compression buffer, lent to the caller while it writes a frame.
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.deflater.scratch)
    }

    pub(crate) fn return_scratch(&mut self, mut scratch: Vec<u8>) {
        if scratch.capacity() <= KEEP_SCRATCH {
            scratch.clear();
            self.deflater.scratch = scratch;
        }
    }
}

struct Deflater {
    /// Allocated by the first compressed message.
    codec: Option<Compress>,
    window_bits: u8,
    reset_each_message: bool,
    level: u32,
    min_size: usize,
    scratch: Vec<u8>,
}

impl Deflater {
    fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<bool, WsError> {
        if self.window_bits < MIN_CODEC_BITS || message.len() < self.min_size {
            return Ok(false);
        }
        out.clear();
        if message.is_empty() {
            // Section 7.2.3.6: an empty stored block, which zlib would not
            // emit for a sync flush without new input after another one.
            out.push(0x00);
            return Ok(true);
        }
        let (bits, level) = (self.window_bits, self.level);
        let codec = self.codec.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        out.reserve(message.len() / 2 + 64);
        let mut input = message;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = codec.total_in();
            codec
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(|_| WsError::Io("the deflate compressor failed".into()))?;
            input = &input[(codec.total_in() - before) as usize..];
            // Section 7.2.1: the flush is complete once deflate leaves
            // output space unused with all input taken.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if !out.ends_with(&TAIL) {
            return Err(WsError::Io(
                "the deflate compressor ended a message without a sync flush".into(),
            ));
        }
        out.truncate(out.len() - TAIL.len());
        if self.reset_each_message {
            codec.reset();
        }
        Ok(true)
    }
}

struct Inflater {
    /// Allocated by the first compressed message received.
    codec: Option<Decompress>,
    window_bits: u8,
    reset_each_message: bool,
    /// The peer ended its deflate stream (a block with BFINAL set) in this
    /// message: nothing may follow, and the next message starts a new stream.
    ended: bool,
}

impl Inflater {
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), WsError> {
        // Each call leaves no output pending inside the codec (see the end
        // of the loop), so no input means nothing to do.
        if input.is_empty() {
            return Ok(());
        }
        if self.ended {
            return Err(WsError::BadDeflate("data after the final deflate block"));
        }
        let bits = self.window_bits;
        let codec = self
            .codec
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        loop {
            // Grow geometrically but never past limit + 1 bytes: one byte
            // over is enough to know the message is too big, and a bomb
            // never gets more memory than the limit allows.
            if out.len() == out.capacity() {
                let room = out.len().max(INFLATE_CHUNK).min(limit + 1 - out.len());
                out.reserve_exact(room);
            }
            let (before_in, before_out) = (codec.total_in(), codec.total_out());
            let status = codec
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| WsError::BadDeflate("invalid deflate data"))?;
            let consumed = (codec.total_in() - before_in) as usize;
            let produced = codec.total_out() - before_out;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(WsError::TooBig { limit });
            }
            if status == Status::StreamEnd {
                self.ended = true;
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(WsError::BadDeflate("data after the final deflate block"))
                };
            }
            // All input taken and output room left over: nothing is pending.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                // Input and room, yet no progress: zlib is stuck on the data.
                return Err(WsError::BadDeflate("invalid deflate data"));
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), WsError> {
        if !self.ended {
            self.inflate(&TAIL, out, limit)?;
        }
        if self.reset_each_message || self.ended {
            if let Some(codec) = self.codec.as_mut() {
                codec.reset(false);
            }
            self.ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(offer: &str) -> Option<(Params, String)> {
        negotiate([offer], &DeflateConfig::on())
    }

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> Params {
        Params {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    #[test]
    fn each_offer_parameter_is_accepted_and_answered() {
        let table: &[(&str, Params, &str)] = &[
            (
                "permessage-deflate",
                params(false, false, 15, 15),
                "permessage-deflate",
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                params(true, false, 15, 15),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                params(false, true, 15, 15),
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                params(false, false, 10, 15),
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                params(false, false, 15, 15),
                "permessage-deflate; server_max_window_bits=15",
            ),
            (
                "permessage-deflate; server_max_window_bits=\"9\"",
                params(false, false, 9, 15),
                "permessage-deflate; server_max_window_bits=9",
            ),
            (
                "permessage-deflate; client_max_window_bits",
                params(false, false, 15, 15),
                "permessage-deflate",
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                params(false, false, 15, 8),
                "permessage-deflate; client_max_window_bits=8",
            ),
            (
                "Permessage-Deflate ;Client_No_Context_Takeover ; server_max_window_bits = 12",
                params(false, true, 12, 15),
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
            ),
        ];
        for (offer, want, response) in table {
            let (got, header) = server(offer).unwrap_or_else(|| panic!("{offer} declined"));
            assert_eq!(&got, want, "{offer}");
            assert_eq!(&header, response, "{offer}");
        }
    }

    #[test]
    fn malformed_and_repeated_parameters_decline_the_offer() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=\"9",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; mystery",
            "permessage-deflate; =9",
            "x-webkit-deflate-frame",
            "permessage-deflate-2",
            "",
        ] {
            assert_eq!(server(offer), None, "{offer:?} must be declined");
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins_and_bad_ones_are_skipped() {
        let offers = "x-foo; a=\"b, permessage-deflate\", \
                      permessage-deflate; server_max_window_bits=99, \
                      permessage-deflate; client_no_context_takeover, \
                      permessage-deflate";
        let (got, _) = server(offers).unwrap();
        assert_eq!(got, params(false, true, 15, 15));
        // Across header lines too.
        let (got, _) = negotiate(
            ["x-foo", "permessage-deflate; server_max_window_bits=9"],
            &DeflateConfig::on(),
        )
        .unwrap();
        assert_eq!(got.server_max_window_bits, 9);
    }

    #[test]
    fn disabled_or_capped_config_declines_or_limits() {
        assert_eq!(
            negotiate(["permessage-deflate"], &DeflateConfig::default()),
            None
        );
        let capped = DeflateConfig {
            max_window_bits: 10,
            ..DeflateConfig::on()
        };
        // The client's window cannot be limited: declined.
        assert_eq!(negotiate(["permessage-deflate"], &capped), None);
        let (got, header) = negotiate(
            ["permessage-deflate; client_max_window_bits; server_max_window_bits=12"],
            &capped,
        )
        .unwrap();
        assert_eq!(got, params(false, false, 10, 10));
        assert_eq!(
            header,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        );
    }

    #[test]
    fn the_client_checks_the_answer_against_its_offer() {
        let on = DeflateConfig::on();
        assert_eq!(
            client_offer(&on).unwrap(),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(
            accept_response("permessage-deflate", &on),
            Ok(params(false, false, 15, 15))
        );
        assert_eq!(
            accept_response(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
                &on
            ),
            Ok(params(true, false, 15, 9))
        );
        for bad in [
            "x-other",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=20",
            "permessage-deflate; what",
        ] {
            assert!(accept_response(bad, &on).is_err(), "{bad}");
        }
        assert!(accept_response("permessage-deflate", &DeflateConfig::default()).is_err());
        let capped = DeflateConfig {
            max_window_bits: 11,
            ..on
        };
        assert_eq!(
            client_offer(&capped).unwrap(),
            "permessage-deflate; client_max_window_bits=11; server_max_window_bits=11"
        );
        assert!(accept_response("permessage-deflate", &capped).is_err());
        assert!(accept_response("permessage-deflate; server_max_window_bits=12", &capped).is_err());
        assert_eq!(
            accept_response("permessage-deflate; server_max_window_bits=9", &capped),
            Ok(params(false, false, 9, 11))
        );
    }

    fn text(n: usize, seed: u32) -> Vec<u8> {
        let words = [
            "hearth ",
            "fire ",
            "ember ",
            "ash ",
            "{\"x\":12,",
            "\"y\":-3} ",
        ];
        let mut state = seed;
        let mut out = Vec::new();
        while out.len() < n {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(words[(state >> 16) as usize % words.len()].as_bytes());
        }
        out.truncate(n);
        out
    }

    /// Both ends of one direction: our server's deflater into a client's inflater.
    fn round_trip(params: Params, messages: &[Vec<u8>]) -> usize {
        let config = DeflateConfig {
            min_size: 0,
            ..DeflateConfig::on()
        };
        let mut server = PerMessageDeflate::new(Role::Server, &params, &config);
        let mut client = PerMessageDeflate::new(Role::Client, &params, &config);
        let mut wire = 0;
        for message in messages {
            let mut compressed = Vec::new();
            assert!(server.compress(message, &mut compressed).unwrap());
            wire += compressed.len();
            // Split into frames of 7 bytes, as a peer may fragment.
            let mut inflated = Vec::new();
            let chunks: Vec<&[u8]> = compressed.chunks(7).collect();
            if chunks.is_empty() {
                client.inflate(&[], &mut inflated, 1 << 20, true).unwrap();
            }
            for (i, chunk) in chunks.iter().enumerate() {
                client
                    .inflate(chunk, &mut inflated, 1 << 20, i + 1 == chunks.len())
                    .unwrap();
            }
            assert_eq!(&inflated, message);
        }
        wire
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover_at_several_windows() {
        let messages: Vec<Vec<u8>> = (0..20).map(|i| text(100 + i * 97, 7)).collect();
        let raw: usize = messages.iter().map(Vec::len).sum();
        for bits in [9, 10, 12, 15] {
            let takeover = round_trip(params(false, false, bits, bits), &messages);
            let fresh = round_trip(params(true, true, bits, bits), &messages);
            assert!(takeover < raw / 2, "bits {bits}: {takeover} of {raw}");
            // Repeated messages reuse the previous ones when the context is kept.
            assert!(takeover < fresh, "bits {bits}: {takeover} !< {fresh}");
        }
        // The empty message compresses to one byte (section 7.2.3.6).
        let mut server = PerMessageDeflate::new(
            Role::Server,
            &params(false, false, 15, 15),
            &DeflateConfig {
                min_size: 0,
                ..DeflateConfig::on()
            },
        );
        let mut out = Vec::new();
        assert!(server.compress(b"", &mut out).unwrap());
        assert_eq!(out, [0x00]);
        // Also after a message, when the codec has nothing new to flush.
        assert!(server.compress(&text(500, 3), &mut out).unwrap());
        assert!(server.compress(b"", &mut out).unwrap());
        assert_eq!(out, [0x00]);
    }

    #[test]
    fn a_window_of_8_sends_uncompressed_and_small_messages_stay_uncompressed() {
        let config = DeflateConfig::on();
        let mut server = PerMessageDeflate::new(Role::Server, &params(false, false, 8, 8), &config);
        assert!(!server.compress(&text(1000, 1), &mut Vec::new()).unwrap());
        // Its inflater still reads a peer that used 8 (or 9, as zlib does).
        let mut peer = PerMessageDeflate::new(Role::Client, &params(false, false, 15, 9), &config);
        let mut compressed = Vec::new();
        assert!(peer.compress(&text(1000, 1), &mut compressed).unwrap());
        let mut inflated = Vec::new();
        server
            .inflate(&compressed, &mut inflated, 4096, true)
            .unwrap();
        assert_eq!(inflated, text(1000, 1));
        let mut server =
            PerMessageDeflate::new(Role::Server, &params(false, false, 15, 15), &config);
        assert!(!server.compress(&[1; 63], &mut Vec::new()).unwrap());
        assert!(server.compress(&[1; 64], &mut Vec::new()).unwrap());
    }

    #[test]
    fn a_deflate_bomb_fails_at_the_limit_without_inflating_past_it() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let mut sender = Compress::new(Compression::best(), false);
        let mut bomb = Vec::with_capacity(64 * 1024);
        sender
            .compress_vec(&zeros, &mut bomb, FlushCompress::Sync)
            .unwrap();
        assert!(bomb.len() < 20 * 1024, "{} bytes", bomb.len());
        let limit = 1024 * 1024;
        let mut server = PerMessageDeflate::new(
            Role::Server,
            &params(false, false, 15, 15),
            &DeflateConfig::on(),
        );
        let mut inflated = Vec::new();
        let error = server
            .inflate(&bomb, &mut inflated, limit, true)
            .unwrap_err();
        assert_eq!(error, WsError::TooBig { limit });
        assert_eq!(error.close_code(), 1009);
        assert!(inflated.len() <= limit + 1, "held {}", inflated.len());
        assert!(
            inflated.capacity() <= limit + 1,
            "reserved {}",
            inflated.capacity()
        );
    }

    #[test]
    fn garbage_and_data_after_the_final_block_are_refused() {
        let config = DeflateConfig::on();
        let p = params(false, false, 15, 15);
        let mut server = PerMessageDeflate::new(Role::Server, &p, &config);
        let error = server
            .inflate(&[0xff; 32], &mut Vec::new(), 1 << 20, true)
            .unwrap_err();
        assert_eq!(error.close_code(), 1007);
        // A stream ended with BFINAL: accepted, and the next message starts afresh.
        let mut sender = Compress::new(Compression::default(), false);
        let mut finished = Vec::with_capacity(1024);
        sender
            .compress_vec(b"hello hello hello", &mut finished, FlushCompress::Finish)
            .unwrap();
        let mut server = PerMessageDeflate::new(Role::Server, &p, &config);
        let mut out = Vec::new();
        server.inflate(&finished, &mut out, 1 << 20, true).unwrap();
        assert_eq!(out, b"hello hello hello");
        let mut out = Vec::new();
        server.inflate(&finished, &mut out, 1 << 20, true).unwrap();
        assert_eq!(out, b"hello hello hello");
        let mut trailing = finished.clone();
        trailing.push(0x00);
        let mut server = PerMessageDeflate::new(Role::Server, &p, &config);
        assert!(server
            .inflate(&trailing, &mut Vec::new(), 1 << 20, true)
            .is_err());
    }
}
