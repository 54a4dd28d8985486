//! Game networking: secure sessions over UDP (netcode 1.02) for players a backend vouched for.
//!
//! A game's backend authenticates a player, then issues it a [`ConnectToken`] with a
//! [`TokenIssuer`] that shares a private key with the game servers. The client presents the
//! token to a server's `game` listener; the server answers with a challenge only the client's
//! address can read, and makes a session only for the answer. Every packet after that is
//! encrypted and checked against replays. Any netcode 1.02 client connects, renetcode's
//! among them.
//!
//! Over a session, [`Channels`] carry messages of up to 64 KiB on four [`Channel`]s:
//! unreliable, sequenced, reliable-ordered and reliable-unordered. A Rust client runs the same
//! [`Channels`] over its netcode client's payloads.

pub(crate) mod config;
mod token;

pub use crate::driver::game::DEFAULT_MAX_CLIENTS;
pub use crate::driver::player::{LeaveReason, Player};
pub use crate::proto::channel::{Channel, ChannelStats, Channels, MAX_MESSAGE_BYTES, SendError};
pub use token::{ConnectToken, DEFAULT_SESSION_TIMEOUT, DEFAULT_TOKEN_EXPIRY, TokenError, TokenIssuer};

/// A game key as 64 hex digits (what `SMOKE_GAME_KEY` holds): the 32 bytes, or `None`.
pub fn key_from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

/// A new random game key from the kernel's CSPRNG: for a server that issues its own tokens, or
/// to print once and share with a backend.
pub fn random_key() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    crate::sys::fill_random(&mut key)?;
    Ok(key)
}
