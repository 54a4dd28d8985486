//! The channel layer's packet: a header of acknowledgements, then message parts.
//!
//! ```text
//! packet:  [sequence u16] [ack u16] [ack bits u64]  part*
//! part:    [flags u8] [message id u16] [length u16] ([fragment u8] [fragments u8])? bytes
//! flags:   bits 0-1 the channel, bit 2 set when the part is one fragment of a larger message
//! ```
//!
//! `ack` is the newest packet sequence received from the other side and bit `i` of `ack bits`
//! says whether `ack - 1 - i` was received too: each packet acknowledges the last 65, so an ack
//! lost with its packet is repeated by the next. All integers are little-endian.

use super::Channel;

/// The packet header: sequence, ack, ack bits.
pub(crate) const HEADER_BYTES: usize = 12;
/// A part's header, without and with the fragment fields.
pub(crate) const PART_BYTES: usize = 5;
pub(crate) const FRAGMENT_PART_BYTES: usize = 7;
const FRAGMENT_FLAG: u8 = 0b100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) sequence: u16,
    pub(crate) ack: u16,
    pub(crate) ack_bits: u64,
}

/// One message part as read from a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    pub(crate) channel: Channel,
    pub(crate) id: u16,
    /// `(index, count)` for a fragment of a larger message.
    pub(crate) fragment: Option<(u8, u8)>,
    pub(crate) bytes: &'a [u8],
}

pub(crate) fn write_header(out: &mut Vec<u8>, header: Header) {
    out.extend_from_slice(&header.sequence.to_le_bytes());
    out.extend_from_slice(&header.ack.to_le_bytes());
    out.extend_from_slice(&header.ack_bits.to_le_bytes());
}

pub(crate) fn write_part(out: &mut Vec<u8>, part: Part<'_>) {
    let flags = part.channel as u8 | if part.fragment.is_some() { FRAGMENT_FLAG } else { 0 };
    out.push(flags);
    out.extend_from_slice(&part.id.to_le_bytes());
    out.extend_from_slice(&(part.bytes.len() as u16).to_le_bytes());
    if let Some((index, count)) = part.fragment {
        out.extend_from_slice(&[index, count]);
    }
    out.extend_from_slice(part.bytes);
}

/// Splits a packet into its header and the parts after it; `None` for one shorter than a header.
pub(crate) fn read(packet: &[u8]) -> Option<(Header, Parts<'_>)> {
    let (header, rest) = packet.split_first_chunk::<HEADER_BYTES>()?;
    let header = Header {
        sequence: u16::from_le_bytes([header[0], header[1]]),
        ack: u16::from_le_bytes([header[2], header[3]]),
        ack_bits: u64::from_le_bytes(header[4..].try_into().expect("eight bytes")),
    };
    Some((header, Parts { rest }))
}

/// The parts of a packet, in order. A malformed part ends the iteration with `Err`: the packet
/// came through an authenticated session, so it is a broken peer, and nothing after it is read.
#[derive(Clone, Debug)]
pub(crate) struct Parts<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Parts<'a> {
    type Item = Result<Part<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let part = self.read_part();
        if part.is_err() {
            self.rest = &[];
        }
        Some(part)
    }
}

impl<'a> Parts<'a> {
    fn read_part(&mut self) -> Result<Part<'a>, ()> {
        let (head, rest) = self.rest.split_first_chunk::<PART_BYTES>().ok_or(())?;
        let flags = head[0];
        if flags & !(FRAGMENT_FLAG | 0b11) != 0 {
            return Err(());
        }
        let channel = Channel::from_bits(flags & 0b11);
        let id = u16::from_le_bytes([head[1], head[2]]);
        let len = usize::from(u16::from_le_bytes([head[3], head[4]]));
        let (fragment, rest) = if flags & FRAGMENT_FLAG != 0 {
            let (&[index, count], rest) = rest.split_first_chunk::<2>().ok_or(())?;
            if count < 2 || index >= count || usize::from(count) > super::MAX_FRAGMENTS {
                return Err(());
            }
            (Some((index, count)), rest)
        } else {
            (None, rest)
        };
        // A sender never writes an empty message or fragment (`send` refuses one).
        if rest.len() < len || len == 0 {
            return Err(());
        }
        let (bytes, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(Part { channel, id, fragment, bytes })
    }
}
