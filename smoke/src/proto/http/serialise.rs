//! Responses as bytes: the head built by hand (no formatting machinery), and the last head a
//! worker built kept whole for the next response that would have the same one. A server
//! answers most requests with the same status, content type, length and headers, and the
//! `Date` changes once a second, so nearly every head is a copy of the one before it: one
//! compare of what decides the head and one copy replace a dozen appends.

use super::date::DateCache;
use super::message::Response;
use super::parse::equal_in_words;

/// The `Connection` header a response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: the default needs no header.
    None,
    /// The server closes after this response.
    Close,
    /// An HTTP/1.0 client asked to keep the connection, and it is kept: confirm it, or the
    /// client closes anyway.
    KeepAlive,
}

/// A worker's `Date` and the last response head it built, with what decided its bytes.
#[derive(Debug, Default)]
pub(crate) struct ResponseHeads {
    date: DateCache,
    /// What the head in `head` was built from; `None` before the first.
    last: Option<HeadKey>,
    /// The user's header lines that went into `head`.
    headers: Vec<u8>,
    head: Vec<u8>,
}

/// Everything besides the user's header lines that decides a head's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeadKey {
    /// The `Date` second.
    second: u64,
    status: u16,
    /// The content type set by `text`/`html`/`json`, by address and length: those are
    /// literals, so the same address is the same text, and no bytes are compared.
    content_type: Option<(usize, usize)>,
    /// `Content-Length`.
    body_len: usize,
    connection: ConnectionHeader,
}

impl ResponseHeads {
    /// Appends `response` to `out`: its head (see [`render_head`]), and its body unless
    /// `head_only` or the status forbids one. `now`: seconds since the Unix epoch, for `Date`.
    #[inline]
    pub(crate) fn write(
        &mut self,
        response: &Response,
        out: &mut Vec<u8>,
        now: u64,
        head_only: bool,
        connection: ConnectionHeader,
    ) {
        let status = final_status(response.status);
        let bodiless = status == 204 || status == 304;
        let content_type = response.content_type.filter(|_| !response.explicit_content_type);
        let key = HeadKey {
            second: now,
            status,
            content_type: content_type.map(|text| (text.as_ptr() as usize, text.len())),
            body_len: response.body.len(),
            connection,
        };
        if self.last != Some(key) || !equal_in_words(&self.headers, &response.headers, 0) {
            self.head.clear();
            render_head(&mut self.head, response, self.date.get(now), connection);
            self.headers.clear();
            self.headers.extend_from_slice(&response.headers);
            self.last = Some(key);
        }
        let body: &[u8] = if head_only || bodiless { &[] } else { &response.body };
        out.reserve(self.head.len() + body.len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(body);
    }
}

/// The status a response is sent with: a 1xx is interim and 101 switches protocols, so
/// neither can be a handler's final answer, and a status must have three digits.
fn final_status(status: u16) -> u16 {
    if (200..=999).contains(&status) { status } else { 500 }
}

/// Appends `response`'s head to `out`: status line, Date, Content-Length (unless the status
/// forbids a body), Content-Type, the user's headers, Connection when it must be said, and the
/// blank line; after one reservation for all of it, so no append reallocates.
fn render_head(out: &mut Vec<u8>, response: &Response, date: &[u8], connection: ConnectionHeader) {
    let status = final_status(response.status);
    let bodiless = status == 204 || status == 304;
    let reason = reason_phrase(status);
    let content_type = response.content_type.filter(|_| !response.explicit_content_type);
    out.reserve(FIXED_HEAD_BYTES + reason.len() + content_type.map_or(0, str::len) + response.headers.len());
    // Three digits: `final_status` keeps the status in 200..=999.
    let digits = [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    if !bodiless {
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, response.body.len());
    }
    if let Some(content_type) = content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response.headers);
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// What a response head holds besides its reason phrase, content type and the user's headers:
/// `HTTP/1.1 200 \r\nDate: <29>\r\nContent-Length: <20 digits>\r\nContent-Type: \r\n`,
/// `Connection: keep-alive\r\n` and the blank line, rounded up.
const FIXED_HEAD_BYTES: usize = 160;

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The standard reason phrase, or an empty one (allowed by RFC 9112) for others.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1970-01-01 00:00:00, the epoch.
    const EPOCH: u64 = 0;

    fn serialise_with(heads: &mut ResponseHeads, res: &Response, now: u64, head_only: bool, closing: bool) -> String {
        let mut out = Vec::new();
        let connection = if closing { ConnectionHeader::Close } else { ConnectionHeader::None };
        heads.write(res, &mut out, now, head_only, connection);
        String::from_utf8(out).unwrap()
    }

