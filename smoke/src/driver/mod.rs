//! The driver layer: joins the protocol machines of `proto/` to the runtime.
//!
//! A connection's session is the user's value plus the machine of the protocol its listener
//! speaks ([`Stream`]); the runtime calls it through [`SessionService`], which hands bytes to
//! the machine and the machine's events to the user's handlers. The protocol is picked once, at
//! accept ([`SessionService::open`]), and the HTTP→WebSocket upgrade swaps the machine in place.
//!
//! - `raw.rs`: [`Handler`] (raw TCP) and the closure-built service of `smoke::spawn`
//! - `session.rs`: [`Session`], the handlers of every other protocol
//! - `http.rs`, `ws.rs`: each protocol's machine run with the session's handlers
//! - `ws_conn.rs`: [`WsConn`](ws_conn::WsConn), backpressure, topic publications
//! - `certs.rs`: the TLS listeners' certificates: PEM files, SNI, reloading
//! - `tls.rs`: TLS around any of them: the handshake, then plaintext in and sealed records out
//! - `proxy.rs`: the PROXY protocol header before any of them, behind a load balancer
//! - `cluster.rs`: topics bridged between nodes through NATS
//! - `game.rs`: secure game sessions (netcode) and their channels on a demultiplexed UDP socket;
//!   `player.rs`: [`Player`](player::Player), a player as the game's handlers see it
//! - `sink.rs`: the runtime's connection as the machines' sink

#[cfg(feature = "tls")]
pub(crate) mod certs;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
#[cfg(feature = "game")]
pub(crate) mod game;
mod http;
#[cfg(feature = "game")]
pub(crate) mod player;
mod proxy;
pub(crate) mod raw;
pub(crate) mod session;
mod sink;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod ws;
pub(crate) mod ws_conn;

use smoke_rules::Protocol;

use crate::proto;
use crate::proto::http::Limits;
use crate::proto::ws::WsConfig;
use std::net::SocketAddr;

use crate::rt::conn::{CloseReason, Conn};
use crate::rt::demux::DemuxIo;
use crate::rt::peer::Peer;
use crate::rt::worker::Tick;
use crate::rt::worker::{RingDatagram, Service};
use session::Session;

/// One connection of a [`Session`] type: the user's session and the machine that speaks the
/// listener's protocol.
pub(crate) struct Stream<T> {
    pub(crate) user: T,
    pub(crate) machine: Machine,
}

/// The protocol machine a connection runs. Raw TCP hands bytes to the user as they are.
#[derive(Debug)]
pub(crate) enum Machine {
    Raw,
    /// HTTP/1.1 requests, and where a WebSocket upgrade is accepted.
    Http(proto::http::Connection, Upgrades),
    /// An upgraded connection's WebSocket frames.
    Ws(proto::ws::Connection),
    /// TLS around one of the others (boxed: only TLS connections pay for it).
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsLayer>),
    /// Waiting for a PROXY protocol header; the machine inside takes over once it is read.
    Proxy(Box<Machine>),
}

impl Machine {
    /// The machine that speaks the protocol: the one inside TLS, or this one.
    pub(crate) fn plain(&mut self) -> &mut Machine {
        match self {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => &mut layer.inner,
            machine => machine,
        }
    }

    /// The machine that speaks the protocol once its session has started (after the TLS
    /// handshake): what a tick may visit.
    pub(crate) fn serving(&mut self) -> Option<&mut Machine> {
        match self {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => layer.is_connected().then_some(&mut layer.inner),
            Machine::Proxy(_) => None,
            machine => Some(machine),
        }
    }
}

/// Where an HTTP listener accepts WebSocket upgrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upgrades {
    /// At the configured `ws_path`, if there is one.
    AtWsPath,
    /// Every request must be one (a `ws` listener); anything else gets 426.
    Only,
}

/// How long a kept-alive HTTP connection between requests is given for its next one once the
/// server drains: a client that sent a request as the drain began gets its answer (with
/// `Connection: close`) rather than a closed connection, and one that sends nothing is closed
/// well before `shutdown_timeout`.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The per-tick work of a server: what `Server::on_tick` becomes (the face adapts its own
/// view of the tick).
pub(crate) type OnTick<T> = fn(&mut Tick<'_, Stream<T>, T, Demux<T>>, &SessionService<T>);

/// The per-worker machine of a [`Session`] type's demultiplexed (game) sockets.
#[cfg(feature = "game")]
pub(crate) type Demux<T> = game::GameEndpoint<T>;
#[cfg(not(feature = "game"))]
pub(crate) type Demux<T> = (std::convert::Infallible, std::marker::PhantomData<T>);

/// Runs a [`Session`] type on the runtime: its configuration and its listeners' protocols.
pub(crate) struct SessionService<T> {
    /// The protocol of each listener, by index.
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) http: Limits,
    pub(crate) ws: WsConfig,
    pub(crate) on_tick: OnTick<T>,
    /// The TLS listeners' configurations, when the server has any.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<certs::TlsConfigs>,
    /// Every stream listener's connections start with a PROXY protocol header.
    pub(crate) proxy_protocol: bool,
    /// The game listeners' protocol id, key, addresses and seats.
    #[cfg(feature = "game")]
    pub(crate) game: game::GameSettings,
}

