//! One worker thread's event loop ([`EventLoop`]): its epoll instance, its listeners and
//! sockets, its sessions. Each turn waits for events, runs what they are for (connections,
//! accepts, datagrams, the tick), then due timers, topic mail and UDP replies. It calls the
//! sessions through [`Service`], the one trait the layers above implement: the loop is
//! generic over it, so every call is static (no vtable on the hot path), and it knows no
//! protocol (a driver picks one per listener and feeds its machine).
//!
//! The loop itself is here; each path has a file: `stream.rs` (a connection's wake-ups),
//! `accept.rs`, `datagram.rs` (UDP sockets, the packet ring, peers) and `tick.rs`.

mod accept;
mod backpressure;
mod datagram;
mod demux;
mod linger;
mod stream;
mod tick;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use accept::Listeners;
pub(crate) use accept::StreamListener;
use datagram::Datagrams;
use stream::{Connection, Wake};
pub(crate) use tick::Tick;
pub use tick::TickInfo;
use tick::Ticker;

use crate::rt::conn::Conn;
use crate::rt::conn::{CloseReason, Flags};
use crate::rt::core::Core;
use crate::rt::demux::DemuxIo;
use crate::rt::mailbox::{Letter, Mailbox};
use crate::rt::peer::Peer;
use crate::rt::pubsub;
use crate::rt::table::SessionTable;
use crate::rt::time::IdleSweep;
use crate::rt::token::{ConnId, Kind, Token};
use crate::stats::{Counters, bump};
use crate::sys::{Events, Interest, PacketRing, UdpSocket};

