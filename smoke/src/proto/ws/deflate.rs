//! permessage-deflate (RFC 7692): the negotiation in the upgrade, and messages inflated and
//! deflated with flate2 (zlib-rs).
//!
//! Two modes. Shared (the default): neither side keeps its compression context between
//! messages (`server_no_context_takeover` and `client_no_context_takeover` in every answer), so
//! one compressor and one decompressor per worker serve all its connections, a connection holds
//! no zlib memory, and a publication is compressed once for every subscriber. Dedicated
//! (opt-in): each connection keeps its own contexts, as the client offered, for better ratios
//! on similar consecutive messages, at the memory cost of its own zlib state.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::proto::Sink;

/// Every compressed message ends with this (an empty stored block), which the sender strips
/// and the receiver appends (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// The largest LZ77 window, and the one used unless the client asks for less.
pub(crate) use super::MAX_WINDOW_BITS;
/// zlib cannot compress raw deflate with a 256-byte window (it makes it 512): a client that
/// limits the server to 8 bits gets its messages uncompressed, which RFC 7692 allows.
const MIN_COMPRESSING_WINDOW_BITS: u8 = 9;
/// Messages shorter than this are sent as they are: deflate's framing would outweigh the gain.
pub(crate) const MIN_COMPRESSED_MESSAGE: usize = 64;
/// How a connection's messages are compressed, agreed in its upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The window the client allowed the server's compression (`server_max_window_bits`).
    pub(crate) server_window_bits: u8,
    /// The connection keeps its own contexts (dedicated mode); otherwise both sides reset
    /// after every message.
    pub(crate) dedicated: bool,
    /// Dedicated: the client asked the server to reset after each message.
    pub(crate) server_no_context_takeover: bool,
    /// Dedicated: the client offered to reset after each message.
    pub(crate) client_no_context_takeover: bool,
}

impl Negotiated {
    /// The window this connection's outgoing messages are compressed with, if any.
    pub(crate) fn compressing_window(self) -> Option<u8> {
        (self.server_window_bits >= MIN_COMPRESSING_WINDOW_BITS).then_some(self.server_window_bits)
    }

    /// The `Sec-WebSocket-Extensions` line of the 101.
    pub(crate) fn write_response(self, sink: &mut impl Sink) {
        sink.write(b"\r\nSec-WebSocket-Extensions: permessage-deflate");
        if !self.dedicated || self.server_no_context_takeover {
            sink.write(b"; server_no_context_takeover");
        }
        if !self.dedicated || self.client_no_context_takeover {
            sink.write(b"; client_no_context_takeover");
        }
        if self.server_window_bits < MAX_WINDOW_BITS {
            sink.write(b"; server_max_window_bits=");
            let digits = [b'0' + self.server_window_bits / 10, b'0' + self.server_window_bits % 10];
            sink.write(if digits[0] == b'0' { &digits[1..] } else { &digits });
        }
    }
}

/// Picks the first permessage-deflate offer in the `Sec-WebSocket-Extensions` header values
/// that smoke can take; `None` when there is none (the connection goes uncompressed). An offer
/// with an unknown parameter, a parameter twice or a value out of range is declined, as RFC
/// 7692 §7.1 asks.
pub(crate) fn negotiate<'h>(headers: impl IntoIterator<Item = &'h [u8]>, dedicated: bool) -> Option<Negotiated> {
    headers
        .into_iter()
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .find_map(|text| offer(text, dedicated))
}

fn offer(text: &str, dedicated: bool) -> Option<Negotiated> {
    let mut parts = text.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen = [false; 4];
    let mut server_window_bits = MAX_WINDOW_BITS;
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (part, None),
        };
        let index = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ]
        .iter()
        .position(|known| name.eq_ignore_ascii_case(known))?;
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        let bits = |value: Option<&str>| value.and_then(|v| v.parse::<u8>().ok()).filter(|b| (8..=15).contains(b));
        match (index, value) {
            // Shared: no context is ever taken over, asked or not. Dedicated: as asked.
            (0 | 1, None) => {}
            (2, value) => server_window_bits = bits(value)?,
            // The client's window only bounds its own compression; inflating with the largest
            // window reads any smaller one.
            (3, None) => {}
            (3, value) => {
                bits(value)?;
            }
            _ => return None,
        }
    }
    Some(Negotiated {
        server_window_bits,
        dedicated,
        // Shared mode resets both sides whatever was asked.
        server_no_context_takeover: dedicated && seen[0],
        client_no_context_takeover: dedicated && seen[1],
    })
}

