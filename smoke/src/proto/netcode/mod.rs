//! netcode 1.02, the standard for secure client/server sessions over UDP
//! (<https://github.com/mas-bandwidth/netcode/blob/main/STANDARD.md>), written from its text.
//!
//! A game's backend issues a client a connect token whose private part is sealed with a key it
//! shares with the game servers; the client presents it in a connection request; the server
//! answers with a challenge only the requester's address can read, and allocates a session only
//! for the response to it. Every later packet is sealed (ChaCha20-Poly1305) with its sequence
//! number as nonce and checked against replays.
//!
//! - `crypto.rs`: the two AEADs, sealing and opening in place.
//! - `packet.rs`: packet kinds, the prefix byte and sequence encoding, sealing and opening.
//! - `token.rs`: the connect token, public and private parts, and the challenge token.
//! - `replay.rs`: the window of sequence numbers already received.
//! - `server.rs`: the server's machine: requests, challenges, sessions, keep-alives, timeouts.
//! - `shared.rs`: what every worker's machine shares: seats, client ids, tokens seen.
//!
//! Where renetcode (the Rust implementation players' clients are likeliest to run) departs from
//! the text, the server accepts both: a packet whose sequence is 0 written with no sequence
//! bytes, and an IPv6 server address written as 16 octets rather than eight little-endian u16s.

mod crypto;
pub(crate) mod packet;
mod replay;
pub(crate) mod server;
pub(crate) mod shared;
pub(crate) mod token;

#[cfg(test)]
mod tests;

/// "NETCODE 1.02" with its terminating NUL, at the start of tokens and in every packet's
/// associated data.
pub(crate) const VERSION_INFO: &[u8; 13] = b"NETCODE 1.02\0";
/// A ChaCha20-Poly1305 key: the backend's private key, the per-direction session keys, and the
/// server's challenge key.
pub(crate) const KEY_BYTES: usize = 32;
/// A key, by value.
pub(crate) type Key = [u8; KEY_BYTES];
/// The Poly1305 tag that ends every sealed part.
pub(crate) const MAC_BYTES: usize = 16;
/// The game's own data in a token, handed to the server at join.
pub(crate) const USER_DATA_BYTES: usize = 256;
/// The largest payload a packet carries: the standard's limit, chosen so a packet with its
/// headers fits the smallest MTU on the paths games run over.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 1200;
/// The largest encrypted packet: prefix, eight sequence bytes, payload, tag.
pub(crate) const MAX_PACKET_BYTES: usize = 1 + 8 + MAX_PAYLOAD_BYTES + MAC_BYTES;