    fn serialise(res: &Response, head_only: bool, closing: bool) -> String {
        serialise_with(&mut ResponseHeads::default(), res, EPOCH, head_only, closing)
    }

    #[test]
    fn responses_carry_length_date_type_and_headers() {
        let mut res = Response::default();
        res.text("Hello, World!").header("X-Id", "7");
        assert_eq!(
            serialise(&res, false, false),
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 13\r\n\
             Content-Type: text/plain; charset=utf-8\r\nX-Id: 7\r\n\r\nHello, World!"
        );
        assert!(serialise(&res, true, true).ends_with("X-Id: 7\r\nConnection: close\r\n\r\n"), "HEAD: no body");
        res.reset();
        res.status(204).body("ignored");
        assert_eq!(
            serialise(&res, false, false),
            "HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn header_injection_and_manual_lengths_are_dropped() {
        let mut res = Response::default();
        res.header("X-Evil", "a\r\nSet-Cookie: x=1").header("Bad Name", "v").header("Content-Length", "99");
        res.header("X-Bell", "ring\x07").header("X-Del", "a\x7fb").header("X-Tab", "a\tb");
        res.header("Transfer-Encoding", "chunked").header("Connection", "keep-alive");
        res.header("Content-Type", "image/png").json("{}");
        let text = serialise(&res, false, false);
        assert!(!text.contains("Set-Cookie") && !text.contains("Bad Name") && !text.contains("99"), "{text}");
        assert!(!text.contains("X-Bell") && !text.contains("X-Del") && text.contains("X-Tab: a\tb\r\n"), "{text}");
        assert!(!text.contains("Transfer-Encoding") && !text.contains("keep-alive"), "{text}");
        assert_eq!(text.matches("Content-Type").count(), 1, "{text}");
        assert!(text.contains("Content-Type: image/png\r\n"), "{text}");
        for status in [42, 100, 101, 1000] {
            res.reset();
            res.status(status);
            assert!(serialise(&res, false, false).starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{status}");
        }
    }

    #[test]
    fn equal_in_words_without_folding_is_slice_equality() {
        let texts: &[&[u8]] = &[
            b"",
            b"S",
            b"Serv",
            b"Serw",
            b"Server",
            b"Servex",
            b"Server: smoke\r\n",
            b"Server: smokf\r\n",
            b"Server: smoke\r",
            b"Terver: smoke\r\n",
            b"Servez: smoke\r\n",
            b"12345678",
            b"12345679",
            b"1234567812345678",
            b"1234567812345679",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(equal_in_words(a, b, 0), a == b, "{a:?} {b:?}");
            }
        }
    }

    /// Each response, written after any other through one cache, is the response written
    /// alone: whatever differs between two responses (status, type, length, headers, date,
    /// connection, a HEAD) makes a new head, and what does not gives the same bytes.
    #[test]
    fn a_kept_head_is_reused_only_for_the_same_response() {
        let mut variants: Vec<(Response, u64, bool, bool)> = Vec::new();
        for (status, body, text, header, now, head_only, closing) in [
            (200, "Hello, World!", true, None, EPOCH, false, false),
            (200, "Hello, World!", true, Some(("Server", "smoke")), EPOCH, false, false),
            (200, "Hello, World!", true, Some(("Server", "smokf")), EPOCH, false, false),
            (200, "Hello, World!", true, Some(("Server", "smoke")), EPOCH + 1, false, false),
            (200, "Hello, World!", true, Some(("Server", "smoke")), EPOCH + 1, true, false),
            (200, "Hello, World!", true, Some(("Server", "smoke")), EPOCH + 1, false, true),
            (200, "Hello, Werld!", false, None, EPOCH, false, false),
            (200, "Hello, World", true, None, EPOCH, false, false),
            (404, "Hello, World!", true, None, EPOCH, false, false),
            (204, "", false, None, EPOCH, false, false),
            (200, "", false, None, EPOCH, false, false),
            (200, "{}", false, Some(("Content-Type", "image/png")), EPOCH, false, false),
        ] {
            let mut res = Response::default();
            res.status(status);
            if text {
                res.text(body);
            } else {
                res.json(body);
            }
            if let Some((name, value)) = header {
                res.header(name, value);
            }
            variants.push((res, now, head_only, closing));
        }
        let mut heads = ResponseHeads::default();
        for (first, second) in (0..variants.len()).flat_map(|a| (0..variants.len()).map(move |b| (a, b))) {
            for index in [first, second, second] {
                let (res, now, head_only, closing) = &variants[index];
                let alone = serialise_with(&mut ResponseHeads::default(), res, *now, *head_only, *closing);
                let kept = serialise_with(&mut heads, res, *now, *head_only, *closing);
                assert_eq!(kept, alone, "variant {index} after variant {first}");
            }
        }
    }
}
