//! Raw TCP: the [`Handler`] trait a connection's session implements (bytes in, bytes out), and
//! the service that runs sessions a closure builds ([`FromFn`], behind `smoke::spawn`).

use std::convert::Infallible;

use smoke_rules::Protocol;

use std::net::SocketAddr;

use crate::rt::conn::{CloseReason, Conn};
use crate::rt::demux::DemuxIo;
use crate::rt::peer::Peer;
use crate::rt::worker::Service;
use crate::rt::worker::Tick;

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
/// fn main() -> Result<(), smoke::Error> {
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
}

/// Sessions built by a closure from their connection, for raw TCP listeners: what
/// [`smoke::spawn`](crate::spawn) runs.
pub(crate) struct FromFn<F> {
    pub(crate) new_session: F,
    /// The protocol of each listener, by index: all must be TCP.
    pub(crate) protocols: Vec<Protocol>,
}

impl<H, F> Service for FromFn<F>
where
    H: Handler,
    F: Fn(&mut Conn<'_>) -> H + Send + Sync + 'static,
{
    type Stream = H;
    type Peer = Infallible;
    type Demux = Infallible;

    fn check_listener(&self, listener: usize) -> Result<(), String> {
        match self.protocols[listener] {
            Protocol::Tcp => Ok(()),
            Protocol::Udp => Err("a udp listener needs sessions for its peers: smoke::spawn builds sessions for \
                                  connections only; write a smoke::Server (#[smoke::server] with #[on_datagram])"
                .to_owned()),
            Protocol::Game => Err("a game listener needs sessions for its players: smoke::spawn builds sessions \
                                   for connections only; write a smoke::Server (#[smoke::server] with #[on_join])"
                .to_owned()),
            other => Err(format!(
                "smoke::spawn hands raw bytes to a Handler; an {} listener needs a smoke::Server \
                 (#[smoke::server], or an impl of smoke::Server) to speak its protocol",
                other.name()
            )),
        }
    }

    fn open(&self, conn: &mut Conn<'_>, _listener: usize) -> H {
        (self.new_session)(conn)
    }
    #[inline]
    fn on_connect(&self, session: &mut H, conn: &mut Conn<'_>) {
        session.on_connect(conn);
    }
    #[inline]
    fn on_data(&self, session: &mut H, conn: &mut Conn<'_>, input: &mut [u8]) -> usize {
        session.on_data(conn, input)
    }
    fn on_write(&self, session: &mut H, conn: &mut Conn<'_>) {
        session.on_write(conn);
    }
    fn on_timer(&self, session: &mut H, conn: &mut Conn<'_>) {
        session.on_timer(conn);
    }
    fn on_shutdown(&self, session: &mut H, conn: &mut Conn<'_>) {
        conn.close();
        session.on_shutdown(conn);
    }
    fn on_close(&self, session: &mut H, conn: &mut Conn<'_>, reason: CloseReason) {
        session.on_close(conn, reason);
    }
    fn on_delivery(&self, _session: &mut H, conn: &mut Conn<'_>, frame: &[u8]) {
        // Raw connections have no way to subscribe; a frame that reached one is written as is.
        conn.write(frame);
    }

    fn open_peer(&self, _peer: &mut Peer<'_>) -> Option<Infallible> {
        None
    }
    fn on_datagram(&self, session: &mut Infallible, _peer: &mut Peer<'_>, _packet: &[u8]) {
        match *session {}
    }
    fn on_peer_timer(&self, session: &mut Infallible, _peer: &mut Peer<'_>) {
        match *session {}
    }
    fn on_peer_close(&self, session: &mut Infallible, _peer: &mut Peer<'_>, _reason: CloseReason) {
        match *session {}
    }
    fn open_demux(&self, _listener: usize, _local: Option<SocketAddr>) -> Option<Infallible> {
        None
    }
    fn on_demux_datagram(&self, demux: &mut Infallible, _io: &mut DemuxIo<'_>, _from: SocketAddr, _packet: &mut [u8]) {
        match *demux {}
    }
    fn on_demux_poll(&self, demux: &mut Infallible, _io: &mut DemuxIo<'_>) {
        match *demux {}
    }
    fn on_demux_shutdown(&self, demux: &mut Infallible, _io: &mut DemuxIo<'_>) {
        match *demux {}
    }
    fn on_tick(&self, _tick: &mut Tick<'_, H, Infallible, Infallible>) {}
}
