//! The rules a smoke server's configuration follows, written once and checked twice: by the
//! `#[smoke::server]` macro at compile time (which points at the offending token) and by the
//! runtime at start-up (for values set in code or moved by `SMOKE_*` environment overrides).
//!
//! Plain functions over strings and numbers, with no dependencies, so the proc-macro crate and
//! the runtime can both use them. `smoke` re-exports [`Protocol`] and [`Listen`]; the rest is
//! an implementation detail of the two crates.

pub mod limits;
mod listen;
mod names;
mod route;

pub use listen::{Host, Listen, ListenError, Protocol, Socket, overlap, parse_port};
pub use names::{check_cluster_url, check_interface_name, is_token};
pub use route::{MAX_PARAMS, RouteError, Segment, parse_route};
