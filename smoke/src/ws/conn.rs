//! What WebSocket handlers see: [`WsConn`], [`Message`], [`Upgrade`].

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::close_code;
use super::session::{WsCore, write_close, write_frame};
use super::topics;
use crate::rt::conn::{Conn, ConnId, Flags};
use crate::http::Request;
use crate::stats::bump;

/// A complete message, borrowed from the worker's unmasking buffer (or, for a fragmented one,
/// from the connection's reassembly buffer): nothing is allocated per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, validated as UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(text: &'a str) -> Message<'a> {
        Message::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(bytes: &'a [u8]) -> Message<'a> {
        Message::Binary(bytes)
    }
}

impl Message<'_> {
    pub(crate) fn opcode(self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Data(Data::Text),
            Message::Binary(_) => OpCode::Data(Data::Binary),
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }
}

/// What became of a message handed to [`WsConn::send`] (or one of its shorthands).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a send at the backpressure limit is dropped; check for SendStatus::Dropped"]
pub enum SendStatus {
    /// Queued with nothing ahead of it waiting for the peer: it leaves in this wake-up's send.
    Written,
    /// Queued behind output the peer has not taken yet; [`buffered_amount`](WsConn::buffered_amount)
    /// tells how much, and `#[on_drain]` runs when it is gone.
    Buffered,
    /// Not sent: the connection's queue is at `max_backpressure` (with
    /// `close_on_backpressure_limit`, the connection is being closed), or it is closing.
    Dropped,
}

/// The upgrade request's answer, decided in `#[on_upgrade]`: accept (the default), refuse with a
/// status, or pick a subprotocol the client offered.
#[derive(Debug)]
pub struct Upgrade<'r> {
    offered: Option<&'r str>,
    pub(crate) refused: Option<u16>,
    pub(crate) subprotocol: Option<&'r str>,
}

impl<'r> Upgrade<'r> {
    pub(crate) fn new(req: &Request<'r>) -> Upgrade<'r> {
        Upgrade { offered: req.header_str("sec-websocket-protocol"), refused: None, subprotocol: None }
    }

    /// Refuses the upgrade: the client gets this HTTP status (400..=599; others become 403).
    pub fn refuse(&mut self, status: u16) {
        self.refused = Some(if (400..=599).contains(&status) { status } else { 403 });
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    pub fn offered(&self) -> impl Iterator<Item = &'r str> {
        self.offered.into_iter().flat_map(|list| list.split(',')).map(str::trim).filter(|p| !p.is_empty())
    }

    /// Accepts `protocol` as the connection's subprotocol; false (and nothing chosen) when the
    /// client did not offer it, since answering with one it did not offer makes it fail.
    /// Browsers also fail a handshake that offered subprotocols and got none back: when
    /// [`offered`](Upgrade::offered) is not empty, accept one or refuse.
    pub fn accept_subprotocol(&mut self, protocol: &str) -> bool {
        let offered = self.offered().find(|p| *p == protocol);
        self.subprotocol = offered;
        offered.is_some()
    }
}

/// A WebSocket connection as its handlers see it: sends, pings, the close handshake, topics.
///
/// Sends are buffered like [`Conn::write`] and leave together when the handler returns.
pub struct WsConn<'c, 'a> {
    pub(crate) conn: &'c mut Conn<'a>,
    pub(crate) core: &'c mut WsCore,
}

impl std::fmt::Debug for WsConn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConn").field("id", &self.conn.id()).field("buffered", &self.conn.buffered()).finish()
    }
}

impl WsConn<'_, '_> {
    /// Sends a message; see [`SendStatus`] for the outcome.
    pub fn send<'m>(&mut self, message: impl Into<Message<'m>>) -> SendStatus {
        let message = message.into();
        self.send_frame(message.opcode(), message.payload())
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send(Message::Text(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, bytes: &[u8]) -> SendStatus {
        self.send(Message::Binary(bytes))
    }

    /// Sends a ping (payload cut to the 125 bytes a control frame holds); the client's pong
    /// counts as activity for the idle timeout.
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        self.send_frame(OpCode::Control(Control::Ping), &payload[..payload.len().min(125)])
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.core.close_sent || self.conn.is_closing() {
            return SendStatus::Dropped;
        }
        if !admit(self.conn, payload.len()) {
            return SendStatus::Dropped;
        }
        let status = if self.conn.flags.has(Flags::WRITE_ARMED) { SendStatus::Buffered } else { SendStatus::Written };
        write_frame(self.conn, opcode, payload);
        status
    }

    /// Starts the close handshake: sends a close frame with `code` (1000..=4999 and sendable;
    /// others are replaced by 1000 with a warning) and `reason` (cut to 123 bytes). Nothing is
    /// sent after it; the connection closes when the client answers, or after 5 s.
    pub fn close(&mut self, code: u16, reason: &str) {
        let sendable = tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed() && code >= 1000;
        let code = if sendable {
            code
        } else {
            log::warn!("{}: close code {code} cannot be sent; sending 1000", self.conn.id());
            close_code::NORMAL
        };
        write_close(self.conn, self.core, code, reason);
    }

    /// Bytes sent but not yet taken by the peer (this connection's backpressure).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered()
    }

    /// Subscribes this connection to `topic`: every [`publish`](WsConn::publish) to it, from any
    /// worker, is sent here. False when it was already subscribed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.core.close_sent {
            return false;
        }
        let added = topics::subscribe(self.conn.stream.as_raw_fd(), self.conn.id(), topic);
        self.core.subscribed |= added;
        added
    }

    /// Ends a subscription; false when there was none.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        topics::unsubscribe(self.conn.stream.as_raw_fd(), self.conn.id(), topic)
    }

    /// Sends `message` to every subscriber of `topic` on every worker of this server (this
    /// connection included, if subscribed), exactly once each and in publish order. The frame
    /// is encoded once; slow subscribers have it dropped at their `max_backpressure` without
    /// holding up the others.
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<Message<'m>>) {
        topics::publish_to(self.conn.shared, Some(self.conn.id().worker()), topic, message.into());
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.conn.id()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.conn.peer_addr()
    }
}

/// The backpressure check shared by sends and topic deliveries: a message that would take the
/// queue above `max_backpressure` is dropped (or closes the connection, if so configured). An
/// empty queue takes any message, so one larger than the limit is not impossible to send.
/// Before dropping, the queue is offered to the socket: a burst of sends or deliveries in one
/// wake-up is not the peer's fault.
pub(crate) fn admit(conn: &mut Conn<'_>, len: usize) -> bool {
    let fits = |conn: &Conn<'_>| {
        let queued = conn.buffered();
        queued == 0 || queued + len <= conn.shared.ws.max_backpressure
    };
    if fits(conn) {
        return true;
    }
    conn.send_now();
    if fits(conn) {
        return true;
    }
    let ws = &conn.shared.ws;
    bump(&conn.counters.dropped, 1);
    if ws.close_on_backpressure_limit {
        conn.abort();
    }
    false
}