/// Why a compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates to more than `max_message` (stopped there: a bomb costs no more).
    TooBig,
    /// Not a valid deflate stream.
    Corrupt,
}

/// A decompressor: per worker for the connections that take over no context (reset after each
/// message), or a dedicated connection's own.
pub(crate) struct Inflater {
    zlib: Decompress,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater { zlib: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS) }
    }
}

impl Inflater {
    /// Inflates one message's payload into `out` (cleared first), never past `max` bytes. The
    /// context is kept for the next message when `keep` (a dedicated connection whose client
    /// takes it over); after an error it never is.
    pub(crate) fn message(
        &mut self,
        compressed: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        keep: bool,
    ) -> Result<(), InflateError> {
        out.clear();
        let result = self.inflate(compressed, out, max).and_then(|()| self.inflate(&TAIL, out, max));
        if !keep || result.is_err() {
            self.zlib.reset(false);
        }
        result
    }

    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), InflateError> {
        loop {
            if out.len() == out.capacity() {
                // At most one byte past the limit is ever inflated: enough to know it is past.
                out.reserve_exact((max + 1 - out.len()).min(out.len().max(4096)));
            }
            let (read, written) = (self.zlib.total_in(), out.len());
            let status =
                self.zlib.decompress_vec(input, out, FlushDecompress::Sync).map_err(|_| InflateError::Corrupt)?;
            input = &input[(self.zlib.total_in() - read) as usize..];
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            let room_left = out.len() < out.capacity();
            match status {
                // A final block: the sender may end a message with one.
                Status::StreamEnd => return Ok(()),
                // Everything read, and zlib stopped with room to spare: all of it is out.
                _ if input.is_empty() && room_left => return Ok(()),
                // Room, input, and no progress: not deflate.
                _ if room_left && out.len() == written && self.zlib.total_in() == read => {
                    return Err(InflateError::Corrupt);
                }
                _ => {}
            }
        }
    }
}

/// A compressor with one window size: per worker for the connections that take over no
/// context (reset after each message), or a dedicated connection's own.
pub(crate) struct Deflater {
    zlib: Compress,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// zlib's fastest level: realtime traffic wants the CPU back more than the last bytes.
    pub(crate) fn new(window_bits: u8) -> Deflater {
        Deflater { zlib: Compress::new_with_window_bits(Compression::fast(), false, window_bits) }
    }

