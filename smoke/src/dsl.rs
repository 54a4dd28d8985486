//! What `#[smoke::server]` generates code against: the [`Server`] trait.
//!
//! The macro only forwards: it turns the attribute into a [`Config`] and each `#[on_*]` method
//! into a trait method here. The event loop stays in the runtime.

use std::io;
use std::marker::PhantomData;

use crate::app::App;
use crate::config::{Config, Protocol};
use crate::rt::conn::{CloseReason, Conn};
use crate::handler::Handler;
use crate::http::session::{Answer, HttpState, header_timeout, serve_requests};
use crate::http::{Request, Response};
use crate::rt::server::{ServerHandle, spawn_app};
use crate::sys::ShutdownSignals;
use crate::rt::udp::Peer;
use crate::rt::worker::{TickContext, TickInfo};
use crate::ws::session::{self as ws_session, WsState};
use crate::ws::{Message, Upgrade, WsConn, handshake};

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
    type Session = Session<T>;

    fn connection(&self, conn: &mut Conn<'_>) -> Session<T> {
        Session { inner: T::new_session(conn), proto: Proto::default() }
    }

    fn peer(&self, peer: &mut Peer<'_>) -> Option<Session<T>> {
        T::new_peer(peer).map(|inner| Session { inner, proto: Proto::default() })
    }

    fn builds_peers(&self) -> bool {
        true
    }

    fn on_tick(&self, tick: &mut TickContext<'_, Session<T>>) {
        T::on_tick(&mut Worker { tick });
    }
}

/// One worker during its tick, as `#[on_tick]` sees it: its UDP peers, TCP connections and
/// WebSockets with their sessions, sends to any address, publications, and how late the tick
/// is.
pub struct Worker<'t, 'w, T> {
    tick: &'t mut TickContext<'w, Session<T>>,
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
        self.tick.for_each_peer(|session, peer| visit(&mut session.inner, peer));
    }

    /// Calls `visit` with each raw TCP connection's session.
    pub fn for_each_tcp(&mut self, mut visit: impl FnMut(&mut T, &mut Conn<'_>)) {
        self.tick.for_each_connection(|session, conn| {
            if conn.protocol() == Protocol::Tcp {
                visit(&mut session.inner, conn);
            }
        });
    }

    /// Calls `visit` with each open WebSocket's session (not those closing).
    pub fn for_each_websocket(&mut self, mut visit: impl FnMut(&mut T, &mut WsConn<'_, '_>)) {
        self.tick.for_each_connection(|session, conn| {
            if let (Proto::Ws(ws), false) = (&mut session.proto, conn.protocol() == Protocol::Tcp) {
                ws_session::with_open(ws, conn, |ws| visit(&mut session.inner, ws));
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

/// Runs a [`Server`] type's handlers as a [`Handler`], speaking each listener's protocol.
struct Session<T> {
    inner: T,
    proto: Proto,
}

/// Where an HTTP-speaking connection is: requests, or (after an upgrade) WebSocket frames.
/// Raw TCP connections leave it untouched.
#[derive(Debug)]
enum Proto {
    Http(HttpState),
    Ws(WsState),
}

impl Default for Proto {
    fn default() -> Proto {
        Proto::Http(HttpState::default())
    }
}

impl<T: Server> Session<T> {
    fn serve_http(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let Proto::Http(http) = &mut self.proto else { return 0 };
        let limits = conn.shared.http_limits;
        let only_ws = conn.protocol() == Protocol::Ws;
        let ws_path = conn.shared.ws.path.as_deref();
        let inner = &mut self.inner;
        let mut upgraded = false;
        let consumed = serve_requests(http, conn, input, &limits, |req, res, conn| {
            if !only_ws && ws_path != Some(req.path()) {
                inner.on_request(req, res);
                return Answer::Respond;
            }
            let accept_key = match handshake::accept(req) {
                Ok(key) => key,
                Err(refusal) => {
                    refusal.write(res);
                    return Answer::Respond;
                }
            };
            let mut upgrade = Upgrade::new(req);
            inner.on_upgrade(req, &mut upgrade);
            if let Some(status) = upgrade.refused {
                res.status(status);
                return Answer::Respond;
            }
            handshake::write_switch(conn, &accept_key, upgrade.subprotocol);
            upgraded = true;
            Answer::Upgraded
        });
        if upgraded {
            let mut ws = WsState::default();
            ws_session::open(&mut ws, conn, &mut self.inner);
            self.proto = Proto::Ws(ws);
        }
        consumed
    }
}

impl<T: Server> Handler for Session<T> {
    #[inline]
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_connect(conn);
    }
    #[inline]
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        match (&mut self.proto, conn.protocol()) {
            (_, Protocol::Tcp) => self.inner.on_data(conn, input),
            (Proto::Ws(ws), _) => ws_session::serve_frames(ws, conn, input, &mut self.inner),
            (Proto::Http(_), _) => self.serve_http(conn, input),
        }
    }
    #[inline]
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        match (&mut self.proto, conn.protocol()) {
            (_, Protocol::Tcp) => self.inner.on_write(conn),
            (Proto::Ws(ws), _) => ws_session::drained(ws, conn, &mut self.inner),
            (Proto::Http(_), _) => {}
        }
    }
    #[inline]
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        match (&mut self.proto, conn.protocol()) {
            (_, Protocol::Tcp) => self.inner.on_timer(conn),
            (Proto::Ws(ws), _) => ws_session::timer(ws, conn, &mut self.inner),
            (Proto::Http(http), _) => header_timeout(http, conn),
        }
    }
    fn on_shutdown(&mut self, conn: &mut Conn<'_>) {
        if let (Proto::Ws(ws), false) = (&mut self.proto, conn.protocol() == Protocol::Tcp) {
            ws_session::shutting_down(ws, conn, &mut self.inner);
        }
    }
    #[inline]
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        if let Proto::Ws(ws) = &mut self.proto {
            ws_session::closed(ws, conn, &mut self.inner);
        }
        self.inner.on_close(conn, reason);
    }
    #[inline]
    fn on_datagram(&mut self, peer: &mut Peer<'_>, packet: &[u8]) {
        self.inner.on_datagram(peer, packet);
    }
    fn on_peer_timer(&mut self, peer: &mut Peer<'_>) {
        self.inner.on_peer_timer(peer);
    }
    fn on_peer_close(&mut self, peer: &mut Peer<'_>, reason: CloseReason) {
        self.inner.on_peer_close(peer, reason);
    }
}
