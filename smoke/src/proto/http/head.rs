//! Request heads: limits, keep-alive, and body framing with the checks that stop request
//! smuggling, over the syntax `parse.rs` reads.

use std::time::Duration;

use super::Rejection;
use super::parse::{self, Fields, Syntax};

/// Header block size above which a request gets 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8 << 10;
/// Header count above which a request gets 431.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// Body size above which a request gets 413.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// How long a request's head may take, from its first byte (or from accept, for a
/// connection's first request), before it gets 408 and a close: slowloris protection, and what
/// closes a socket that connects and says nothing. Ten seconds is generous for any real client
/// on any real network (nginx's `client_header_timeout` is 60 s; uWebSockets closes silent
/// sockets after 10 s).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a kept-alive connection may wait for its next request's first byte before it is
/// closed, quietly (browsers keep idle connections open for about this long, and retry).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request's body may go without progress before it gets 408 and a close.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Request size limits and timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// See [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// See [`DEFAULT_MAX_BODY`].
    pub max_body: usize,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_KEEP_ALIVE_TIMEOUT`].
    pub keep_alive_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head<'b> {
    /// A token: ASCII.
    pub(crate) method: &'b [u8],
    /// Visible ASCII, or UTF-8.
    pub(crate) target: &'b [u8],
    pub(crate) fields: Fields<'b>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    /// Bytes of the head, through the blank line.
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// `Host` header lines (RFC 9112 §3.2: exactly one in HTTP/1.1, at most one in 1.0).
    pub(crate) hosts: u8,
    /// An `Expect` asked for something other than `100-continue` (HTTP/1.1).
    pub(crate) unmet_expectation: bool,
}

impl Head<'_> {
    /// Why this head, well-formed as it is, cannot be served: a missing or repeated `Host`
    /// (400), an expectation the server does not meet (417).
    pub(crate) fn refusal(&self) -> Option<Rejection> {
        if self.hosts > 1 {
            return Some(Rejection::BadRequest("more than one Host header"));
        }
        if self.hosts == 0 && self.minor_version == 1 {
            return Some(Rejection::BadRequest("an HTTP/1.1 request without Host"));
        }
        if self.unmet_expectation {
            return Some(Rejection::ExpectationFailed);
        }
        None
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete, read more.
#[inline]
pub(crate) fn parse_head<'b>(buf: &'b [u8], limits: &Limits) -> Result<Option<Head<'b>>, Rejection> {
    // Only the first max_header_bytes are looked at, so the answer to a head never depends on
    // how its bytes were split across reads: an error past the limit is the limit's 431 whether
    // the rest has arrived or not.
    let too_long = buf.len() > limits.max_header_bytes;
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut facts = HeaderFacts::default();
    let parsed = match parse::parse(window, limits.max_headers, |name, value| facts.add(name, value)) {
        Ok(parsed) => parsed,
        Err(Syntax::Incomplete) if too_long => return Err(Rejection::HeaderTooLarge),
        Err(Syntax::Incomplete) => return Ok(None),
        Err(Syntax::TooManyHeaders) => return Err(Rejection::HeaderTooLarge),
        Err(Syntax::Refused(rejection)) => return Err(rejection),
        // Which version a request line names is known once the line is: judged then.
        Err(Syntax::Version) => return version_refusal(window, too_long).map_or(Ok(None), Err),
        Err(Syntax::Folded) => {
            return Err(Rejection::BadRequest("malformed header line (obsolete line folding is not accepted)"));
        }
        Err(Syntax::Malformed(what)) => return Err(Rejection::BadRequest(what)),
    };
    let minor_version = parsed.minor_version;
    let HeaderFacts {
        content_length,
        chunked,
        transfer_encoding,
        close,
        keep_alive_token,
        expect_continue,
        expect_other,
        hosts,
    } = facts;
    if transfer_encoding && !chunked {
        return Err(Rejection::BadRequest("empty Transfer-Encoding"));
    }
    if chunked && content_length.is_some() {
        return Err(Rejection::BadRequest("both Content-Length and Transfer-Encoding"));
    }
    if chunked && minor_version == 0 {
        return Err(Rejection::BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
    }
    let framing = match content_length {
        _ if chunked => Framing::Chunked,
        Some(length) if length > limits.max_body as u64 => return Err(Rejection::PayloadTooLarge),
        Some(0) | None => Framing::Empty,
        Some(length) => Framing::Length(length as usize),
    };
    Ok(Some(Head {
        method: parsed.method,
        target: parsed.target,
        fields: parsed.fields,
        minor_version,
        len: parsed.len,
        framing,
        keep_alive: if minor_version == 1 { !close } else { keep_alive_token && !close },
        // HTTP/1.0 clients do not know 100 Continue (RFC 9110 §10.1.1): ignore the expectation.
        expect_continue: expect_continue && framing != Framing::Empty && minor_version == 1,
        hosts,
        unmet_expectation: expect_other && minor_version == 1,
    }))
}

/// The answer to a request line whose version is not ours, once the whole line is here: 505
/// for a well-formed line naming another version, 400 for anything else; `None` while the line
/// has not all arrived.
fn version_refusal(window: &[u8], too_long: bool) -> Option<Rejection> {
    // The request line, after the empty lines skipped before it.
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    match memchr::memchr(b'\n', &window[start..]) {
        None if too_long => Some(Rejection::HeaderTooLarge),
        None => None,
        Some(end) if names_another_version(&window[start..start + end]) => Some(Rejection::VersionNotSupported),
        Some(_) => Some(Rejection::BadRequest("malformed HTTP version")),
    }
}

/// What the headers say about framing and the connection, read in one pass.
#[derive(Default)]
struct HeaderFacts {
    content_length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
    close: bool,
    keep_alive_token: bool,
    expect_continue: bool,
    /// An `Expect` member other than `100-continue`.
    expect_other: bool,
    hosts: u8,
}

impl HeaderFacts {
    /// Notes what one header says if it is `Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Expect` or `Host`, refusing the framings that could smuggle a request.
    #[inline]
    fn add(&mut self, name: &[u8], value: &[u8]) -> Result<(), Rejection> {
        // Most headers are none of these: one length compare sends them on.
        if !matches!(name.len(), 4 | 6 | 10 | 14 | 17) {
            return Ok(());
        }
        if is_named(name, b"host") {
            self.hosts = self.hosts.saturating_add(1);
        } else if is_named(name, b"content-length") {
            if tokens(value).next().is_none() {
                return Err(Rejection::BadRequest("invalid Content-Length"));
            }
            for value in tokens(value) {
                let length = parse_length(value)?;
                if self.content_length.is_some_and(|known| known != length) {
                    return Err(Rejection::BadRequest("conflicting Content-Length values"));
                }
                self.content_length = Some(length);
            }
        } else if is_named(name, b"transfer-encoding") {
            for coding in tokens(value) {
                // Only a single, final `chunked` is accepted: anything before it would be a
                // coding we do not decode, anything after it leaves the length undefined.
                if self.chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(Rejection::BadRequest("unsupported Transfer-Encoding (only a single chunked)"));
                }
                self.chunked = true;
            }
            self.transfer_encoding = true;
        } else if is_named(name, b"connection") {
            for option in tokens(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is_named(name, b"expect") {
            for expectation in tokens(value) {
                if expectation.eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    self.expect_other = true;
                }
            }
        }
        Ok(())
    }
}

/// Whether the header name `name` (a token) is `lower` (lowercase letters and `-`) in any
/// case, compared a word at a time. A token byte ORed with 0x20 is a lowercase letter only if
/// it was that letter in either case, and is `-` only if it was `-` (0x0d, the other byte that
/// would be, is not a token character).
#[inline]
fn is_named(name: &[u8], lower: &[u8]) -> bool {
    parse::equal_in_words(name, lower, 0x20)
}

/// The comma-separated list elements of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii()).filter(|t| !t.is_empty())
}

fn parse_length(value: &[u8]) -> Result<u64, Rejection> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(Rejection::BadRequest("invalid Content-Length"));
    }
    Ok(value.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// True when the request line ends in `HTTP/<digit>.<digit>` (a version we do not speak) rather
/// than in garbage.
fn names_another_version(line: &[u8]) -> bool {
    // A well-formed request line, `METHOD SP TARGET SP HTTP/d.d`, whose version is not ours;
    // anything else the parser refused for its version is malformed.
    let mut parts = line.trim_ascii_end().split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && !target.is_empty()
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() && !matches!((major, minor), (b'1', b'0' | b'1')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<Head<'_>>, Rejection> {
        parse_head(buf, &Limits::default())
    }

    fn header_count(buf: &[u8]) -> usize {
        head(buf).fields.iter().count()
    }

    fn head(buf: &[u8]) -> Head<'_> {
        parse(buf).unwrap().expect("complete head")
    }

    #[test]
    fn parses_method_target_version_and_framing() {
        let h = head(b"GET /plaintext?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((h.method, h.target, h.minor_version), (&b"GET"[..], &b"/plaintext?x=1"[..], 1));
        assert_eq!(header_count(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n"), 2);
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(h.len, 40);
        assert!(h.keep_alive);
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(h.framing, Framing::Length(5));
        let h = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5), "identical duplicates are one length");
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn header_names_compare_as_eq_ignore_ascii_case_does_on_tokens() {
        let known: [&[u8]; 5] = [b"host", b"expect", b"connection", b"content-length", b"transfer-encoding"];
        let mut names: Vec<Vec<u8>> = known.iter().map(|name| name.to_vec()).collect();
        for name in known {
            names.push(name.to_ascii_uppercase());
            // Each byte changed to its other case, and to each token byte that could fool a
            // case-folding compare: the neighbours of the letter and of `-`.
            for at in 0..name.len() {
                for change in [0x20, 0x01, 0x40, 0x60, 0x0d ^ b'-', 0x2d ^ b'm'] {
                    let mut variant = name.to_vec();
                    variant[at] ^= change;
                    if std::str::from_utf8(&variant).is_ok_and(smoke_rules::is_token) {
                        names.push(variant);
                    }
                }
            }
            names.push(name[1..].to_vec());
        }
        for name in &names {
            for lower in known {
                assert_eq!(
                    is_named(name, lower),
                    name.eq_ignore_ascii_case(lower),
                    "{:?}",
                    String::from_utf8_lossy(name)
                );
            }
        }
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
        ];
        for (request, keep_alive) in cases {
            assert_eq!(head(request).keep_alive, *keep_alive, "{}", String::from_utf8_lossy(request));
        }
    }

    #[test]
    fn host_and_expect_refusals() {
        let refusal = |buf: &[u8]| head(buf).refusal();
        assert_eq!(refusal(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(refusal(b"GET / HTTP/1.0\r\n\r\n"), None, "HTTP/1.0 needs no Host");
        assert!(matches!(refusal(b"GET / HTTP/1.1\r\n\r\n"), Some(Rejection::BadRequest(_))));
        assert!(matches!(refusal(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), Some(Rejection::BadRequest(_))));
        let other = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x-later\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(refusal(other), Some(Rejection::ExpectationFailed));
        assert_eq!(Rejection::ExpectationFailed.status(), 417);
        assert_eq!(refusal(b"GET / HTTP/1.0\r\nExpect: x-later\r\n\r\n"), None, "HTTP/1.0 expectations are ignored");
    }

    #[test]
    fn expect_continue_only_matters_with_a_body() {
        assert!(head(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").expect_continue);
        assert!(!head(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn incomplete_heads_ask_for_more_at_every_split() {
        let full = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for split in 0..full.len() {
            assert_eq!(parse(&full[..split]), Ok(None), "split at {split}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn smuggling_vectors_are_rejected() {
        let cases: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
        ];
        for request in cases {
            assert!(
                matches!(parse(request), Err(Rejection::BadRequest(_))),
                "accepted: {:?} -> {:?}",
                String::from_utf8_lossy(request),
                parse(request)
            );
        }
    }

    #[test]
    fn limits_and_versions_get_their_statuses() {
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(DEFAULT_MAX_HEADER_BYTES + 10, b'a');
        assert_eq!(parse(&big), Err(Rejection::HeaderTooLarge), "incomplete and already too large");
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&big), Err(Rejection::HeaderTooLarge), "complete but too large");

        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=DEFAULT_MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(Rejection::HeaderTooLarge));

        let too_long = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", DEFAULT_MAX_BODY + 1);
        assert_eq!(parse(too_long.as_bytes()), Err(Rejection::PayloadTooLarge));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").unwrap_err().status(),
            400
        );

        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(Rejection::VersionNotSupported));
        assert_eq!(parse(b"GET / HTTP/1.2\r\n\r\n"), Err(Rejection::VersionNotSupported));
        assert!(matches!(parse(b"GET / HTTX/1.1\r\n\r\n"), Err(Rejection::BadRequest(_))));
        // Found by the fuzzer: a line ending in a version we speak is not "another version".
        let odd = b"POST /echo HTT gggg/ HTTP/1.0\r\n\r\n";
        assert!(matches!(parse(odd), Err(Rejection::BadRequest(_))));
        // A version is judged on its whole line, so a cut before the line's end waits.
        assert_eq!(parse(b"GET / HTTP/2"), Ok(None));
        assert_eq!(parse(&odd[..20]), Ok(None));
        // Empty lines before the request line are skipped, as httparse skips them.
        assert_eq!(parse(b"\r\n\r\nGET / HTTP/2.0\r\n\r\n"), Err(Rejection::VersionNotSupported));
    }
}
