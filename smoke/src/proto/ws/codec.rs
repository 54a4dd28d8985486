//! Frames in, messages out: parsing, unmasking, reassembly and validation; frames out.

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use super::close_code::{INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR};
use crate::proto::Sink;

/// A complete message, borrowed from the worker's unmasking buffer (or, for a fragmented one,
/// from the connection's reassembly buffer): nothing is allocated per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, validated as UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(text: &'a str) -> Message<'a> {
        Message::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(bytes: &'a [u8]) -> Message<'a> {
        Message::Binary(bytes)
    }
}

impl Message<'_> {
    pub(crate) fn opcode(self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Data(Data::Text),
            Message::Binary(_) => OpCode::Data(Data::Binary),
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }
}

/// Control frames carry at most this much (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Why the connection must close, with the code to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// A complete frame at the front of a buffer: its header and where its payload lies.
#[derive(Debug)]
pub(crate) struct RawFrame {
    pub(crate) header: FrameHeader,
    pub(crate) header_len: usize,
    pub(crate) payload_len: usize,
}

impl RawFrame {
    pub(crate) fn len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parses the client frame at the front of `buf`. `Ok(None)`: incomplete. Errors are protocol
/// violations the connection must close for, checked as soon as the header is known (before
/// the payload arrives, so an oversized frame is refused without being buffered). With
/// `compression` (permessage-deflate negotiated), RSV1 marks a message's first frame as
/// compressed.
#[inline]
pub(crate) fn parse_client_frame(
    buf: &[u8],
    max_message: usize,
    compression: bool,
) -> Result<Option<RawFrame>, Violation> {
    // RFC 6455 §5.2, read by hand: two bytes, a 16- or 64-bit length, a 4-byte mask.
    let Some(&[first, second]) = buf.first_chunk::<2>() else { return Ok(None) };
    let (length, at) = match second & 0x7f {
        126 => match buf.get(2..4) {
            Some(&[high, low]) => (u64::from(u16::from_be_bytes([high, low])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|bytes| <[u8; 8]>::try_from(bytes).ok()) {
            Some(bytes) => (u64::from_be_bytes(bytes), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let opcode = match first & 0x0f {
        0 => OpCode::Data(Data::Continue),
        1 => OpCode::Data(Data::Text),
        2 => OpCode::Data(Data::Binary),
        8 => OpCode::Control(Control::Close),
        9 => OpCode::Control(Control::Ping),
        10 => OpCode::Control(Control::Pong),
        _ => return Err(violation(PROTOCOL_ERROR, "reserved opcode")),
    };
    // RFC 6455 §5.2: the minimal length encoding, and a 64-bit length's top bit clear.
    let minimal = match second & 0x7f {
        126 => length >= 126,
        127 => length > 0xffff && length >> 63 == 0,
        _ => true,
    };
    if !minimal {
        return Err(violation(PROTOCOL_ERROR, "frame length not in its minimal form"));
    }
    let (rsv1, rsv2, rsv3) = (first & 0x40 != 0, first & 0x20 != 0, first & 0x10 != 0);
    let compressed_start = compression && matches!(opcode, OpCode::Data(Data::Text | Data::Binary));
    if (rsv1 && !compressed_start) || rsv2 || rsv3 {
        return Err(violation(PROTOCOL_ERROR, "reserved bits set without a negotiated extension"));
    }
    if second & 0x80 == 0 {
        return Err(violation(PROTOCOL_ERROR, "client frames must be masked"));
    }
    let is_final = first & 0x80 != 0;
    if let OpCode::Control(_) = opcode {
        if length > MAX_CONTROL_PAYLOAD {
            return Err(violation(PROTOCOL_ERROR, "control frame above 125 bytes"));
        }
        if !is_final {
            return Err(violation(PROTOCOL_ERROR, "fragmented control frame"));
        }
    }
    if length > max_message as u64 {
        return Err(violation(MESSAGE_TOO_BIG, "message above max_message"));
    }
    let Some(mask) = buf.get(at..at + 4).and_then(|bytes| <[u8; 4]>::try_from(bytes).ok()) else {
        return Ok(None);
    };
    let header_len = at + 4;
    let payload_len = length as usize;
    if buf.len() - header_len < payload_len {
        return Ok(None);
    }
    let header = FrameHeader { is_final, rsv1, rsv2, rsv3, opcode, mask: Some(mask) };
    Ok(Some(RawFrame { header, header_len, payload_len }))
}

/// XORs `payload` with the 4-byte `mask`, eight bytes at a time; `offset` is the payload's
/// position within its frame (so a payload unmasked in pieces stays aligned to the mask).
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    // The mask turned to start at `offset`, twice over: the key for eight bytes.
    let turned = u32::from_le_bytes(mask).rotate_right(8 * (offset % 4) as u32);
    let word = u64::from(turned) | (u64::from(turned) << 32);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_le_bytes((&*chunk).try_into().unwrap_or([0; 8])) ^ word;
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    let key = word.to_le_bytes();
    for (byte, key) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= key;
    }
}

/// A complete message or control frame, borrowed from the input buffer or the reassembly buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer's close: its code (None for an empty close payload) and reason.
    Close(Option<u16>, &'a str),
    /// A whole compressed message (permessage-deflate), still to be inflated.
    Compressed {
        text: bool,
        payload: &'a [u8],
    },
}

/// What the assembler does with a data frame's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// Reassembles fragmented messages. Holds heap memory only while a fragmented message is in
/// progress.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// The message in progress (after its first fragment) and its payload so far.
    partial: Option<Kind>,
    /// The message in progress is compressed: its fragments are kept as they came, and its
    /// text checked once inflated.
    compressed: bool,
    buffer: Vec<u8>,
    /// How much of a text message's buffer is known to be whole UTF-8 characters: each
    /// fragment is checked from there, not from the start (which would be quadratic).
    valid_up_to: usize,
}

impl Assembler {
    /// Consumes one (unmasked) frame. A complete message or a control frame comes back as an
    /// event; `Ok(None)` means a fragment was stored.
    #[inline]
    pub(crate) fn push<'a>(
        &'a mut self,
        header: &FrameHeader,
        payload: &'a [u8],
        max_message: usize,
    ) -> Result<Option<Event<'a>>, Violation> {
        let kind = match header.opcode {
            OpCode::Control(control) => return control_event(control, payload).map(Some),
            OpCode::Data(Data::Continue) => match self.partial {
                Some(kind) => kind,
                None => return Err(violation(PROTOCOL_ERROR, "continuation without a message to continue")),
            },
            OpCode::Data(data) => {
                if self.partial.is_some() {
                    return Err(violation(PROTOCOL_ERROR, "new message before the last one finished"));
                }
                self.compressed = header.rsv1;
                if data == Data::Text { Kind::Text } else { Kind::Binary }
            }
        };
        let continuing = self.partial.is_some();
        if !continuing && header.is_final {
            // The common case: a whole message in one frame, returned without a copy.
            if self.compressed {
                return Ok(Some(Event::Compressed { text: kind == Kind::Text, payload }));
            }
            return finished(kind, payload).map(Some);
        }
        if self.buffer.len() + payload.len() > max_message {
            return Err(violation(MESSAGE_TOO_BIG, "message above max_message"));
        }
        self.buffer.extend_from_slice(payload);
        if kind == Kind::Text && !self.compressed {
            // Fail fast: invalid UTF-8 is refused at the fragment that brings it, not at the end.
            match std::str::from_utf8(&self.buffer[self.valid_up_to..]) {
                Ok(_) => self.valid_up_to = self.buffer.len(),
                Err(e) if e.error_len().is_some() || header.is_final => {
                    return Err(violation(INVALID_PAYLOAD, "text is not UTF-8"));
                }
                // A character cut by the fragment's end: checked again with the next one.
                Err(e) => self.valid_up_to += e.valid_up_to(),
            }
        }
        if !header.is_final {
            self.partial = Some(kind);
            return Ok(None);
        }
        // The buffer is borrowed by the returned message; `release` frees it afterwards.
        self.partial = None;
        self.valid_up_to = 0;
        if self.compressed {
            return Ok(Some(Event::Compressed { text: kind == Kind::Text, payload: &self.buffer }));
        }
        finished(kind, &self.buffer).map(Some)
    }

    /// Frees the reassembly buffer once its last message has been handled.
    pub(crate) fn release(&mut self) {
        if self.partial.is_none() {
            self.buffer = Vec::new();
        }
    }
}

/// A compressed message, inflated: its event, with text checked.
#[cfg(feature = "deflate")]
pub(crate) fn inflated(text: bool, payload: &[u8]) -> Result<Event<'_>, Violation> {
    finished(if text { Kind::Text } else { Kind::Binary }, payload)
}

