//! The protocol-agnostic runtime: per-thread epoll workers, their sessions and sockets. It moves
//! bytes and datagrams between sockets and sessions and knows no protocol; a `Service` (the
//! driver's) decides what a session is.
//!
//! - identities and time: `token.rs`, `time.rs`, `wheel.rs` (the armed timers)
//! - memory: `buf.rs` (pooled buffers, output queues), `table.rs` (the fd-indexed session table)
//! - what handlers hold: `conn.rs` ([`Conn`]), `peer.rs` ([`Peer`]), `demux.rs` (a socket's
//!   datagrams taken by one machine per worker)
//! - across threads: `shared.rs` (the workers as other threads see them), `mailbox.rs` and
//!   `pubsub.rs` (topics of opaque frames)
//! - the loop: `core.rs` (what sessions use while they run), `worker/` (the event loop, the
//!   [`Service`](worker::Service) trait it calls sessions through, and its stream, accept,
//!   datagram and tick paths)
//! - starting and stopping: `config.rs`, `spawn.rs`, `error.rs`

pub(crate) mod buf;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod core;
pub(crate) mod demux;
pub(crate) mod error;
pub(crate) mod mailbox;
pub(crate) mod peer;
pub(crate) mod pubsub;
pub(crate) mod shared;
pub(crate) mod spawn;
pub(crate) mod table;
pub(crate) mod time;
pub(crate) mod token;
pub(crate) mod wheel;
pub(crate) mod worker;
