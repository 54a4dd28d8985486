//! A connection as its handlers see it ([`Conn`]), the state behind it ([`ConnState`]: output
//! queue, flags, timer), why a connection ends ([`CloseReason`]), and the runtime's one send
//! loop.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::rt::buf::{BufPool, Output};
use crate::rt::pubsub;
use crate::rt::shared::WorkerSet;
use crate::rt::token::ConnId;
use crate::rt::wheel::{Timer, TimerRequest};
use crate::stats::{Counters, Stats, lower};
use crate::sys::Stream;

/// Why a connection ended; passed to [`Handler::on_close`](crate::Handler::on_close).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side (end of stream) and all pending output was flushed.
    PeerClosed,
    /// The peer reset the connection (ECONNRESET, or EPIPE while sending).
    Reset,
    /// Another I/O error on the socket.
    Error(io::ErrorKind),
    /// No input from the peer for `idle_timeout`.
    Timeout,
    /// Output waited `send_timeout` without the peer taking any of it (it stopped reading); the
    /// connection is reset.
    SendTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The handler called [`Conn::close`] and pending output was flushed.
    Closed,
    /// The handler called [`Conn::abort`]: reset sent, pending output dropped.
    Aborted,
    /// A handler call panicked; the connection was reset.
    HandlerPanicked,
    /// Unconsumed input exceeded `max_read_buffer`.
    InputOverflow,
}

impl CloseReason {
    /// True for the reasons that count as errors in [`Stats::errors`].
    pub fn is_error(self) -> bool {
        matches!(
            self,
            CloseReason::Reset | CloseReason::Error(_) | CloseReason::HandlerPanicked | CloseReason::InputOverflow
        )
    }

    pub(crate) fn from_io(error: &io::Error) -> CloseReason {
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
                CloseReason::Reset
            }
            kind => CloseReason::Error(kind),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Reset => f.write_str("reset by peer"),
            CloseReason::Error(kind) => write!(f, "I/O error: {kind}"),
            CloseReason::Timeout => f.write_str("idle timeout"),
            CloseReason::SendTimeout => f.write_str("send timeout: the peer stopped reading"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::Closed => f.write_str("closed by handler"),
            CloseReason::Aborted => f.write_str("aborted by handler"),
            CloseReason::HandlerPanicked => f.write_str("handler panicked"),
            CloseReason::InputOverflow => f.write_str("unconsumed input above max_read_buffer"),
        }
    }
}

/// Per-connection state bits, kept in one small word next to the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(pub(crate) u32);