fn finished(kind: Kind, payload: &[u8]) -> Result<Event<'_>, Violation> {
    match kind {
        Kind::Binary => Ok(Event::Binary(payload)),
        Kind::Text => {
            std::str::from_utf8(payload).map(Event::Text).map_err(|_| violation(INVALID_PAYLOAD, "text is not UTF-8"))
        }
    }
}

fn control_event(control: Control, payload: &[u8]) -> Result<Event<'_>, Violation> {
    match control {
        Control::Ping => Ok(Event::Ping(payload)),
        Control::Pong => Ok(Event::Pong(payload)),
        Control::Close => match payload {
            [] => Ok(Event::Close(None, "")),
            [_] => Err(violation(PROTOCOL_ERROR, "close payload of one byte")),
            [high, low, reason @ ..] => {
                let code = u16::from_be_bytes([*high, *low]);
                if !CloseCode::from(code).is_allowed() || code < 1000 {
                    return Err(violation(PROTOCOL_ERROR, "close code not allowed on the wire"));
                }
                let reason =
                    std::str::from_utf8(reason).map_err(|_| violation(INVALID_PAYLOAD, "close reason is not UTF-8"))?;
                Ok(Event::Close(Some(code), reason))
            }
        },
        Control::Reserved(_) => Err(violation(PROTOCOL_ERROR, "reserved opcode")),
    }
}

