//! What `#[smoke::server]` generates code against: the [`Server`] trait.
//!
//! The macro only forwards: it turns the attribute into a [`Config`] and each `#[on_*]` method
//! into a trait method here. The event loop stays in the runtime.

use std::io;

use crate::config::{Config, Protocol};
use crate::conn::{CloseReason, Conn};
use crate::handler::Handler;
use crate::http::session::{HttpState, header_timeout, serve_requests};
use crate::http::{Request, Response};
use crate::server::{ServerHandle, spawn};

/// A session type turned into a server by `#[smoke::server]` (which writes this impl; a manual
/// impl works the same way).
///
/// Every handler has a default that does nothing (`on_data`'s consumes all input), so the
/// generated impl only overrides what the user wrote.
pub trait Server: Sized + 'static {
    /// The configuration given in the attribute, before environment overrides.
    fn config() -> Config;

    /// Builds the session for a new connection, before [`Server::on_connect`].
    fn new_session(conn: &mut Conn<'_>) -> Self;

    /// See [`Handler::on_connect`].
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// See [`Handler::on_data`].
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        let _ = conn;
        input.len()
    }

    /// See [`Handler::on_write`].
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// See [`Handler::on_close`].
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        let _ = (conn, reason);
    }

    /// See [`Handler::on_timer`] (TCP connections; HTTP uses its timer for `header_timeout`).
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Answers one HTTP request (on an `http` listener). The default answers 404.
    fn on_request(&mut self, req: &Request<'_>, res: &mut Response) {
        let _ = req;
        res.status(404);
    }

    /// Starts the server with `config` (usually `Self::config()`, adjusted) and returns its
    /// handle: for tests, and for programs that do more than serve.
    fn spawn(config: Config) -> io::Result<ServerHandle> {
        spawn(config, |conn: &mut Conn<'_>| Session { inner: Self::new_session(conn), http: HttpState::default() })
    }

    /// Runs the server until SIGINT/SIGTERM: [`config`](Server::config) with the environment
    /// overrides of [`Config::apply_env`] applied, the bound addresses printed to stdout, then a
    /// graceful drain on the signal.
    fn serve() -> io::Result<()> {
        let server = Self::spawn(Self::config().apply_env()?)?;
        let name = std::any::type_name::<Self>().rsplit("::").next().unwrap_or("smoke");
        for (protocol, addr) in server.local_addrs() {
            println!("{name} listening on {addr} ({})", protocol.name());
        }
        server.wait_for_signal()
    }
}

/// Runs a [`Server`] type's handlers as a [`Handler`], speaking each listener's protocol.
struct Session<T> {
    inner: T,
    http: HttpState,
}

impl<T: Server> Handler for Session<T> {
    #[inline]
    fn on_connect(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_connect(conn);
    }
    #[inline]
    fn on_data(&mut self, conn: &mut Conn<'_>, input: &[u8]) -> usize {
        match conn.protocol() {
            Protocol::Tcp => self.inner.on_data(conn, input),
            Protocol::Http => {
                let limits = conn.shared.http_limits;
                let inner = &mut self.inner;
                serve_requests(&mut self.http, conn, input, &limits, |req, res| inner.on_request(req, res))
            }
        }
    }
    #[inline]
    fn on_write(&mut self, conn: &mut Conn<'_>) {
        if conn.protocol() == Protocol::Tcp {
            self.inner.on_write(conn);
        }
    }
    #[inline]
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        match conn.protocol() {
            Protocol::Tcp => self.inner.on_timer(conn),
            Protocol::Http => header_timeout(&mut self.http, conn),
        }
    }
    #[inline]
    fn on_close(&mut self, conn: &mut Conn<'_>, reason: CloseReason) {
        self.inner.on_close(conn, reason);
    }
}
