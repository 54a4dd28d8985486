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

mod buf;
pub mod config;
mod conn;
mod handler;
mod server;
mod stats;
mod sys;
mod table;
mod worker;

pub use config::{Config, Listen, Protocol};
pub use conn::{CloseReason, Conn, ConnId};
pub use handler::Handler;
pub use server::{ServerHandle, serve, spawn};
pub use stats::Stats;
pub use table::SessionTable;

/// Everything a server's source usually needs: `use smoke::prelude::*;`.
pub mod prelude {
    pub use crate::{CloseReason, Config, Conn, ConnId, Handler, ServerHandle, Stats};
}
