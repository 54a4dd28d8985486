//! Sans-IO protocol state machines, in the manner of quinn-proto and rustls: each is fed the
//! bytes that arrived (and the time), writes what it produces into a [`Sink`], and asks the sink
//! for timers and closes. Nothing here knows a socket, the event loop or the user's traits, and
//! nothing here calls `send(2)`: the driver layer joins these machines to the runtime, and a
//! unit test or a fuzzer drives them with a `Vec`.
//!
//! - `http/`: HTTP/1.1 heads, chunked bodies, requests and responses, routes, and the machine that
//!   answers one connection's pipelined requests in order.
//! - `ws/`: WebSocket frames, the upgrade handshake, and the per-connection machine (messages,
//!   pings, the close handshake, idleness).
//! - `ring.rs`: the packet ring's frames (Ethernet, VLAN, IPv4/IPv6, UDP) as datagrams.
//! - `tls/`: TLS 1.3 for a server connection: rustls's handshake, then smoke's in-place record
//!   layer.
//! - `proxy.rs`: the PROXY protocol header (v1 and v2) a load balancer sends first.
//! - `channel/`: channels over a game session's payloads: unreliable, sequenced and reliable
//!   messages up to 64 KiB, acks, resends timed from the round trip, fragments.
//! - `netcode/`: netcode 1.02 secure sessions over UDP for games: connect tokens, the challenge
//!   handshake, sealed packets, replay protection.

#[cfg(feature = "game")]
pub(crate) mod channel;
pub(crate) mod http;
#[cfg(feature = "game")]
pub(crate) mod netcode;
pub(crate) mod proxy;
pub(crate) mod ring;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod ws;

use std::net::SocketAddr;
use std::time::Duration;

/// What a protocol machine may do to the connection it runs on: queue bytes for the peer, look
/// at how much is still queued, arm or cancel the connection's one timer, and end it. The driver
/// implements it over the runtime's connection (a TLS layer would implement it over its records).
pub(crate) trait Sink {
    /// Queues `bytes` for the peer; they leave when the runtime next sends.
    fn write(&mut self, bytes: &[u8]);
    /// Queues what `fill` appends to the buffer it is handed: a message the machine serialises
    /// itself (an HTTP response) goes straight into the queue, with no copy on the way.
    fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>));
    /// Bytes queued but not yet taken by the peer.
    fn buffered(&self) -> usize;
    /// True once the queue has reached the connection's high-water mark: a machine producing a
    /// lot per input (pipelined requests) stops consuming until the peer catches up.
    fn is_backpressured(&self) -> bool;
    /// Arms the connection's timer, replacing any earlier deadline; the machine's own timer
    /// handler runs when it fires.
    fn set_timer(&mut self, after: Duration);
    /// Closes once the queue is flushed; no more input is delivered.
    fn close(&mut self);
    /// Closes as [`close`](Sink::close), for an answer sent before the peer finished sending
    /// (a refused request whose body is still coming): the transport keeps reading and dropping
    /// input for a while after its last byte, so the peer reads the answer, not a reset.
    fn close_lingering(&mut self);
    /// Resets the connection at once, dropping what is queued.
    fn abort(&mut self);
    /// Sends FIN once the queue is flushed; input keeps arriving until the peer closes.
    fn shutdown_write(&mut self);
    /// True once [`close`](Sink::close) or [`abort`](Sink::abort) was asked.
    fn is_closing(&self) -> bool;
    /// The peer's address, when the transport knows it.
    fn peer_addr(&self) -> Option<SocketAddr>;
    /// The server is shutting down: answer what is asked, then close.
    fn is_draining(&self) -> bool;
    /// Milliseconds on the runtime's monotonic clock, as of this wake-up: for a machine that
    /// keeps a deadline itself rather than re-arming its timer on every message.
    fn now(&self) -> u64;
}

/// A server without counters, for requests built in unit tests and fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug)]
pub(crate) struct NoServer;

#[cfg(any(test, feature = "fuzzing"))]
impl crate::stats::StatsSource for NoServer {
    fn stats(&self) -> crate::stats::Stats {
        crate::stats::Stats::default()
    }
}

/// A sink over a `Vec`, for the machines' unit tests and fuzz targets.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Default)]
pub(crate) struct TestSink {
    pub(crate) out: Vec<u8>,
    pub(crate) timer: Option<Duration>,
    pub(crate) closed: bool,
    /// The close asked to linger.
    pub(crate) lingering: bool,
    pub(crate) aborted: bool,
    pub(crate) write_shut: bool,
    /// `is_backpressured` reports true once `out` holds this much.
    pub(crate) high_water: usize,
    /// What `now` answers.
    pub(crate) now: u64,
    /// What `is_draining` answers.
    pub(crate) draining: bool,
}

#[cfg(any(test, feature = "fuzzing"))]
impl TestSink {
    pub(crate) fn new() -> TestSink {
        TestSink { high_water: usize::MAX, ..TestSink::default() }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl Sink for TestSink {
    fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        fill(&mut self.out);
    }
    fn buffered(&self) -> usize {
        self.out.len()
    }
    fn is_backpressured(&self) -> bool {
        self.out.len() >= self.high_water
    }
    fn set_timer(&mut self, after: Duration) {
        self.timer = Some(after);
    }
    fn close(&mut self) {
        self.closed = true;
    }
    fn close_lingering(&mut self) {
        self.closed = true;
        self.lingering = true;
    }
    fn abort(&mut self) {
        self.aborted = true;
    }
    fn shutdown_write(&mut self) {
        self.write_shut = true;
    }
    fn is_closing(&self) -> bool {
        self.closed || self.aborted
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        None
    }
    fn is_draining(&self) -> bool {
        self.draining
    }
    fn now(&self) -> u64 {
        self.now
    }
}