impl<T: Session> Service for SessionService<T> {
    type Stream = Stream<T>;
    type Peer = T;
    type Demux = Demux<T>;

    fn check_listener(&self, listener: usize) -> Result<(), String> {
        match self.protocols[listener] {
            #[cfg(feature = "game")]
            Protocol::Game => self.game.check(),
            #[cfg(not(feature = "game"))]
            Protocol::Game => Err("a game listener needs smoke's `game` feature, which this build leaves out".into()),
            _ => Ok(()),
        }
    }

    /// The one match that picks a connection's protocol.
    fn open(&self, conn: &mut Conn<'_>, listener: usize) -> Stream<T> {
        let protocol = self.protocols[listener];
        let machine = match protocol.family() {
            Protocol::Tcp => Machine::Raw,
            Protocol::Http => Machine::Http(proto::http::Connection::default(), Upgrades::AtWsPath),
            Protocol::Ws => Machine::Http(proto::http::Connection::default(), Upgrades::Only),
            // Datagram listeners accept no connections; the TLS protocols' families are above.
            Protocol::Udp | Protocol::Game | Protocol::Https | Protocol::Wss | Protocol::Tls => Machine::Raw,
        };
        #[cfg(feature = "tls")]
        let machine = match (protocol.is_tls(), &self.tls) {
            (true, Some(tls)) => {
                Machine::Tls(Box::new(tls::TlsLayer::new(tls.config(protocol), tls.max_plaintext, machine)))
            }
            _ => machine,
        };
        let machine = if self.proxy_protocol { Machine::Proxy(Box::new(machine)) } else { machine };
        Stream { user: T::new_session(conn), machine }
    }
    #[inline]
    fn on_connect(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => tls::connected(layer, conn, &self.http),
            Machine::Proxy(_) => proxy::connected(self, conn),
            machine => self.connected(machine, &mut stream.user, conn),
        }
    }
    #[inline]
    fn on_data(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, input: &mut [u8]) -> usize {
        match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => tls::data(self, layer, &mut stream.user, conn, input),
            Machine::Proxy(_) => proxy::data(self, stream, conn, input),
            machine => self.data(machine, &mut stream.user, conn, input),
        }
    }
    fn on_write(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => tls::written(self, layer, &mut stream.user, conn),
            machine => self.written(machine, &mut stream.user, conn),
        }
    }
    fn on_timer(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) if !layer.is_connected() => tls::handshake_timed_out(conn),
            Machine::Proxy(_) => proxy::timed_out(conn),
            machine => self.timer(machine.plain(), &mut stream.user, conn),
        }
    }
    fn on_shutdown(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) if !layer.is_connected() => conn.close(),
            // A balancer sends its header and the request together: the request is owed its
            // answer like any other (see proxy::data), within the header's timer.
            Machine::Proxy(_) => {}
            machine => self.shutting_down(machine.plain(), &mut stream.user, conn),
        }
    }
    fn on_close(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, reason: CloseReason) {
        let machine = match &mut stream.machine {
            #[cfg(feature = "tls")]
            Machine::Tls(layer) => {
                tls::closed(layer, conn);
                // A connection whose handshake never completed was never connected.
                if !layer.is_connected() {
                    return;
                }
                &mut layer.inner
            }
            // Its header never came: its session never started.
            Machine::Proxy(_) => return,
            machine => machine,
        };
        if let Machine::Ws(machine) = machine {
            ws::closed(machine, conn, &mut stream.user, &self.ws);
        }
        stream.user.on_close(conn, reason);
    }
    fn on_delivery(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, publication: &[u8]) {
        let state = match stream.machine.serving() {
            Some(Machine::Ws(machine)) => Some(machine.state()),
            _ => None,
        };
        ws_conn::deliver(conn, &self.ws, state, publication);
    }
    #[cfg(feature = "tls")]
    fn seal(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, scratch: &mut [u8]) {
        if let Machine::Tls(layer) = &mut stream.machine {
            tls::seal(layer, conn, scratch);
        }
    }

    fn open_peer(&self, peer: &mut Peer<'_>) -> Option<T> {
        T::new_peer(peer)
    }
    #[inline]
    fn on_datagram(&self, session: &mut T, peer: &mut Peer<'_>, packet: &[u8]) {
        session.on_datagram(peer, packet);
    }
    fn on_peer_timer(&self, session: &mut T, peer: &mut Peer<'_>) {
        session.on_peer_timer(peer);
    }
    fn on_peer_close(&self, session: &mut T, peer: &mut Peer<'_>, reason: CloseReason) {
        session.on_peer_close(peer, reason);
    }

    fn on_tick(&self, tick: &mut Tick<'_, Stream<T>, T, Demux<T>>) {
        (self.on_tick)(tick, self);
    }

    #[cfg(feature = "game")]
    fn open_demux(&self, listener: usize, local: Option<SocketAddr>) -> Option<Demux<T>> {
        if self.protocols[listener] != Protocol::Game {
            return None;
        }
        match self.game.server_config(local) {
            Ok(config) => Some(game::GameEndpoint::new(config)),
            Err(e) => {
                // check_listener made sure of the key: only the kernel's randomness can fail.
                log::error!("game listener {listener}: no challenge key ({e}); its datagrams go unanswered");
                None
            }
        }
    }
    #[cfg(feature = "game")]
    fn on_demux_datagram(&self, demux: &mut Demux<T>, io: &mut DemuxIo<'_>, from: SocketAddr, packet: &mut [u8]) {
        demux.datagram(io, from, packet);
    }
    #[cfg(feature = "game")]
    fn on_demux_poll(&self, demux: &mut Demux<T>, io: &mut DemuxIo<'_>) {
        demux.poll(io);
    }
    #[cfg(feature = "game")]
    fn on_demux_shutdown(&self, demux: &mut Demux<T>, io: &mut DemuxIo<'_>) {
        demux.shutdown(io);
    }
    #[cfg(not(feature = "game"))]
    fn open_demux(&self, _listener: usize, _local: Option<SocketAddr>) -> Option<Demux<T>> {
        None
    }
    #[cfg(not(feature = "game"))]
    fn on_demux_datagram(&self, demux: &mut Demux<T>, _: &mut DemuxIo<'_>, _: SocketAddr, _: &mut [u8]) {
        match demux.0 {}
    }
    #[cfg(not(feature = "game"))]
    fn on_demux_poll(&self, demux: &mut Demux<T>, _io: &mut DemuxIo<'_>) {
        match demux.0 {}
    }
    #[cfg(not(feature = "game"))]
    fn on_demux_shutdown(&self, demux: &mut Demux<T>, _io: &mut DemuxIo<'_>) {
        match demux.0 {}
    }

    fn ring_datagram<'f>(&self, frame: &'f [u8], verify: bool) -> Option<RingDatagram<'f>> {
        let captured = proto::ring::parse_udp(frame, verify).ok()?;
        Some(RingDatagram { from: captured.from, to: captured.to, payload: captured.payload })
    }
}

