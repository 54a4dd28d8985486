//! HTTP on the runtime: runs the HTTP machine over a connection's input, answers each request
//! with the session's `on_request`, and performs the WebSocket upgrade: checks the handshake,
//! asks `on_upgrade`, writes the 101, and swaps the connection's machine for WebSocket's.

use super::{Machine, Server, Stream, Upgrades, ws};
use crate::proto::http::{Answer, Context};
use crate::proto::ws::{Upgrade, accept, write_switch};
use crate::proto::{self};
use crate::rt::conn::Conn;
use crate::stats::bump;

/// Answers the complete requests at the front of `input`; returns the bytes consumed.
pub(super) fn requests<T: Server>(stream: &mut Stream<T>, conn: &mut Conn<'_>, input: &[u8]) -> usize {
    let Machine::Http(machine, upgrades) = &mut stream.machine else { return 0 };
    let only_upgrades = *upgrades == Upgrades::Only;
    let shared = conn.shared;
    let ws_path = shared.ws.path.as_deref();
    let context = Context { limits: &shared.http_limits, now: crate::sys::unix_seconds_coarse(), server: shared };
    let user = &mut stream.user;
    let served = machine.serve(conn, input, &context, |req, res, conn| {
        if !only_upgrades && ws_path != Some(req.path()) {
            user.on_request(req, res);
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
        write_switch(conn, &accept_key, upgrade.subprotocol);
        Answer::Upgraded
    });
    if let Some(rejection) = served.rejected {
        bump(&conn.counters.rejected, 1);
        log::debug!("{}: refused with {}: {rejection:?}", conn.id(), rejection.status());
    }
    if served.upgraded {
        let mut websocket = proto::ws::Connection::default();
        ws::open(&mut websocket, conn, &mut stream.user);
        stream.machine = Machine::Ws(websocket);
    }
    served.consumed
}

/// The connection's timer fired: a head that did not complete in time gets 408.
pub(super) fn timer(machine: &mut proto::http::Connection, conn: &mut Conn<'_>) {
    let shared = conn.shared;
    if machine.timer_fired(conn, &shared.http_limits, crate::sys::unix_seconds_coarse()) {
        bump(&conn.counters.rejected, 1);
    }
}
