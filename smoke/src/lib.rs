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
mod dsl;
mod handler;
pub mod http;
mod ring;
mod rt;
mod stats;
mod sys;
pub mod ws;

pub use app::App;
pub use config::{Config, Listen, Protocol};
pub use rt::conn::{CloseReason, Conn, ConnId};
pub use dsl::{Server, Worker};
pub use handler::Handler;
pub use rt::server::{ServerHandle, serve, spawn, spawn_app};
pub use smoke_macros::{
    delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_message, on_open, on_request, on_tick,
    on_timer, on_upgrade, on_write, post, put, route,
};
pub use rt::udp::Peer;
pub use rt::worker::{TickContext, TickInfo};

#[doc = include_str!("../docs/dsl.md")]
pub use smoke_macros::server;
pub use stats::Stats;
pub use rt::table::SessionTable;
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