/// The events of the machines inside (TLS calls them on its plaintext, as the runtime does on
/// a plain connection's bytes).
impl<T: Session> SessionService<T> {
    fn connected(&self, machine: &mut Machine, user: &mut T, conn: &mut Conn<'_>) {
        if let Machine::Http(machine, _) = machine {
            // A connection that says nothing is closed after header_timeout.
            machine.opened(conn, &self.http);
        }
        user.on_connect(conn);
    }
    #[inline]
    fn data(&self, machine: &mut Machine, user: &mut T, conn: &mut Conn<'_>, input: &mut [u8]) -> usize {
        match machine {
            Machine::Raw => user.on_data(conn, input),
            Machine::Http(..) => http::requests(self, machine, user, conn, input),
            Machine::Ws(machine) => ws::frames(machine, conn, input, user, &self.ws),
            #[cfg(feature = "tls")]
            Machine::Tls(_) => 0,
            Machine::Proxy(_) => 0,
        }
    }
    fn written(&self, machine: &mut Machine, user: &mut T, conn: &mut Conn<'_>) {
        match machine {
            Machine::Raw => user.on_write(conn),
            Machine::Ws(machine) => ws::drained(machine, conn, user, &self.ws),
            _ => {}
        }
    }
    fn timer(&self, machine: &mut Machine, user: &mut T, conn: &mut Conn<'_>) {
        match machine {
            Machine::Raw => user.on_timer(conn),
            Machine::Http(machine, _) => http::timer(self, machine, conn),
            Machine::Ws(machine) => ws::timer(machine, conn, user, &self.ws),
            #[cfg(feature = "tls")]
            Machine::Tls(_) => {}
            Machine::Proxy(_) => {}
        }
    }
    /// The server is draining: raw TCP and WebSocket connections close once their output
    /// (a WebSocket's 1001 close frame) is flushed; an HTTP connection answers the request it
    /// is in, or its next, with `Connection: close`, and one with none coming closes after a
    /// grace.
    fn shutting_down(&self, machine: &mut Machine, user: &mut T, conn: &mut Conn<'_>) {
        match machine {
            Machine::Http(machine, _) => machine.drain(conn, DRAIN_GRACE),
            Machine::Raw => {
                conn.close();
                user.on_shutdown(conn);
            }
            Machine::Ws(machine) => {
                conn.close();
                ws::shutting_down(machine, conn, user, &self.ws);
            }
            _ => conn.close(),
        }
    }
}
