//! # smoke
//!
//! High-performance, low-latency, multi-threaded TCP, HTTP/1.1, WebSocket and UDP servers on
//! Linux epoll, written as one impl block with [`#[smoke::server]`](macro@server).
//!
//! Each worker thread owns an epoll instance, its own `SO_REUSEPORT` socket per listener, and a
//! table of sessions indexed by fd; nothing on the hot path is shared between threads. A session
//! is a plain value; the worker calls it as bytes arrive, buffers what it writes, and sends once
//! per wake-up.
//!
//! Without the macro, raw TCP is a [`Handler`] and [`spawn`] or [`serve`]:
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
//! fn main() -> Result<(), smoke::Error> {
//!     smoke::serve(Config::new().tcp(9000).threads(2), |_: &mut Conn| Echo)
//! }
//! ```
//!
//! and every protocol is [`Handler`] + [`Session`] + [`Server`], the three impls the macro
//! writes (see [`Session`] for one written by hand).
//!
//! The source is layered, each layer importing only those below it: `sys/` (the only `unsafe`),
//! `rt/` (the protocol-agnostic runtime), `proto/` (sans-IO protocol machines), `driver/`
//! (protocols joined to the runtime), and this face (`config.rs`, `server.rs`, `handle.rs`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod admin;
pub mod config;
mod driver;
mod env;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "game")]
pub mod game;
mod handle;
mod handoff;
mod proto;
mod rt;
mod server;
mod stats;
mod supervisor;
mod sys;

pub use config::{Config, Listen, Protocol, RuntimeConfig};
pub use driver::raw::Handler;
pub use driver::session::Session;
pub use handle::{ServerHandle, serve, spawn};
pub use rt::conn::{CloseReason, Conn};
pub use rt::error::Error;
pub use rt::peer::Peer;
pub use rt::token::ConnId;
pub use rt::worker::TickInfo;
pub use server::{Server, Worker};
#[doc = include_str!("../docs/dsl.md")]
pub use smoke_macros::server;
pub use smoke_macros::{
    delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_join, on_leave, on_message, on_open,
    on_request, on_tick, on_timer, on_upgrade, on_write, post, put, route,
};
pub use stats::Stats;
pub use ws::publish;

/// HTTP/1.1: what an `#[on_request]` handler sees and fills, and the request limits.
pub mod http {
    pub use crate::proto::http::{
        DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_BODY,
        DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, Limits, Request, Response,
    };
}

/// WebSocket (RFC 6455): the handle, messages, the upgrade's answer, close codes, settings, and
/// topics (publish/subscribe across every worker of a server).
pub mod ws {
    pub use crate::driver::ws_conn::{SendStatus, WsConn, publish_everywhere as publish};
    pub use crate::proto::ws::{
        DEFAULT_MAX_BACKPRESSURE, DEFAULT_MAX_MESSAGE, DEFAULT_WS_IDLE_TIMEOUT, Message, Upgrade, WsConfig, close_code,
    };
}

/// Everything a server's source usually needs: `use smoke::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "game")]
    pub use crate::game::{Channel, LeaveReason, Player};
    pub use crate::http::{Request, Response};
    pub use crate::ws::{Message, SendStatus, Upgrade, WsConn};
    pub use crate::{CloseReason, Config, Conn, ConnId, Handler, Server, ServerHandle, Stats};
    pub use crate::{Peer, TickInfo, Worker};
    pub use crate::{
        delete, get, on_close, on_connect, on_data, on_datagram, on_drain, on_join, on_leave, on_message, on_open,
        on_request, on_tick, on_timer, on_upgrade, on_write, post, put, route,
    };
}

/// What `#[smoke::server]`'s output names besides the public API: the route table and its
/// matcher. Not part of the API: it changes with the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::proto::http::{Dispatch, Route, Segment, dispatch, method_and_path, with_params};
}

/// The README's code samples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