/// The header of a final, unmasked server frame, formatted on the stack: a frame is this
/// followed by its payload, so a frame for many receivers is encoded once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHead {
    /// The longest header of an unmasked frame: two bytes and a 64-bit length.
    bytes: [u8; 10],
    len: usize,
}

impl FrameHead {
    pub(crate) fn new(opcode: OpCode, payload_len: usize) -> FrameHead {
        FrameHead::with_rsv1(opcode, payload_len, false)
    }

    /// The header of a compressed message's (only) frame: RSV1 set (RFC 7692 §6).
    #[cfg(feature = "deflate")]
    pub(crate) fn compressed(opcode: OpCode, payload_len: usize) -> FrameHead {
        FrameHead::with_rsv1(opcode, payload_len, true)
    }

    fn with_rsv1(opcode: OpCode, payload_len: usize, rsv1: bool) -> FrameHead {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | if rsv1 { 0x40 } else { 0 } | u8::from(opcode);
        let len = match payload_len {
            0..=125 => {
                bytes[1] = payload_len as u8;
                2
            }
            126..=0xffff => {
                bytes[1] = 126;
                bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = 127;
                bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
                10
            }
        };
        FrameHead { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The opcode and payload of a final, unmasked, uncompressed frame that `FrameHead` made (a
/// publication's plain frame); `None` for anything else.
#[cfg(feature = "deflate")]
pub(crate) fn split_frame(frame: &[u8]) -> Option<(OpCode, &[u8])> {
    let mut cursor = std::io::Cursor::new(frame);
    let (header, length) = FrameHeader::parse(&mut cursor).ok()??;
    let start = cursor.position() as usize;
    let payload = frame.get(start..)?;
    (header.is_final && !header.rsv1 && header.mask.is_none() && payload.len() as u64 == length)
        .then_some((header.opcode, payload))
}

/// Writes a final, unmasked server frame: its head and payload appended together, one
/// reservation and one trip to the output queue.
pub(crate) fn write_frame(sink: &mut impl Sink, opcode: OpCode, payload: &[u8]) {
    if payload.len() <= 125 {
        // Most messages: a two-byte head of known size, stored rather than copied.
        let head = [0x80 | u8::from(opcode), payload.len() as u8];
        return sink.write_with(|out| {
            out.reserve(head.len() + payload.len());
            out.extend_from_slice(&head);
            out.extend_from_slice(payload);
        });
    }
    let head = FrameHead::new(opcode, payload.len());
    sink.write_with(|out| {
        out.reserve(head.as_bytes().len() + payload.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(payload);
    });
}

/// Writes a close frame with `code` and `reason` (truncated, on a character boundary, to fit a
/// control frame).
pub(crate) fn write_close_frame(sink: &mut impl Sink, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD as usize - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD as usize];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    write_frame(sink, OpCode::Control(Control::Close), &payload[..2 + end]);
}

#[cfg(test)]
mod tests;
