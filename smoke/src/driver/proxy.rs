//! A listener behind a load balancer: each connection starts with a PROXY protocol header
//! (v1 or v2), which is read before the listener's own protocol starts. Its client address
//! becomes the connection's `peer_addr`; then the machine it wraps (raw TCP, HTTP, WebSocket, or
//! TLS around one of them) starts as if the connection had just been accepted.
//!
//! The header must be whole within `header_timeout`; a connection without one, or with a
//! malformed one, is closed and counted (`Stats::proxy_failures`). Its session never starts:
//! no `on_connect`, no `on_close`.

use super::{Machine, SessionService};
use crate::driver::session::Session;
use crate::proto::proxy::{self, Header};
use crate::rt::conn::Conn;
use crate::rt::worker::Service;
use crate::stats::bump;

/// The connection is registered: its header is due within `header_timeout`.
pub(super) fn connected<T: Session>(service: &SessionService<T>, conn: &mut Conn<'_>) {
    conn.set_timer(service.http.header_timeout);
}

/// The connection's first bytes. Once the header is whole, the machine inside takes the
/// connection's place and starts; what follows the header is left for the runtime to hand it.
pub(super) fn data<T: Session>(
    service: &SessionService<T>,
    stream: &mut super::Stream<T>,
    conn: &mut Conn<'_>,
    input: &[u8],
) -> usize {
    match proxy::parse(input) {
        Ok(Header::Incomplete) => 0,
        Ok(Header::Complete { client, len }) => {
            if let Some(client) = client {
                conn.tell_peer_addr(client);
            }
            conn.cancel_timer();
            if let Machine::Proxy(inner) = std::mem::replace(&mut stream.machine, Machine::Raw) {
                stream.machine = *inner;
            }
            service.on_connect(stream, conn);
            if conn.is_shutting_down() {
                // The drain began while the header was on its way: it reaches the protocol now.
                service.on_shutdown(stream, conn);
            }
            len
        }
        Err(e) => {
            failed(conn, &e);
            input.len()
        }
    }
}

/// The connection's timer fired before its header was whole.
pub(super) fn timed_out(conn: &mut Conn<'_>) {
    failed(conn, &"no whole PROXY protocol header within header_timeout");
}

fn failed(conn: &mut Conn<'_>, why: &dyn std::fmt::Display) {
    bump(&conn.counters.proxy_failures, 1);
    log::debug!("{}: {why}", conn.id());
    conn.close();
}
