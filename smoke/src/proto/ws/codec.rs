//! Frames in, messages out: parsing, unmasking, reassembly and validation; frames out.

use std::io::Cursor;

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
pub(crate) fn parse_client_frame(
    buf: &[u8],
    max_message: usize,
    compression: bool,
) -> Result<Option<RawFrame>, Violation> {
    let mut cursor = Cursor::new(buf);
    let (header, length) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err(violation(PROTOCOL_ERROR, "reserved opcode")),
    };
    // RFC 6455 §5.2: the minimal length encoding, and a 64-bit length's top bit clear.
    let minimal = match buf[1] & 0x7f {
        126 => length >= 126,
        127 => length > 0xffff && length >> 63 == 0,
        _ => true,
    };
    if !minimal {
        return Err(violation(PROTOCOL_ERROR, "frame length not in its minimal form"));
    }
    let compressed_start = compression && matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
    if (header.rsv1 && !compressed_start) || header.rsv2 || header.rsv3 {
        return Err(violation(PROTOCOL_ERROR, "reserved bits set without a negotiated extension"));
    }
    if header.mask.is_none() {
        return Err(violation(PROTOCOL_ERROR, "client frames must be masked"));
    }
    if let OpCode::Control(_) = header.opcode {
        if length > MAX_CONTROL_PAYLOAD {
            return Err(violation(PROTOCOL_ERROR, "control frame above 125 bytes"));
        }
        if !header.is_final {
            return Err(violation(PROTOCOL_ERROR, "fragmented control frame"));
        }
    }
    if length > max_message as u64 {
        return Err(violation(MESSAGE_TOO_BIG, "message above max_message"));
    }
    let header_len = cursor.position() as usize;
    let payload_len = length as usize;
    if buf.len() - header_len < payload_len {
        return Ok(None);
    }
    Ok(Some(RawFrame { header, header_len, payload_len }))
}

/// XORs `payload` with the 4-byte `mask`, eight bytes at a time; `offset` is the payload's
/// position within its frame (so a payload unmasked in pieces stays aligned to the mask).
pub(crate) fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0u8; 8];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = mask[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes(key);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let value = u64::from_ne_bytes((&*chunk).try_into().unwrap_or([0; 8])) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i];
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
    bytes: [u8; 14],
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
        let header = FrameHeader { is_final: true, rsv1, rsv2: false, rsv3: false, opcode, mask: None };
        let mut bytes = [0u8; 14];
        let mut rest = &mut bytes[..];
        // 14 bytes hold the longest header of an unmasked frame, so formatting cannot fail.
        let _ = header.format(payload_len as u64, &mut rest);
        let len = 14 - rest.len();
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
    let mut cursor = Cursor::new(frame);
    let (header, length) = FrameHeader::parse(&mut cursor).ok()??;
    let start = cursor.position() as usize;
    let payload = frame.get(start..)?;
    (header.is_final && !header.rsv1 && header.mask.is_none() && payload.len() as u64 == length)
        .then_some((header.opcode, payload))
}

