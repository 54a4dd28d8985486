//! HTTP on the runtime: runs the HTTP machine over a connection's input, answers each request
//! with the session's `on_request`, and performs the WebSocket upgrade: checks the handshake,
//! asks `on_upgrade`, writes the 101, and swaps the connection's machine for WebSocket's.

use super::{Machine, SessionService, Upgrades, ws};
use crate::driver::session::Session;
use crate::proto;
use crate::proto::http::{Answer, Context, Expired};
use crate::proto::ws::{Agreed, Upgrade, accept, write_switch};
use crate::rt::conn::Conn;
use crate::stats::bump;

/// Answers the complete requests at the front of `input`; returns the bytes consumed.
pub(super) fn requests<T: Session>(
    service: &SessionService<T>,
    state: &mut Machine,
    user: &mut T,
    conn: &mut Conn<'_>,
    input: &[u8],
) -> usize {
    let Machine::Http(machine, upgrades) = state else { return 0 };
    let only_upgrades = *upgrades == Upgrades::Only;
    let ws_path = service.ws.path.as_deref().map(str::as_bytes);
    let context = Context { limits: &service.http, now: conn.unix_seconds, server: conn.workers };
    let mut agreed = Agreed::default();
    let served = machine.serve(conn, input, &context, |req, res, conn| {
        bump(&conn.counters.requests, 1);
        if !only_upgrades && ws_path != Some(req.path_bytes()) {
            user.on_request(req, res);
            return Answer::Respond;
        }
        if conn.is_shutting_down() {
            // A WebSocket opened now would be closed (1001) as soon as it opened: the client
            // is better off opening it with the server that takes over.
            res.status(503);
            return Answer::Respond;
        }
        let accept_key = match accept(req) {
            Ok(key) => key,
            Err(refusal) => {
                refusal.write(res);
                return Answer::Respond;
            }
        };
        let mut upgrade = Upgrade::new(req);
        user.on_upgrade(req, &mut upgrade);
        if let Some(status) = upgrade.refused {
            res.status(status);
            return Answer::Respond;
        }
        agreed = Agreed::negotiate(req, &service.ws);
        write_switch(conn, &accept_key, upgrade.subprotocol, agreed);
        Answer::Upgraded
    });
    if let Some(rejection) = served.rejected {
        bump(&conn.counters.rejected, 1);
        log::debug!("{}: refused with {}: {rejection:?}", conn.id(), rejection.status());
    }
    if served.upgraded {
        // The HTTP machine's timer (its head's or its keep-alive's) is not the WebSocket's.
        conn.cancel_timer();
        let mut websocket = proto::ws::Connection::default();
        #[cfg(feature = "deflate")]
        websocket.state().set_deflate(agreed.deflate);
        ws::open(&mut websocket, conn, user, &service.ws);
        *state = Machine::Ws(websocket);
    }
    served.consumed
}

/// The connection's timer fired: a stalled head or body gets 408, an idle connection closes.
pub(super) fn timer<T>(service: &SessionService<T>, machine: &mut proto::http::Connection, conn: &mut Conn<'_>) {
    if machine.timer_fired(conn, &service.http, conn.unix_seconds) == Expired::Refused {
        bump(&conn.counters.rejected, 1);
    }
}
