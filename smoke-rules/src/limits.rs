//! The bounds of the numeric settings that have one besides "at least 1". The macro refuses a
//! value outside them at compile time; the `Config` setters clamp to them.

/// Smallest `max_header_bytes`: a request line and a `Host` header must fit.
pub const MIN_HEADER_BYTES: usize = 64;
/// Largest `max_headers`: the parser's header slots live on the stack, one array per request.
pub const MAX_HEADERS: usize = 128;
/// Largest `max_datagram`: the most a UDP datagram over IPv4 can carry.
pub const MAX_DATAGRAM: usize = 65_507;

/// The most worker processes a supervisor starts (`processes`): beyond a core per process
/// they only compete for the same cores.
pub const MAX_PROCESSES: usize = 1024;
