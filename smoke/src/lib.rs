//! # smoke
//!
//! High-performance, low-latency, multi-threaded servers on Linux epoll.
//!
//! Each worker thread owns an epoll instance, its own `SO_REUSEPORT` listening socket per
//! listener, and a table of sessions indexed by fd; nothing on the hot path is shared between
//! threads. A session is a plain value implementing [`Handler`]; the worker calls it as bytes
//! arrive, buffers what it writes, and sends once per wake-up.
//!
//! ```no_run
//! use smoke::{Config, Conn, Handler};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
//!         conn.write(input);
//!         input.len()
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     smoke::serve(Config::new().tcp(9000).threads(2), |_: &mut Conn| Echo)
//! }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod app;
mod buf;
pub mod config;
mod conn;
mod dsl;
mod handler;
pub mod http;
mod ring;
mod server;
mod stats;
mod sys;
mod table;
pub mod udp;
mod worker;
pub mod ws;

pub use app::App;
pub use config::{Config, Listen, Protocol};
pub use conn::{CloseReason, Conn, ConnId};
pub use dsl::{Server, Worker};
pub use handler::Handler;
pub use server::{ServerHandle, serve, spawn, spawn_app};
pub use smoke_macros::{
    delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_message, on_open, on_request, on_tick,
    on_timer, on_upgrade, on_write, post, put, route,
};
pub use udp::Peer;
pub use worker::{TickContext, TickInfo};