/// A server's sessions: one [`Stream`](Service::Stream) per TCP connection, one
/// [`Peer`](Service::Peer) per UDP remote address, and what its workers do on each tick.
///
/// Every call gets the service itself (`&self`: its configuration) and the session. A panic in
/// any call resets that session only (its `on_close` does not run after a panic in another call).
pub(crate) trait Service: Send + Sync + Sized + 'static {
    /// A TCP connection's session.
    type Stream;
    /// A UDP peer's session.
    type Peer;
    /// The per-worker machine of a UDP listener whose datagrams it takes itself, from any
    /// source (see `rt::demux`); `Infallible` for a service without any.
    type Demux;

    /// Refuses, with the reason, a listener (by its index in the listeners the server was
    /// started with) this service cannot serve. Asked once every address is known to be
    /// usable, before any worker starts.
    fn check_listener(&self, listener: usize) -> Result<(), String> {
        let _ = listener;
        Ok(())
    }

    /// Builds the session of a connection accepted on listener `listener` (its index in the
    /// listeners the server was started with).
    fn open(&self, conn: &mut Conn<'_>, listener: usize) -> Self::Stream;
    /// The session exists; the connection is registered and may be written to.
    fn on_connect(&self, session: &mut Self::Stream, conn: &mut Conn<'_>);
    /// Input arrived: everything not yet consumed. Returns how much was consumed; the rest is
    /// kept and offered again with the next bytes. The input is the runtime's own buffer, lent
    /// mutably so a layer can transform it in place (TLS decrypts records where they lie); what
    /// is consumed may be overwritten, what is not must be left as it came.
    fn on_data(&self, session: &mut Self::Stream, conn: &mut Conn<'_>, input: &mut [u8]) -> usize;
    /// The connection's output is sealed (see `Conn::seal_output`) and plaintext was written
    /// since the last seal: turn it into what goes on the wire before it is sent. `scratch` is
    /// the worker's, free for the call.
    fn seal(&self, session: &mut Self::Stream, conn: &mut Conn<'_>, scratch: &mut [u8]) {
        let _ = (session, conn, scratch);
    }
    /// The output queue is empty again (after backpressure, or as `want_write` asked).
    fn on_write(&self, session: &mut Self::Stream, conn: &mut Conn<'_>);
    /// The connection's timer fired.
    fn on_timer(&self, session: &mut Self::Stream, conn: &mut Conn<'_>);
    /// The server is stopping: the connection closes once its output is flushed.
    fn on_shutdown(&self, session: &mut Self::Stream, conn: &mut Conn<'_>);
    /// The connection ended; writes are discarded.
    fn on_close(&self, session: &mut Self::Stream, conn: &mut Conn<'_>, reason: CloseReason);
    /// A topic publication for this subscriber (see `rt::pubsub`): the frame as published.
    fn on_delivery(&self, session: &mut Self::Stream, conn: &mut Conn<'_>, frame: &[u8]);

    /// Builds the session of a UDP peer on its first datagram; `None` drops the datagram.
    fn open_peer(&self, peer: &mut Peer<'_>) -> Option<Self::Peer>;
    /// A datagram from the session's peer.
    fn on_datagram(&self, session: &mut Self::Peer, peer: &mut Peer<'_>, packet: &[u8]);
    /// The peer's timer fired.
    fn on_peer_timer(&self, session: &mut Self::Peer, peer: &mut Peer<'_>);
    /// The peer's session ended; sends are discarded.
    fn on_peer_close(&self, session: &mut Self::Peer, peer: &mut Peer<'_>, reason: CloseReason);

    /// The machine that takes every datagram of UDP listener `listener` (bound at `local`) on
    /// one worker, or `None` for a listener of peers (a session per remote address).
    fn open_demux(&self, listener: usize, local: Option<SocketAddr>) -> Option<Self::Demux>;
    /// A datagram for a demultiplexed listener, lent mutably so the machine can decrypt it where
    /// it lies.
    fn on_demux_datagram(&self, demux: &mut Self::Demux, io: &mut DemuxIo<'_>, from: SocketAddr, packet: &mut [u8]);
    /// Runs every `DEMUX_POLL_MS` on each worker with demultiplexed listeners, and after each
    /// batch of their datagrams: timers, resends, what queued up.
    fn on_demux_poll(&self, demux: &mut Self::Demux, io: &mut DemuxIo<'_>);
    /// The server is stopping: the machine's last words (its sessions' disconnects).
    fn on_demux_shutdown(&self, demux: &mut Self::Demux, io: &mut DemuxIo<'_>);

    /// Runs on every worker at the configured tick cadence.
    fn on_tick(&self, tick: &mut Tick<'_, Self::Stream, Self::Peer, Self::Demux>);

    /// The UDP datagram in a frame the packet ring captured (`pfring`), as a socket would have
    /// delivered it; `verify`: the kernel did not vouch for its checksum, so check it. `None`
    /// drops the frame (counted). Link-layer framing is a protocol's business, so the runtime
    /// asks rather than parses.
    fn ring_datagram<'f>(&self, frame: &'f [u8], verify: bool) -> Option<RingDatagram<'f>> {
        let _ = (frame, verify);
        None
    }
}

/// A datagram found in a captured frame: its sender, where it was going, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingDatagram<'f> {
    pub(crate) from: std::net::SocketAddr,
    pub(crate) to: std::net::SocketAddr,
    pub(crate) payload: &'f [u8],
}

/// Ready events taken per epoll_wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Topic deliveries per loop turn (whole publications): a turn of a thousand-subscriber topic
/// takes a few publications, and every connection still gets its turn between them.
const MAIL_BUDGET: usize = 4096;

/// The sockets a worker serves, bound for it before its thread starts.
#[derive(Debug, Default)]
pub(crate) struct WorkerSockets {
    pub(crate) listeners: Vec<StreamListener>,
    pub(crate) udp: Vec<UdpSocket>,
    /// The listener index of each of `udp`.
    pub(crate) udp_listeners: Vec<usize>,
    pub(crate) ring: Option<PacketRing>,
}

pub(crate) struct EventLoop<S: Service> {
    core: Core,
    service: Arc<S>,
    connections: SessionTable<Connection<S::Stream>>,
    listeners: Listeners,
    datagrams: Datagrams<S::Peer, S::Demux>,
    ticker: Option<Ticker>,
    idle_sweep: Option<IdleSweep>,
    /// Set once shutdown has begun: the loop ends then, or when the last connection is gone.
    drain_deadline: Option<u64>,
    closing: Vec<RawFd>,
    /// The mailbox taken from `WorkerShared` (swapped, so both keep their capacity).
    mail: Mailbox,
    /// Connections topic deliveries (or a tick) wrote to in this turn.
    delivered: Vec<Token>,
    /// When each publication handed to a subscriber in this turn was made, timed once they are
    /// sent (`publish_delivery_seconds`).
    published: Vec<Instant>,
}

impl<S: Service> EventLoop<S> {
    pub(crate) fn new(core: Core, sockets: WorkerSockets, service: Arc<S>) -> io::Result<EventLoop<S>> {
        pubsub::attach(&core.workers, &core.own);
        let epoll = &core.epoll;
        epoll.add(core.own.waker.as_raw_fd(), Token::of(Kind::Waker, 0).to_epoll(), Interest::READABLE)?;
        for (i, listener) in sockets.listeners.iter().enumerate() {
            epoll.add(listener.socket.as_raw_fd(), Token::of(Kind::Listener, i).to_epoll(), Interest::SHARED_INPUT)?;
        }
        for (i, socket) in sockets.udp.iter().enumerate() {
            epoll.add(socket.as_raw_fd(), Token::of(Kind::Udp, i).to_epoll(), Interest::SHARED_INPUT)?;
        }
        if let Some(ring) = &sockets.ring {
            epoll.add(ring.as_raw_fd(), Token::of(Kind::Ring, 0).to_epoll(), Interest::READABLE)?;
        }
        let ticker = match core.limits.tick {
            Some(interval) => {
                let ticker = Ticker::new(interval)?;
                epoll.add(ticker.fd.as_raw_fd(), Token::of(Kind::Tick, 0).to_epoll(), Interest::READABLE)?;
                Some(ticker)
            }
            None => None,
        };
        let mut event_loop = EventLoop {
            connections: SessionTable::new(core.limits.fd_cache),
            listeners: Listeners::new(sockets.listeners),
            datagrams: Datagrams::new(sockets.udp, &sockets.udp_listeners, sockets.ring, &core, &*service),
            idle_sweep: IdleSweep::new(core.limits.idle_timeout),
            core,
            service,
            ticker,
            drain_deadline: None,
            closing: Vec::new(),
            mail: Mailbox::default(),
            delivered: Vec::new(),
            published: Vec::new(),
        };
        event_loop.arm_demux_polls();
        Ok(event_loop)
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        let mut retrying = Vec::new();
        let mut turn_started = None;
        loop {
            self.core.clock.refresh();
            if let Some(started) = turn_started.take() {
                self.core.own.turns.record(self.core.clock.now_us().saturating_sub(started) * 1000);
            }
            let timeout_ms = self.next_timeout_ms();
            if let Err(e) = self.core.epoll.wait_ms(&mut events, timeout_ms) {
                log::error!("worker {}: epoll_wait failed, stopping: {e}", self.core.index);
                break;
            }
            self.core.clock.refresh();
            turn_started = Some(self.core.clock.now_us());
            for i in 0..events.len() {
                let event = events.get(i);
                let token = Token::from_epoll(event.token);
                match token.kind() {
                    Kind::Connection if event.is_readable() => {
                        self.wake(token, Wake::Readable { stops_short: event.read_may_stop_short() });
                    }
                    Kind::Connection if event.is_writable() => self.wake(token, Wake::Writable),
                    Kind::Connection => {}
                    _ => self.own_fd_ready(token),
                }
            }
            if !self.core.retry.is_empty() {
                std::mem::swap(&mut self.core.retry, &mut retrying);
                for token in retrying.drain(..) {
                    match token.kind() {
                        Kind::Connection => self.wake(token, Wake::Retry),
                        _ => self.own_fd_ready(token),
                    }
                }
            }
            self.run_timers();
            // A gauge, published once a turn rather than on every arm and disarm.
            self.core.own.counters.timers.store(self.core.timers.len() as u64, Ordering::Relaxed);
            self.deliver_mail();
            self.flush_udp();
            if self.drain_deadline.is_none() && self.core.workers.stopping.load(Ordering::Relaxed) {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.drain_deadline
                && (self.connections.is_empty() || self.core.clock.now() >= deadline)
            {
                break;
            }
        }
        // Also reached when epoll_wait failed: stop accepting before closing what is left.
        self.listeners.close(&self.core.epoll);
        self.close_all(CloseReason::Shutdown);
    }

    /// epoll_wait's timeout in milliseconds, -1 for none: computed every loop turn, so in the
    /// clock's own unit with no `Duration` in between.
    fn next_timeout_ms(&self) -> i32 {
        // Mail this worker's own handlers posted after its delivery pass needs no wake-up
        // (see rt::pubsub), so it must not wait in epoll_wait either.
        if !self.core.retry.is_empty() || self.mail.has_unread() || self.core.own.has_mail.load(Ordering::Relaxed) {
            return 0;
        }
        let deadlines = [
            self.core.timers.next_deadline(),
            self.listeners.paused_until,
            self.idle_sweep.as_ref().map(IdleSweep::next_deadline),
            self.drain_deadline,
        ];
        // Runs every loop turn: a fold the compiler unrolls, one conversion at the end.
        let earliest = deadlines.iter().fold(u64::MAX, |earliest, at| earliest.min(at.unwrap_or(u64::MAX)));
        if earliest == u64::MAX {
            return -1;
        }
        self.core.clock.millis_until(earliest).min(i32::MAX as u64) as i32
    }

    /// One of the worker's own fds is ready (or was queued to run again).
    fn own_fd_ready(&mut self, token: Token) {
        match token.kind() {
            Kind::Waker => self.core.own.waker.drain(),
            Kind::Listener => self.accept_from(token.index()),
            Kind::Udp => self.read_udp(token.index()),
            Kind::Tick => self.run_tick(),
            Kind::Ring => self.read_ring(),
            Kind::Connection | Kind::Peer => {}
        }
    }

    /// Fires the timers that are due, resumes accepting after a back-off, and sweeps idle
    /// connections and peers.
    fn run_timers(&mut self) {
        while let Some((token, fired)) = self.core.timers.pop_due(self.core.clock.now()) {
            match token.kind() {
                Kind::Connection => {
                    let current = self.connections.get_mut(token.index() as RawFd);
                    let Some(connection) = current.filter(|c| c.id.generation() == token.generation()) else {
                        continue;
                    };
                    if connection.state.timer.fired(fired) {
                        self.wake(token, Wake::Timer);
                    } else if connection.watch == Some(fired) {
                        connection.watch = None;
                        self.wake(token, Wake::Watch);
                    }
                }
                Kind::Peer => self.peer_timer(token, fired),
                Kind::Udp => self.demux_timer(token.index(), fired),
                _ => {}
            }
        }
        self.settle_peers();
        self.resume_accepting();
        if let Some(idle) = self.idle_sweep.as_mut().and_then(|sweep| sweep.due(&self.core.clock)) {
            let idle_connections = self.connections.iter_mut().filter(|(_, c)| idle(c.last_active));
            self.closing.extend(idle_connections.map(|(fd, _)| fd));
            for fd in std::mem::take(&mut self.closing) {
                self.close(fd, CloseReason::Timeout);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        self.drain_deadline = Some(self.core.clock.deadline(self.core.limits.shutdown_timeout));
        // Closing the listeners stops new connections at once; the kernel resets any still
        // queued on this worker's socket.
        self.listeners.close(&self.core.epoll);
        self.shut_demuxes_down();
        self.closing.extend(self.connections.iter_mut().map(|(fd, c)| {
            // The service decides how each connection ends (a raw one closes once flushed; an
            // HTTP one answers the request it is in, or its next, with `Connection: close`);
            // whatever is left at the deadline is closed.
            c.state.flags.set(Flags::SHUTTING_DOWN);
            fd
        }));
        for fd in std::mem::take(&mut self.closing) {
            if let Some(c) = self.connections.get_mut(fd) {
                let token = Token::new(Kind::Connection, fd as usize, c.id.generation());
                self.wake(token, Wake::Shutdown);
            }
        }
    }

    /// Hands the topic publications in this worker's mailbox to their subscribers on this
    /// worker, then sends to every connection written to.
    ///
    /// At most `MAIL_BUDGET` deliveries a turn (whole publications: every subscriber of one gets
    /// it in the same turn), so a burst of mail cannot hold up the worker's connections; the rest
    /// waits for the next turn, before anything newer is taken.
    fn deliver_mail(&mut self) {
        if !self.mail.has_unread() {
            let own = &self.core.own;
            if !own.has_mail.swap(false, Ordering::Acquire) {
                return;
            }
            self.mail.clear();
            std::mem::swap(&mut *own.mailbox.lock().unwrap_or_else(PoisonError::into_inner), &mut self.mail);
        }
        let service = &*self.service;
        let mut deliveries = 0;
        while deliveries < MAIL_BUDGET {
            let Some(Letter { topic, frame, published, last }) = self.mail.next_letter() else { break };
            // The turn's last publication goes straight to each subscriber's socket when it has
            // nothing queued (a game's tick: one publication to a thousand players): no buffer
            // per subscriber, no copy. Earlier ones queue, so several publications in one turn
            // leave in one send, while the pool can lend (it grows to the buffers it keeps, then
            // only recycles them): past that, a subscriber with nothing queued is sent to at once
            // rather than given a buffer that would be allocated on every turn.
            let before = deliveries;
            pubsub::for_each_subscriber(topic, |fd, id| {
                deliveries += 1;
                let Some(c) = self.connections.get_mut(fd).filter(|c| c.id == id) else { return };
                let flags = c.state.flags;
                if (last || !self.core.pool.can_lend(&self.core.own.counters))
                    && c.state.out.pending() == 0
                    && !flags.has(Flags::NOT_SENT_NOW)
                {
                    c.state.flags.set(Flags::SEND_NOW);
                }
                let mut conn = self.core.conn(&c.stream, &mut c.state, c.id);
                service.on_delivery(&mut c.session, &mut conn, frame);
                c.state.flags.clear(Flags::SEND_NOW);
                // Sent whole, and nothing else changed: nothing for the connection to settle.
                let settled = c.state.out.pending() == 0 && c.state.flags == flags;
                if !settled && !c.state.flags.has(Flags::DELIVERED) {
                    c.state.flags.set(Flags::DELIVERED);
                    self.delivered.push(Token::new(Kind::Connection, fd as usize, c.id.generation()));
                }
            });
            if deliveries > before {
                self.published.push(published);
            }
        }
        if !self.mail.has_unread() {
            self.mail.clear();
        }
        self.wake_touched();
        // Sent (or queued behind a slow reader's backlog) to every subscriber here.
        for published in self.published.drain(..) {
            self.core.own.publish_delivery.record(published.elapsed().as_nanos() as u64);
        }
    }

    /// Sends to the connections a delivery or a tick wrote to.
    fn wake_touched(&mut self) {
        let mut touched = std::mem::take(&mut self.delivered);
        for token in touched.drain(..) {
            self.wake(token, Wake::Delivered);
        }
        self.delivered = touched;
    }

    fn close_all(&mut self, reason: CloseReason) {
        self.closing.extend(self.connections.iter_mut().map(|(fd, _)| fd));
        for fd in std::mem::take(&mut self.closing) {
            self.close(fd, reason);
        }
        self.close_all_peers(reason);
    }
}

/// Runs a handler call; a panic is logged, counted and reported as `None`.
fn guarded<R>(counters: &Counters, id: ConnId, what: &str, call: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => Some(value),
        Err(_) => {
            bump(&counters.panics, 1);
            log::error!("handler {what} panicked on connection {id}; resetting the connection");
            None
        }
    }
}
