//! Drives one upgraded connection: frames in the input become messages for the session's
//! handlers, pings get pongs, the close handshake runs, and an idle connection is pinged, then
//! closed.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, OpCode};

use super::close_code::{ABNORMAL, GOING_AWAY, NO_STATUS};
use super::codec::{self, Assembler, Event, Violation};
use super::conn::{Message, WsConn};
use super::topics;
use crate::rt::conn::Conn;
use crate::dsl::Server;

/// How long a close we started waits for the client's answer before the connection closes.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

thread_local! {
    /// Per worker thread: the payload of the frame being handled, unmasked (the input buffer is
    /// the runtime's and read-only here). Reused, so steady-state traffic allocates nothing.
    static UNMASKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One upgraded connection's state. Holds heap memory only while a fragmented message is being
/// reassembled.
#[derive(Debug, Default)]
pub(crate) struct WsState {
    assembler: Assembler,
    core: WsCore,
}

/// The part of the state [`WsConn`] reaches.
#[derive(Debug, Default)]
pub(crate) struct WsCore {
    pub(crate) close_sent: bool,
    close_received: bool,
    /// `#[on_close]` has run (it runs once).
    reported: bool,
    /// A frame arrived since the idle timer last fired.
    active: bool,
    /// The idle timer sent a ping that is still unanswered.
    pinged: bool,
    /// Subscribed to a topic at some point: unsubscribe at the end.
    pub(crate) subscribed: bool,
    /// Closed for a violation: our close frame and FIN are out, and whatever the client still
    /// sends is read and dropped until it closes too (or the close wait ends).
    draining: bool,
}

/// Appends a final, unmasked server frame. The header is formatted on the stack.
pub(crate) fn write_frame(conn: &mut Conn<'_>, opcode: OpCode, payload: &[u8]) {
    let mut head = [0u8; 14];
    let len = frame_header(opcode, payload.len(), &mut head);
    conn.write(&head[..len]);
    conn.write(payload);
}

/// Formats a final server frame's header into `head`; returns its length.
pub(crate) fn frame_header(opcode: OpCode, payload_len: usize, head: &mut [u8; 14]) -> usize {
    let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None };
    let mut rest = &mut head[..];
    // 14 bytes hold the longest header of an unmasked frame.
    let _ = header.format(payload_len as u64, &mut rest);
    14 - rest.len()
}

/// Sends our close frame (once), stops topic deliveries, and waits `CLOSE_WAIT` for the answer.
pub(crate) fn write_close(conn: &mut Conn<'_>, core: &mut WsCore, code: u16, reason: &str) {
    if core.close_sent {
        return;
    }
    let mut frame = Vec::new();
    codec::encode_close(code, reason, &mut frame);
    conn.write(&frame);
    core.close_sent = true;
    leave_topics(conn, core);
    conn.set_timer(CLOSE_WAIT);
}

fn leave_topics(conn: &Conn<'_>, core: &mut WsCore) {
    if core.subscribed {
        topics::unsubscribe_all(conn.stream.as_raw_fd(), conn.id());
        core.subscribed = false;
    }
}

/// The upgrade is done (101 written): arm the idle timer and call `#[on_open]`.
pub(crate) fn open<T: Server>(state: &mut WsState, conn: &mut Conn<'_>, session: &mut T) {
    if let Some(idle) = conn.shared.ws.idle_timeout {
        conn.set_timer(idle);
    }
    session.on_open(&mut WsConn { conn, core: &mut state.core });
}

/// Handles the complete frames at the front of `input`; returns the bytes consumed.
pub(crate) fn serve_frames<T: Server>(
    state: &mut WsState,
    conn: &mut Conn<'_>,
    input: &[u8],
    session: &mut T,
) -> usize {
    let max_message = conn.shared.ws.max_message;
    let mut consumed = 0;
    while consumed < input.len() && !conn.is_closing() {
        if state.core.close_received || state.core.draining {
            // Nothing may follow a close frame; what does is ignored.
            return input.len();
        }
        let buf = &input[consumed..];
        let frame = match codec::parse_client_frame(buf, max_message) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(violation) => {
                fail(&mut state.core, conn, session, violation);
                return input.len();
            }
        };
        consumed += frame.len();
        state.core.active = true;
        let payload = &buf[frame.header_len..frame.len()];
        let mask = frame.header.mask.unwrap_or_default();
        UNMASKED.with_borrow_mut(|unmasked| {
            unmasked.clear();
            unmasked.extend_from_slice(payload);
            codec::unmask(unmasked, mask, 0);
            let WsState { assembler, core } = &mut *state;
            match assembler.push(&frame.header, unmasked, max_message) {
                Ok(None) => {}
                Ok(Some(event)) => {
                    let finished_message = matches!(event, Event::Text(_) | Event::Binary(_));
                    handle(event, core, conn, session);
                    if finished_message {
                        assembler.release();
                    }
                }
                Err(violation) => fail(core, conn, session, violation),
            }
        });
    }
    consumed
}

