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
pub mod config;
mod driver;
mod handler;
mod proto;
mod rt;
mod server;
mod stats;
mod sys;

/// HTTP/1.1: what an `#[on_request]` handler sees and fills, and the request limits.
pub mod http {
    pub use crate::proto::http::{
        DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, Dispatch, Limits,
        MAX_PARAMS, Params, Request, Response, Route, Segment, dispatch,
    };
}

/// WebSocket (RFC 6455): the handle, messages, the upgrade's answer, close codes, settings, and
/// topics (publish/subscribe across every worker of a server).
pub mod ws {
    pub use crate::driver::ws::{SendStatus, WsConn, publish_everywhere as publish};
    pub use crate::proto::ws::{
        DEFAULT_MAX_BACKPRESSURE, DEFAULT_MAX_MESSAGE, DEFAULT_WS_IDLE_TIMEOUT, Message, Upgrade, WsConfig, close_code,
    };
}

pub use app::App;
pub use config::{Config, Listen, Protocol};
pub use handler::Handler;
pub use rt::conn::{CloseReason, Conn, ConnId};
pub use rt::server::{ServerHandle, serve, spawn, spawn_app};
pub use rt::udp::Peer;
pub use rt::worker::{TickContext, TickInfo};
pub use server::{Server, Worker};
pub use smoke_macros::{
    delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_message, on_open, on_request, on_tick,
    on_timer, on_upgrade, on_write, post, put, route,
};

pub use rt::table::SessionTable;
#[doc = include_str!("../docs/dsl.md")]
pub use smoke_macros::server;
pub use stats::Stats;
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
