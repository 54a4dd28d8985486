//! The stream path: a TCP connection from accept to close. Each wake-up reads (within a budget,
//! into the scratch buffer first), hands the input to the session, sends once, (dis)arms
//! `EPOLLOUT`, applies the timer and close requests, and queues a retry when there is more.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::{EventLoop, Service, guarded};
use crate::rt::buf::POOL_BUFFER_SIZE;
use crate::rt::config::Limits;
use crate::rt::conn::{CloseReason, Conn, ConnState, Flags, send_queued};
use crate::rt::core::{Core, SCRATCH_SIZE};
use crate::rt::time::Stamp;
use crate::rt::token::{ConnId, Kind, Token};
use crate::rt::wheel::{EntryId, TimerRequest};
use crate::stats::{bump, lower};
use crate::sys::{Interest, Stream};

/// Kept input grows once less than this is free behind it, so a recv is never tiny.
const MIN_READ_ROOM: usize = 4 << 10;

/// One connection's entry in the session table.
pub(super) struct Connection<St> {
    pub(super) session: St,
    pub(super) stream: Stream,
    pub(super) id: ConnId,
    /// The low 32 bits of the bytes the peer had acknowledged at the last look, while output
    /// waits for it (see `check_send_progress`).
    pub(super) acked_mark: u32,
    /// When its peer last sent something (or it was accepted): `idle_timeout` counts from here.
    pub(super) last_active: Stamp,
    /// The runtime's own timer (the session's is in `state`): the looks at the peer's progress
    /// while output waits for it, the quiet limit while lingering.
    pub(super) watch: Option<EntryId>,
    /// Unconsumed input; unallocated while there is none.
    pub(super) input: Vec<u8>,
    pub(super) state: ConnState,
}

/// What woke a connection up.
#[derive(Clone, Copy, Debug)]
pub(super) enum Wake {
    Connected,
    Readable {
        stops_short: bool,
    },
    Writable,
    Retry,
    Timer,
    /// Topic deliveries (or a tick) wrote to it: send them.
    Delivered,
    /// The server is stopping: the connection closes once its output is flushed.
    Shutdown,
    /// The runtime's own timer fired (`watch`).
    Watch,
}

impl<S: Service> EventLoop<S> {
    /// Takes an accepted connection on listener `listener` (its place under `max_connections`
    /// already taken): registers it, builds its session and runs `on_connect`.
    pub(super) fn open(&mut self, stream: Stream, listener: usize, client_speaks_first: bool) {
        let fd = stream.as_raw_fd();
        if let Err(e) = stream.set_nodelay() {
            log::debug!("TCP_NODELAY on fd {fd}: {e}");
        }
        let (id, generation) = self.core.next_session();
        let token = Token::new(Kind::Connection, fd as usize, generation);
        if let Err(e) = self.core.epoll.add(fd, token.to_epoll(), Interest::READABLE) {
            log::warn!("worker {}: cannot register accepted connection: {e}", self.core.index);
            self.core.workers.connections.release();
            return;
        }
        let mut state = ConnState::default();
        if client_speaks_first {
            // Accepted after its first bytes arrived (TCP_DEFER_ACCEPT): read them now rather
            // than wait a loop turn for the edge that reports them.
            state.flags.set(Flags::READ_READY);
        }
        let session = {
            let service = &*self.service;
            let mut conn = self.core.conn(&stream, &mut state, id);
            guarded(conn.counters, id, "new session", || service.open(&mut conn, listener))
        };
        let counters = self.core.counters();
        bump(&counters.accepted, 1);
        let Some(session) = session else {
            state.end_subscriptions(fd, id, &self.core.own.counters);
            state.out.discard(&mut self.core.pool, &self.core.own.counters);
            let _ = stream.set_reset_on_close();
            bump(&self.core.own.counters.closed, 1);
            bump(&self.core.own.counters.errors, 1);
            self.core.workers.connections.release();
            return;
        };
        let connection = Connection {
            session,
            stream,
            id,
            acked_mark: 0,
            last_active: self.core.clock.stamp(),
            watch: None,
            input: Vec::new(),
            state,
        };
        if let Some(stale) = self.connections.insert(fd, connection) {
            log::error!("worker {}: fd {fd} was still in the session table; dropped the stale entry", self.core.index);
            self.forget_stale(stale);
        }
        self.wake(token, Wake::Connected);
    }