    /// Appends `payload` compressed, without the tail, to `out`; the context is kept for the
    /// next message when `keep` (a dedicated connection that takes it over).
    pub(crate) fn message(&mut self, payload: &[u8], out: &mut Vec<u8>, keep: bool) {
        let start = out.len();
        out.reserve(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            let before = self.zlib.total_in();
            // Compressing into a Vec fails only on a broken stream state, which a reset
            // stream never has; a failure leaves what was written, and the reset below.
            if self.zlib.compress_vec(input, out, FlushCompress::Sync).is_err() {
                break;
            }
            input = &input[(self.zlib.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() && out.ends_with(&TAIL) {
                break;
            }
            out.reserve(out.capacity().max(256));
        }
        if !keep {
            self.zlib.reset();
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // An empty message compresses to one empty block (RFC 7692 §7.2.3.6).
            out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_taken_or_declined_as_rfc_7692_says() {
        let pick = |header: &str| negotiate([header.as_bytes()], false);
        let shared = |server_window_bits| Negotiated {
            server_window_bits,
            dedicated: false,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        };
        let plain = Some(shared(15));
        assert_eq!(pick("permessage-deflate"), plain);
        assert_eq!(pick("permessage-deflate; client_max_window_bits"), plain, "what browsers offer");
        assert_eq!(pick("permessage-deflate; server_max_window_bits=10"), Some(shared(10)));
        assert_eq!(
            pick("permessage-deflate; server_max_window_bits=\"9\"; client_no_context_takeover"),
            Some(shared(9))
        );
        assert_eq!(pick("permessage-deflate; server_max_window_bits"), None, "a value is required");
        assert_eq!(pick("permessage-deflate; server_max_window_bits=16"), None);
        assert_eq!(pick("permessage-deflate; client_max_window_bits=7"), None);
        assert_eq!(pick("permessage-deflate; server_no_context_takeover=1"), None);
        assert_eq!(pick("permessage-deflate; mystery"), None);
        assert_eq!(pick("permessage-deflate; client_no_context_takeover; client_no_context_takeover"), None);
        assert_eq!(pick("x-webkit-deflate-frame"), None);
        assert_eq!(
            pick("permessage-deflate; mystery, permessage-deflate; server_max_window_bits=12"),
            Some(shared(12)),
            "the first acceptable offer"
        );
        let mut sink = crate::proto::TestSink::new();
        shared(12).write_response(&mut sink);
        assert_eq!(
            sink.out,
            b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
              client_no_context_takeover; server_max_window_bits=12"
        );
        assert_eq!(shared(8).compressing_window(), None);
        // Dedicated: the context kept unless the client asked otherwise, and the answer says so.
        let dedicated = negotiate([&b"permessage-deflate; client_no_context_takeover"[..]], true).unwrap();
        assert!(dedicated.dedicated && dedicated.client_no_context_takeover && !dedicated.server_no_context_takeover);
        let mut sink = crate::proto::TestSink::new();
        dedicated.write_response(&mut sink);
        assert_eq!(sink.out, b"\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover");
    }

    #[test]
    fn messages_round_trip_and_each_stands_alone() {
        let (mut deflater, mut inflater) = (Deflater::new(15), Inflater::default());
        let text = "the same words again and again, the same words again and again. ".repeat(50);
        for message in [text.as_bytes(), b"", b"x", &[7u8; 100_000][..]] {
            let mut compressed = Vec::new();
            deflater.message(message, &mut compressed, false);
            assert!(!compressed.ends_with(&TAIL));
            let mut back = Vec::new();
            inflater.message(&compressed, &mut back, 1 << 20, false).unwrap();
            assert_eq!(back, message);
        }
        let mut compressed = Vec::new();
        deflater.message(text.as_bytes(), &mut compressed, false);
        assert!(compressed.len() < text.len() / 10, "{} bytes", compressed.len());
    }

    #[test]
    fn a_kept_context_compresses_a_repeated_message_to_almost_nothing() {
        let (mut deflater, mut inflater) = (Deflater::new(15), Inflater::default());
        let message = b"{\"player\": 17, \"x\": 1023.5, \"y\": 88.25, \"state\": \"running\"}".repeat(3);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut compressed = Vec::new();
            deflater.message(&message, &mut compressed, true);
            let mut back = Vec::new();
            inflater.message(&compressed, &mut back, 1 << 20, true).unwrap();
            assert_eq!(back, message);
            sizes.push(compressed.len());
        }
        assert!(sizes[1] < sizes[0] / 3 && sizes[2] <= sizes[1], "{sizes:?}");
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_garbage_is_refused() {
        let (mut deflater, mut inflater) = (Deflater::new(15), Inflater::default());
        let mut bomb = Vec::new();
        deflater.message(&vec![0u8; 16 << 20], &mut bomb, false);
        assert!(bomb.len() < 1 << 20, "16 MiB of zeros in {} bytes", bomb.len());
        let mut out = Vec::new();
        assert_eq!(inflater.message(&bomb, &mut out, 1 << 20, false), Err(InflateError::TooBig));
        assert!(out.len() <= (1 << 20) + 1 && out.capacity() <= 2 << 20, "inflated {} bytes", out.len());
        assert_eq!(inflater.message(&[0xff, 0xff, 0xff], &mut out, 1 << 20, true), Err(InflateError::Corrupt));
        // The decompressor is reset: the next message inflates.
        let mut ok = Vec::new();
        deflater.message(b"fine again", &mut ok, false);
        inflater.message(&ok, &mut out, 1 << 20, false).unwrap();
        assert_eq!(out, b"fine again");
    }
}

/// A dedicated connection's own compression contexts.
#[derive(Debug)]
pub(crate) struct Contexts {
    pub(crate) inflater: Inflater,
    /// `None` when its messages go uncompressed (an 8-bit window).
    pub(crate) deflater: Option<Deflater>,
}

impl Contexts {
    pub(crate) fn new(negotiated: Negotiated) -> Contexts {
        Contexts { inflater: Inflater::default(), deflater: negotiated.compressing_window().map(Deflater::new) }
    }
}
