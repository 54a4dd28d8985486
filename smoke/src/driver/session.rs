//! [`Session`]: what a session type answers besides raw TCP ([`Handler`]): HTTP requests, the
//! WebSocket upgrade and its messages, and UDP datagrams. The drivers call it; `#[smoke::server]`
//! implements it (and [`Handler`], and `Server`) by forwarding to the methods it marks.

#[cfg(feature = "game")]
use crate::driver::player::{LeaveReason, Player};
use crate::driver::raw::Handler;
use crate::driver::ws_conn::WsConn;
#[cfg(feature = "game")]
use crate::proto::channel::Channel;
use crate::proto::http::{Request, Response};
use crate::proto::ws::{Message, Upgrade};
use crate::rt::conn::{CloseReason, Conn};
use crate::rt::peer::Peer;

/// A session type's handlers for every protocol: one value per connection (and per UDP peer),
/// owned by the worker thread that accepted it. Every handler has a default; [`Handler`] holds
/// the ones every connection has (`on_connect`, `on_close`, raw TCP's `on_data`, ...).
///
/// `#[smoke::server]` writes this impl; by hand it looks like this:
///
/// ```no_run
/// use smoke::prelude::*;
///
/// #[derive(Default)]
/// struct Hello;
///
/// impl smoke::Handler for Hello {
///     fn on_data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
///         input.len() // no raw TCP listener: never called
///     }
/// }
///
/// impl smoke::Session for Hello {
///     fn new_session(_conn: &mut Conn) -> Hello {
///         Hello
///     }
///     fn on_request(&mut self, _req: &Request, res: &mut Response) {
///         res.text("Hello, World!");
///     }
/// }
///
/// impl smoke::Server for Hello {
///     fn config() -> Config {
///         Config::new().http(8080)
///     }
/// }
///
/// fn main() -> Result<(), smoke::Error> {
///     Hello::serve()
/// }
/// ```
pub trait Session: Handler + Sized {
    /// Builds the session for a new connection, before [`Handler::on_connect`].
    fn new_session(conn: &mut Conn<'_>) -> Self;

    /// Answers one HTTP request (on an `http` listener). The default answers 404.
    fn on_request(&mut self, req: &Request<'_>, res: &mut Response) {
        let _ = req;
        res.status(404);
    }

    /// A valid WebSocket upgrade request: accepted unless this refuses it
    /// ([`Upgrade::refuse`]); it may also pick a subprotocol.
    fn on_upgrade(&mut self, req: &Request<'_>, upgrade: &mut Upgrade<'_>) {
        let _ = (req, upgrade);
    }

    /// The WebSocket is open (the 101 is on its way).
    fn on_open(&mut self, ws: &mut WsConn<'_, '_>) {
        let _ = ws;
    }

    /// A complete WebSocket message.
    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, message: Message<'_>) {
        let _ = (ws, message);
    }

    /// The WebSocket ended, once: the code and reason of the client's close frame (1005 when it
    /// had no code), of the protocol violation smoke closed for (1002, 1007, 1009), or 1006 when
    /// the connection ended without a close frame. [`Handler::on_close`] still follows.
    fn on_ws_close(&mut self, ws: &mut WsConn<'_, '_>, code: u16, reason: &str) {
        let _ = (ws, code, reason);
    }

    /// The WebSocket's backlog drained: the client has taken everything buffered for it.
    fn on_drain(&mut self, ws: &mut WsConn<'_, '_>) {
        let _ = ws;
    }

    /// Builds the session of a UDP peer, on its first datagram (the macro builds it with
    /// `Default` when the server has a `udp` listener). `None`, the default, drops the datagram.
    fn new_peer(peer: &mut Peer<'_>) -> Option<Self> {
        let _ = peer;
        None
    }

    /// A UDP datagram from this session's peer.
    fn on_datagram(&mut self, peer: &mut Peer<'_>, packet: &[u8]) {
        let _ = (peer, packet);
    }

    /// The UDP session's timer ([`Peer::set_timer`]) expired.
    fn on_peer_timer(&mut self, peer: &mut Peer<'_>) {
        let _ = peer;
    }

    /// The UDP session ended: [`Peer::close`], silence for `udp_idle_timeout`
    /// ([`CloseReason::Timeout`]), or shutdown. Sends made here are discarded.
    fn on_peer_close(&mut self, peer: &mut Peer<'_>, reason: CloseReason) {
        let _ = (peer, reason);
    }

    /// Builds the session of a player who completed the secure handshake on a `game` listener
    /// (the macro builds it with `Default`). `None`, the default, turns the player away: the
    /// client is told with disconnect packets.
    #[cfg(feature = "game")]
    fn new_player(player: &mut Player<'_>) -> Option<Self> {
        let _ = player;
        None
    }

    /// The player is connected: its session exists and it can be sent to.
    #[cfg(feature = "game")]
    fn on_join(&mut self, player: &mut Player<'_>) {
        let _ = player;
    }

    /// A message from the player, on the channel it was sent on.
    #[cfg(feature = "game")]
    fn on_game_message(&mut self, player: &mut Player<'_>, channel: Channel, message: &[u8]) {
        let _ = (player, channel, message);
    }

    /// The player's session ended, once. Sends made here are dropped.
    #[cfg(feature = "game")]
    fn on_leave(&mut self, player: &mut Player<'_>, reason: LeaveReason) {
        let _ = (player, reason);
    }
}