    /// Runs one connection after an event, and closes it if that is the outcome.
    pub(super) fn wake(&mut self, token: Token, why: Wake) {
        let fd = token.index() as RawFd;
        let Some(connection) = self.connections.get_mut(fd) else { return };
        if connection.id.generation() != token.generation() {
            return;
        }
        if let Some(reason) = connection.run(&mut self.core, &*self.service, token, why) {
            self.close(fd, reason);
        }
    }

    /// Ends a connection: its session (see [`end_session`](Self::end_session)), then the
    /// socket, at once or after lingering (see `linger.rs`) when the peer may still be sending.
    pub(super) fn close(&mut self, fd: RawFd, reason: CloseReason) {
        let Some(connection) = self.connections.get_mut(fd) else { return };
        if !connection.state.flags.has(Flags::LINGERING) {
            let linger = reason == CloseReason::Closed && connection.may_reset_peer();
            self.end_session(fd, reason);
            let Some(connection) = self.connections.get_mut(fd) else { return };
            if linger && connection.begin_linger(&mut self.core) {
                return;
            }
        }
        self.release_socket(fd);
    }

    /// A connection's session ends: its `on_close` (unless it panicked), its subscriptions, its
    /// timer and buffers, its place in the counters. The socket stays open for the caller.
    fn end_session(&mut self, fd: RawFd, reason: CloseReason) {
        let Some(connection) = self.connections.get_mut(fd) else { return };
        // Input may still be queued (we stopped reading at close()): see discard_unread_input.
        let unread = connection.state.flags.has(Flags::READ_READY | Flags::READ_TO_EAGAIN);
        // A peer that takes nothing gets a reset too: a plain close would leave the kernel
        // holding the unsent output, probing the peer's closed window for minutes.
        if matches!(reason, CloseReason::Aborted | CloseReason::HandlerPanicked | CloseReason::SendTimeout)
            && let Err(e) = connection.stream.set_reset_on_close()
        {
            log::debug!("SO_LINGER on fd {fd}: {e}");
        }
        let Connection { session, stream, id, state, .. } = connection;
        if !state.flags.has(Flags::PANICKED) {
            let service = &*self.service;
            let mut conn = self.core.conn(stream, state, *id);
            guarded(conn.counters, *id, "on_close", || service.on_close(session, &mut conn, reason));
        }
        // Its subscriptions end with it, whatever its session did (or failed to do) on close,
        // and its timer goes with it (a request made in on_close is not applied).
        connection.give_back(&mut self.core);
        if unread && matches!(reason, CloseReason::Shutdown | CloseReason::Timeout) {
            discard_unread_input(&connection.stream, &mut self.core.scratch);
        }
        let counters = &self.core.own.counters;
        // Count before the socket closes, so a peer that sees the close and asks again (the
        // stats page) finds it counted.
        bump(&counters.closed, 1);
        if reason.is_error() {
            bump(&counters.errors, 1);
        }
        if matches!(reason, CloseReason::Timeout | CloseReason::SendTimeout) {
            bump(&counters.timeouts, 1);
        }
    }

    /// Closes a connection's socket, its session already ended, and frees its place.
    fn release_socket(&mut self, fd: RawFd) {
        let Some(mut connection) = self.connections.remove(fd) else { return };
        self.let_go(&mut connection);
        let Connection { session, stream, id, .. } = connection;
        // The session's own Drop is user code too: a panic there must not take the worker down.
        guarded(self.core.counters(), id, "drop", move || drop(session));
        drop(stream);
        self.connection_closed();
    }
}

impl<S: Service> EventLoop<S> {
    /// What a connection's entry still holds once it leaves the table: its lingering count, its
    /// timers, and (as a backstop: its session has ended) any output or subscription.
    fn let_go(&mut self, connection: &mut Connection<S::Stream>) {
        if connection.state.flags.has(Flags::LINGERING) {
            lower(&self.core.own.counters.lingering, 1);
        }
        connection.give_back(&mut self.core);
        self.core.timers.disarm_entry(&mut connection.watch);
    }

    /// An entry the table still held for an fd the kernel has just handed out again (a bug in
    /// the bookkeeping): everything it held is let go, and its socket forgotten rather than
    /// closed, since the fd is the new connection's now.
    fn forget_stale(&mut self, mut stale: Connection<S::Stream>) {
        self.let_go(&mut stale);
        self.core.workers.connections.release();
        let Connection { session, stream, id, .. } = stale;
        stream.forget();
        guarded(self.core.counters(), id, "drop", move || drop(session));
    }
}

