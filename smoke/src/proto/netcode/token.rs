//! Connect tokens and challenge tokens.
//!
//! A connect token has a private part, sealed with the key the backend shares with the servers
//! (XChaCha20-Poly1305, a random nonce, the version, protocol id and expiry as associated data),
//! and a public part the client reads: where to connect and the session's two keys. The server
//! sees only the private part, in a connection request. A challenge token carries the client id
//! and user data from the request to the response, sealed with a key only the server knows, so
//! the server keeps nothing for a requester until it proves it can read what was sent to it.

use super::crypto::{open_with_nonce, open_with_sequence, seal_with_nonce, seal_with_sequence};
use super::{Key, MAC_BYTES, USER_DATA_BYTES, VERSION_INFO};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The sealed private part, tag included.
pub(crate) const PRIVATE_TOKEN_BYTES: usize = 1024;
/// The whole token as the standard lays it out.
pub(crate) const PUBLIC_TOKEN_BYTES: usize = 2048;
/// The sealed challenge token, tag included.
pub(crate) const CHALLENGE_TOKEN_BYTES: usize = 300;
/// The most server addresses one token names.
pub(crate) const MAX_SERVER_ADDRESSES: usize = 32;

const ADDRESS_IPV4: u8 = 1;
const ADDRESS_IPV6: u8 = 2;

/// What a backend puts in a token.
#[derive(Debug)]
pub(crate) struct TokenContents<'a> {
    pub(crate) protocol_id: u64,
    pub(crate) client_id: u64,
    pub(crate) create_timestamp: u64,
    pub(crate) expire_timestamp: u64,
    /// Seconds without a packet before either side ends the session; negative for never.
    pub(crate) timeout_seconds: i32,
    /// 1 to 32 addresses, tried in order.
    pub(crate) server_addresses: &'a [SocketAddr],
    pub(crate) client_to_server_key: Key,
    pub(crate) server_to_client_key: Key,
    pub(crate) user_data: &'a [u8; USER_DATA_BYTES],
}

/// What the server reads from an opened private token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PrivateToken {
    pub(crate) client_id: u64,
    pub(crate) timeout_seconds: i32,
    pub(crate) client_to_server_key: Key,
    pub(crate) server_to_client_key: Key,
    pub(crate) user_data: [u8; USER_DATA_BYTES],
}

/// How the public part writes an IPv6 server address: the standard's eight little-endian u16s,
/// or renetcode's 16 octets in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ipv6Layout {
    Standard,
    Octets,
}

/// Seals the private part of a token with the backend's key and the token's random nonce.
pub(crate) fn seal_private(
    contents: &TokenContents<'_>,
    nonce: &[u8; 24],
    private_key: &Key,
) -> [u8; PRIVATE_TOKEN_BYTES] {
    let mut private = Writer { bytes: [0u8; PRIVATE_TOKEN_BYTES], at: 0 };
    private.put(&contents.client_id.to_le_bytes());
    private.put(&contents.timeout_seconds.to_le_bytes());
    private.put_addresses(contents.server_addresses, Ipv6Layout::Standard);
    private.put(&contents.client_to_server_key);
    private.put(&contents.server_to_client_key);
    private.put(contents.user_data);
    let associated = private_associated_data(contents.protocol_id, contents.expire_timestamp);
    seal_with_nonce(&mut private.bytes, nonce, private_key, &associated);
    private.bytes
}

/// Writes the public token: the standard's layout, or renetcode's, which puts the client id first
/// and writes IPv6 addresses as octets. The standard pads to 2048 bytes; renetcode reads no
/// padding, and ignores what follows.
pub(crate) fn write_public(
    contents: &TokenContents<'_>,
    nonce: &[u8; 24],
    private: &[u8; PRIVATE_TOKEN_BYTES],
    renetcode_layout: bool,
) -> Vec<u8> {
    let mut public = Writer { bytes: [0u8; 8 + PUBLIC_TOKEN_BYTES], at: 0 };
    if renetcode_layout {
        public.put(&contents.client_id.to_le_bytes());
    }
    public.put(VERSION_INFO);
    public.put(&contents.protocol_id.to_le_bytes());
    public.put(&contents.create_timestamp.to_le_bytes());
    public.put(&contents.expire_timestamp.to_le_bytes());
    public.put(nonce);
    public.put(private);
    public.put(&contents.timeout_seconds.to_le_bytes());
    let layout = if renetcode_layout { Ipv6Layout::Octets } else { Ipv6Layout::Standard };
    public.put_addresses(contents.server_addresses, layout);
    public.put(&contents.client_to_server_key);
    public.put(&contents.server_to_client_key);
    let len = if renetcode_layout { public.at } else { PUBLIC_TOKEN_BYTES };
    public.bytes[..len].to_vec()
}

