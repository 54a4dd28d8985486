//! One HTTP/1.x connection's machine: every complete request at the front of the input is
//! parsed, handed to the caller's handler, and its response appended to the sink in order (so
//! pipelined responses leave in the runtime's one send); a partial request waits for more bytes,
//! with `header_timeout` to complete its head.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use super::chunked::{self, Decoded};
use super::head::{self, Framing, Head};
use super::message::{Request, Response};
use super::serialise::{ConnectionHeader, ResponseHeads};
use super::{Limits, Rejection};
use crate::proto::Sink;
use crate::stats::StatsSource;

thread_local! {
    /// Per worker thread: the response being built (its buffers are reused, so answering
    /// allocates nothing in steady state) and the last response head with its Date.
    static SCRATCH: RefCell<(Response, ResponseHeads)> = RefCell::new((Response::default(), ResponseHeads::default()));
}

/// Per-connection HTTP state. Holds heap memory only while a chunked body is being decoded.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    /// The client's address, asked of the transport once.
    peer: Option<SocketAddr>,
    /// Where the request at the front of the input stands.
    phase: Phase,
}

/// Where the request at the front of the input stands, and so what the connection's timer is
/// running for. A request whose body is still arriving is kept whole in the input and its head
/// parsed again with each call (cheaper than keeping a parsed copy), so only what cannot be
/// derived again lives here.
#[derive(Debug)]
enum Phase {
    /// Between requests on a kept-alive connection: `keep_alive_timeout` from `since` (the last
    /// answer, on the runtime's clock) until the next request's first byte. Answering a request
    /// moves `since` and leaves the timer alone: when it fires early, it is set again for the
    /// rest, so back-to-back requests cost no timer operation.
    Waiting { since: u64 },
    /// A head is due: `header_timeout` to complete it, from its first byte, or from accept for
    /// a connection's first request (`started`: bytes of it have arrived).
    Head { started: bool },
    /// The head is complete and its body is arriving: `body_timeout` without progress.
    Body {
        /// `100 Continue` was sent for it.
        continue_sent: bool,
        /// The input this request had at the last call (its low 32 bits: a call reads far less
        /// than 4 GiB, and the state stays small): a change means progress.
        seen: u32,
        /// The chunked body decoded so far; boxed because most connections never send one and
        /// every connection carries this state.
        chunked: Option<Box<ChunkedBody>>,
    },
}

impl Default for Phase {
    /// A new connection: its first head is due `header_timeout` after accept.
    fn default() -> Phase {
        Phase::Head { started: false }
    }
}

impl Phase {
    /// The phase is `Body` (entered now, with nothing seen yet, if it was not).
    fn body(&mut self) -> (&mut bool, &mut u32, &mut Option<Box<ChunkedBody>>) {
        if !matches!(self, Phase::Body { .. }) {
            *self = Phase::Body { continue_sent: false, seen: 0, chunked: None };
        }
        match self {
            Phase::Body { continue_sent, seen, chunked } => (continue_sent, seen, chunked),
            Phase::Waiting { .. } | Phase::Head { .. } => unreachable!("the phase was just made Body"),
        }
    }

    /// The decoding state of the chunked body now arriving.
    fn chunked_body(&mut self) -> &mut ChunkedBody {
        self.body().2.get_or_insert_with(Box::default)
    }
}