impl Flags {
    /// The handler asked to close once output is flushed.
    pub(crate) const CLOSE: u32 = 1 << 0;
    /// The handler asked for a reset.
    pub(crate) const ABORT: u32 = 1 << 1;
    /// The handler asked to shut down the write side once output is flushed.
    pub(crate) const SHUTDOWN_WRITE: u32 = 1 << 2;
    /// The write side has been shut down.
    pub(crate) const WRITE_SHUT: u32 = 1 << 3;
    /// The peer ended its stream.
    pub(crate) const READ_CLOSED: u32 = 1 << 4;
    /// The socket may hold unread bytes (edge seen, EAGAIN not yet).
    pub(crate) const READ_READY: u32 = 1 << 5;
    /// EPOLLOUT is registered because output is waiting for room in the socket.
    pub(crate) const WRITE_ARMED: u32 = 1 << 6;
    /// The connection sits in the worker's retry queue.
    pub(crate) const QUEUED: u32 = 1 << 7;
    /// The close comes from server shutdown (reported as [`CloseReason::Shutdown`]).
    pub(crate) const SHUTTING_DOWN: u32 = 1 << 8;
    /// A handler call panicked: the session is not called again (not even on_close).
    pub(crate) const PANICKED: u32 = 1 << 9;
    /// The handler asked for on_write once the output queue is empty.
    pub(crate) const WANT_WRITE: u32 = 1 << 10;
    /// epoll reported a FIN, an error or urgent data: read until EAGAIN or the end, short reads
    /// notwithstanding.
    pub(crate) const READ_TO_EAGAIN: u32 = 1 << 11;
    /// on_data left input while output was above the high-water mark: deliver it again once
    /// the backlog drains.
    pub(crate) const REDELIVER: u32 = 1 << 12;
    /// Topic deliveries wrote to this connection; it is in the worker's list to send.
    pub(crate) const DELIVERED: u32 = 1 << 13;
    /// Subscribed to a topic at some point: its subscriptions end with it, however it ends.
    pub(crate) const SUBSCRIBED: u32 = 1 << 14;
    /// The close should linger: the peer may still be sending what nobody will read (a request
    /// refused before its body arrived), so the socket's write side closes first and its input
    /// is read and dropped for a while, and the peer reads the answer instead of a reset.
    pub(crate) const LINGER: u32 = 1 << 15;
    /// The session has ended and the socket is lingering (see `worker/linger.rs`).
    pub(crate) const LINGERING: u32 = 1 << 16;
    /// Output has waited through one look at the peer's progress with nothing taken (see
    /// `Connection::check_send_progress`): nothing again at the next look, and it closes.
    pub(crate) const SEND_STALLED: u32 = 1 << 17;
    /// What handlers write is plaintext that a layer (TLS) seals before it is sent: only the
    /// output before the last `unsealed` bytes may go on the wire.
    pub(crate) const SEALED: u32 = 1 << 18;
    /// A layer in front (a PROXY protocol header) told the connection's real peer: its address
    /// is in the worker's `told_peers`, not the socket's.
    pub(crate) const PEER_TOLD: u32 = 1 << 19;
    /// Set by the runtime around a topic delivery to a connection with nothing queued: the
    /// first write goes straight to the socket (`send`), with no buffer taken and no copy, and
    /// only what the socket does not take is queued.
    pub(crate) const SEND_NOW: u32 = 1 << 20;
    /// Any of these means a delivery is not sent straight to the socket: it is sealed first,
    /// or the connection is on its way out (its `settle` decides what still leaves).
    pub(crate) const NOT_SENT_NOW: u32 = Self::SEALED
        | Self::CLOSE
        | Self::ABORT
        | Self::PANICKED
        | Self::SHUTDOWN_WRITE
        | Self::WRITE_SHUT
        | Self::LINGERING;
    /// Any of these asks more of the end of a wake-up (`Connection::settle`) than sending what
    /// was written: a close, a panic, a wait for room, a shutdown, on_write, more to read.
    pub(crate) const SETTLES_SLOWLY: u32 = Self::CLOSE
        | Self::ABORT
        | Self::PANICKED
        | Self::SHUTDOWN_WRITE
        | Self::READ_CLOSED
        | Self::WRITE_ARMED
        | Self::WANT_WRITE
        | Self::READ_READY
        | Self::REDELIVER;
    /// Any of these means no more input goes to the handler (and none is kept for it).
    pub(crate) const INPUT_ENDED: u32 = Self::CLOSE | Self::ABORT | Self::PANICKED;

    #[inline]
    pub(crate) fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }
    #[inline]
    pub(crate) fn set(&mut self, bits: u32) {
        self.0 |= bits;
    }
    #[inline]
    pub(crate) fn clear(&mut self, bits: u32) {
        self.0 &= !bits;
    }
}

/// The peers that layers in front told (see [`Conn::tell_peer_addr`]), by socket: only the
/// connections of a listener behind a load balancer have an entry, so the others' slots stay
/// as small as they were.
pub(crate) type ToldPeers = std::collections::HashMap<std::os::fd::RawFd, SocketAddr>;

/// What the runtime keeps of a connection between its handler calls besides the session and the
/// socket: the output queue, the state bits and the timer.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub(crate) out: Output,
    pub(crate) flags: Flags,
    /// With [`Flags::SEALED`]: the bytes at the end of `out` written since the last seal. It
    /// costs every connection's slot 8 bytes (96 to 104, with the alignment of `timer`);
    /// kept beside a u32 `head` inside `Output`, it would cost none.
    pub(crate) unsealed: u32,
    pub(crate) timer: Timer,
}

impl ConnState {
    /// The output that may go on the wire now: all of it, but for plaintext not yet sealed.
    #[inline]
    pub(crate) fn sendable(&self) -> usize {
        self.out.pending() - self.unsealed as usize
    }

    /// Ends every subscription of the connection on `fd` with `id`, if it ever made one, and
    /// takes them off the `subscriptions` gauge.
    pub(crate) fn end_subscriptions(&mut self, fd: std::os::fd::RawFd, id: ConnId, counters: &Counters) {
        if self.flags.has(Flags::SUBSCRIBED) {
            let ended = pubsub::unsubscribe_all(fd, id);
            lower(&counters.subscriptions, ended as u64);
            self.flags.clear(Flags::SUBSCRIBED);
        }
    }
}

