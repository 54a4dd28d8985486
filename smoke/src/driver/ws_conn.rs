//! The WebSocket handle handlers get ([`WsConn`]), the backpressure rule for sends and topic
//! deliveries, and topic publications (the frame encoded once, carried by the runtime's
//! mailboxes).

use std::net::SocketAddr;

use tungstenite::protocol::frame::coding::{Control, OpCode};

use crate::proto::ws::{FrameHead, Message, State, WsConfig, close_code, write_frame};
use crate::rt::conn::Conn;
use crate::rt::pubsub;
use crate::rt::shared::WorkerSet;
use crate::rt::token::ConnId;
use crate::stats::bump;

#[cfg(feature = "deflate")]
thread_local! {
    /// Per worker thread: a compressor per LZ77 window in use (almost always only the largest)
    /// and the message it compressed last. No message takes over context, so these serve every
    /// connection of the worker.
    static COMPRESSORS: std::cell::RefCell<Compressors> = std::cell::RefCell::default();
}

/// Set once any server in the process offers permessage-deflate: `publish_everywhere` then
/// compresses its publications too.
#[cfg(feature = "deflate")]
static DEFLATING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that a server offers permessage-deflate (see `DEFLATING`).
pub(crate) fn note_deflating(on: bool) {
    #[cfg(feature = "deflate")]
    if on {
        DEFLATING.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    #[cfg(not(feature = "deflate"))]
    let _ = on;
}

#[cfg(feature = "deflate")]
#[derive(Default)]
struct Compressors {
    /// Windows of 9 to 15 bits, by `bits - 9`.
    by_window: [Option<crate::proto::ws::deflate::Deflater>; 7],
    out: Vec<u8>,
}

#[cfg(feature = "deflate")]
impl Compressors {
    /// `payload`, compressed with a `window_bits` window (9..=15).
    fn compress(&mut self, window_bits: u8, payload: &[u8]) -> &[u8] {
        let slot = usize::from(window_bits.clamp(9, 15) - 9);
        let deflater =
            self.by_window[slot].get_or_insert_with(|| crate::proto::ws::deflate::Deflater::new(window_bits));
        self.out.clear();
        deflater.message(payload, &mut self.out, false);
        &self.out
    }
}

/// True when a message of `len` bytes with `opcode` is worth compressing.
#[cfg(feature = "deflate")]
fn compressible(opcode: OpCode, len: usize) -> bool {
    matches!(opcode, OpCode::Data(_)) && len >= crate::proto::ws::deflate::MIN_COMPRESSED_MESSAGE
}

/// Writes a message as one frame: compressed when the connection negotiated it and the message
/// is worth it, with its own context (dedicated) or the worker's compressor (shared).
fn write_message(conn: &mut Conn<'_>, state: &mut State, opcode: OpCode, payload: &[u8]) {
    #[cfg(feature = "deflate")]
    if compressible(opcode, payload.len()) {
        let write = |conn: &mut Conn<'_>, compressed: &[u8]| {
            conn.write(FrameHead::compressed(opcode, compressed.len()).as_bytes());
            conn.write(compressed);
        };
        if let Some((deflater, keep)) = state.dedicated_deflater() {
            return COMPRESSORS.with_borrow_mut(|compressors| {
                compressors.out.clear();
                deflater.message(payload, &mut compressors.out, keep);
                write(conn, &compressors.out);
            });
        }
        if let Some(window_bits) = state.compressing_window() {
            return COMPRESSORS.with_borrow_mut(|compressors| write(conn, compressors.compress(window_bits, payload)));
        }
    }
    let _ = &state;
    write_frame(conn, opcode, payload);
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

/// A WebSocket connection as its handlers see it: sends, pings, the close handshake, topics.
///
/// Sends are buffered like [`Conn::write`] and leave together when the handler returns.
pub struct WsConn<'c, 'a> {
    pub(super) conn: &'c mut Conn<'a>,
    pub(super) state: &'c mut State,
    pub(super) settings: &'c WsConfig,
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

    #[inline]
    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.state.close_sent() || self.conn.is_closing() {
            return SendStatus::Dropped;
        }
        if !admit(self.conn, self.settings, payload.len()) {
            return SendStatus::Dropped;
        }
        let status = if self.conn.is_waiting_for_peer() { SendStatus::Buffered } else { SendStatus::Written };
        write_message(self.conn, self.state, opcode, payload);
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
        self.state.close(self.conn, code, reason);
        leave_topics_once_closing(self.state, self.conn);
    }

    /// Bytes sent but not yet taken by the peer (this connection's backpressure).
    pub fn buffered_amount(&self) -> usize {
        self.conn.buffered()
    }

    /// Subscribes this connection to `topic`: every [`publish`](WsConn::publish) to it, from any
    /// worker, is sent here. False when it was already subscribed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        !self.state.close_sent() && self.conn.subscribe(topic)
    }

    /// Ends a subscription; false when there was none.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.conn.unsubscribe(topic)
    }

    /// Sends `message` to every subscriber of `topic` on every worker of this server (this
    /// connection included, if subscribed), exactly once each and in publish order. The frame
    /// is encoded once; slow subscribers have it dropped at their `max_backpressure` without
    /// holding up the others.
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<Message<'m>>) {
        let from = Some(self.conn.id().worker());
        publish(self.conn.workers, from, topic, message.into(), self.settings.deflate);
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
#[inline]
pub(crate) fn admit(conn: &mut Conn<'_>, settings: &WsConfig, len: usize) -> bool {
    let fits = |conn: &Conn<'_>| {
        let queued = conn.buffered();
        queued == 0 || queued + len <= settings.max_backpressure
    };
    if fits(conn) {
        return true;
    }
    conn.flush();
    if fits(conn) {
        return true;
    }
    bump(&conn.counters.dropped, 1);
    if settings.close_on_backpressure_limit {
        conn.abort();
    }
    false
}

