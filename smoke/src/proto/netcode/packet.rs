//! Packets on the wire: the kinds, the prefix byte and variable-length sequence, and sealing
//! and opening with ChaCha20-Poly1305 (the sequence as nonce, the version, protocol id and
//! prefix as associated data, so no field of the header can be changed unnoticed).

use super::crypto::{open_with_sequence, seal_with_sequence};
use super::{Key, MAC_BYTES, MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES, VERSION_INFO};

/// The seven packet kinds, the low four bits of the prefix byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request = 0,
    Denied = 1,
    Challenge = 2,
    Response = 3,
    KeepAlive = 4,
    Payload = 5,
    Disconnect = 6,
}

/// A connection request: prefix, version, protocol id, expiry, token nonce, private token.
pub(crate) const REQUEST_BYTES: usize = 1 + 13 + 8 + 8 + 24 + 1024;
/// A challenge or response body: the challenge token's sequence and the sealed token.
pub(crate) const CHALLENGE_BODY_BYTES: usize = 8 + super::token::CHALLENGE_TOKEN_BYTES;
/// A keep-alive body: the client's index and the server's max clients.
pub(crate) const KEEP_ALIVE_BODY_BYTES: usize = 8;

impl Kind {
    fn from_prefix(prefix: u8) -> Option<Kind> {
        Some(match prefix & 0x0f {
            0 => Kind::Request,
            1 => Kind::Denied,
            2 => Kind::Challenge,
            3 => Kind::Response,
            4 => Kind::KeepAlive,
            5 => Kind::Payload,
            6 => Kind::Disconnect,
            _ => return None,
        })
    }

    /// The kinds a replayed copy could do harm with: the standard checks these three.
    pub(crate) fn is_replay_protected(self) -> bool {
        matches!(self, Kind::KeepAlive | Kind::Payload | Kind::Disconnect)
    }

    /// Whether an opened body of `len` bytes is the size this kind has.
    pub(crate) fn fits_body(self, len: usize) -> bool {
        match self {
            Kind::Request => false,
            Kind::Denied | Kind::Disconnect => len == 0,
            Kind::Challenge | Kind::Response => len == CHALLENGE_BODY_BYTES,
            Kind::KeepAlive => len == KEEP_ALIVE_BODY_BYTES,
            Kind::Payload => (1..=MAX_PAYLOAD_BYTES).contains(&len),
        }
    }
}

/// An encrypted packet's clear header, read before anything is decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) sequence: u64,
    /// Where the sealed body starts: after the prefix and the sequence bytes.
    body_start: usize,
}

/// Reads an encrypted packet's header, or `None` for one too short, of an unknown kind, or with
/// a sequence longer than eight bytes. A sequence of no bytes is accepted: renetcode writes
/// sequence 0 so, where the standard writes one zero byte.
pub(crate) fn read_header(packet: &[u8]) -> Option<Header> {
    let &prefix = packet.first()?;
    let kind = Kind::from_prefix(prefix)?;
    let sequence_bytes = usize::from(prefix >> 4);
    if kind == Kind::Request || sequence_bytes > 8 || packet.len() < 1 + sequence_bytes + MAC_BYTES {
        return None;
    }
    let mut sequence = [0u8; 8];
    sequence[..sequence_bytes].copy_from_slice(&packet[1..1 + sequence_bytes]);
    Some(Header { kind, sequence: u64::from_le_bytes(sequence), body_start: 1 + sequence_bytes })
}

/// Decrypts a packet's body in place with `key`, returning it, or `None` when the tag does not
/// verify (a forged or altered packet, or one sealed with another key).
pub(crate) fn open<'a>(packet: &'a mut [u8], header: Header, protocol_id: u64, key: &Key) -> Option<&'a [u8]> {
    let associated = associated_data(protocol_id, packet[0]);
    let sealed = &mut packet[header.body_start..];
    if !open_with_sequence(sealed, header.sequence, key, &associated) {
        return None;
    }
    Some(&sealed[..sealed.len() - MAC_BYTES])
}

