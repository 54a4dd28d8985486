//! TLS on the runtime: the connection's bytes go through the TLS session, and its plaintext to
//! the machine inside (raw TCP, HTTP, WebSocket) as a plain connection's bytes would. What
//! handlers write is plaintext that the runtime has sealed (`seal`) before it is sent.
//!
//! The machine inside starts (its `on_connect`) once the handshake is done; until then the
//! connection's timer is the handshake's, at `header_timeout`.

use std::sync::Arc;

use rustls::ServerConfig;

use super::{Machine, SessionService};
use crate::driver::session::Session;
use crate::proto::http::Limits;
use crate::proto::tls::{Step, TlsError, TlsSession};
use crate::rt::conn::Conn;
use crate::stats::bump;

/// TLS around a connection's protocol machine.
#[derive(Debug)]
pub(crate) struct TlsLayer {
    /// `None` when rustls refused to start a session (its configuration): closed at once.
    session: Option<TlsSession>,
    pub(crate) inner: Machine,
    /// Plaintext the machine inside has not taken yet; unallocated while there is none.
    plain: Vec<u8>,
    /// The handshake is done and the machine inside has started.
    connected: bool,
    /// The most plaintext kept for the machine inside (the server's `max_read_buffer`).
    max_plain: usize,
}

impl TlsLayer {
    pub(crate) fn new(config: Arc<ServerConfig>, max_plain: usize, inner: Machine) -> TlsLayer {
        let session = TlsSession::new(config).inspect_err(|e| log::error!("cannot start a TLS session: {e}")).ok();
        TlsLayer { session, inner, plain: Vec::new(), connected: false, max_plain }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }
}

/// The connection is registered: its output is sealed from now on, and the handshake must be
/// done within `header_timeout`.
pub(super) fn connected(layer: &mut TlsLayer, conn: &mut Conn<'_>, limits: &Limits) {
    conn.seal_output();
    conn.set_timer(limits.header_timeout);
    if layer.session.is_none() {
        conn.close();
    }
}

/// The connection's timer fired before the handshake was done.
pub(super) fn handshake_timed_out(conn: &mut Conn<'_>) {
    bump(&conn.counters.tls_failures, 1);
    log::debug!("{}: TLS handshake not done within header_timeout", conn.id());
    conn.close();
}

/// The peer's bytes: records opened, their plaintext handed to the machine inside. Returns the
/// bytes done with; a partial record is left for the next read.
pub(super) fn data<T: Session>(
    service: &SessionService<T>,
    layer: &mut TlsLayer,
    user: &mut T,
    conn: &mut Conn<'_>,
    input: &mut [u8],
) -> usize {
    let Some(session) = &mut layer.session else { return input.len() };
    let mut done = 0;
    while !conn.is_closing() {
        let base = done;
        let (used, step) = match session.read(&mut input[base..], &mut |bytes| conn.write_sealed(bytes)) {
            Ok(read) => read,
            Err(e) => {
                failed(conn, &e);
                return input.len();
            }
        };
        done += used;
        match step {
            Step::NeedInput => break,
            Step::Data(range) => {
                let plaintext = &mut input[base + range.start..base + range.end];
                feed(service, &mut layer.inner, user, &mut layer.plain, layer.max_plain, conn, plaintext);
            }
            Step::Held(mut plaintext) => {
                feed(service, &mut layer.inner, user, &mut layer.plain, layer.max_plain, conn, &mut plaintext);
            }
            Step::Established => {
                layer.connected = true;
                conn.cancel_timer();
                service.connected(&mut layer.inner, user, conn);
            }
            Step::PeerClosed => {
                // close_notify: the peer sends nothing more; what it asked for is answered first.
                conn.close();
                return input.len();
            }
        }
        if !layer.plain.is_empty() && conn.is_backpressured() {
            // The machine inside stopped for our backlog: the rest waits in the runtime's
            // input (offered again once the backlog drains), not decrypted here.
            break;
        }
    }
    done
}

/// The output queue drained: plaintext the machine inside left for the backlog is offered
/// again, then the machine hears of the drain.
pub(super) fn written<T: Session>(
    service: &SessionService<T>,
    layer: &mut TlsLayer,
    user: &mut T,
    conn: &mut Conn<'_>,
) {
    if !layer.connected {
        return;
    }
    if !layer.plain.is_empty() {
        offer(service, &mut layer.inner, user, &mut layer.plain, conn);
    }
    service.written(&mut layer.inner, user, conn);
}

/// Seals the plaintext written since the last seal, once there are keys to seal it with, and
/// says close_notify after the last of it when the connection is closing.
pub(super) fn seal(layer: &mut TlsLayer, conn: &mut Conn<'_>, scratch: &mut [u8]) {
    let Some(session) = layer.session.as_mut().filter(|session| session.is_open()) else { return };
    let sealed = conn.seal_with(scratch, |plaintext, out| if session.seal(plaintext, out) { Ok(()) } else { Err(()) });
    if sealed.is_err() {
        log::warn!("{}: TLS output could not be sealed; the connection is reset", conn.id());
        conn.abort();
    } else if conn.is_closing() {
        let mut alert = Vec::new();
        session.close_notify(&mut alert);
        conn.write_sealed(&alert);
    }
}

/// The connection ended: the plaintext kept for it goes back to the pool.
pub(super) fn closed(layer: &mut TlsLayer, conn: &mut Conn<'_>) {
    conn.give_buffer(&mut layer.plain);
}

fn failed(conn: &mut Conn<'_>, error: &TlsError) {
    bump(&conn.counters.tls_failures, 1);
    log::debug!("{}: {error}", conn.id());
    conn.close();
}

/// Hands plaintext to the machine inside; what it leaves is kept for the next call.
fn feed<T: Session>(
    service: &SessionService<T>,
    inner: &mut Machine,
    user: &mut T,
    plain: &mut Vec<u8>,
    max_plain: usize,
    conn: &mut Conn<'_>,
    plaintext: &mut [u8],
) {
    if plain.is_empty() {
        let used = deliver(service, inner, user, conn, plaintext);
        if used < plaintext.len() && !conn.is_closing() {
            if plain.capacity() == 0 {
                *plain = conn.take_buffer();
            }
            plain.extend_from_slice(&plaintext[used..]);
        }
    } else {
        plain.extend_from_slice(plaintext);
        offer(service, inner, user, plain, conn);
    }
    if plain.len() > max_plain {
        log::debug!("{}: unconsumed TLS plaintext above max_read_buffer; the connection is reset", conn.id());
        conn.abort();
    }
}

/// Offers the kept plaintext to the machine inside again.
fn offer<T: Session>(
    service: &SessionService<T>,
    inner: &mut Machine,
    user: &mut T,
    plain: &mut Vec<u8>,
    conn: &mut Conn<'_>,
) {
    let used = deliver(service, inner, user, conn, plain);
    plain.drain(..used);
    if plain.is_empty() || conn.is_closing() {
        conn.give_buffer(plain);
    }
}

/// Calls the machine inside until the plaintext is consumed, it stops consuming, or the
/// connection is closing (the runtime's own delivery loop, for plaintext).
fn deliver<T: Session>(
    service: &SessionService<T>,
    inner: &mut Machine,
    user: &mut T,
    conn: &mut Conn<'_>,
    plaintext: &mut [u8],
) -> usize {
    let mut used = 0;
    while used < plaintext.len() && !conn.is_closing() {
        match service.data(inner, user, conn, &mut plaintext[used..]) {
            0 => break,
            n => used += n.min(plaintext.len() - used),
        }
    }
    used
}
