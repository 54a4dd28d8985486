//! HTTP/1.1: request heads parsed by httparse with the request-smuggling checks, chunked
//! decoding, the cached `Date` header, and the per-connection driver that answers pipelined
//! requests in order. The protocol pieces are plain functions over buffers (hyper's proto
//! split), tested on bytes alone; the event loop and the DSL drive them.

pub(crate) mod chunked;
pub(crate) mod date;
mod message;
pub(crate) mod proto;
mod route;
pub(crate) mod session;

pub use message::{Request, Response};
pub use proto::{DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, Limits};
pub use route::{Dispatch, MAX_PARAMS, Params, Route, Segment, dispatch};

/// Why a request is refused; each maps to the status the client gets before the connection
/// closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 400: malformed, or framed in a way that could smuggle a request; the text says which.
    BadRequest(&'static str),
    /// 431: the header block (or the trailers) above `max_header_bytes`, or more than
    /// `max_headers` headers.
    HeaderTooLarge,
    /// 413: a body above `max_body`.
    PayloadTooLarge,
    /// 505: an HTTP version other than 1.0 or 1.1.
    VersionNotSupported,
    /// 408: a request's header block did not complete within `header_timeout`.
    HeaderTimeout,
}

impl Rejection {
    /// The response status.
    pub fn status(self) -> u16 {
        match self {
            Rejection::BadRequest(_) => 400,
            Rejection::HeaderTooLarge => 431,
            Rejection::PayloadTooLarge => 413,
            Rejection::VersionNotSupported => 505,
            Rejection::HeaderTimeout => 408,
        }
    }
}