/// Writes a sealed packet of `kind` into `out`: the prefix, the sequence in as few bytes as it
/// needs (at least one), the body `fill` writes into the slice it is handed (returning its
/// length), then the tag. Returns the packet's length.
pub(crate) fn seal(
    out: &mut [u8; MAX_PACKET_BYTES],
    kind: Kind,
    sequence: u64,
    protocol_id: u64,
    key: &Key,
    fill: impl FnOnce(&mut [u8]) -> usize,
) -> usize {
    let sequence_bytes = (8 - sequence.leading_zeros() as usize / 8).max(1);
    let prefix = (sequence_bytes as u8) << 4 | kind as u8;
    out[0] = prefix;
    out[1..1 + sequence_bytes].copy_from_slice(&sequence.to_le_bytes()[..sequence_bytes]);
    let body_start = 1 + sequence_bytes;
    let body_len = fill(&mut out[body_start..MAX_PACKET_BYTES - MAC_BYTES]);
    let end = body_start + body_len + MAC_BYTES;
    seal_with_sequence(&mut out[body_start..end], sequence, key, &associated_data(protocol_id, prefix));
    end
}

/// A packet's associated data: version, protocol id, and the prefix byte, which carries the kind.
fn associated_data(protocol_id: u64, prefix: u8) -> [u8; 22] {
    let mut data = [0u8; 22];
    data[..13].copy_from_slice(VERSION_INFO);
    data[13..21].copy_from_slice(&protocol_id.to_le_bytes());
    data[21] = prefix;
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [7; 32];

    fn sealed(kind: Kind, sequence: u64, body: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_PACKET_BYTES];
        let len = seal(&mut out, kind, sequence, 42, &KEY, |room| {
            room[..body.len()].copy_from_slice(body);
            body.len()
        });
        out[..len].to_vec()
    }

    #[test]
    fn sequence_takes_as_few_bytes_as_it_needs_and_at_least_one() {
        for (sequence, bytes) in [(0u64, 1usize), (255, 1), (256, 2), (1000, 2), (1 << 40, 6), (u64::MAX, 8)] {
            let packet = sealed(Kind::Payload, sequence, b"hi");
            assert_eq!(packet[0], (bytes as u8) << 4 | 5, "{sequence}");
            assert_eq!(packet.len(), 1 + bytes + 2 + MAC_BYTES);
            let header = read_header(&packet).unwrap();
            assert_eq!((header.kind, header.sequence), (Kind::Payload, sequence));
        }
        // The standard's example: 1000 is written E8 03.
        assert_eq!(&sealed(Kind::KeepAlive, 1000, &[0; 8])[1..3], &[0xe8, 0x03]);
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_altered() {
        let packet = sealed(Kind::Payload, 9, b"state");
        let mut copy = packet.clone();
        let header = read_header(&copy).unwrap();
        assert_eq!(open(&mut copy, header, 42, &KEY), Some(&b"state"[..]));
        for at in 0..packet.len() {
            let mut altered = packet.clone();
            altered[at] ^= 0x01;
            let opened = read_header(&altered).and_then(|header| open(&mut altered, header, 42, &KEY));
            assert_eq!(opened, None, "a flipped bit at {at} went unnoticed");
        }
        let mut copy = packet.clone();
        assert_eq!(open(&mut copy, header, 43, &KEY), None, "another protocol id");
        let mut copy = packet;
        assert_eq!(open(&mut copy, header, 42, &[8; 32]), None, "another key");
    }

    #[test]
    fn headers_that_cannot_be_valid_are_refused_before_decryption() {
        assert_eq!(read_header(&[]), None);
        assert_eq!(read_header(&[0x17; 40]), None, "kind 7");
        assert_eq!(read_header(&[0x95; 40]), None, "nine sequence bytes");
        assert_eq!(read_header(&[0x15; 17]), None, "shorter than prefix, sequence and tag");
        assert_eq!(read_header(&[0x00; 1078]), None, "a request is not an encrypted packet");
        // renetcode's sequence 0: no sequence bytes.
        let header = read_header(&[0x04; 17]).unwrap();
        assert_eq!((header.kind, header.sequence, header.body_start), (Kind::KeepAlive, 0, 1));
    }
}
