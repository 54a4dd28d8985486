//! One HTTP/1.x connection's machine: every complete request at the front of the input is
//! parsed, handed to the caller's handler, and its response appended to the sink in order (so
//! pipelined responses leave in the runtime's one send); a partial request waits for more bytes,
//! with `header_timeout` to complete its head.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use super::chunked::{self, Decoded};
use super::date::DateCache;
use super::head::{self, Framing, Head};
use super::message::{ConnectionHeader, Request, Response};
use super::{Limits, Rejection};
use crate::proto::Sink;
use crate::stats::StatsSource;

/// Header slots parsed per request (the stack array httparse fills); `max_headers` is at most
/// this.
const MAX_HEADER_SLOTS: usize = smoke_rules::limits::MAX_HEADERS;

thread_local! {
    /// Per worker thread: the response being built and its serialised form (their buffers are
    /// reused, so answering allocates nothing in steady state), and the cached Date.
    static SCRATCH: RefCell<(Response, DateCache, Vec<u8>)> =
        RefCell::new((Response::default(), DateCache::default(), Vec::new()));
}

/// Per-connection HTTP state. Holds heap memory only while a chunked body is being decoded.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    /// The client's address, asked of the transport once.
    peer: Option<SocketAddr>,
    /// Where the request at the front of the input stands.
    phase: Phase,
}

/// Where the request at the front of the input stands. A request whose body is still arriving
/// is kept whole in the input and its head parsed again with each call (cheaper than keeping a
/// parsed copy), so only what cannot be derived again lives here.
#[derive(Debug, Default)]
enum Phase {
    /// Nothing of the next request has arrived.
    #[default]
    Idle,
    /// Part of a head has arrived; the connection's timer runs `header_timeout` from then
    /// (not reset by each trickled byte).
    Head,
    /// The head is complete and its body is still arriving.
    Body {
        /// `100 Continue` was sent for it.
        continue_sent: bool,
        /// The chunked body decoded so far; boxed because most connections never send one and
        /// every connection carries this state.
        chunked: Option<Box<ChunkedBody>>,
    },
}

impl Phase {
    /// The decoding state of the chunked body now arriving (the phase becomes `Body`).
    fn chunked_body(&mut self) -> &mut ChunkedBody {
        if !matches!(self, Phase::Body { .. }) {
            *self = Phase::Body { continue_sent: false, chunked: None };
        }
        match self {
            Phase::Body { chunked, .. } => chunked.get_or_insert_with(Box::default),
            Phase::Idle | Phase::Head => unreachable!("the phase was just made Body"),
        }
    }
}

#[derive(Debug, Default)]
struct ChunkedBody {
    /// Where decoding resumes (see `chunked::decode`).
    resume: usize,
    decoded: Vec<u8>,
}

/// What a request's handler did with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Filled the response, which is sent.
    Respond,
    /// Switched the connection to another protocol, writing its own `101`: this was the last
    /// HTTP request on it, and what follows is no longer HTTP.
    Upgraded,
}

/// What one [`Connection::serve`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Served {
    /// Input bytes used; the rest waits for more.
    pub(crate) consumed: usize,
    /// A request was refused (400, 413, 431, 505): its status is written and the sink closing.
    pub(crate) rejected: Option<Rejection>,
    /// The last request switched protocols ([`Answer::Upgraded`]).
    pub(crate) upgraded: bool,
}

/// What a batch of requests is answered with besides the bytes: the limits, the wall clock (for
/// `Date`) and the server whose counters a request can show.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    pub(crate) limits: &'a Limits,
    /// Seconds since the Unix epoch.
    pub(crate) now: u64,
    pub(crate) server: &'a dyn StatsSource,
}

