//! What `#[smoke::server]` generates code against: the [`Server`] trait, and the tick's view of
//! a worker ([`Worker`]).
//!
//! The macro only forwards: it turns the attribute into a [`Config`] and each `#[on_*]` method
//! into a trait method here. The event loop stays in the runtime, the protocols in the driver.

use std::io;
use std::marker::PhantomData;

use crate::app::App;
use crate::config::Config;
use crate::driver::{Machine, Stream};
use crate::http::{Request, Response};
use crate::rt::conn::{CloseReason, Conn};
use crate::rt::server::{ServerHandle, spawn_app};
use crate::rt::udp::Peer;
use crate::rt::worker::{TickContext, TickInfo};
use crate::sys::ShutdownSignals;
use crate::ws::{Message, Upgrade, WsConn};

/// A session type turned into a server by `#[smoke::server]` (which writes this impl; a manual
/// impl works the same way).
///
/// Every handler has a default that does nothing (`on_data`'s consumes all input), so the
/// generated impl only overrides what the user wrote.
pub trait Server: Sized + 'static {
    /// The configuration given in the attribute, before environment overrides.
    fn config() -> Config;

    /// Builds the session for a new connection, before [`Server::on_connect`].
    fn new_session(conn: &mut Conn<'_>) -> Self;

    /// See [`Handler::on_connect`].
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// See [`Handler::on_data`].
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let _ = conn;
        input.len()
    }

    /// See [`Handler::on_write`].
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// See [`Handler::on_close`]: every connection, whatever its protocol, ends here once.
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        let _ = (conn, reason);
    }

    /// See [`Handler::on_timer`] (TCP connections; HTTP uses its timer for `header_timeout`,
    /// WebSocket for the idle ping and the close handshake).
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

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
    /// the connection ended without a close frame. [`Server::on_close`] still follows.
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

    /// The UDP session ended ([`Handler::on_peer_close`]).
    fn on_peer_close(&mut self, peer: &mut Peer<'_>, reason: CloseReason) {
        let _ = (peer, reason);
    }

    /// Runs on every worker at the `tick` cadence, with that worker's sessions.
    fn on_tick(worker: &mut Worker<'_, '_, Self>) {
        let _ = worker;
    }

    /// Starts the server with `config` (usually `Self::config()`, adjusted) and returns its
    /// handle: for tests, and for programs that do more than serve.
    fn spawn(config: Config) -> io::Result<ServerHandle> {
        spawn_app(config, ServerApp::<Self>(PhantomData))
    }

    /// Runs the server until SIGINT/SIGTERM: [`config`](Server::config) with the environment
    /// overrides of [`Config::apply_env`] applied, the bound addresses printed to stdout, then a
    /// graceful drain on the signal.
    fn serve() -> io::Result<()> {
        let config = Self::config().apply_env()?;
        let signals = ShutdownSignals::install()?;
        let server = Self::spawn(config)?;
        let name = std::any::type_name::<Self>().rsplit("::").next().unwrap_or("smoke");
        for (protocol, addr) in server.local_addrs() {
            println!("{name} listening on {addr} ({})", protocol.name());
        }
        server.wait_for(signals)
    }
}

/// A [`Server`] type as an [`App`]: sessions for connections and peers, and its tick.
struct ServerApp<T>(PhantomData<fn() -> T>);

impl<T: Server> App for ServerApp<T> {
    type Session = Stream<T>;

    fn connection(&self, conn: &mut Conn<'_>) -> Stream<T> {
        let protocol = conn.protocol();
        Stream::new(T::new_session(conn), protocol)
    }

    fn peer(&self, peer: &mut Peer<'_>) -> Option<Stream<T>> {
        T::new_peer(peer).map(|user| Stream { user, machine: Machine::Raw })
    }

    fn builds_peers(&self) -> bool {
        true
    }

    fn on_tick(&self, tick: &mut TickContext<'_, Stream<T>>) {
        T::on_tick(&mut Worker { tick });
    }
}

/// One worker during its tick, as `#[on_tick]` sees it: its UDP peers, TCP connections and
/// WebSockets with their sessions, sends to any address, publications, and how late the tick
/// is.
pub struct Worker<'t, 'w, T> {
    tick: &'t mut TickContext<'w, Stream<T>>,
}

impl<T> std::fmt::Debug for Worker<'_, '_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("tick", &self.tick).finish()
    }
}

impl<T: Server> Worker<'_, '_, T> {
    /// This tick's sequence number, lateness and missed count.
    pub fn tick(&self) -> TickInfo {
        self.tick.info()
    }

    /// This worker's index (0-based).
    pub fn index(&self) -> usize {
        self.tick.worker()
    }

    /// Calls `visit` with each UDP peer's session.
    pub fn for_each_peer(&mut self, mut visit: impl FnMut(&mut T, &mut Peer<'_>)) {
        self.tick.for_each_peer(|session, peer| visit(&mut session.user, peer));
    }

    /// Calls `visit` with each raw TCP connection's session.
    pub fn for_each_tcp(&mut self, mut visit: impl FnMut(&mut T, &mut Conn<'_>)) {
        self.tick.for_each_connection(|session, conn| {
            if let Machine::Raw = session.machine {
                visit(&mut session.user, conn);
            }
        });
    }

    /// Calls `visit` with each open WebSocket's session (not those closing).
    pub fn for_each_websocket(&mut self, mut visit: impl FnMut(&mut T, &mut WsConn<'_, '_>)) {
        self.tick.for_each_connection(|session, conn| {
            if let Machine::Ws(ws) = &mut session.machine {
                crate::driver::ws::with_open(ws, conn, |ws| visit(&mut session.user, ws));
            }
        });
    }

    /// Sends a datagram from this worker's UDP socket; false without a `udp` listener.
    pub fn send_to(&mut self, addr: std::net::SocketAddr, datagram: &[u8]) -> bool {
        self.tick.send_to(addr, datagram)
    }

    /// Publishes to a WebSocket topic, reaching subscribers on every worker.
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<Message<'m>>) {
        self.tick.publish(topic, message);
    }

    /// This worker's UDP peers.
    pub fn peers(&self) -> usize {
        self.tick.peers()
    }

    /// This worker's connections (all listeners).
    pub fn connections(&self) -> usize {
        self.tick.connections()
    }
}
