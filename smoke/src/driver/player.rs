//! A player as the game's handlers see it ([`Player`]), and why a session ended
//! ([`LeaveReason`]).

use std::net::SocketAddr;

use crate::proto::channel::{Channel, ChannelStats, Channels, SendError};
use crate::proto::netcode::USER_DATA_BYTES;
use crate::proto::netcode::server::Session;

/// One connected player during a handler call: who it is, its channels, its end.
///
/// What [`send`](Player::send) queues leaves with the worker's next flush of the game socket:
/// at the end of the batch of datagrams (or the tick) the call is part of.
pub struct Player<'a> {
    pub(crate) session: &'a Session,
    pub(crate) channels: &'a mut Channels,
    pub(crate) kick: &'a mut bool,
}

impl std::fmt::Debug for Player<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("client_id", &self.session.client_id)
            .field("addr", &self.session.address)
            .finish()
    }
}

impl Player<'_> {
    /// The id the backend issued the player's token for: unique among a server's players.
    pub fn client_id(&self) -> u64 {
        self.session.client_id
    }

    /// Where the player's packets come from.
    pub fn addr(&self) -> SocketAddr {
        self.session.address
    }

    /// The 256 bytes of user data the backend sealed into the token (zero-padded).
    pub fn user_data(&self) -> &[u8; USER_DATA_BYTES] {
        &self.session.user_data
    }

    /// Queues a message (up to 64 KiB) on `channel`. [`SendError::Backlog`] when the player is
    /// not taking what it is sent: its reliable queue is full.
    pub fn send(&mut self, channel: Channel, message: &[u8]) -> Result<(), SendError> {
        if *self.kick {
            return Ok(());
        }
        self.channels.send(channel, message)
    }

    /// The session's round trip, loss and bytes per second, as measured from its acks.
    pub fn stats(&self) -> ChannelStats {
        self.channels.stats()
    }

    /// Ends the session after this call: the client is told with disconnect packets, and
    /// `on_leave` follows with [`LeaveReason::Kicked`].
    pub fn kick(&mut self) {
        *self.kick = true;
    }
}

/// Why a player's session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// The client said goodbye (netcode disconnect packets).
    Disconnected,
    /// Nothing came from the client for its token's timeout.
    TimedOut,
    /// The server ended it ([`Player::kick`], or a handler of its panicked).
    Kicked,
    /// The server is shutting down; the client was told.
    Shutdown,
}