impl Connection {
    /// Answers the complete requests at the front of `input`.
    pub(crate) fn serve<S: Sink>(
        &mut self,
        sink: &mut S,
        input: &[u8],
        context: &Context<'_>,
        mut handle: impl FnMut(&Request<'_>, &mut Response, &mut S) -> Answer,
    ) -> Served {
        let limits = context.limits;
        let mut served = Served { consumed: 0, rejected: None, upgraded: false };
        // Stop at our own backlog: a read full of pipelined requests for large responses must not
        // queue them all; the runtime offers the rest again once the peer has caught up.
        while served.consumed < input.len() && !sink.is_closing() && !sink.is_backpressured() {
            let buf = &input[served.consumed..];
            let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADER_SLOTS];
            let (head, headers) = match head::parse_head(buf, &mut slots, limits) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    // Part of a head: it has `header_timeout` to complete, from now.
                    if let Phase::Idle = self.phase {
                        sink.set_timer(limits.header_timeout);
                        self.phase = Phase::Head;
                    }
                    break;
                }
                Err(rejection) => return reject(sink, rejection, input.len(), context.now),
            };
            if let Phase::Head = self.phase {
                sink.cancel_timer();
                self.phase = Phase::Idle;
            }
            if let Some(rejection) = head.refusal() {
                return reject(sink, rejection, input.len(), context.now);
            }
            let (body, used) = match body(&mut self.phase, buf, &head, limits) {
                Body::Complete(body, used) => (body, used),
                Body::Incomplete => {
                    self.send_continue(sink, head.expect_continue);
                    break;
                }
                Body::Refused(rejection) => return reject(sink, rejection, input.len(), context.now),
            };
            if self.peer.is_none() {
                self.peer = sink.peer_addr();
            }
            let request = Request::new(&head, headers, body, self.peer, context.server);
            let answer = respond(&request, &head, sink, context.now, &mut handle);
            served.consumed += used;
            // The request is answered: the next one starts from nothing (and an idle
            // connection holds no buffer: a decoded body goes with its request).
            self.phase = Phase::Idle;
            if answer == Answer::Upgraded {
                served.upgraded = true;
                break;
            }
            if !head.keep_alive {
                sink.close();
            }
        }
        served
    }

    /// The connection's timer fired: a header block that started `header_timeout` ago is still
    /// not complete, so it gets 408 and the connection closes (true: refused).
    pub(crate) fn timer_fired(&mut self, sink: &mut impl Sink, limits: &Limits, now: u64) -> bool {
        if !matches!(self.phase, Phase::Head) {
            return false;
        }
        if sink.buffered() > 0 {
            // The rest of the head may be waiting unread while we wait for the client to take
            // our responses: that is our backlog, not a slow client. Look again later.
            sink.set_timer(limits.header_timeout);
            return false;
        }
        self.phase = Phase::Idle;
        reject(sink, Rejection::HeaderTimeout, 0, now);
        true
    }

    /// The body has not all arrived: the phase is `Body`, and `Expect: 100-continue` gets its
    /// interim response, once.
    fn send_continue(&mut self, sink: &mut impl Sink, expected: bool) {
        if !matches!(self.phase, Phase::Body { .. }) {
            self.phase = Phase::Body { continue_sent: false, chunked: None };
        }
        if let Phase::Body { continue_sent, .. } = &mut self.phase
            && expected
            && !*continue_sent
        {
            sink.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            *continue_sent = true;
        }
    }
}

/// Where a request's body stands.
enum Body<'b> {
    /// All of it is here: the body, and the bytes of input the request used with its head.
    Complete(&'b [u8], usize),
    /// More input is needed.
    Incomplete,
    /// Its chunked framing is refused.
    Refused(Rejection),
}

/// The body after `head` at the start of `buf`: a `Content-Length` slice of the input, or a
/// chunked one decoded into the phase's state (decoding resumes where the last call stopped).
#[inline]
fn body<'b>(phase: &'b mut Phase, buf: &'b [u8], head: &Head<'_>, limits: &Limits) -> Body<'b> {
    match head.framing {
        Framing::Empty => Body::Complete(&[], head.len),
        Framing::Length(length) if buf.len() - head.len >= length => {
            Body::Complete(&buf[head.len..head.len + length], head.len + length)
        }
        Framing::Length(_) => Body::Incomplete,
        Framing::Chunked => {
            let chunked_body = phase.chunked_body();
            match chunked::decode(
                &buf[head.len..],
                &mut chunked_body.resume,
                &mut chunked_body.decoded,
                limits.max_body,
                limits.max_header_bytes,
            ) {
                Ok(Decoded::Complete { consumed }) => Body::Complete(&chunked_body.decoded[..], head.len + consumed),
                Ok(Decoded::Partial) => Body::Incomplete,
                Err(rejection) => Body::Refused(rejection),
            }
        }
    }
}

