//! WebSocket on the runtime: runs one upgraded connection's machine with the session's
//! handlers, and ends its subscriptions as soon as its close has started.

use super::ws_conn::{WsConn, leave_topics_once_closing};
use crate::driver::session::Session;
use crate::proto::ws::{self, Message, State, WsConfig};
use crate::rt::conn::Conn;

/// The session's WebSocket handlers as the machine's events.
struct Handlers<'s, T> {
    session: &'s mut T,
    settings: &'s WsConfig,
}

impl<'a, T: Session> ws::Events<Conn<'a>> for Handlers<'_, T> {
    fn on_message(&mut self, state: &mut State, conn: &mut Conn<'a>, message: Message<'_>) {
        crate::stats::bump(&conn.counters.ws_messages, 1);
        self.session.on_message(&mut WsConn { conn, state, settings: self.settings }, message);
    }

    fn on_close(&mut self, state: &mut State, conn: &mut Conn<'a>, code: u16, reason: &str) {
        self.session.on_ws_close(&mut WsConn { conn, state, settings: self.settings }, code, reason);
    }
}

/// The upgrade is done (101 written): the idle check starts and `#[on_open]` runs.
pub(super) fn open<T: Session>(ws: &mut ws::Connection, conn: &mut Conn<'_>, session: &mut T, settings: &WsConfig) {
    ws.open(conn, settings.idle_timeout);
    with_open(ws, conn, settings, |ws| session.on_open(ws));
}

/// Frames arrived: the complete ones become messages; returns the bytes consumed.
pub(super) fn frames<T: Session>(
    ws: &mut ws::Connection,
    conn: &mut Conn<'_>,
    input: &mut [u8],
    session: &mut T,
    settings: &WsConfig,
) -> usize {
    let consumed = ws.serve(conn, input, settings.max_message, &mut Handlers { session, settings });
    leave_topics_once_closing(ws.state(), conn);
    consumed
}

/// The connection's timer fired (the idle check, or the close wait).
pub(super) fn timer<T: Session>(ws: &mut ws::Connection, conn: &mut Conn<'_>, session: &mut T, settings: &WsConfig) {
    ws.timer_fired(conn, settings.idle_timeout, &mut Handlers { session, settings });
    leave_topics_once_closing(ws.state(), conn);
}

/// The backlog drained: `#[on_drain]`, unless the close has started.
pub(super) fn drained<T: Session>(ws: &mut ws::Connection, conn: &mut Conn<'_>, session: &mut T, settings: &WsConfig) {
    with_open(ws, conn, settings, |ws| session.on_drain(ws));
}

/// The server is stopping: 1001 to the client.
pub(super) fn shutting_down<T: Session>(
    ws: &mut ws::Connection,
    conn: &mut Conn<'_>,
    session: &mut T,
    settings: &WsConfig,
) {
    ws.shutting_down(conn, &mut Handlers { session, settings });
    leave_topics_once_closing(ws.state(), conn);
}

/// The connection ended: `#[on_close]` with 1006 if no close frame settled it.
pub(super) fn closed<T: Session>(ws: &mut ws::Connection, conn: &mut Conn<'_>, session: &mut T, settings: &WsConfig) {
    ws.closed(conn, &mut Handlers { session, settings });
}

/// Runs `visit` with the connection as a [`WsConn`], unless its close has started.
pub(crate) fn with_open(
    ws: &mut ws::Connection,
    conn: &mut Conn<'_>,
    settings: &WsConfig,
    visit: impl FnOnce(&mut WsConn<'_, '_>),
) {
    let state = ws.state();
    if !state.close_sent() {
        visit(&mut WsConn { conn, state, settings });
        leave_topics_once_closing(ws.state(), conn);
    }
}