/// Encodes `message` as one frame and publishes it to `topic` on every worker of the server;
/// with `deflate`, a compressed frame of it too (one compression for every subscriber that
/// negotiated permessage-deflate). A publication is the plain frame's length (4 bytes, little
/// endian), the plain frame, then the compressed one if any: see [`deliver`].
pub(crate) fn publish(workers: &WorkerSet, from: Option<usize>, topic: &str, message: Message<'_>, deflate: bool) {
    encode_publication(message, deflate, |parts| pubsub::publish_to(workers, from, topic, parts));
}

/// Publishes `message` to `topic` on every server running in this process, from any thread (a
/// background job, a timer thread, a handler). Subscribers get it exactly once; publications
/// from one thread arrive in the order they were made.
pub fn publish_everywhere<'m>(topic: &str, message: impl Into<Message<'m>>) {
    #[cfg(feature = "deflate")]
    let deflate = DEFLATING.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(feature = "deflate"))]
    let deflate = false;
    encode_publication(message.into(), deflate, |parts| pubsub::publish_everywhere(topic, parts));
}

fn encode_publication(message: Message<'_>, deflate: bool, publish: impl FnOnce(&[&[u8]])) {
    let (opcode, payload) = (message.opcode(), message.payload());
    let head = FrameHead::new(opcode, payload.len());
    let plain_len = ((head.as_bytes().len() + payload.len()) as u32).to_le_bytes();
    #[cfg(feature = "deflate")]
    if deflate && compressible(opcode, payload.len()) {
        // Compressed with the largest window: what subscribers that allowed less get plain.
        let window = crate::proto::ws::deflate::MAX_WINDOW_BITS;
        return COMPRESSORS.with_borrow_mut(|compressors| {
            let compressed = compressors.compress(window, payload);
            let compressed_head = FrameHead::compressed(opcode, compressed.len());
            publish(&[&plain_len, head.as_bytes(), payload, compressed_head.as_bytes(), compressed]);
        });
    }
    let _ = deflate;
    publish(&[&plain_len, head.as_bytes(), payload]);
}

/// A publication arriving for a subscriber: the compressed frame when the subscriber's
/// messages are compressed by the shared compressor with the largest window and there is one;
/// compressed again with its own context for a dedicated subscriber; the plain frame
/// otherwise. Queued unless the connection is closing or at its backpressure limit.
pub(crate) fn deliver(conn: &mut Conn<'_>, settings: &WsConfig, state: Option<&mut State>, publication: &[u8]) {
    let plain_len = publication.get(..4).map_or(0, |len| u32::from_le_bytes([len[0], len[1], len[2], len[3]]));
    let Some((plain, compressed)) = publication.get(4..).and_then(|rest| rest.split_at_checked(plain_len as usize))
    else {
        return;
    };
    if conn.is_closing() {
        return;
    }
    let window_bits = state.as_ref().and_then(|state| state.compressing_window());
    if window_bits == Some(crate::proto::ws::MAX_WINDOW_BITS) && !compressed.is_empty() {
        if admit(conn, settings, compressed.len()) {
            conn.write(compressed);
        }
        return;
    }
    #[cfg(feature = "deflate")]
    if let Some(state) = state
        && state.contexts.is_some()
        && let Some((opcode, payload)) = crate::proto::ws::split_frame(plain)
    {
        if admit(conn, settings, plain.len()) {
            write_message(conn, state, opcode, payload);
        }
        return;
    }
    if admit(conn, settings, plain.len()) {
        conn.write(plain);
    }
}

/// A connection whose close has started takes no more deliveries: its subscriptions end now,
/// not when the socket closes.
pub(super) fn leave_topics_once_closing(state: &State, conn: &mut Conn<'_>) {
    if state.close_sent() {
        conn.unsubscribe_all();
    }
}