/// Writes a final, unmasked server frame.
pub(crate) fn write_frame(sink: &mut impl Sink, opcode: OpCode, payload: &[u8]) {
    sink.write(FrameHead::new(opcode, payload.len()).as_bytes());
    sink.write(payload);
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
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: FIN flag, opcode, masked payload.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        let mut masked = payload.to_vec();
        for (i, b) in masked.iter_mut().enumerate() {
            *b ^= MASK[i % 4];
        }
        out.extend_from_slice(&masked);
        out
    }

    /// Parses, unmasks and assembles every frame in `bytes`; returns the events as owned values.
    fn run(bytes: &[u8]) -> Result<Vec<String>, Violation> {
        let mut assembler = Assembler::default();
        let mut events = Vec::new();
        let mut input = bytes.to_vec();
        let mut at = 0;
        while let Some(frame) = parse_client_frame(&input[at..], 1 << 20, false)? {
            let start = at + frame.header_len;
            let payload = &mut input[start..start + frame.payload_len];
            unmask(payload, frame.header.mask.unwrap(), 0);
            if let Some(event) = assembler.push(&frame.header, &input[start..start + frame.payload_len], 1 << 20)? {
                events.push(format!("{event:?}"));
            }
            assembler.release();
            at += frame.len();
        }
        Ok(events)
    }

    #[test]
    fn unmasking_matches_the_bytewise_definition_at_every_offset_and_length() {
        let data: Vec<u8> = (0..67u8).collect();
        for offset in 0..4 {
            for len in 0..data.len() {
                let mut fast = data[..len].to_vec();
                unmask(&mut fast, MASK, offset);
                let slow: Vec<u8> = data[..len].iter().enumerate().map(|(i, b)| b ^ MASK[(offset + i) % 4]).collect();
                assert_eq!(fast, slow, "offset {offset}, len {len}");
            }
        }
    }

    #[test]
    fn whole_and_fragmented_messages_come_out_whole() {
        assert_eq!(run(&client_frame(true, 1, b"Hello")).unwrap(), ["Text(\"Hello\")"]);
        assert_eq!(run(&client_frame(true, 2, &[1, 2, 3])).unwrap(), ["Binary([1, 2, 3])"]);
        let mut fragmented = client_frame(false, 1, b"Hel");
        fragmented.extend(client_frame(true, 9, b"ping in the middle"));
        fragmented.extend(client_frame(false, 0, b"l"));
        fragmented.extend(client_frame(true, 0, b"o"));
        assert_eq!(
            run(&fragmented).unwrap(),
            [
                "Ping([112, 105, 110, 103, 32, 105, 110, 32, 116, 104, 101, 32, 109, 105, 100, 100, 108, 101])",
                "Text(\"Hello\")"
            ]
        );
        let big = vec![7u8; 70_000];
        assert_eq!(run(&client_frame(true, 2, &big)).unwrap().len(), 1, "64-bit length form");
    }

    #[test]
    fn utf8_is_validated_across_fragments() {
        let euro = "€".as_bytes(); // three bytes, split across fragments
        let mut split = client_frame(false, 1, &euro[..1]);
        split.extend(client_frame(true, 0, &euro[1..]));
        assert_eq!(run(&split).unwrap(), ["Text(\"€\")"]);
        assert_eq!(run(&client_frame(true, 1, &[0xff])).unwrap_err().code, 1007);
        let mut bad_start = client_frame(false, 1, &[0xc0, 0x80]);
        bad_start.extend(client_frame(true, 0, b"ok"));
        assert_eq!(run(&bad_start).unwrap_err().code, 1007, "refused at the first fragment");
        let mut truncated = client_frame(false, 1, &euro[..2]);
        truncated.extend(client_frame(true, 0, b""));
        assert_eq!(run(&truncated).unwrap_err().code, 1007, "incomplete at the end");
    }

    #[test]
    fn protocol_violations_get_their_close_codes() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked.to_vec(), 1002),
            (
                {
                    let mut f = client_frame(true, 1, b"x");
                    f[0] |= 0x40;
                    f
                },
                1002,
            ), // RSV1
            (client_frame(true, 3, b"x"), 1002),      // reserved data opcode
            (client_frame(true, 0xb, b"x"), 1002),    // reserved control opcode
            (client_frame(false, 9, b"x"), 1002),     // fragmented ping
            (client_frame(true, 9, &[0; 126]), 1002), // control above 125
            (client_frame(true, 0, b"x"), 1002),      // stray continuation
            (
                {
                    let mut f = client_frame(false, 1, b"a");
                    f.extend(client_frame(true, 1, b"b"));
                    f
                },
                1002,
            ),
            (client_frame(true, 8, &[0x03]), 1002), // one-byte close
            (client_frame(true, 8, &1005u16.to_be_bytes()), 1002), // reserved close code
            (client_frame(true, 8, &999u16.to_be_bytes()), 1002),
            (client_frame(true, 8, &[0x03, 0xe8, 0xff]), 1007), // bad reason
        ];
        for (bytes, code) in cases {
            assert_eq!(run(&bytes).map_err(|v| v.code), Err(code), "{bytes:02x?}");
        }
        let long_form = |len_byte: u8, extended: &[u8]| {
            let mut f = vec![0x82, 0x80 | len_byte];
            f.extend_from_slice(extended);
            f.extend_from_slice(&MASK);
            f
        };
        let codes = |f: Vec<u8>| run(&f).map_err(|v| v.code);
        assert_eq!(codes(long_form(126, &[0, 5])), Err(1002), "16-bit form for 5 bytes");
        assert_eq!(codes(long_form(127, &5u64.to_be_bytes())), Err(1002), "64-bit form for 5 bytes");
        assert_eq!(codes(long_form(127, &300u64.to_be_bytes())), Err(1002), "64-bit form for 300 bytes");
        assert_eq!(codes(long_form(127, &(1u64 << 63 | 70_000).to_be_bytes())), Err(1002), "the 64-bit top bit");
        assert_eq!(run(&client_frame(true, 8, &[0x03, 0xe8, b'o', b'k'])).unwrap(), ["Close(Some(1000), \"ok\")"]);
        assert_eq!(run(&client_frame(true, 8, b"")).unwrap(), ["Close(None, \"\")"]);
        assert_eq!(run(&client_frame(true, 8, &3000u16.to_be_bytes())).unwrap(), ["Close(Some(3000), \"\")"]);
    }

    #[test]
    fn oversized_messages_are_refused_before_buffering() {
        let frame = client_frame(true, 2, &[0; 100]);
        assert_eq!(parse_client_frame(&frame[..8], 50, false).unwrap_err().code, 1009, "known from the header alone");
        let mut assembler = Assembler::default();
        let header = FrameHeader { is_final: false, opcode: OpCode::Data(Data::Binary), ..FrameHeader::default() };
        assert_eq!(assembler.push(&header, &[0; 40], 50), Ok(None));
        let last = FrameHeader { is_final: true, opcode: OpCode::Data(Data::Continue), ..FrameHeader::default() };
        assert_eq!(assembler.push(&last, &[0; 40], 50).unwrap_err().code, 1009);
    }

    #[test]
    fn incomplete_frames_wait_at_every_split() {
        let frame = client_frame(true, 1, &vec![b'a'; 300]);
        for split in 0..frame.len() {
            assert!(parse_client_frame(&frame[..split], 1 << 20, false).unwrap().is_none(), "split at {split}");
        }
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn a_plain_frame_splits_back_into_its_opcode_and_payload() {
        for len in [0, 5, 125, 126, 70_000] {
            let payload = vec![7u8; len];
            let mut frame = FrameHead::new(OpCode::Data(Data::Binary), len).as_bytes().to_vec();
            frame.extend_from_slice(&payload);
            assert_eq!(split_frame(&frame), Some((OpCode::Data(Data::Binary), &payload[..])));
            assert_eq!(split_frame(&frame[..frame.len() - 1]), None, "cut short");
        }
    }

    #[test]
    fn server_frames_are_unmasked_and_close_reasons_fit() {
        let mut sink = crate::proto::TestSink::new();
        write_frame(&mut sink, OpCode::Data(Data::Text), b"hi");
        assert_eq!(sink.out, [0x81, 0x02, b'h', b'i']);
        assert_eq!(
            FrameHead::new(OpCode::Data(Data::Binary), 70_000).as_bytes(),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        sink.out.clear();
        write_close_frame(&mut sink, 1000, &"é".repeat(100));
        let out = sink.out;
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok(), "truncated on a character boundary");
    }
}
