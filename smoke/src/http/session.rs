//! Drives one HTTP/1.x connection: every complete request in the input is parsed, answered in
//! order, and its response appended to the connection's output (pipelined responses leave in
//! the runtime's one send); a partial request at the end waits for more bytes.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use super::chunked::{self, Decoded};
use super::date::DateCache;
use super::message::{ConnectionHeader, Request, Response};
use super::proto::{self, Framing};
use super::{Limits, Rejection};
use crate::rt::conn::Conn;
use crate::stats::bump;

/// Header slots parsed per request (the stack array httparse fills); `max_headers` above this
/// is clamped to it.
pub(crate) const MAX_HEADER_SLOTS: usize = 128;

thread_local! {
    /// Per worker thread: the response being built (its buffers are reused, so answering
    /// allocates nothing in steady state) and the cached Date.
    static SCRATCH: RefCell<(Response, DateCache, Vec<u8>)> =
        RefCell::new((Response::default(), DateCache::default(), Vec::new()));
}

/// Per-connection HTTP state. Holds heap memory only while a chunked body is being decoded.
#[derive(Debug, Default)]
pub(crate) struct HttpState {
    peer: Option<SocketAddr>,
    /// The chunked body being decoded; boxed because most connections never send one and
    /// every connection carries this state.
    chunked: Option<Box<ChunkedBody>>,
    continue_sent: bool,
    /// The connection's timer is running for a header block that has started to arrive.
    header_timer: bool,
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

/// Answers the complete requests at the front of `input`; returns the bytes consumed.
pub(crate) fn serve_requests(
    state: &mut HttpState,
    conn: &mut Conn<'_>,
    input: &[u8],
    limits: &Limits,
    mut handle: impl FnMut(&Request<'_>, &mut Response, &mut Conn<'_>) -> Answer,
) -> usize {
    let mut consumed = 0;
    // Stop at our own backlog: a read full of pipelined requests for large responses must not
    // queue them all; the runtime offers the rest again once the peer has caught up.
    while consumed < input.len() && !conn.is_closing() && !conn.is_backpressured() {
        let buf = &input[consumed..];
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADER_SLOTS];
        let (head, headers) = match proto::parse_head(buf, &mut slots, limits) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                // Part of a header block: it has `header_timeout` to complete, counted from
                // when it started (not reset by each trickled byte).
                if !state.header_timer {
                    conn.set_timer(limits.header_timeout);
                    state.header_timer = true;
                }
                break;
            }
            Err(rejection) => return reject(conn, rejection, input.len()),
        };
        if state.header_timer {
            conn.cancel_timer();
            state.header_timer = false;
        }
        let (body, used): (&[u8], usize) = match head.framing {
            Framing::Empty => (&[], head.len),
            Framing::Length(length) if buf.len() - head.len >= length => {
                (&buf[head.len..head.len + length], head.len + length)
            }
            Framing::Length(_) => {
                send_continue(state, conn, head.expect_continue);
                break;
            }
            Framing::Chunked => {
                let chunked_body = state.chunked.get_or_insert_with(Box::default);
                match chunked::decode(
                    &buf[head.len..],
                    &mut chunked_body.resume,
                    &mut chunked_body.decoded,
                    limits.max_body,
                    limits.max_header_bytes,
                ) {
                    Ok(Decoded::Complete { consumed }) => (&chunked_body.decoded[..], head.len + consumed),
                    Ok(Decoded::Partial) => {
                        send_continue(state, conn, head.expect_continue);
                        break;
                    }
                    Err(rejection) => return reject(conn, rejection, input.len()),
                }
            }
        };
        state.continue_sent = false;
        if state.peer.is_none() {
            state.peer = conn.peer_addr().ok();
        }
        let request = Request::new(&head, headers, body, state.peer, conn.shared);
        let head_only = head.method == "HEAD";
        let answer = SCRATCH.with_borrow_mut(|(response, date, wire)| {
            response.reset();
            if handle(&request, response, conn) == Answer::Upgraded {
                return Answer::Upgraded;
            }
            let connection = match (head.keep_alive, head.minor_version) {
                (false, _) => ConnectionHeader::Close,
                (true, 0) => ConnectionHeader::KeepAlive,
                (true, _) => ConnectionHeader::None,
            };
            wire.clear();
            response.write_to(wire, date.get(), head_only, connection);
            conn.write(wire);
            Answer::Respond
        });
        consumed += used;
        if answer == Answer::Upgraded {
            state.chunked = None;
            break;
        }
        if head.framing == Framing::Chunked {
            // An idle connection holds no buffer: the decoded body goes with its request.
            state.chunked = None;
        }
        if !head.keep_alive {
            conn.close();
        }
    }
    consumed
}

/// The connection's timer fired: a header block that started `header_timeout` ago is still not
/// complete, so it gets 408 and the connection closes.
pub(crate) fn header_timeout(state: &mut HttpState, conn: &mut Conn<'_>) {
    if !state.header_timer {
        return;
    }
    if conn.buffered() > 0 {
        // The rest of the head may be waiting unread while we wait for the client to take our
        // responses: that is our backlog, not a slow client. Look again later.
        conn.set_timer(conn.shared.http_limits.header_timeout);
        return;
    }
    state.header_timer = false;
    reject(conn, Rejection::HeaderTimeout, 0);
}

/// `Expect: 100-continue` gets its interim response once, when the body has not arrived yet.
fn send_continue(state: &mut HttpState, conn: &mut Conn<'_>, expected: bool) {
    if expected && !state.continue_sent {
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
        state.continue_sent = true;
    }
}

/// Answers a refused request with its status and closes: nothing after it can be trusted to be
/// framed correctly.
fn reject(conn: &mut Conn<'_>, rejection: Rejection, input_len: usize) -> usize {
    let status = rejection.status();
    if let Rejection::BadRequest(why) = rejection {
        log::debug!("{}: 400 Bad Request: {why}", conn.id());
    }
    bump(&conn.counters.rejected, 1);
    SCRATCH.with_borrow_mut(|(response, date, wire)| {
        response.reset();
        response.status(status);
        wire.clear();
        response.write_to(wire, date.get(), false, ConnectionHeader::Close);
        conn.write(wire);
    });
    conn.close();
    input_len
}
