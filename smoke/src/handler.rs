//! The callbacks a TCP session implements.

use crate::rt::conn::{CloseReason, Conn};
use crate::rt::udp::Peer;

/// A TCP session: one value per connection, owned by the worker thread that accepted it.
///
/// Only [`on_data`](Handler::on_data) is required. The session does not need to be `Send`: it
/// is created on its worker and never leaves it.
///
/// ```no_run
/// use smoke::{CloseReason, Config, Conn, Handler};
///
/// /// Answers every line with its length.
/// #[derive(Default)]
/// struct LineLengths;
///
/// impl Handler for LineLengths {
///     fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
///         let mut consumed = 0;
///         while let Some(end) = input[consumed..].iter().position(|&b| b == b'\n') {
///             conn.write(format!("{}\n", end).as_bytes());
///             consumed += end + 1;
///         }
///         consumed // a partial line is handed back with the next bytes
///     }
/// }
///
/// fn main() -> std::io::Result<()> {
///     smoke::serve(Config::new().tcp(9000), |_conn: &mut Conn| LineLengths)
/// }
/// ```
pub trait Handler: 'static {
    /// A connection was accepted and its session created.
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// New input arrived. `input` is everything not yet consumed; return how many bytes (from
    /// the front) were consumed. The rest is kept and handed back, followed by the next bytes.
    /// While a call consumes something and input remains, it is called again with the rest, so
    /// a handler may also take one message per call. Values above `input.len()` count as all.
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize;

    /// The output queue is empty again: output that had to wait for the peer (backpressure) has
    /// been fully sent, or [`Conn::want_write`] asked for this call.
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The timer armed with [`Conn::set_timer`] expired.
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The server is shutting down: the connection closes once its output is flushed (within
    /// `shutdown_timeout`), and no more input is delivered. A last word written here (a
    /// WebSocket close frame, say) is sent first.
    fn on_shutdown(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The connection ended; writes made here are discarded.
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        let _ = (conn, reason);
    }

    /// A UDP datagram from this session's peer (the first one created the session).
    fn on_datagram(&mut self, peer: &mut Peer<'_>, packet: &[u8]) {
        let _ = (peer, packet);
    }

    /// The timer armed with [`Peer::set_timer`] expired.
    fn on_peer_timer(&mut self, peer: &mut Peer<'_>) {
        let _ = peer;
    }

    /// The UDP session ended: [`Peer::close`], silence for `udp_idle_timeout`
    /// ([`CloseReason::Timeout`]), or shutdown. Sends made here are discarded.
    fn on_peer_close(&mut self, peer: &mut Peer<'_>, reason: CloseReason) {
        let _ = (peer, reason);
    }
}