/// Asks the handler for the response to `request` and writes it, serialised in the worker's
/// scratch buffer (one copy into the sink), unless the handler upgraded the connection.
#[inline]
fn respond<S: Sink>(
    request: &Request<'_>,
    head: &Head<'_>,
    sink: &mut S,
    now: u64,
    handle: &mut impl FnMut(&Request<'_>, &mut Response, &mut S) -> Answer,
) -> Answer {
    SCRATCH.with_borrow_mut(|(response, date, wire)| {
        response.reset();
        if handle(request, response, sink) == Answer::Upgraded {
            return Answer::Upgraded;
        }
        let connection = match (head.keep_alive, head.minor_version) {
            (false, _) => ConnectionHeader::Close,
            (true, 0) => ConnectionHeader::KeepAlive,
            (true, _) => ConnectionHeader::None,
        };
        wire.clear();
        response.write_to(wire, date.get(now), head.method == "HEAD", connection);
        sink.write(wire);
        Answer::Respond
    })
}

/// Answers a refused request with its status and closes: nothing after it can be trusted to be
/// framed correctly.
fn reject(sink: &mut impl Sink, rejection: Rejection, input_len: usize, now: u64) -> Served {
    SCRATCH.with_borrow_mut(|(response, date, wire)| {
        response.reset();
        response.status(rejection.status());
        wire.clear();
        response.write_to(wire, date.get(now), false, ConnectionHeader::Close);
        sink.write(wire);
    });
    sink.close();
    Served { consumed: input_len, rejected: Some(rejection), upgraded: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::NoServer;
    use crate::proto::TestSink;

    fn serve(connection: &mut Connection, sink: &mut TestSink, input: &[u8]) -> Served {
        let context = Context { limits: &Limits::default(), now: 0, server: &NoServer };
        connection.serve(sink, input, &context, |req, res, _| {
            res.text(req.path());
            Answer::Respond
        })
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_a_partial_one_waits_with_a_timer() {
        let mut connection = Connection::default();
        let mut sink = TestSink::new();
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HT";
        let served = serve(&mut connection, &mut sink, input);
        assert_eq!(served, Served { consumed: 56, rejected: None, upgraded: false });
        let text = String::from_utf8(sink.out.clone()).unwrap();
        assert!(text.find("\r\n\r\n/a").unwrap() < text.find("\r\n\r\n/b").unwrap(), "{text}");
        assert_eq!(sink.timer, Some(Limits::default().header_timeout), "the partial head started its timer");
        assert!(!connection.timer_fired(&mut sink, &Limits::default(), 0), "our own backlog is not the client's delay");
        assert_eq!(sink.timer, Some(Limits::default().header_timeout), "looked at again later");
    }

    #[test]
    fn a_refused_request_gets_its_status_and_the_connection_closes() {
        let mut connection = Connection::default();
        let mut sink = TestSink::new();
        let served = serve(&mut connection, &mut sink, b"GET / HTTP/3.0\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(served.rejected, Some(Rejection::VersionNotSupported));
        assert!(sink.closed);
        assert!(sink.out.starts_with(b"HTTP/1.1 505 "), "{}", String::from_utf8_lossy(&sink.out));
        let mut slow = Connection::default();
        serve(&mut slow, &mut TestSink::new(), b"GET / HTTP/1.1\r\nHost");
        let mut timed_out = TestSink::new();
        assert!(slow.timer_fired(&mut timed_out, &Limits::default(), 0));
        assert!(timed_out.out.starts_with(b"HTTP/1.1 408 ") && timed_out.closed);
    }

    #[test]
    fn serving_stops_at_the_sinks_high_water_mark() {
        let mut connection = Connection::default();
        let mut sink = TestSink { high_water: 1, ..TestSink::new() };
        let served =
            serve(&mut connection, &mut sink, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(served.consumed, 28, "one response fills the sink; the second request waits");
    }
}