/// Reads and drops whatever the peer sent that nobody will read: closing a socket with unread
/// input makes the kernel send RST and discard the response still queued for the peer. Bounded,
/// so a peer that keeps sending cannot hold the worker; it gets its reset.
fn discard_unread_input(stream: &Stream, scratch: &mut [u8]) {
    const MAX_DISCARD_READS: usize = 16;
    for _ in 0..MAX_DISCARD_READS {
        match stream.recv(scratch) {
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}

impl<St> Connection<St> {
    /// Gives back what the session held of the worker: its subscriptions, its timer (and any
    /// request for it), its buffers.
    fn give_back(&mut self, core: &mut Core) {
        let counters = &core.own.counters;
        self.state.end_subscriptions(self.stream.as_raw_fd(), self.id, counters);
        core.timers.disarm(&mut self.state.timer);
        self.state.timer.request = TimerRequest::Unchanged;
        self.state.out.discard(&mut core.pool, counters);
        self.state.unsealed = 0;
        if self.state.flags.has(Flags::PEER_TOLD) {
            core.told_peers.remove(&self.stream.as_raw_fd());
            self.state.flags.clear(Flags::PEER_TOLD);
        }
        core.pool.give(&mut self.input, counters);
    }

    fn can_read(&self, limits: &Limits) -> bool {
        !self.state.flags.has(Flags::INPUT_ENDED | Flags::READ_CLOSED)
            && self.state.out.pending() < limits.max_write_buffer
    }

    /// Calls a session handler that takes only the connection; a panic marks the session.
    fn call<S: Service<Stream = St>>(
        &mut self,
        core: &mut Core,
        service: &S,
        what: &str,
        handler: fn(&S, &mut St, &mut Conn<'_>),
    ) {
        let Connection { session, stream, id, state, .. } = self;
        let mut conn = core.conn(stream, state, *id);
        if guarded(conn.counters, *id, what, || handler(service, session, &mut conn)).is_none() {
            self.state.flags.set(Flags::PANICKED);
        }
    }

    /// Reads (if there is something to read and room to answer), hands input to the session,
    /// sends once, and reports whether the connection is done.
    fn run<S: Service<Stream = St>>(
        &mut self,
        core: &mut Core,
        service: &S,
        token: Token,
        why: Wake,
    ) -> Option<CloseReason> {
        if self.state.flags.has(Flags::LINGERING) {
            return self.linger(core, token, why);
        }
        let flags = &mut self.state.flags;
        match why {
            Wake::Connected => self.call(core, service, "on_connect", S::on_connect),
            Wake::Readable { stops_short } => {
                flags.set(Flags::READ_READY);
                if stops_short {
                    flags.set(Flags::READ_TO_EAGAIN);
                }
            }
            Wake::Writable => {}
            Wake::Retry => flags.clear(Flags::QUEUED),
            Wake::Timer => self.call(core, service, "on_timer", S::on_timer),
            Wake::Delivered => flags.clear(Flags::DELIVERED),
            Wake::Shutdown => self.call(core, service, "on_shutdown", S::on_shutdown),
            Wake::Watch if self.state.flags.has(Flags::WRITE_ARMED) => {
                if let Some(reason) = self.check_send_progress(core, token) {
                    return Some(reason);
                }
            }
            // Output stopped waiting since the look was set: nothing to look at.
            Wake::Watch => {}
        }
        if self.state.flags.has(Flags::REDELIVER) && self.can_read(&core.limits) {
            // The session stopped at our own backlog with input in hand; the backlog has
            // drained, so hand the kept input back before reading more.
            self.state.flags.clear(Flags::REDELIVER);
            self.feed_buffered(core, service);
        }
        if self.state.flags.has(Flags::READ_READY)
            && self.can_read(&core.limits)
            && let Some(reason) = self.read(core, service)
        {
            return Some(reason);
        }
        self.settle(core, service, token)
    }

    fn read<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S) -> Option<CloseReason> {
        let mut budget = core.limits.read_budget;
        while budget > 0 && self.can_read(&core.limits) {
            let buffered = self.input.capacity() > 0;
            let max_read_buffer = core.limits.max_read_buffer;
            let result = if buffered {
                if self.input.len() >= max_read_buffer {
                    return Some(CloseReason::InputOverflow);
                }
                if self.input.capacity() - self.input.len() < MIN_READ_ROOM {
                    // Double: a message that spans many reads costs log(n) copies, not n.
                    self.input.reserve(self.input.len().max(POOL_BUFFER_SIZE));
                }
                let room =
                    (self.input.capacity() - self.input.len()).min(max_read_buffer - self.input.len()).min(budget);
                self.stream.recv_spare(&mut self.input, room).map(|n| (n, room))
            } else {
                let room = SCRATCH_SIZE.min(budget);
                self.stream.recv(&mut core.scratch[..room]).map(|n| (n, room))
            };
            let (n, requested) = match result {
                Ok((0, _)) => {
                    self.state.flags.set(Flags::READ_CLOSED);
                    self.state.flags.clear(Flags::READ_READY);
                    return None;
                }
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.state.flags.clear(Flags::READ_READY | Flags::READ_TO_EAGAIN);
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(CloseReason::from_io(&e)),
            };
            bump(&core.counters().bytes_in, n as u64);
            // Idle means no input: timers, deliveries and retries do not count.
            self.last_active = core.clock.stamp();
            budget -= n;
            if buffered {
                self.feed_buffered(core, service);
            } else {
                self.feed_scratch(core, service, n);
            }
            if n < requested && !self.state.flags.has(Flags::READ_TO_EAGAIN) {
                // A short read emptied the socket's queue; anything arriving later raises a
                // new edge, so the EAGAIN-confirming recv would be a wasted system call. Not so
                // after a FIN or urgent data, whose edge already woke us (see
                // `read_may_stop_short`): then keep reading until recv says so.
                self.state.flags.clear(Flags::READ_READY);
                return None;
            }
        }
        None
    }

    /// Calls on_data on `input` until it is consumed, the session stops consuming, or the
    /// connection is closing; returns how much was consumed.
    fn deliver<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S, input: &mut [u8]) -> usize {
        let Connection { session, stream, id, state, .. } = self;
        let max_write_buffer = core.limits.max_write_buffer;
        let mut consumed = 0;
        let timed = core.sample_handler();
        while consumed < input.len() && !state.flags.has(Flags::INPUT_ENDED) {
            let rest = &mut input[consumed..];
            let offered = rest.len();
            let mut conn = core.conn(stream, state, *id);
            match guarded(conn.counters, *id, "on_data", || service.on_data(session, &mut conn, rest)) {
                Some(0) => break,
                Some(n) => consumed += n.min(offered),
                None => state.flags.set(Flags::PANICKED),
            }
        }
        core.handler_done(timed);
        if consumed < input.len() && state.out.pending() >= max_write_buffer {
            // It may have stopped for our backlog rather than for want of bytes (HTTP does,
            // with pipelined requests left): offer the rest again once the backlog drains, since
            // no new bytes may come to trigger it.
            state.flags.set(Flags::REDELIVER);
        }
        consumed
    }

    fn feed_scratch<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S, n: usize) {
        let mut scratch = std::mem::take(&mut core.scratch);
        let consumed = self.deliver(core, service, &mut scratch[..n]);
        if consumed < n && !self.state.flags.has(Flags::INPUT_ENDED) {
            self.input = core.pool.take(&core.own.counters);
            self.input.extend_from_slice(&scratch[consumed..n]);
        }
        core.scratch = scratch;
    }

    fn feed_buffered<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S) {
        let mut input = std::mem::take(&mut self.input);
        let consumed = self.deliver(core, service, &mut input);
        self.input = input;
        if consumed == self.input.len() || self.state.flags.has(Flags::INPUT_ENDED) {
            core.pool.give(&mut self.input, &core.own.counters);
        } else if consumed > 0 {
            self.input.drain(..consumed);
        }
    }

    /// Sends pending output once, (dis)arms EPOLLOUT, tells the session when a backlog has
    /// drained, and applies timer, close and shutdown requests.
    fn settle<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S, token: Token) -> Option<CloseReason> {
        core.timers.apply(&mut self.state.timer, token, &core.clock);
        self.seal(core, service);
        if !self.state.flags.has(Flags::SETTLES_SLOWLY) {
            // The usual end of a wake-up (a request answered, a message echoed): send, and wait
            // for room if the socket took less; one flag test instead of a dozen.
            if self.state.sendable() > 0 {
                if let Err(reason) = self.send(core) {
                    return Some(reason);
                }
                if self.state.sendable() > 0 {
                    return self.arm_write(core, token);
                }
            }
            return None;
        }
        if self.state.flags.has(Flags::PANICKED) {
            return Some(CloseReason::HandlerPanicked);
        }
        if self.state.flags.has(Flags::ABORT) {
            return Some(CloseReason::Aborted);
        }
        let drained = match self.flush(core, token) {
            Ok(drained) => drained,
            Err(reason) => return Some(reason),
        };
        let asked = self.state.out.pending() == 0 && self.state.flags.has(Flags::WANT_WRITE);
        if (drained || asked) && !self.state.flags.has(Flags::CLOSE) {
            self.state.flags.clear(Flags::WANT_WRITE);
            self.call(core, service, "on_write", S::on_write);
            // Its timer request, too, is applied before the connection goes back to the table.
            core.timers.apply(&mut self.state.timer, token, &core.clock);
            self.seal(core, service);
            if self.state.flags.has(Flags::PANICKED) {
                return Some(CloseReason::HandlerPanicked);
            }
            if self.state.flags.has(Flags::ABORT) {
                return Some(CloseReason::Aborted);
            }
            if self.state.sendable() > 0
                && let Err(reason) = self.send(core)
            {
                return Some(reason);
            }
        }
        if self.state.sendable() > 0
            && !self.state.flags.has(Flags::WRITE_ARMED)
            && let Some(reason) = self.arm_write(core, token)
        {
            return Some(reason);
        }
        // Plaintext that can never be sealed (a TLS handshake that failed) does not hold a
        // close up.
        if self.state.sendable() == 0
            && let Some(reason) = self.end_once_flushed()
        {
            return Some(reason);
        }
        // More to read (budget spent, or reading resumed after backpressure), or on_write asked
        // for another call with nothing queued: no epoll edge will come for either, so run
        // again on the next loop turn.
        let wants_read = self.state.flags.has(Flags::READ_READY | Flags::REDELIVER) && self.can_read(&core.limits);
        let wants_write = self.state.flags.has(Flags::WANT_WRITE) && self.state.out.pending() == 0;
        if (wants_read || wants_write) && !self.state.flags.has(Flags::QUEUED) {
            self.state.flags.set(Flags::QUEUED);
            core.retry.push(token);
        }
        None
    }

    /// With nothing left to send: the close or write shutdown the session asked for, or the end
    /// of a connection whose peer has finished.
    fn end_once_flushed(&mut self) -> Option<CloseReason> {
        let flags = self.state.flags;
        if flags.has(Flags::CLOSE) {
            return Some(if flags.has(Flags::SHUTTING_DOWN) { CloseReason::Shutdown } else { CloseReason::Closed });
        }
        if flags.has(Flags::READ_CLOSED) && !flags.has(Flags::WANT_WRITE) {
            return Some(CloseReason::PeerClosed);
        }
        if flags.has(Flags::SHUTDOWN_WRITE) && !flags.has(Flags::WRITE_SHUT) {
            if let Err(e) = self.stream.shutdown_write() {
                return Some(CloseReason::from_io(&e));
            }
            self.state.flags.set(Flags::WRITE_SHUT);
        }
        None
    }

    /// Has the session's layer seal the plaintext written since the last seal (TLS), before
    /// anything more is sent.
    #[inline(always)]
    fn seal<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S) {
        // Checked here, called apart: plain connections (most) pay one compare per wake-up.
        if self.state.unsealed != 0 {
            self.seal_unsealed(core, service);
        }
    }

    #[inline(never)]
    fn seal_unsealed<S: Service<Stream = St>>(&mut self, core: &mut Core, service: &S) {
        let mut scratch = std::mem::take(&mut core.scratch);
        let Connection { session, stream, id, state, .. } = self;
        let mut conn = core.conn(stream, state, *id);
        let sealed = guarded(conn.counters, *id, "seal", || service.seal(session, &mut conn, &mut scratch));
        core.scratch = scratch;
        if sealed.is_none() {
            self.state.flags.set(Flags::PANICKED);
        }
    }

    /// One send of the pending output.
    pub(super) fn send(&mut self, core: &mut Core) -> Result<(), CloseReason> {
        send_queued(&self.stream, &mut self.state, &mut core.pool, &core.own.counters)
            .map_err(|e| CloseReason::from_io(&e))
    }
}

#[cfg(test)]
mod tests {
    /// Every fd up to the largest costs one slot of the session table, idle or not: the slot
    /// must stay small for the idle-connection memory budget (256 bytes per connection with the
    /// table's growth slack; `bench/run.py` measures the resident total).
    #[test]
    fn a_session_table_slot_stays_small() {
        let slot = std::mem::size_of::<Option<super::Connection<()>>>();
        assert!(slot <= 104, "an empty session's slot grew to {slot} bytes");
        let http = std::mem::size_of::<crate::proto::http::Connection>();
        assert!(http <= 48, "HTTP's per-connection state grew to {http} bytes");
    }
}
