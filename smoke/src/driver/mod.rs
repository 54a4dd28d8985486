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
//! - `sink.rs`: the runtime's connection as the machines' sink

mod http;
pub(crate) mod raw;
pub(crate) mod session;
mod sink;
pub(crate) mod ws;
pub(crate) mod ws_conn;

use smoke_rules::Protocol;

use crate::proto;
use crate::proto::http::Limits;
use crate::proto::ws::WsConfig;
use crate::rt::conn::{CloseReason, Conn};
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
}

/// Where an HTTP listener accepts WebSocket upgrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upgrades {
    /// At the configured `ws_path`, if there is one.
    AtWsPath,
    /// Every request must be one (a `ws` listener); anything else gets 426.
    Only,
}

/// The per-tick work of a server: what `Server::on_tick` becomes (the face adapts its own
/// view of the tick).
pub(crate) type OnTick<T> = fn(&mut Tick<'_, Stream<T>, T>, &SessionService<T>);

/// Runs a [`Session`] type on the runtime: its configuration and its listeners' protocols.
pub(crate) struct SessionService<T> {
    /// The protocol of each listener, by index.
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) http: Limits,
    pub(crate) ws: WsConfig,
    pub(crate) on_tick: OnTick<T>,
}

impl<T: Session> Service for SessionService<T> {
    type Stream = Stream<T>;
    type Peer = T;

    /// The one match that picks a connection's protocol.
    fn open(&self, conn: &mut Conn<'_>, listener: usize) -> Stream<T> {
        let machine = match self.protocols[listener] {
            Protocol::Tcp => Machine::Raw,
            Protocol::Http => Machine::Http(proto::http::Connection::default(), Upgrades::AtWsPath),
            Protocol::Ws => Machine::Http(proto::http::Connection::default(), Upgrades::Only),
            // A UDP listener accepts no connections.
            Protocol::Udp => Machine::Raw,
        };
        Stream { user: T::new_session(conn), machine }
    }
    #[inline]
    fn on_connect(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        if let Machine::Http(machine, _) = &mut stream.machine {
            // A connection that says nothing is closed after header_timeout.
            machine.opened(conn, &self.http);
        }
        stream.user.on_connect(conn);
    }
    #[inline]
    fn on_data(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        match &mut stream.machine {
            Machine::Raw => stream.user.on_data(conn, input),
            Machine::Http(..) => http::requests(self, stream, conn, input),
            Machine::Ws(machine) => ws::frames(machine, conn, input, &mut stream.user, &self.ws),
        }
    }
    fn on_write(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            Machine::Raw => stream.user.on_write(conn),
            Machine::Http(..) => {}
            Machine::Ws(machine) => ws::drained(machine, conn, &mut stream.user, &self.ws),
        }
    }
    fn on_timer(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            Machine::Raw => stream.user.on_timer(conn),
            Machine::Http(machine, _) => http::timer(self, machine, conn),
            Machine::Ws(machine) => ws::timer(machine, conn, &mut stream.user, &self.ws),
        }
    }
    fn on_shutdown(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>) {
        match &mut stream.machine {
            Machine::Raw => stream.user.on_shutdown(conn),
            Machine::Http(..) => {}
            Machine::Ws(machine) => ws::shutting_down(machine, conn, &mut stream.user, &self.ws),
        }
    }
    fn on_close(&self, stream: &mut Stream<T>, conn: &mut Conn<'_>, reason: CloseReason) {
        if let Machine::Ws(machine) = &mut stream.machine {
            ws::closed(machine, conn, &mut stream.user, &self.ws);
        }
        stream.user.on_close(conn, reason);
    }
    fn on_delivery(&self, _stream: &mut Stream<T>, conn: &mut Conn<'_>, frame: &[u8]) {
        ws_conn::deliver(conn, &self.ws, frame);
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

    fn on_tick(&self, tick: &mut Tick<'_, Stream<T>, T>) {
        (self.on_tick)(tick, self);
    }

    fn ring_datagram<'f>(&self, frame: &'f [u8], verify: bool) -> Option<RingDatagram<'f>> {
        let captured = proto::ring::parse_udp(frame, verify).ok()?;
        Some(RingDatagram { from: captured.from, to: captured.to, payload: captured.payload })
    }
}
