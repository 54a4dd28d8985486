//! The driver layer: joins the protocol machines to the runtime. A connection's session is the
//! user's value plus the machine of the protocol its listener speaks; the runtime calls it
//! through [`Handler`], and it hands bytes to the machine and the machine's events to the
//! user's handlers. The HTTP→WebSocket upgrade swaps the machine in place.

mod http;
mod sink;
pub(crate) mod ws;

use crate::config::Protocol;
use crate::handler::Handler;
use crate::proto;
use crate::rt::conn::{CloseReason, Conn};
use crate::rt::udp::Peer;
pub(crate) use crate::server::Server;

/// One connection of a [`Server`] type: the user's session and the machine that speaks the
/// listener's protocol.
pub(crate) struct Stream<T> {
    pub(crate) user: T,
    pub(crate) machine: Machine,
}

/// The protocol machine a connection runs. Raw TCP hands bytes to the user as they are.
#[derive(Debug)]
pub(crate) enum Machine {
    Raw,
    /// HTTP/1.1 requests; `upgrades` says where a WebSocket upgrade is accepted.
    Http(proto::http::Connection, Upgrades),
    /// An upgraded connection's WebSocket frames.
    Ws(proto::ws::Connection),
}

/// Where an HTTP listener accepts WebSocket upgrades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upgrades {
    /// Nowhere, or at the configured `ws_path` (if any).
    AtWsPath,
    /// Every request must be one (a `ws` listener); anything else gets 426.
    Only,
}

impl<T: Server> Stream<T> {
    /// The session of a connection accepted on a `protocol` listener: the one match that picks
    /// a connection's protocol.
    pub(crate) fn new(user: T, protocol: Protocol) -> Stream<T> {
        let machine = match protocol {
            Protocol::Tcp | Protocol::Udp => Machine::Raw,
            Protocol::Http => Machine::Http(proto::http::Connection::default(), Upgrades::AtWsPath),
            Protocol::Ws => Machine::Http(proto::http::Connection::default(), Upgrades::Only),
            _ => Machine::Raw,
        };
        Stream { user, machine }
    }
}

impl<T: Server> Handler for Stream<T> {
    #[inline]
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        self.user.on_connect(conn);
    }
    #[inline]
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        match &mut self.machine {
            Machine::Raw => self.user.on_data(conn, input),
            Machine::Http(..) => http::requests(self, conn, input),
            Machine::Ws(ws) => ws::frames(ws, conn, input, &mut self.user),
        }
    }
    #[inline]
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        match &mut self.machine {
            Machine::Raw => self.user.on_write(conn),
            Machine::Http(..) => {}
            Machine::Ws(ws) => ws::drained(ws, conn, &mut self.user),
        }
    }
    #[inline]
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        match &mut self.machine {
            Machine::Raw => self.user.on_timer(conn),
            Machine::Http(machine, _) => http::timer(machine, conn),
            Machine::Ws(ws) => ws::timer(ws, conn, &mut self.user),
        }
    }
    fn on_shutdown(&mut self, conn: &mut Conn<'_>) {
        if let Machine::Ws(ws) = &mut self.machine {
            ws::shutting_down(ws, conn, &mut self.user);
        }
    }
    #[inline]
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        if let Machine::Ws(ws) = &mut self.machine {
            ws::closed(ws, conn, &mut self.user);
        }
        self.user.on_close(conn, reason);
    }
    #[inline]
    fn on_datagram(&mut self, peer: &mut Peer<'_>, packet: &[u8]) {
        self.user.on_datagram(peer, packet);
    }
    fn on_peer_timer(&mut self, peer: &mut Peer<'_>) {
        self.user.on_peer_timer(peer);
    }
    fn on_peer_close(&mut self, peer: &mut Peer<'_>, reason: CloseReason) {
        self.user.on_peer_close(peer, reason);
    }
}
