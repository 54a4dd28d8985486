//! What an `#[on_request]` handler sees: the [`Request`] (borrowed from the input buffer) and the
//! [`Response`] it fills (buffers reused per worker thread).

use std::net::SocketAddr;

use super::head::Head;
use super::parse::Fields;
use super::route::Params;
use crate::stats::{Stats, StatsSource};

/// A complete HTTP/1.x request, borrowed from the connection's input: no copies. Its parts are
/// kept as the bytes they arrived as (checked when the head was parsed: the method is a token,
/// the target UTF-8) and made text when a handler asks, so what no handler asks for costs
/// nothing.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    method: &'a [u8],
    path: &'a [u8],
    query: Option<&'a [u8]>,
    minor_version: u8,
    fields: Fields<'a>,
    body: &'a [u8],
    peer: Option<SocketAddr>,
    params: Params<'a>,
    server: &'a dyn StatsSource,
}

/// Bytes the head's parse proved to be UTF-8 (a token, a target), as text.
fn text(checked: &[u8]) -> &str {
    std::str::from_utf8(checked).unwrap_or_default()
}

impl<'a> Request<'a> {
    #[inline]
    pub(crate) fn new(
        head: &Head<'a>,
        body: &'a [u8],
        peer: Option<SocketAddr>,
        server: &'a dyn StatsSource,
    ) -> Request<'a> {
        // Absolute form (`GET http://host/x HTTP/1.1`, RFC 9112 §3.2.2) names the same
        // resource as its path.
        let target = match head.target.first() {
            Some(b'/') => head.target,
            _ => origin_form(head.target),
        };
        // A short path is scanned a word at a time faster than memchr sets up its vector search.
        let question_mark = match target.len() {
            0..64 => super::parse::find_byte(target, b'?'),
            _ => memchr::memchr(b'?', target),
        };
        let (path, query) = match question_mark {
            Some(at) => (&target[..at], Some(&target[at + 1..])),
            None => (target, None),
        };
        Request {
            method: head.method,
            path,
            query,
            minor_version: head.minor_version,
            fields: head.fields,
            body,
            peer,
            params: Params::default(),
            server,
        }
    }

    /// This request with the parameters of the route it matched.
    pub(crate) fn with_params(&self, params: Params<'a>) -> Request<'a> {
        Request { params, ..*self }
    }

    /// The value of the matched route's `:name` segment (`req.param("id")` for `/users/7`).
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(name)
    }

    /// `GET`, `POST`, ... as sent (methods are case-sensitive).
    pub fn method(&self) -> &'a str {
        text(self.method)
    }
    /// The method's bytes, for the router's compare.
    pub(crate) fn method_bytes(&self) -> &'a [u8] {
        self.method
    }
    /// The target without its query: `/users/7` for `/users/7?full=1`.
    pub fn path(&self) -> &'a str {
        text(self.path)
    }
    /// The path's bytes, for the router's compare.
    pub(crate) fn path_bytes(&self) -> &'a [u8] {
        self.path
    }
    /// The query after `?`, if any, undecoded.
    pub fn query(&self) -> Option<&'a str> {
        self.query.map(text)
    }
    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub fn version(&self) -> &'static str {
        if self.minor_version == 1 { "HTTP/1.1" } else { "HTTP/1.0" }
    }
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers_named(name).next()
    }
    /// The first header named `name` as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
    /// Every header named `name`, in order (repeated headers are kept).
    pub fn headers_named<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.fields.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, value)| value)
    }
    /// All headers, in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.fields.iter().map(|(name, value)| (text(name), value))
    }
    /// The complete body (Content-Length, or chunked and already decoded).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// The client's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
    /// The counters of all workers, summed (as [`Conn::server_stats`](crate::Conn::server_stats)).
    pub fn server_stats(&self) -> Stats {
        self.server.stats()
    }
}

/// The response an `#[on_request]` handler fills. `Content-Length` and `Date` are added by smoke;
/// the status defaults to 200 with an empty body.
#[derive(Debug)]
pub struct Response {
    pub(super) status: u16,
    /// Set by `text`/`html`/`json`; an explicit Content-Type header takes precedence.
    pub(super) content_type: Option<&'static str>,
    pub(super) explicit_content_type: bool,
    /// Header lines, each ending in CR LF.
    pub(super) headers: Vec<u8>,
    pub(super) body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Response {
        Response {
            status: 200,
            content_type: None,
            explicit_content_type: false,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

impl Response {
    pub(crate) fn reset(&mut self) {
        self.status = 200;
        self.content_type = None;
        self.explicit_content_type = false;
        self.headers.clear();
        self.body.clear();
    }

    /// Sets the status code (200..=999; anything else, including 1xx, is sent as 500).
    pub fn status(&mut self, status: u16) -> &mut Response {
        self.status = status;
        self
    }

    /// The status code set so far.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// Adds a header (an explicit `Content-Type` wins over the one `text`/`html`/`json` set).
    /// Framing headers are smoke's: `Content-Length` and `Transfer-Encoding` are ignored here,
    /// and `Connection` too (the connection's fate follows the request; close it with
    /// `Connection: close` on the request side or by answering an error). A name that is not a
    /// token, or a value with a control character other than a tab (CR and LF could inject
    /// headers), is dropped with a logged warning.
    pub fn header(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Response {
        let value = value.as_ref();
        let valid_name = smoke_rules::is_token(name);
        // RFC 9110 §5.5: visible characters, spaces, tabs and obs-text; any other control
        // character (CR and LF above all) could split or corrupt the response.
        let valid_value = value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !valid_name || !valid_value {
            log::warn!("dropped response header {name:?}: invalid name or value");
            return self;
        }
        if ["content-length", "transfer-encoding", "connection"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
            log::debug!("ignored response header {name}: smoke frames responses itself");
            return self;
        }
        self.explicit_content_type |= name.eq_ignore_ascii_case("content-type");
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        self.headers.extend_from_slice(value);
        self.headers.extend_from_slice(b"\r\n");
        self
    }

    /// Replaces the body.
    pub fn body(&mut self, body: impl AsRef<[u8]>) -> &mut Response {
        self.body.clear();
        self.body.extend_from_slice(body.as_ref());
        self
    }

    /// The body buffer, to write into (`write!(res.body_mut(), ...)`).
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }

    /// A `text/plain; charset=utf-8` body.
    pub fn text(&mut self, text: &str) -> &mut Response {
        self.content_type = Some("text/plain; charset=utf-8");
        self.body(text)
    }

    /// A `text/html; charset=utf-8` body.
    pub fn html(&mut self, html: &str) -> &mut Response {
        self.content_type = Some("text/html; charset=utf-8");
        self.body(html)
    }

    /// An `application/json` body from already-serialised bytes.
    pub fn json(&mut self, json: impl AsRef<[u8]>) -> &mut Response {
        self.content_type = Some("application/json");
        self.body(json)
    }
}

/// The path of an absolute-form target (`http://host/x?y` names `/x?y`; no path is `/`); any
/// other target as it is.
fn origin_form(target: &[u8]) -> &[u8] {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let after = &target[scheme.len()..];
            return memchr::memchr(b'/', after).map_or(b"/", |slash| &after[slash..]);
        }
    }
    target
}