/// Opens a request's private token in place and reads it. `None` when it does not open with
/// `private_key` (forged, altered, expiry or protocol changed, another backend's key), when it is
/// malformed (0 or more than 32 addresses, an unknown address kind), or when no address in it is
/// one `serves` answers true for: a token for another server is no use here.
pub(crate) fn open_private(
    sealed: &mut [u8; PRIVATE_TOKEN_BYTES],
    protocol_id: u64,
    expire_timestamp: u64,
    nonce: &[u8; 24],
    private_key: &Key,
    serves: impl Fn(SocketAddr) -> bool,
) -> Option<PrivateToken> {
    let associated = private_associated_data(protocol_id, expire_timestamp);
    if !open_with_nonce(sealed, nonce, private_key, &associated) {
        return None;
    }
    let mut reader = Reader { bytes: &sealed[..PRIVATE_TOKEN_BYTES - MAC_BYTES] };
    let client_id = u64::from_le_bytes(reader.take()?);
    let timeout_seconds = i32::from_le_bytes(reader.take()?);
    let count = u32::from_le_bytes(reader.take()?) as usize;
    if !(1..=MAX_SERVER_ADDRESSES).contains(&count) {
        return None;
    }
    let mut ours = false;
    for _ in 0..count {
        ours |= reader.address()?.iter().flatten().any(|&address| serves(address));
    }
    Some(PrivateToken {
        client_id,
        timeout_seconds,
        client_to_server_key: reader.take()?,
        server_to_client_key: reader.take()?,
        user_data: reader.take()?,
    })
    .filter(|_| ours)
}

/// Seals a challenge token: the client id and user data, padded to 300 bytes, under the
/// server's own key with `sequence` as nonce.
pub(crate) fn seal_challenge(
    client_id: u64,
    user_data: &[u8; USER_DATA_BYTES],
    sequence: u64,
    key: &Key,
) -> [u8; CHALLENGE_TOKEN_BYTES] {
    let mut token = [0u8; CHALLENGE_TOKEN_BYTES];
    token[..8].copy_from_slice(&client_id.to_le_bytes());
    token[8..8 + USER_DATA_BYTES].copy_from_slice(user_data);
    seal_with_sequence(&mut token, sequence, key, &[]);
    token
}

/// Opens a challenge token in place: the client id and user data, or `None` when it was not
/// sealed by this server under `sequence`.
pub(crate) fn open_challenge(
    token: &mut [u8; CHALLENGE_TOKEN_BYTES],
    sequence: u64,
    key: &Key,
) -> Option<(u64, [u8; USER_DATA_BYTES])> {
    if !open_with_sequence(token, sequence, key, &[]) {
        return None;
    }
    let client_id = u64::from_le_bytes(token[..8].try_into().ok()?);
    Some((client_id, token[8..8 + USER_DATA_BYTES].try_into().ok()?))
}

/// The private token's associated data: version, protocol id, expiry.
fn private_associated_data(protocol_id: u64, expire_timestamp: u64) -> [u8; 29] {
    let mut data = [0u8; 29];
    data[..13].copy_from_slice(VERSION_INFO);
    data[13..21].copy_from_slice(&protocol_id.to_le_bytes());
    data[21..].copy_from_slice(&expire_timestamp.to_le_bytes());
    data
}

/// Appends to a fixed buffer sized for the largest token, so a write cannot run out of room.
struct Writer<const N: usize> {
    bytes: [u8; N],
    at: usize,
}

impl<const N: usize> Writer<N> {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// The count, then each address: kind, the IP, the port (19 bytes at most, 32 of them fit).
    fn put_addresses(&mut self, addresses: &[SocketAddr], layout: Ipv6Layout) {
        self.put(&(addresses.len() as u32).to_le_bytes());
        for address in addresses {
            match address.ip() {
                IpAddr::V4(ip) => {
                    self.put(&[ADDRESS_IPV4]);
                    self.put(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    self.put(&[ADDRESS_IPV6]);
                    match layout {
                        Ipv6Layout::Standard => {
                            ip.segments().iter().for_each(|segment| self.put(&segment.to_le_bytes()))
                        }
                        Ipv6Layout::Octets => self.put(&ip.octets()),
                    }
                }
            }
            self.put(&address.port().to_le_bytes());
        }
    }
}

/// Takes fixed-size fields off the front of a byte slice; `None` once it runs short.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (field, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*field)
    }

    /// One address; an IPv6 one as both layouts it may have been written in, the standard's
    /// first.
    fn address(&mut self) -> Option<[Option<SocketAddr>; 2]> {
        let [kind] = self.take::<1>()?;
        match kind {
            ADDRESS_IPV4 => {
                let ip = Ipv4Addr::from(self.take::<4>()?);
                let port = u16::from_le_bytes(self.take()?);
                Some([Some(SocketAddr::new(ip.into(), port)), None])
            }
            ADDRESS_IPV6 => {
                let octets = self.take::<16>()?;
                let port = u16::from_le_bytes(self.take()?);
                let segments: [u16; 8] =
                    std::array::from_fn(|i| u16::from_le_bytes([octets[2 * i], octets[2 * i + 1]]));
                let standard = SocketAddr::new(Ipv6Addr::from(segments).into(), port);
                Some([Some(standard), Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))])
            }
            _ => None,
        }
    }
}