/// What the connection's timer meant when it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Our own output is still waiting for the peer: looked at again later.
    NotYet,
    /// Nothing of a request had come (idle keep-alive, or silent since accept): closed quietly.
    Idle,
    /// A request stalled in its head or body: 408, and the connection closes.
    Refused,
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
        // The keep-alive timer is the one running (so answering needs no re-arm).
        let mut keep_alive_armed = matches!(self.phase, Phase::Waiting { .. });
        // Stop at our own backlog: a read full of pipelined requests for large responses must not
        // queue them all; the runtime offers the rest again once the peer has caught up.
        while served.consumed < input.len() && !sink.is_closing() && !sink.is_backpressured() {
            let buf = &input[served.consumed..];
            let head = match head::parse_head(buf, limits) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => {
                    // Part of a head: `header_timeout` to complete it, from its first byte (a
                    // first request's counts from accept).
                    match self.phase {
                        Phase::Waiting { .. } => {
                            sink.set_timer(limits.header_timeout);
                            self.phase = Phase::Head { started: true };
                        }
                        Phase::Head { started: false } => self.phase = Phase::Head { started: true },
                        Phase::Head { started: true } | Phase::Body { .. } => {}
                    }
                    break;
                }
                Err(rejection) => return reject(sink, rejection, input.len(), context.now),
            };
            if let Some(rejection) = head.refusal() {
                return reject(sink, rejection, input.len(), context.now);
            }
            let (body, used) = match body(&mut self.phase, buf, &head, limits) {
                Body::Complete(body, used) => (body, used),
                Body::Incomplete => {
                    self.body_pending(sink, buf.len(), head.expect_continue, limits);
                    break;
                }
                Body::Refused(rejection) => return reject(sink, rejection, input.len(), context.now),
            };
            if self.peer.is_none() {
                self.peer = sink.peer_addr();
            }
            let request = Request::new(&head, body, self.peer, context.server);
            // A draining server answers, then closes: the client opens its next connection
            // elsewhere (the server taking over, on a restart) instead of finding this one gone.
            let keep_alive = head.keep_alive && !sink.is_draining();
            let answer = respond(&request, &head, keep_alive, sink, context.now, &mut handle);
            served.consumed += used;
            // The request is answered: the next one starts from nothing (and an idle
            // connection holds no buffer: a decoded body goes with its request).
            if !matches!(self.phase, Phase::Waiting { .. }) {
                keep_alive_armed = false;
            }
            self.phase = Phase::Waiting { since: sink.now() };
            if answer == Answer::Upgraded {
                served.upgraded = true;
                return served;
            }
            if !keep_alive {
                sink.close();
            }
        }
        if !keep_alive_armed && matches!(self.phase, Phase::Waiting { .. }) && !sink.is_closing() {
            sink.set_timer(limits.keep_alive_timeout);
        }
        served
    }

    /// A head's body has not all arrived: `body_timeout` runs again from each call that brought
    /// more of it, and `Expect: 100-continue` gets its interim response, once.
    fn body_pending(&mut self, sink: &mut impl Sink, have: usize, expected: bool, limits: &Limits) {
        let was_body = matches!(self.phase, Phase::Body { .. });
        let (continue_sent, seen, _) = self.phase.body();
        if !was_body || have as u32 != *seen {
            *seen = have as u32;
            sink.set_timer(limits.body_timeout);
        }
        if expected && !*continue_sent {
            sink.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            *continue_sent = true;
        }
    }

    /// The connection's timer fired: a head or body that stalled past its timeout gets 408 and
    /// the connection closes; an idle one closes quietly.
    pub(crate) fn timer_fired(&mut self, sink: &mut impl Sink, limits: &Limits, now: u64) -> Expired {
        if sink.is_draining() && self.between_requests() && sink.buffered() == 0 {
            // The drain's grace is over and no request came.
            sink.close();
            return Expired::Idle;
        }
        let timeout = match self.phase {
            Phase::Waiting { since } => {
                let idle = Duration::from_millis(sink.now().saturating_sub(since));
                if idle < limits.keep_alive_timeout {
                    // Requests came since the timer was set: wait out the rest.
                    sink.set_timer(limits.keep_alive_timeout - idle);
                    return Expired::NotYet;
                }
                limits.keep_alive_timeout
            }
            Phase::Head { .. } => limits.header_timeout,
            Phase::Body { .. } => limits.body_timeout,
        };
        if sink.buffered() > 0 {
            // The rest of the request may be waiting unread while we wait for the client to take
            // our responses: that is our backlog, not a slow client (the runtime's send timeout
            // covers a client that reads nothing). Look again later.
            sink.set_timer(timeout);
            return Expired::NotYet;
        }
        match std::mem::replace(&mut self.phase, Phase::Waiting { since: sink.now() }) {
            Phase::Waiting { .. } | Phase::Head { started: false } => {
                sink.close();
                Expired::Idle
            }
            Phase::Head { started: true } | Phase::Body { .. } => {
                reject(sink, Rejection::RequestTimeout, 0, now);
                Expired::Refused
            }
        }
    }

    /// The server is draining: a request under way finishes (every answer now says
    /// `Connection: close`); a connection between requests gets `grace` for its next one.
    pub(crate) fn drain(&mut self, sink: &mut impl Sink, grace: Duration) {
        if self.between_requests() {
            sink.set_timer(grace);
        }
    }

    /// No request is under way: the connection waits for one's first byte.
    fn between_requests(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. } | Phase::Head { started: false })
    }

    /// The connection was accepted: its first head is due `header_timeout` from now.
    pub(crate) fn opened(&mut self, sink: &mut impl Sink, limits: &Limits) {
        self.phase = Phase::Head { started: false };
        sink.set_timer(limits.header_timeout);
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

/// Asks the handler for the response to `request` and writes it, serialised straight into the
/// sink's queue, unless the handler upgraded the connection.
#[inline]
fn respond<S: Sink>(
    request: &Request<'_>,
    head: &Head<'_>,
    keep_alive: bool,
    sink: &mut S,
    now: u64,
    handle: &mut impl FnMut(&Request<'_>, &mut Response, &mut S) -> Answer,
) -> Answer {
    SCRATCH.with_borrow_mut(|(response, heads)| {
        response.reset();
        if handle(request, response, sink) == Answer::Upgraded {
            return Answer::Upgraded;
        }
        let connection = match (keep_alive, head.minor_version) {
            (false, _) => ConnectionHeader::Close,
            (true, 0) => ConnectionHeader::KeepAlive,
            (true, _) => ConnectionHeader::None,
        };
        let head_only = head.method == b"HEAD";
        sink.write_with(|out| heads.write(response, out, now, head_only, connection));
        Answer::Respond
    })
}

/// Answers a refused request with its status and closes: nothing after it can be trusted to be
/// framed correctly.
fn reject(sink: &mut impl Sink, rejection: Rejection, input_len: usize, now: u64) -> Served {
    SCRATCH.with_borrow_mut(|(response, heads)| {
        response.reset();
        response.status(rejection.status());
        sink.write_with(|out| heads.write(response, out, now, false, ConnectionHeader::Close));
    });
    // The rest of the request may still be on its way (a body refused by its Content-Length):
    // closing at once would reset the connection, and the client would read that, not this.
    sink.close_lingering();
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

    /// Feeds `input` cut at `cuts`, keeping what is not consumed as the runtime does; returns
    /// what was written and whether the connection is closing.
    fn serve_cut(input: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
        let (mut connection, mut sink, mut kept) = (Connection::default(), TestSink::new(), Vec::new());
        let ends = cuts.iter().copied().chain([input.len()]);
        let mut start = 0;
        for end in ends {
            kept.extend_from_slice(&input[start..end]);
            start = end;
            let consumed = serve(&mut connection, &mut sink, &kept).consumed;
            kept.drain(..consumed);
            if sink.closed {
                break;
            }
        }
        (sink.out, sink.closed)
    }

    /// Draining: a kept-alive connection's next request is answered with `Connection: close`
    /// and the connection closes; one between requests closes when the grace runs out; a
    /// request under way keeps its own timer and is answered the same way.
    #[test]
    fn a_draining_server_answers_then_closes() {
        let grace = Duration::from_secs(1);
        let (mut connection, mut sink) = (Connection::default(), TestSink::new());
        serve(&mut connection, &mut sink, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!sink.closed && !String::from_utf8_lossy(&sink.out).contains("close"));
        sink.draining = true;
        serve(&mut connection, &mut sink, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let answers = String::from_utf8_lossy(&sink.out).to_string();
        assert!(answers.ends_with("/b") && answers.matches("Connection: close").count() == 1, "{answers}");
        assert!(sink.closed, "closed after its answer");

        let (mut connection, mut sink) = (Connection::default(), TestSink::new());
        serve(&mut connection, &mut sink, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        sink.out.clear();
        sink.draining = true;
        connection.drain(&mut sink, grace);
        assert_eq!(sink.timer, Some(grace), "between requests: the grace");
        assert_eq!(connection.timer_fired(&mut sink, &Limits::default(), 0), Expired::Idle);
        assert!(sink.closed && sink.out.is_empty(), "closed quietly");

        let (mut connection, mut sink) = (Connection::default(), TestSink::new());
        serve(&mut connection, &mut sink, b"GET /a HTTP/1.1\r\nHo");
        sink.timer = None;
        sink.draining = true;
        connection.drain(&mut sink, grace);
        assert_eq!(sink.timer, None, "a head under way keeps its header_timeout");
        serve(&mut connection, &mut sink, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(String::from_utf8_lossy(&sink.out).contains("Connection: close") && sink.closed);
    }

    /// Inputs the fuzzer (fuzz/fuzz_targets/http_framing.rs) found answered differently
    /// depending on where the reads ended: each must get the same answer cut or whole.
    #[test]
    fn answers_do_not_depend_on_where_reads_end() {
        let cases: &[(&[u8], &[usize])] = &[
            // 505 whole (the line ended in "HTTP/1.0"), 400 when cut inside the request line.
            (
                b"POST /echo HTT gggggggggggggggggggggggggggggg/ HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                &[24],
            ),
            // An unsupported version seen before its line ended.
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", &[12]),
        ];
        for (input, cuts) in cases {
            assert_eq!(serve_cut(input, cuts), serve_cut(input, &[]), "{}", String::from_utf8_lossy(input));
        }
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
        assert_eq!(
            connection.timer_fired(&mut sink, &Limits::default(), 0),
            Expired::NotYet,
            "our own backlog is not the client's delay"
        );
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
        assert_eq!(slow.timer_fired(&mut timed_out, &Limits::default(), 0), Expired::Refused);
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

    /// Each phase runs the connection's timer for its own timeout, and what expiring means.
    #[test]
    fn every_phase_has_its_timeout() {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            keep_alive_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(3),
            ..Limits::default()
        };
        let context = Context { limits: &limits, now: 0, server: &NoServer };
        let serve = |connection: &mut Connection, sink: &mut TestSink, input: &[u8]| {
            connection.serve(sink, input, &context, |_, res, _| {
                res.text("ok");
                Answer::Respond
            })
        };
        // Accepted: the first head is due in header_timeout; silence closes quietly.
        let (mut fresh, mut sink) = (Connection::default(), TestSink::new());
        fresh.opened(&mut sink, &limits);
        assert_eq!(sink.timer, Some(limits.header_timeout));
        assert_eq!(fresh.timer_fired(&mut sink, &limits, 0), Expired::Idle);
        assert!(sink.closed && sink.out.is_empty(), "no 408 to a socket that never spoke");
        // A first byte does not restart the first head's clock; a stalled head gets 408.
        let (mut slow, mut sink) = (Connection::default(), TestSink::new());
        slow.opened(&mut sink, &limits);
        sink.timer = None;
        serve(&mut slow, &mut sink, b"GET / HT");
        assert_eq!(sink.timer, None, "still counting from accept");
        assert_eq!(slow.timer_fired(&mut sink, &limits, 0), Expired::Refused);
        assert!(sink.out.starts_with(b"HTTP/1.1 408 "));
        // Answered: keep_alive_timeout until the next request; answering again moves the
        // deadline without touching the timer, which, firing early, waits out the rest.
        let (mut kept, mut sink) = (Connection::default(), TestSink::new());
        serve(&mut kept, &mut sink, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(sink.timer, Some(limits.keep_alive_timeout));
        (sink.timer, sink.now) = (None, 1_500);
        serve(&mut kept, &mut sink, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(sink.timer, None, "no timer operation between back-to-back requests");
        sink.now = 2_000;
        sink.out.clear();
        assert_eq!(kept.timer_fired(&mut sink, &limits, 0), Expired::NotYet);
        assert_eq!(sink.timer, Some(Duration::from_millis(1_500)), "the rest of the wait since the last answer");
        sink.now = 3_500;
        assert_eq!(kept.timer_fired(&mut sink, &limits, 0), Expired::Idle);
        assert!(sink.closed && sink.out.is_empty(), "an idle keep-alive closes quietly");
        let (mut kept, mut sink) = (Connection::default(), TestSink::new());
        serve(&mut kept, &mut sink, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        serve(&mut kept, &mut sink, b"GET / HTTP/1.1\r\nHo");
        assert_eq!(sink.timer, Some(limits.header_timeout), "the next head started");
        // A body: body_timeout, again after each call that brought more of it.
        let (mut upload, mut sink) = (Connection::default(), TestSink::new());
        let head = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
        let mut input = head.to_vec();
        serve(&mut upload, &mut sink, &input);
        assert_eq!(sink.timer, Some(limits.body_timeout));
        sink.timer = None;
        serve(&mut upload, &mut sink, &input);
        assert_eq!(sink.timer, None, "no progress: not re-armed");
        input.extend_from_slice(b"12345");
        serve(&mut upload, &mut sink, &input);
        assert_eq!(sink.timer, Some(limits.body_timeout), "progress re-arms it");
        assert_eq!(upload.timer_fired(&mut sink, &limits, 0), Expired::Refused);
        assert!(sink.closed);
    }
}
