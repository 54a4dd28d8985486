//! [`App`]: how a server builds its sessions (for connections and for UDP peers) and what its
//! workers do on each tick. A closure building sessions from a [`Conn`] is the simplest App.

use crate::handler::Handler;
use crate::rt::conn::Conn;
use crate::rt::udp::Peer;
use crate::rt::worker::TickContext;

/// What [`spawn_app`](crate::spawn_app) runs: a session factory and the per-worker tick.
///
/// ```no_run
/// use smoke::{App, Config, Conn, Handler, Peer, TickContext};
///
/// #[derive(Default)]
/// struct Player { inputs: u64 }
///
/// impl Handler for Player {
///     fn on_data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize { input.len() }
///     fn on_datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
///         self.inputs += 1;
///         peer.send(packet);
///     }
/// }
///
/// struct Game;
///
/// impl App for Game {
///     type Session = Player;
///     fn connection(&self, _conn: &mut Conn) -> Player { Player::default() }
///     fn peer(&self, _peer: &mut Peer) -> Option<Player> { Some(Player::default()) }
///     fn on_tick(&self, tick: &mut TickContext<Player>) {
///         tick.for_each_peer(|player, peer| peer.send(&player.inputs.to_le_bytes()));
///     }
/// }
///
/// fn main() -> std::io::Result<()> {
///     let config = Config::new().udp(9092).tick(std::time::Duration::from_millis(50));
///     smoke::spawn_app(config, Game)?.wait_for_signal()
/// }
/// ```
pub trait App: Send + Sync + 'static {
    /// The session type, for connections and UDP peers alike.
    type Session: Handler;

    /// Builds the session of an accepted connection.
    fn connection(&self, conn: &mut Conn<'_>) -> Self::Session;

    /// Builds the session of a UDP peer, on its first datagram; `None` drops the datagram
    /// (and a server with a `udp` listener then refuses to start: see
    /// [`builds_peers`](App::builds_peers)).
    fn peer(&self, peer: &mut Peer<'_>) -> Option<Self::Session> {
        let _ = peer;
        None
    }

    /// True when [`peer`](App::peer) builds sessions; a server with a `udp` listener needs it.
    fn builds_peers(&self) -> bool {
        false
    }

    /// Runs on every worker at [`Config::tick`](crate::Config::tick)'s cadence.
    fn on_tick(&self, tick: &mut TickContext<'_, Self::Session>) {
        let _ = tick;
    }
}

/// A closure building a session from its connection: the App of [`spawn`](crate::spawn).
pub(crate) struct FromFn<F>(pub(crate) F);

impl<S, F> App for FromFn<F>
where
    S: Handler,
    F: Fn(&mut Conn<'_>) -> S + Send + Sync + 'static,
{
    type Session = S;

    fn connection(&self, conn: &mut Conn<'_>) -> S {
        (self.0)(conn)
    }
}
