//! The protocol-agnostic runtime.

pub(crate) mod buf;
pub(crate) mod conn;
pub(crate) mod pubsub;
pub(crate) mod server;
pub(crate) mod table;
pub(crate) mod udp;
pub(crate) mod worker;