/// The handle a handler gets for its connection: buffered writes and the connection's controls.
///
/// Writes are buffered and leave in one `send` when the handler returns (after every read of the
/// current wake-up has been handed to it); what the socket cannot take is queued and sent as the
/// peer reads. See [`Handler`](crate::Handler) for an example.
pub struct Conn<'a> {
    pub(crate) stream: &'a Stream,
    pub(crate) state: &'a mut ConnState,
    pub(crate) id: ConnId,
    pub(crate) pool: &'a mut BufPool,
    pub(crate) told_peers: &'a mut ToldPeers,
    pub(crate) counters: &'a Counters,
    pub(crate) workers: &'a WorkerSet,
    pub(crate) max_write_buffer: usize,
    /// The worker's clock as of this wake-up (milliseconds since it started).
    pub(crate) now: u64,
    /// The wall clock as of this wake-up, in seconds since the Unix epoch.
    pub(crate) unix_seconds: u64,
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("id", &self.id).field("buffered", &self.buffered()).finish()
    }
}

impl Conn<'_> {
    /// Queues `data` for sending. Ignored after [`abort`](Conn::abort).
    #[inline]
    pub fn write(&mut self, data: &[u8]) {
        if !data.is_empty() && !self.state.flags.has(Flags::ABORT) {
            if self.state.flags.has(Flags::SEALED | Flags::SEND_NOW) {
                return self.write_unbuffered_or_sealed(data);
            }
            self.state.out.push(data, self.pool, self.counters);
        }
    }

    /// [`write`](Conn::write) when the bytes may go straight to the socket (`SEND_NOW`) or are
    /// plaintext for a layer to seal (`SEALED`; never both: the runtime sends nothing directly
    /// on a sealed connection).
    #[cold]
    fn write_unbuffered_or_sealed(&mut self, mut data: &[u8]) {
        if self.state.flags.has(Flags::SEND_NOW) {
            self.state.flags.clear(Flags::SEND_NOW);
            // What the socket does not take is queued: all of it when the socket is full, or
            // when the send failed (the worker's own send meets the error then, and closes).
            data = &data[send_counted(self.stream, data, self.counters).unwrap_or(0)..];
            if data.is_empty() {
                return;
            }
        }
        self.state.out.push(data, self.pool, self.counters);
        if self.state.flags.has(Flags::SEALED) {
            self.count_unsealed(data.len());
        }
    }

    /// Queues what `fill` appends to the output buffer it is handed (after what is queued
    /// already): for a message serialised in place rather than built elsewhere and copied.
    #[inline]
    pub(crate) fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        if self.state.flags.has(Flags::ABORT) {
            return;
        }
        let before = self.state.out.prepare(self.pool, self.counters);
        fill(&mut self.state.out.buf);
        let written = self.state.out.buf.len() - before;
        if self.state.out.pending() == 0 {
            // Nothing was written and nothing is queued: an idle connection holds no buffer.
            self.state.out.discard(self.pool, self.counters);
        } else if self.state.flags.has(Flags::SEALED) {
            self.count_unsealed(written);
        }
    }

    #[cold]
    fn count_unsealed(&mut self, len: usize) {
        match u32::try_from(self.state.unsealed as usize + len) {
            Ok(unsealed) => self.state.unsealed = unsealed,
            Err(_) => {
                // 4 GiB written in one handler call, before any of it could be sealed.
                log::warn!("{:?}: 4 GiB of output written in one go; the connection is reset", self.id);
                self.state.out.discard(self.pool, self.counters);
                self.state.unsealed = 0;
                self.state.flags.set(Flags::ABORT);
            }
        }
    }

    /// One non-blocking send of pending output, now rather than when the handler returns (for
    /// a producer deciding whether the peer keeps up). Errors are left for the worker's own
    /// send to meet and report.
    pub(crate) fn flush(&mut self) {
        let _ = send_queued(self.stream, self.state, self.pool, self.counters);
    }

    /// From now on what handlers write is plaintext for a layer to seal (see
    /// `Service::seal`): none of it goes on the wire before [`seal_with`](Conn::seal_with).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn seal_output(&mut self) {
        self.state.flags.set(Flags::SEALED);
    }

    /// Queues bytes that are already fit for the wire (a TLS handshake record) ahead of any
    /// plaintext still waiting for its seal.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn write_sealed(&mut self, data: &[u8]) {
        let unsealed = self.state.unsealed as usize;
        if unsealed == 0 {
            self.state.out.push(data, self.pool, self.counters);
        } else {
            let at = self.state.out.buf.len() - unsealed;
            self.state.out.buf.splice(at..at, data.iter().copied());
        }
    }

    /// Replaces the plaintext written since the last seal with what `seal` appends for it,
    /// moving the plaintext aside first (into `scratch`, or a pooled buffer when it is larger).
    /// Returns `seal`'s error, with the plaintext dropped: the connection cannot go on.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn seal_with<E>(
        &mut self,
        scratch: &mut [u8],
        seal: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let unsealed = std::mem::take(&mut self.state.unsealed) as usize;
        if unsealed == 0 {
            return Ok(());
        }
        let out = &mut self.state.out;
        let start = out.buf.len() - unsealed;
        if unsealed <= scratch.len() {
            scratch[..unsealed].copy_from_slice(&out.buf[start..]);
            out.buf.truncate(start);
            seal(&scratch[..unsealed], &mut out.buf)
        } else {
            let mut plaintext = self.pool.take(self.counters);
            plaintext.extend_from_slice(&out.buf[start..]);
            out.buf.truncate(start);
            let sealed = seal(&plaintext, &mut out.buf);
            self.pool.give(&mut plaintext, self.counters);
            sealed
        }
    }

    /// A buffer from the worker's pool, for input a layer keeps between calls (TLS's plaintext
    /// that the protocol inside has not taken yet). Give it back with
    /// [`give_buffer`](Conn::give_buffer).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn take_buffer(&mut self) -> Vec<u8> {
        self.pool.take(self.counters)
    }

    /// Returns a buffer from [`take_buffer`](Conn::take_buffer); leaves an unallocated Vec.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn give_buffer(&mut self, buf: &mut Vec<u8>) {
        self.pool.give(buf, self.counters);
    }

    /// True while output waits for the peer to make room (EPOLLOUT is armed): what is written
    /// now queues behind it.
    pub(crate) fn is_waiting_for_peer(&self) -> bool {
        self.state.flags.has(Flags::WRITE_ARMED)
    }

    /// Subscribes this connection to `topic` (see `rt::pubsub`); false when it already was.
    pub(crate) fn subscribe(&mut self, topic: &str) -> bool {
        let added = pubsub::subscribe(self.stream.as_raw_fd(), self.id, topic);
        if added {
            self.state.flags.set(Flags::SUBSCRIBED);
            crate::stats::bump(&self.counters.subscriptions, 1);
        }
        added
    }

    /// Ends one subscription; false when there was none.
    pub(crate) fn unsubscribe(&mut self, topic: &str) -> bool {
        let removed = pubsub::unsubscribe(self.stream.as_raw_fd(), self.id, topic);
        if removed {
            lower(&self.counters.subscriptions, 1);
        }
        removed
    }

    /// Ends every subscription of this connection.
    pub(crate) fn unsubscribe_all(&mut self) {
        self.state.end_subscriptions(self.stream.as_raw_fd(), self.id, self.counters);
    }

    /// Queues several slices, in order, as one write.
    pub fn write_vectored(&mut self, parts: &[IoSlice<'_>]) {
        for part in parts {
            self.write(part);
        }
    }

    /// Bytes written but not yet accepted by the kernel.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.state.out.pending()
    }

    /// True when buffered output has reached `max_write_buffer`: reading from this connection
    /// is paused, and a handler producing more per input (pipelined requests) should stop
    /// consuming until the peer catches up; what it leaves is offered again then.
    #[inline]
    pub fn is_backpressured(&self) -> bool {
        self.state.out.pending() >= self.max_write_buffer
    }

    /// Closes the connection once pending output is flushed; no more input is delivered.
    pub fn close(&mut self) {
        self.state.flags.set(Flags::CLOSE);
    }

    /// Closes once pending output is flushed, as [`close`](Conn::close), for an answer sent
    /// before the peer finished sending (a refusal in the middle of an upload): closing a socket
    /// with input still arriving makes the kernel reset the connection, and the peer often
    /// reads the reset instead of the answer. So the write side closes first (the peer reads
    /// the answer and then the end of stream), and what still arrives is read and dropped until
    /// the peer closes too, is quiet for 5 s, or 30 s have passed (nginx's `lingering_close`).
    /// [`Stats::lingering`] counts such sockets. `close` lingers by itself when it knows of
    /// unread input.
    pub fn close_lingering(&mut self) {
        self.state.flags.set(Flags::CLOSE | Flags::LINGER);
    }

    /// Resets the connection (RST) at once, dropping pending output.
    pub fn abort(&mut self) {
        self.state.flags.set(Flags::ABORT);
    }

    /// Sends FIN once pending output is flushed; input keeps arriving until the peer closes.
    pub fn shutdown_write(&mut self) {
        self.state.flags.set(Flags::SHUTDOWN_WRITE);
    }

    /// Asks for [`Handler::on_write`](crate::Handler::on_write) as soon as the output queue is
    /// empty: right after this wake-up's send if everything fits in the socket, otherwise when
    /// the backlog has drained. A producer streaming a large body calls this after each chunk
    /// it writes, and gets asked for the next one exactly when the peer can take it.
    pub fn want_write(&mut self) {
        self.state.flags.set(Flags::WANT_WRITE);
    }

    /// True once the server has begun shutting down (draining): the connection is asked to
    /// finish what it is doing and close, by the shutdown deadline at the latest.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.state.flags.has(Flags::SHUTTING_DOWN)
    }

    /// True once [`close`](Conn::close) or [`abort`](Conn::abort) was called.
    pub fn is_closing(&self) -> bool {
        self.state.flags.has(Flags::CLOSE | Flags::ABORT)
    }

    /// The remote address: the client's as a PROXY protocol header gave it on a listener that
    /// takes one, the socket's otherwise (a system call; cache it in the session if you need it
    /// often).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        if self.state.flags.has(Flags::PEER_TOLD)
            && let Some(told) = self.told_peers.get(&self.stream.as_raw_fd())
        {
            return Ok(*told);
        }
        self.stream.peer_addr()
    }

    /// Makes `peer` the address [`peer_addr`](Conn::peer_addr) reports from now on: a layer in
    /// front of the protocol (a PROXY protocol header) knows the real client better than the
    /// socket does.
    pub(crate) fn tell_peer_addr(&mut self, peer: SocketAddr) {
        self.told_peers.insert(self.stream.as_raw_fd(), peer);
        self.state.flags.set(Flags::PEER_TOLD);
    }

    /// The local address the connection arrived on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Arms this connection's timer: [`Handler::on_timer`](crate::Handler::on_timer) runs once,
    /// `after` from now (millisecond resolution, at most 49 days), unless set again or
    /// cancelled first. Setting it again replaces the deadline.
    pub fn set_timer(&mut self, after: Duration) {
        self.state.timer.request = TimerRequest::after(after);
    }

    /// Disarms the timer, if armed.
    pub fn cancel_timer(&mut self) {
        self.state.timer.request = TimerRequest::Cancel;
    }

    /// This connection's id, stable for its life and never reused while the server runs.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The counters of all workers, summed (a few relaxed atomic loads per worker).
    pub fn server_stats(&self) -> Stats {
        self.workers.stats()
    }
}

/// One non-blocking send of what `out` holds; what the kernel takes is consumed from it. A full
/// socket is not an error: the rest waits for room. The runtime's one send loop.
pub(crate) fn send_queued(
    stream: &Stream,
    state: &mut ConnState,
    pool: &mut BufPool,
    counters: &Counters,
) -> io::Result<()> {
    let sendable = state.sendable();
    if sendable == 0 {
        return Ok(());
    }
    let sent = send_counted(stream, &state.out.unsent()[..sendable], counters)?;
    state.out.consume(sent, pool, counters);
    Ok(())
}

/// One non-blocking send of `data`, again if a signal interrupted it: how much the kernel
/// took (0 when the socket is full), counted in `bytes_out`.
#[inline]
fn send_counted(stream: &Stream, data: &[u8], counters: &Counters) -> io::Result<usize> {
    loop {
        match stream.send(data) {
            Ok(n) => {
                crate::stats::bump(&counters.bytes_out, n as u64);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `write!(conn, ...)` formats straight into the output queue.
impl io::Write for Conn<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Conn::write(self, data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