fn handle<T: Server>(event: Event<'_>, core: &mut WsCore, conn: &mut Conn<'_>, session: &mut T) {
    match event {
        Event::Text(text) => session.on_message(&mut WsConn { conn, core }, Message::Text(text)),
        Event::Binary(bytes) => session.on_message(&mut WsConn { conn, core }, Message::Binary(bytes)),
        Event::Ping(payload) => {
            if !core.close_sent {
                write_frame(conn, OpCode::Control(Control::Pong), payload);
            }
        }
        Event::Pong(_) => core.pinged = false,
        Event::Close(code, reason) => {
            core.close_received = true;
            if !core.close_sent {
                // Echo the code (RFC 6455 §5.5.1); an empty close gets an empty one.
                match code {
                    Some(code) => write_close(conn, core, code, ""),
                    None => {
                        write_frame(conn, OpCode::Control(Control::Close), &[]);
                        core.close_sent = true;
                        leave_topics(conn, core);
                    }
                }
            }
            report(core, conn, session, code.unwrap_or(NO_STATUS), reason);
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            conn.close();
        }
    }
}

/// The client broke the protocol: send the close frame with the violation's code, then FIN,
/// and drain. Closing the socket at once would be simpler, but the client may still be sending
/// (the rest of an oversized frame, say): closing with unread input makes the kernel answer with
/// a reset, which can destroy our close frame before the client reads it.
fn fail<T: Server>(core: &mut WsCore, conn: &mut Conn<'_>, session: &mut T, violation: Violation) {
    log::debug!("{}: WebSocket closed with {}: {}", conn.id(), violation.code, violation.reason);
    write_close(conn, core, violation.code, violation.reason);
    report(core, conn, session, violation.code, violation.reason);
    core.draining = true;
    conn.shutdown_write();
}

fn report<T: Server>(core: &mut WsCore, conn: &mut Conn<'_>, session: &mut T, code: u16, reason: &str) {
    if !core.reported {
        core.reported = true;
        session.on_ws_close(&mut WsConn { conn, core }, code, reason);
    }
}

/// The connection's timer fired: the close we started went unanswered, or the idle check.
pub(crate) fn timer<T: Server>(state: &mut WsState, conn: &mut Conn<'_>, session: &mut T) {
    let core = &mut state.core;
    if core.close_sent {
        report(core, conn, session, ABNORMAL, "");
        if conn.buffered() > 0 {
            // Not even our close frame was taken in all this time: the peer is not reading, and
            // a graceful close would wait for it forever.
            conn.abort();
        } else {
            conn.close();
        }
        return;
    }
    let Some(idle) = conn.shared.ws.idle_timeout else { return };
    if std::mem::take(&mut core.active) {
        core.pinged = false;
    } else if !core.pinged {
        write_frame(conn, OpCode::Control(Control::Ping), &[]);
        core.pinged = true;
    } else {
        // Silent through a ping: waiting for its answer to a close frame would be no different.
        write_close(conn, core, GOING_AWAY, "idle timeout");
        report(core, conn, session, GOING_AWAY, "idle timeout");
        conn.close();
        return;
    }
    conn.set_timer(idle);
}

/// Runs `visit` with the connection as a [`WsConn`], unless its close has started.
pub(crate) fn with_open(state: &mut WsState, conn: &mut Conn<'_>, visit: impl FnOnce(&mut WsConn<'_, '_>)) {
    if !state.core.close_sent {
        visit(&mut WsConn { conn, core: &mut state.core });
    }
}

/// The backlog drained: `#[on_drain]`.
pub(crate) fn drained<T: Server>(state: &mut WsState, conn: &mut Conn<'_>, session: &mut T) {
    if !state.core.close_sent {
        session.on_drain(&mut WsConn { conn, core: &mut state.core });
    }
}

/// The server is stopping: say so with 1001 (the connection closes once that is flushed, without
/// waiting for the client's answer).
pub(crate) fn shutting_down<T: Server>(state: &mut WsState, conn: &mut Conn<'_>, session: &mut T) {
    let core = &mut state.core;
    write_close(conn, core, GOING_AWAY, "server shutting down");
    report(core, conn, session, GOING_AWAY, "server shutting down");
}

/// The connection ended: `#[on_close]` with 1006 if no close frame settled it, and its
/// subscriptions end.
pub(crate) fn closed<T: Server>(state: &mut WsState, conn: &mut Conn<'_>, session: &mut T) {
    let core = &mut state.core;
    report(core, conn, session, ABNORMAL, "");
    leave_topics(conn, core);
}