/// Turns an inherent impl block into a multi-threaded server.
///
/// ```no_run
/// use smoke::prelude::*;
///
/// #[derive(Default)]
/// struct Counter {
///     reads: u32,
/// }
///
/// #[smoke::server(tcp = 9090, threads = 2)]
/// impl Counter {
///     #[on_connect]
///     fn connect(&mut self, conn: &mut Conn) {
///         conn.write(b"welcome\n");
///     }
///
///     #[on_data]
///     fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
///         self.reads += 1;
///         conn.write(input);
///         input.len()
///     }
///
///     #[on_write]
///     fn drained(&mut self, _conn: &mut Conn) {}
///
///     #[on_close]
///     fn close(&mut self, _conn: &mut Conn, why: CloseReason) {
///         println!("closed after {} reads: {why}", self.reads);
///     }
/// }
///
/// fn main() -> std::io::Result<()> {
///     Counter::serve()
/// }
/// ```
///
/// # Keys
///
/// | key | value | default | meaning |
/// |---|---|---|---|
/// | `tcp` | port, `"host:port"`, or an array of them | — | raw TCP listener(s) |
/// | `http` | port, `"host:port"`, or an array of them | — | HTTP/1.1 listener(s) |
/// | `bind` | IP address string | `"0.0.0.0"` | address for bare ports; `"::"` listens on IPv6 (and IPv4 unless `bindv6only`) |
/// | `threads` | number ≥ 1 or `"auto"` | `"auto"` | worker threads, each with its own epoll and `SO_REUSEPORT` socket |
/// | `fd_cache` | number | 65536 | fds below it index a flat array, others a hash map |
/// | `max_connections` | number ≥ 1 | unlimited | open connections across workers; above it accepting pauses |
/// | `idle_timeout_ms` | number ≥ 1 | none | close connections with no I/O for this long ([`CloseReason::Timeout`]); keep-alive HTTP connections included |
/// | `max_write_buffer` | number ≥ 1 | 1 MiB | buffered output above which reading from that connection pauses |
/// | `max_header_bytes` | number ≥ 64 | 8 KiB | HTTP: a larger header block gets 431 and a close |
/// | `max_headers` | 1..=128 | 64 | HTTP: more headers get 431 and a close |
/// | `max_body` | number | 1 MiB | HTTP: a larger body (declared or chunked) gets 413 and a close |
/// | `header_timeout_ms` | number ≥ 1 | 10000 | HTTP: a header block not complete this long after it started gets 408 and a close |
/// | `ws` | port, `"host:port"`, or an array of them | — | WebSocket listener(s): every request must be an upgrade (any path), others get 426 |
/// | `ws_path` | path string, e.g. `"/ws"` | none | WebSocket: also accept upgrades at this path on the `http` listener(s) |
/// | `max_message` | number ≥ 1 | 1 MiB | WebSocket: a larger message (all fragments) closes with 1009 |
/// | `max_backpressure` | number ≥ 1 | 1 MiB | WebSocket: output queued per connection above which sends and topic deliveries are dropped ([`ws::SendStatus::Dropped`]) |
/// | `close_on_backpressure_limit` | `true` / `false` | `false` | WebSocket: reset the connection at the limit instead of dropping |
/// | `ws_idle_timeout_ms` | number ≥ 1 | 120000 | WebSocket: silent this long, a connection gets a ping; silent as long again, a close with 1001 |
/// | `udp` | port, `"host:port"`, or an array of them | — | UDP socket(s), one per worker (`SO_REUSEPORT`); one session per remote address |
/// | `udp_idle_timeout_ms` | number ≥ 1 | 30000 | UDP: a peer silent this long has its session closed ([`CloseReason::Timeout`]) |
/// | `max_datagram` | 1..=65507 | 2048 | UDP: a longer datagram is dropped and counted ([`Stats::datagrams_truncated`]), never delivered cut |
/// | `pfring` | network interface name, e.g. `"eth0"` | none | UDP input from the kernel's packet ring on that interface instead of the sockets (AF_PACKET TPACKET_V3 with fanout and a BPF filter, not the PF_RING module; needs CAP_NET_RAW; see [`Config::pfring`]) |
///
/// At least one listener is required. Listeners of one server may not share a port (checked here
/// for what is visible, and again when binding); every key may be given once. Mistakes are
/// compile errors pointing at the offending token, all reported at once.
///
/// # Handlers
///
/// Mark methods with the attributes below (bare, as the prelude brings them, or as
/// `#[smoke::on_data]`). A `tcp` server needs `#[on_data]`; an `http` server needs
/// `#[on_request]` or at least one route (or `ws_path`: other paths then get 404); a `ws` server
/// (or one with `ws_path`) needs `#[on_message]`.
///
/// | attribute | signature | called |
/// |---|---|---|
/// | `#[on_connect]` | `fn(&mut self, conn: &mut Conn)` | after a connection (any listener) is accepted and its session built |
/// | `#[on_connect]` | `fn(conn: &mut Conn) -> Self` | *instead of* `Default`: builds the session |
/// | `#[on_data]` | `fn(&mut self, conn: &mut Conn, input: &[u8]) -> usize` | TCP: with all unconsumed input; returns bytes consumed ([`Handler::on_data`]) |
/// | `#[on_write]` | `fn(&mut self, conn: &mut Conn)` | TCP: when queued output has drained ([`Handler::on_write`]) |
/// | `#[on_close]` | `fn(&mut self, conn: &mut Conn, why: CloseReason)` | once, when a connection (any listener) ends |
/// | `#[on_request]` | `fn(&mut self, req: &Request, res: &mut Response)` | HTTP: each request; with routes, the requests no route's path matches |
/// | `#[get("/users/:id")]`, `#[post(..)]`, `#[put(..)]`, `#[delete(..)]`, `#[route(PATCH, "..")]` | as `on_request` | HTTP: requests for that method and path; `req.param("id")` reads `:id` |
/// | `#[on_upgrade]` | `fn(&mut self, req: &Request, upgrade: &mut Upgrade)` | WebSocket: a valid upgrade request; [`Upgrade::refuse`](ws::Upgrade::refuse) answers a status instead, [`Upgrade::accept_subprotocol`](ws::Upgrade::accept_subprotocol) picks an offered one |
/// | `#[on_open]` | `fn(&mut self, ws: &mut WsConn)` | WebSocket: the connection is upgraded (subscribe here) |
/// | `#[on_message]` | `fn(&mut self, ws: &mut WsConn, message: Message)` | WebSocket: each complete message, borrowed ([`ws::Message`]) |
/// | `#[on_drain]` | `fn(&mut self, ws: &mut WsConn)` | WebSocket: the backlog the client was slow to take has been sent |
/// | `#[on_close]` | `fn(&mut self, ws: &mut WsConn, code: u16, reason: &str)` | WebSocket: once, with the close frame's code (1005 without one), the code smoke closed with (1001, 1002, 1007, 1009), or 1006 when the connection ended without a close; the connection-level `#[on_close]` still follows |
///
/// | `#[on_datagram]` | `fn(&mut self, peer: &mut Peer, packet: &[u8])` | UDP: each datagram; the session is created (with `Default`) on a peer's first |
/// | `#[on_timer]` | `fn(&mut self, conn: &mut Conn)` or `fn(&mut self, peer: &mut Peer)` | the timer armed with [`Conn::set_timer`] / [`Peer::set_timer`] expired |
/// | `#[on_close]` | `fn(&mut self, peer: &mut Peer, why: CloseReason)` | UDP: the session ended ([`Peer::close`], `udp_idle_timeout_ms`, shutdown) |
/// | `#[on_tick(ms = 50)]` | `fn(worker: &mut Worker)` (no `self`) | on every worker at that cadence (a timerfd), with its sessions: [`Worker::for_each_peer`], [`Worker::for_each_tcp`], [`Worker::for_each_websocket`], [`Worker::send_to`]; [`Worker::tick`] says how late it runs |
///
/// A `ws` server needs `#[on_message]`, a `udp` server `#[on_datagram]`. The forms of
/// `#[on_close]` and `#[on_timer]` are told apart by their arguments; an impl may have one of
/// each.
///
/// Routes match exact segments; `:name` matches one non-empty segment. A static segment wins
/// over a parameter in the same place (`/users/me` before `/users/:id`); two routes a request
/// could match equally are a compile error. A `GET` route also answers `HEAD` (without the
/// body). A path with routes for other methods only gets 405 with `Allow`; a path with no route
/// goes to `#[on_request]`, or gets 404.
///
/// **Building the session:** with `Default`, unless an `#[on_connect]` takes no `self` and
/// returns `Self` — then that constructor builds it (and there is no separate connect call).
///
/// # Generated
///
/// The impl block itself (helper attributes removed), `impl smoke::Server for T` forwarding to
/// the marked methods, and the inherent functions `T::config()` (the attribute as a
/// [`Config`]), `T::serve()` (runs until SIGINT/SIGTERM, after applying the environment
/// overrides of [`Config::apply_env`]: `SMOKE_TCP`, `SMOKE_HTTP`, `SMOKE_WS`, `SMOKE_UDP`,
/// `SMOKE_PFRING`, `SMOKE_THREADS`, `SMOKE_BIND`) and `T::spawn(config)` (starts it and returns
/// the [`ServerHandle`], for tests). The impl may not define methods with those three names.
pub use smoke_macros::server;
pub use stats::Stats;
pub use table::SessionTable;
pub use ws::publish;

/// Everything a server's source usually needs: `use smoke::prelude::*;`.
pub mod prelude {
    pub use crate::http::{Request, Response};
    pub use crate::ws::{Message, SendStatus, Upgrade, WsConn};
    pub use crate::{CloseReason, Config, Conn, ConnId, Handler, Server, ServerHandle, Stats};
    pub use crate::{Peer, TickInfo, Worker};
    pub use crate::{
        delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_message, on_open, on_request, on_tick,
        on_timer, on_upgrade, on_write, post, put, route,
    };
}

/// The README's code samples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
