//! HTTP/1.1 without I/O: request heads read by `parse.rs`, with the request-smuggling checks
//! (`head.rs`), chunked bodies (`chunked.rs`), the `Date` value (`date.rs`), requests and
//! responses (`message.rs`), responses as bytes (`serialise.rs`), route matching (`route.rs`),
//! and the per-connection machine that answers pipelined requests in order into a
//! [`Sink`](super::Sink) (`connection.rs`).

pub(crate) mod chunked;
mod connection;
mod date;
mod head;
mod message;
pub(crate) mod parse;
mod route;
mod serialise;

pub(crate) use connection::{Answer, Connection, Context, Expired};
pub use head::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, Limits,
};
pub use message::{Request, Response};
pub use route::{Dispatch, Route, Segment, dispatch, method_and_path, with_params};

#[cfg(test)]
pub(crate) use head::parse_head;

/// Why a request is refused; each maps to the status the client gets before the connection
/// closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 400: malformed, or framed in a way that could smuggle a request; the text says which.
    BadRequest(&'static str),
    /// 431: the header block (or the trailers) above `max_header_bytes`, or more than
    /// `max_headers` headers.
    HeaderTooLarge,
    /// 413: a body above `max_body`.
    PayloadTooLarge,
    /// 505: an HTTP version other than 1.0 or 1.1.
    VersionNotSupported,
    /// 408: a request's head did not complete within `header_timeout`, or its body stalled for
    /// `body_timeout`.
    RequestTimeout,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
}

impl Rejection {
    /// The response status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Rejection::BadRequest(_) => 400,
            Rejection::HeaderTooLarge => 431,
            Rejection::PayloadTooLarge => 413,
            Rejection::VersionNotSupported => 505,
            Rejection::RequestTimeout => 408,
            Rejection::ExpectationFailed => 417,
        }
    }
}
