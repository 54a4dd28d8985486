//! One worker thread's event loop: its epoll instance, its listeners, its sessions.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::app::App;
use crate::config::{Config, Protocol};
use crate::handler::Handler;
use crate::rt::buf::{BufPool, Output, POOL_BUFFER_SIZE};
use crate::rt::conn::{CloseReason, Conn, ConnId, Flags, Timer, TimerRequest, send_queued};
use crate::rt::pubsub::Mailbox;
use crate::rt::server::Shared;
use crate::rt::table::SessionTable;
use crate::rt::udp::{Peer, PeerState};
use crate::stats::{Counters, bump};
use crate::sys::{Epoll, Events, Interest, Listener, PacketRing, RecvBatch, SendQueue, Stream, TimerFd, UdpSocket};

/// Every read lands here first; only input a handler leaves unconsumed is copied into a
/// per-connection buffer. 64 KiB takes a full TSO burst or 16 pipelined requests in one recv.
const SCRATCH_SIZE: usize = 64 << 10;
/// Kept input grows once less than this is free behind it, so a recv is never tiny.
const MIN_READ_ROOM: usize = 4 << 10;
/// Ready events taken per epoll_wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Connections accepted per listener per wake-up before the others get a turn.
const ACCEPT_BATCH: usize = 128;
/// Pause after an accept failure such as EMFILE: long enough not to spin on a full fd table,
/// short enough that clients in the backlog barely notice once fds free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Tokens with the top bit set are the worker's own fds; the rest are connections, encoded as
/// `generation << 32 | fd` so an event queued for a closed fd can never reach a new connection
/// that reuses the number.
const SPECIAL_TOKEN: u64 = 1 << 63;
const WAKER_TOKEN: u64 = SPECIAL_TOKEN;
const LISTENER_TOKEN: u64 = SPECIAL_TOKEN | (1 << 32);
const UDP_TOKEN: u64 = SPECIAL_TOKEN | (2 << 32);
const TICK_TOKEN: u64 = SPECIAL_TOKEN | (3 << 32);
const RING_TOKEN: u64 = SPECIAL_TOKEN | (4 << 32);
/// `recvmmsg` calls per UDP socket per wake-up before the rest of the worker gets a turn.
const UDP_BATCHES_PER_WAKE: usize = 16;
/// Datagram slots per `recvmmsg` (fewer when `max_datagram` is large: at most 1 MiB of slots).
const UDP_SLOTS: usize = 64;
const GENERATION_MASK: u32 = 0x7fff_ffff;

fn connection_token(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

/// The (fd, generation) a connection token was made from.
fn split_token(token: u64) -> (RawFd, u32) {
    (token as u32 as RawFd, (token >> 32) as u32)
}

/// The configuration a worker needs, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    fd_cache: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    max_write_buffer: usize,
    max_read_buffer: usize,
    read_budget: usize,
    shutdown_timeout: Duration,
    tick: Option<Duration>,
    max_datagram: usize,
    udp_idle_timeout: Option<Duration>,
}

impl Limits {
    pub(crate) fn from_config(config: &Config, threads: usize) -> Limits {
        // An HTTP request up to its limits must fit in the kept input, or the connection would
        // be cut before the protocol layer could answer 413/431.
        let http_request = crate::proto::http::chunked::max_encoded_len(config.http_limits.max_body)
            .saturating_add(config.http_limits.max_header_bytes);
        let serves_http = config.listeners.iter().any(|(p, _)| matches!(p, Protocol::Http | Protocol::Ws));
        let mut max_read_buffer =
            if serves_http { config.max_read_buffer.max(http_request) } else { config.max_read_buffer };
        let serves_ws = config.listeners.iter().any(|(p, _)| *p == Protocol::Ws) || config.ws.path.is_some();
        if serves_ws {
            // Likewise a frame up to `max_message`, with its header, for 1009 to be the answer.
            max_read_buffer = max_read_buffer.max(config.ws.max_message.saturating_add(14));
        }
        Limits {
            fd_cache: config.fd_cache,
            max_connections: config.max_connections.div_ceil(threads).max(1),
            idle_timeout: config.idle_timeout,
            // The fields are public, so the setters' clamping may have been bypassed; a zero
            // here would stop reading for good (or spin re-queueing a connection).
            max_write_buffer: config.max_write_buffer.max(1),
            max_read_buffer: max_read_buffer.max(1),
            read_budget: config.read_budget.max(1),
            shutdown_timeout: config.shutdown_timeout,
            tick: config.tick.map(|t| t.max(Duration::from_millis(1))),
            max_datagram: config.max_datagram.clamp(1, smoke_rules::limits::MAX_DATAGRAM),
            udp_idle_timeout: config.udp_idle_timeout.filter(|t| !t.is_zero()),
        }
    }
}

/// One connection's state in the session table.
struct Connection<S> {
    session: S,
    stream: Stream,
    id: ConnId,
    protocol: Protocol,
    generation: u32,
    flags: Flags,
    /// Milliseconds since the worker started, at the last I/O (wrapping).
    last_active: u32,
    /// Unconsumed input; unallocated while there is none.
    input: Vec<u8>,
    out: Output,
    timer: Timer,
}

/// What woke a connection up.
#[derive(Clone, Copy, Debug)]
enum Wake {
    Connected,
    Readable {
        stops_short: bool,
    },
    Writable,
    Retry,
    Timer,
    /// Topic deliveries were queued: send them.
    Delivered,
    /// The server is stopping: the connection closes once its output is flushed.
    Shutdown,
}

/// The worker's pieces a connection borrows while it runs, split from the session table.
struct Io<'a> {
    epoll: &'a Epoll,
    scratch: &'a mut [u8],
    pool: &'a mut BufPool,
    shared: &'a Shared,
    counters: &'a Counters,
    limits: &'a Limits,
    retry: &'a mut Vec<u64>,
    timers: &'a mut TimerQueue,
    now_ms: u64,
}

/// Armed connection timers as (deadline in worker milliseconds, token), earliest first. A timer
/// set again or cancelled leaves its old entry behind; it is skipped when it surfaces, because
/// the connection's own deadline no longer matches (or its generation changed).
type TimerQueue = BinaryHeap<Reverse<(u64, u64)>>;

pub(crate) struct Worker<A: App> {
    index: usize,
    epoll: Epoll,
    listeners: Vec<(Protocol, Listener)>,
    shared: Arc<Shared>,
    app: Arc<A>,
    limits: Limits,
    table: SessionTable<Connection<A::Session>>,
    scratch: Box<[u8]>,
    pool: BufPool,
    /// Tokens to run again without waiting for an event (read budget spent, reading resumed,
    /// accept batch spent).
    retry: Vec<u64>,
    sequence: u64,
    started: Instant,
    /// Milliseconds since the worker started: `now_ms` for timers (never wraps), `now` for the
    /// compact per-connection activity stamps (wraps after 49 days; compared with wrapping_sub).
    now_ms: u64,
    now: u32,
    timers: TimerQueue,
    accept_paused_until: Option<u32>,
    accept_full: bool,
    accept_failing: bool,
    next_idle_sweep: Option<u32>,
    drain_deadline: Option<u32>,
    closing: Vec<RawFd>,
    /// The mailbox taken from `WorkerShared` (swapped, so both keep their capacity).
    mail: Mailbox,
    /// Connections topic deliveries (or a tick) wrote to in this turn.
    delivered: Vec<u64>,
    udp: Udp<A::Session>,
    ticker: Option<Ticker>,
}

/// A worker's UDP side: its sockets, its peers and their timers.
struct Udp<S> {
    endpoints: Vec<Endpoint>,
    /// Taken while a batch is handled (its datagrams borrow it).
    batch: Option<RecvBatch>,
    peers: HashMap<SocketAddr, PeerEntry<S>>,
    /// Armed peer timers as (deadline, session id, address), earliest first; stale entries are
    /// skipped as for connections.
    timers: BinaryHeap<Reverse<(u64, u64, SocketAddr)>>,
    idle_timeout: Option<Duration>,
    next_sweep: Option<u32>,
    closing: Vec<(SocketAddr, CloseReason)>,
    /// The packet ring feeding these sessions instead of the sockets (`pfring`).
    ring: Option<PacketRing>,
}

struct Endpoint {
    socket: UdpSocket,
    queue: SendQueue,
    /// The local port: where a datagram from the packet ring was going.
    port: u16,
}

struct PeerEntry<S> {
    session: S,
    id: ConnId,
    endpoint: usize,
    last_active: u32,
    timer: Option<u64>,
}

/// The worker's tick: its timerfd and the schedule lateness is measured against.
struct Ticker {
    fd: TimerFd,
    interval: Duration,
    started: Instant,
    sequence: u64,
}

impl<A: App> Worker<A> {
    pub(crate) fn new(
        index: usize,
        epoll: Epoll,
        (listeners, udp_sockets, ring): (Vec<(Protocol, Listener)>, Vec<UdpSocket>, Option<PacketRing>),
        shared: Arc<Shared>,
        app: Arc<A>,
        limits: Limits,
    ) -> io::Result<Worker<A>> {
        epoll.add(shared.workers[index].waker.as_raw_fd(), WAKER_TOKEN, Interest::READABLE)?;
        for (i, (_, listener)) in listeners.iter().enumerate() {
            epoll.add(listener.as_raw_fd(), LISTENER_TOKEN | i as u64, Interest::READABLE)?;
        }
        for (i, socket) in udp_sockets.iter().enumerate() {
            epoll.add(socket.as_raw_fd(), UDP_TOKEN | i as u64, Interest::READABLE)?;
        }
        if let Some(ring) = &ring {
            epoll.add(ring.as_raw_fd(), RING_TOKEN, Interest::READABLE)?;
        }
        let ticker = match limits.tick {
            Some(interval) => {
                let fd = TimerFd::periodic(interval)?;
                epoll.add(fd.as_raw_fd(), TICK_TOKEN, Interest::READABLE)?;
                Some(Ticker { fd, interval, started: Instant::now(), sequence: 0 })
            }
            None => None,
        };
        let batch = (!udp_sockets.is_empty()).then(|| {
            let slots = ((1 << 20) / limits.max_datagram).clamp(1, UDP_SLOTS);
            RecvBatch::new(slots, limits.max_datagram)
        });
        let udp = Udp {
            endpoints: udp_sockets
                .into_iter()
                .map(|socket| {
                    let port = socket.local_addr().map_or(0, |a| a.port());
                    Endpoint { socket, queue: SendQueue::default(), port }
                })
                .collect(),
            ring,
            batch,
            peers: HashMap::new(),
            timers: BinaryHeap::new(),
            idle_timeout: limits.udp_idle_timeout,
            next_sweep: limits.udp_idle_timeout.map(|_| 0),
            closing: Vec::new(),
        };
        let next_idle_sweep = limits.idle_timeout.map(|_| 0);
        Ok(Worker {
            index,
            epoll,
            listeners,
            shared,
            app,
            table: SessionTable::new(limits.fd_cache),
            limits,
            scratch: vec![0; SCRATCH_SIZE].into_boxed_slice(),
            pool: BufPool::default(),
            retry: Vec::new(),
            sequence: 0,
            started: Instant::now(),
            now_ms: 0,
            now: 0,
            timers: BinaryHeap::new(),
            accept_paused_until: None,
            accept_full: false,
            accept_failing: false,
            next_idle_sweep,
            drain_deadline: None,
            closing: Vec::new(),
            mail: Mailbox::default(),
            delivered: Vec::new(),
            udp,
            ticker,
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        let mut retrying = Vec::new();
        loop {
            self.tick();
            let timeout = self.next_timeout();
            if let Err(e) = self.epoll.wait(&mut events, timeout) {
                log::error!("worker {}: epoll_wait failed, stopping: {e}", self.index);
                break;
            }
            self.tick();
            for i in 0..events.len() {
                let event = events.get(i);
                if event.token & SPECIAL_TOKEN != 0 {
                    self.special(event.token);
                } else if event.is_readable() {
                    self.wake(event.token, Wake::Readable { stops_short: event.read_may_stop_short() });
                } else if event.is_writable() {
                    self.wake(event.token, Wake::Writable);
                }
            }
            std::mem::swap(&mut self.retry, &mut retrying);
            for token in retrying.drain(..) {
                if token & SPECIAL_TOKEN != 0 {
                    self.special(token);
                } else {
                    self.wake(token, Wake::Retry);
                }
            }
            self.run_timers();
            self.deliver_mail();
            self.flush_udp();
            if self.drain_deadline.is_none() && self.shared.stopping.load(Ordering::Relaxed) {
                self.begin_shutdown();
            }
            if let Some(deadline) = self.drain_deadline
                && (self.table.is_empty() || self.now.wrapping_sub(deadline) as i32 >= 0)
            {
                break;
            }
        }
        // Also reached when epoll_wait failed: stop accepting before closing what is left.
        self.listeners.clear();
        self.accept_full = false;
        self.close_all(CloseReason::Shutdown);
    }

    fn tick(&mut self) {
        self.now_ms = self.started.elapsed().as_millis() as u64;
        self.now = self.now_ms as u32;
    }

    fn next_timeout(&self) -> Option<Duration> {
        // Mail this worker's own handlers posted after its delivery pass needs no wake-up
        // (see ws::topics), so it must not wait in epoll_wait either.
        if !self.retry.is_empty() || self.shared.workers[self.index].has_mail.load(Ordering::Relaxed) {
            return Some(Duration::ZERO);
        }
        let timer = self.timers.peek().map(|Reverse((at, _))| Duration::from_millis(at.saturating_sub(self.now_ms)));
        let peer_timer =
            self.udp.timers.peek().map(|Reverse((at, _, _))| Duration::from_millis(at.saturating_sub(self.now_ms)));
        [self.accept_paused_until, self.next_idle_sweep, self.drain_deadline, self.udp.next_sweep]
            .into_iter()
            .flatten()
            .map(|at| Duration::from_millis((at.wrapping_sub(self.now) as i32).max(0) as u64))
            .chain(timer)
            .chain(peer_timer)
            .min()
    }

    fn special(&mut self, token: u64) {
        let index = (token & 0xffff_ffff) as usize;
        match token & !0xffff_ffff {
            WAKER_TOKEN => self.shared.workers[self.index].waker.drain(),
            LISTENER_TOKEN => self.accept_from(index),
            UDP_TOKEN => self.read_udp(index),
            TICK_TOKEN => self.run_tick(),
            RING_TOKEN => self.read_ring(),
            _ => {}
        }
    }

    fn counters(&self) -> &Counters {
        &self.shared.workers[self.index].counters
    }

    fn accept_from(&mut self, listener: usize) {
        if self.accept_paused_until.is_some() || self.accept_full || listener >= self.listeners.len() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            if self.table.len() >= self.limits.max_connections {
                self.accept_full = true;
                return;
            }
            let (protocol, socket) = &self.listeners[listener];
            let protocol = *protocol;
            match socket.accept() {
                Ok(stream) => {
                    if self.accept_failing {
                        self.accept_failing = false;
                        log::info!("worker {}: accepting connections again", self.index);
                    }
                    self.open(stream, protocol);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO)) => {}
                Err(e) => {
                    bump(&self.counters().accept_errors, 1);
                    if !self.accept_failing {
                        self.accept_failing = true;
                        log::warn!(
                            "worker {}: accept failed ({e}); retrying every {} ms while existing connections are served",
                            self.index,
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    self.accept_paused_until = Some(self.now.wrapping_add(ACCEPT_BACKOFF.as_millis() as u32));
                    return;
                }
            }
        }
        self.retry.push(LISTENER_TOKEN | listener as u64);
    }

    fn accept_all(&mut self) {
        for listener in 0..self.listeners.len() {
            self.accept_from(listener);
        }
    }

    fn open(&mut self, stream: Stream, protocol: Protocol) {
        let fd = stream.as_raw_fd();
        if let Err(e) = stream.set_nodelay() {
            log::debug!("TCP_NODELAY on fd {fd}: {e}");
        }
        self.sequence += 1;
        let generation = self.sequence as u32 & GENERATION_MASK;
        if let Err(e) = self.epoll.add(fd, connection_token(fd, generation), Interest::READABLE) {
            log::warn!("worker {}: cannot register accepted connection: {e}", self.index);
            return;
        }
        let id = ConnId::new(self.index, self.sequence);
        let counters = &self.shared.workers[self.index].counters;
        let mut out = Output::default();
        let mut flags = Flags::default();
        if protocol.client_speaks_first() {
            // Accepted after its first bytes arrived (TCP_DEFER_ACCEPT): read them now rather
            // than wait a loop turn for the edge that reports them.
            flags.set(Flags::READ_READY);
        }
        let mut timer = Timer::default();
        let session = {
            let mut conn = Connection::<A::Session>::conn(
                &stream,
                (&mut out, &mut flags, &mut timer),
                (id, protocol),
                (&mut self.pool, &self.shared, counters),
            );
            guarded(counters, id, "new session", || self.app.connection(&mut conn))
        };
        bump(&counters.accepted, 1);
        let Some(session) = session else {
            out.discard(&mut self.pool, counters);
            let _ = stream.set_reset_on_close();
            bump(&counters.closed, 1);
            bump(&counters.errors, 1);
            return;
        };
        let connection = Connection {
            session,
            stream,
            id,
            protocol,
            generation,
            flags,
            last_active: self.now,
            input: Vec::new(),
            out,
            timer,
        };
        if self.table.insert(fd, connection).is_some() {
            log::error!("worker {}: fd {fd} was still in the session table; dropped the stale entry", self.index);
        }
        self.wake(connection_token(fd, generation), Wake::Connected);
    }

    /// Runs one connection after an event, and closes it if that is the outcome.
    fn wake(&mut self, token: u64, why: Wake) {
        let (fd, generation) = split_token(token);
        let Some(connection) = self.table.get_mut(fd) else {
            return;
        };
        if connection.generation != generation {
            return;
        }
        let mut io = Io {
            epoll: &self.epoll,
            scratch: &mut self.scratch,
            pool: &mut self.pool,
            shared: &self.shared,
            counters: &self.shared.workers[self.index].counters,
            limits: &self.limits,
            retry: &mut self.retry,
            timers: &mut self.timers,
            now_ms: self.now_ms,
        };
        connection.last_active = self.now;
        if let Some(reason) = connection.run(&mut io, fd, why) {
            self.close(fd, reason);
        }
    }

    fn close(&mut self, fd: RawFd, reason: CloseReason) {
        let Some(mut connection) = self.table.remove(fd) else {
            return;
        };
        let counters = &self.shared.workers[self.index].counters;
        // Input may still be queued (we stopped reading at close()): see discard_unread_input.
        let unread = connection.flags.has(Flags::READ_READY | Flags::READ_TO_EAGAIN);
        if matches!(reason, CloseReason::Aborted | CloseReason::HandlerPanicked)
            && let Err(e) = connection.stream.set_reset_on_close()
        {
            log::debug!("SO_LINGER on fd {fd}: {e}");
        }
        let Connection { session, stream, id, protocol, flags, out, input, timer, .. } = &mut connection;
        if !flags.has(Flags::PANICKED) {
            let mut conn = Connection::<A::Session>::conn(
                stream,
                (&mut *out, flags, timer),
                (*id, *protocol),
                (&mut self.pool, &self.shared, counters),
            );
            guarded(counters, *id, "on_close", || session.on_close(&mut conn, reason));
        }
        if flags.has(Flags::SUBSCRIBED) {
            // Its subscriptions end with it, whatever its session did (or failed to do) on close.
            crate::rt::pubsub::unsubscribe_all(fd, *id);
        }
        out.discard(&mut self.pool, counters);
        self.pool.give(input, counters);
        if unread && matches!(reason, CloseReason::Closed | CloseReason::Shutdown | CloseReason::Timeout) {
            discard_unread_input(&connection.stream, &mut self.scratch);
        }
        // Count before the socket closes, so a peer that sees the close and asks again (the
        // stats page) finds it counted.
        bump(&counters.closed, 1);
        if reason.is_error() {
            bump(&counters.errors, 1);
        }
        let Connection { session, stream, id, .. } = connection;
        // The session's own Drop is user code too: a panic there must not take the worker down.
        guarded(counters, id, "drop", move || drop(session));
        drop(stream);
        if self.accept_full && self.drain_deadline.is_none() {
            self.accept_full = false;
            self.accept_all();
        }
    }

    fn run_timers(&mut self) {
        self.run_peer_timers();
        while let Some(&Reverse((at, token))) = self.timers.peek() {
            if at > self.now_ms {
                break;
            }
            self.timers.pop();
            let (fd, generation) = split_token(token);
            let current = self.table.get_mut(fd).filter(|c| c.generation == generation);
            if let Some(connection) = current
                && connection.timer.deadline == Some(at)
            {
                connection.timer.deadline = None;
                self.wake(token, Wake::Timer);
            }
        }
        if let Some(at) = self.accept_paused_until
            && self.now.wrapping_sub(at) as i32 >= 0
        {
            self.accept_paused_until = None;
            self.accept_all();
        }
        if let (Some(at), Some(idle)) = (self.next_idle_sweep, self.limits.idle_timeout)
            && self.now.wrapping_sub(at) as i32 >= 0
        {
            let idle_ms = idle.as_millis().min(i32::MAX as u128) as u32;
            let now = self.now;
            self.closing.extend(
                self.table.iter_mut().filter(|(_, c)| now.wrapping_sub(c.last_active) >= idle_ms).map(|(fd, _)| fd),
            );
            for fd in std::mem::take(&mut self.closing) {
                self.close(fd, CloseReason::Timeout);
            }
            // Sweep a few times per timeout: a connection closes at most a quarter late.
            let interval = (idle_ms / 4).clamp(10, 1000);
            self.next_idle_sweep = Some(now.wrapping_add(interval));
        }
    }

    fn begin_shutdown(&mut self) {
        self.drain_deadline =
            Some(self.now.wrapping_add(self.limits.shutdown_timeout.as_millis().min(i32::MAX as u128) as u32));
        // Closing the listeners stops new connections at once; the kernel resets any still
        // queued on this worker's socket.
        self.listeners.clear();
        self.accept_paused_until = None;
        self.closing.extend(self.table.iter_mut().map(|(fd, c)| {
            c.flags.set(Flags::CLOSE | Flags::SHUTTING_DOWN);
            fd
        }));
        for fd in std::mem::take(&mut self.closing) {
            if let Some(c) = self.table.get_mut(fd) {
                let token = connection_token(fd, c.generation);
                self.wake(token, Wake::Shutdown);
            }
        }
    }

    /// Copies the topic publications in this worker's mailbox into its subscribers' output
    /// queues, then sends to every connection written to.
    fn deliver_mail(&mut self) {
        let worker = &self.shared.workers[self.index];
        if !worker.has_mail.swap(false, Ordering::Acquire) {
            return;
        }
        std::mem::swap(&mut *worker.mailbox.lock().unwrap_or_else(PoisonError::into_inner), &mut self.mail);
        let counters = &worker.counters;
        for (topic, frame) in self.mail.letters() {
            crate::rt::pubsub::for_each_subscriber(topic, |fd, id| {
                let Some(c) = self.table.get_mut(fd).filter(|c| c.id == id) else { return };
                let mut conn = Connection::<A::Session>::conn(
                    &c.stream,
                    (&mut c.out, &mut c.flags, &mut c.timer),
                    (c.id, c.protocol),
                    (&mut self.pool, &self.shared, counters),
                );
                crate::driver::ws::deliver(&mut conn, frame);
                if !c.flags.has(Flags::DELIVERED) {
                    c.flags.set(Flags::DELIVERED);
                    self.delivered.push(connection_token(fd, c.generation));
                }
            });
        }
        self.mail.clear();
        self.wake_touched();
    }

    fn close_all(&mut self, reason: CloseReason) {
        self.closing.extend(self.table.iter_mut().map(|(fd, _)| fd));
        for fd in std::mem::take(&mut self.closing) {
            self.close(fd, reason);
        }
        let peers: Vec<SocketAddr> = self.udp.peers.keys().copied().collect();
        for addr in peers {
            self.close_peer(addr, reason);
        }
    }

    /// Handles up to `UDP_BATCHES_PER_WAKE` batches of datagrams from one UDP socket.
    fn read_udp(&mut self, endpoint: usize) {
        if endpoint >= self.udp.endpoints.len() {
            return;
        }
        let Some(mut batch) = self.udp.batch.take() else { return };
        let mut drained = false;
        for _ in 0..UDP_BATCHES_PER_WAKE {
            let received = match self.udp.endpoints.get(endpoint).map(|e| e.socket.recv_batch(&mut batch)) {
                Some(Ok(received)) => received,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => {
                    // ICMP errors queued on the socket (a peer's port unreachable) surface here;
                    // the socket itself is fine.
                    log::debug!("worker {}: udp receive: {e}", self.index);
                    continue;
                }
                None => return,
            };
            for i in 0..received {
                let Some((addr, packet, truncated)) = batch.get(i) else { continue };
                if truncated {
                    bump(&self.shared.workers[self.index].counters.datagrams_truncated, 1);
                    continue;
                }
                self.datagram(endpoint, addr, packet);
            }
            // What this batch produced leaves now, in one sendmmsg: the next batch's wait
            // would only add to these replies' latency.
            self.flush_udp();
            if received < batch.capacity() {
                drained = true;
                break;
            }
        }
        self.udp.batch = Some(batch);
        if !drained {
            self.retry.push(UDP_TOKEN | endpoint as u64);
        }
        self.settle_peers();
    }

    /// Hands the packet ring's filled blocks to the sessions, as datagrams to the UDP endpoint
    /// of their destination port.
    fn read_ring(&mut self) {
        let Some(mut ring) = self.udp.ring.take() else { return };
        let mut captured = 0;
        ring.drain(|frame| {
            let Some(datagram) = crate::proto::ring::parse_udp(frame) else { return };
            let Some(endpoint) = self.udp.endpoints.iter().position(|e| e.port == datagram.to_port) else { return };
            if datagram.payload.len() > self.limits.max_datagram {
                bump(&self.shared.workers[self.index].counters.datagrams_truncated, 1);
                return;
            }
            captured += 1;
            self.datagram(endpoint, datagram.from, datagram.payload);
        });
        self.udp.ring = Some(ring);
        if captured > 0 {
            self.flush_udp();
            self.settle_peers();
        }
    }

    /// One datagram to its peer's session, created on the first.
    fn datagram(&mut self, endpoint: usize, addr: SocketAddr, packet: &[u8]) {
        let counters = &self.shared.workers[self.index].counters;
        bump(&counters.datagrams_in, 1);
        let entry = match self.udp.peers.entry(addr) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(vacant) => {
                self.sequence += 1;
                let id = ConnId::new(self.index, self.sequence);
                let mut state = PeerState::default();
                let mut peer = Peer {
                    addr,
                    id,
                    queue: &mut self.udp.endpoints[endpoint].queue,
                    state: &mut state,
                    shared: &self.shared,
                };
                let Some(Some(session)) = guarded(counters, id, "new peer session", || self.app.peer(&mut peer)) else {
                    log::debug!("worker {}: no session for {addr}; datagram dropped", self.index);
                    return;
                };
                bump(&counters.accepted, 1);
                let entry = vacant.insert(PeerEntry { session, id, endpoint, last_active: self.now, timer: None });
                let closed_at_once = state.close;
                apply_peer_requests(&mut self.udp.timers, &mut self.udp.closing, entry, addr, state, self.now_ms);
                if closed_at_once {
                    // Closed by its constructor: the datagram is not delivered.
                    self.settle_peers();
                    return;
                }
                entry
            }
        };
        entry.last_active = self.now;
        let endpoints = &mut self.udp.endpoints;
        let asked =
            call_peer(entry, addr, endpoints, (&self.shared, counters), PeerState::default(), "on_datagram", |s, p| {
                s.on_datagram(p, packet)
            });
        match asked {
            Some(state) => {
                apply_peer_requests(&mut self.udp.timers, &mut self.udp.closing, entry, addr, state, self.now_ms)
            }
            None => self.udp.closing.push((addr, CloseReason::HandlerPanicked)),
        }
        if !self.udp.closing.is_empty() {
            // Close now, not after the batch: the next datagram from this address in the same
            // batch starts a new session, as `Peer::close` promises.
            self.settle_peers();
        }
    }

    /// Closes the peers that asked for it (or panicked) during the last calls.
    fn settle_peers(&mut self) {
        while let Some((addr, reason)) = self.udp.closing.pop() {
            self.close_peer(addr, reason);
        }
    }

    fn close_peer(&mut self, addr: SocketAddr, reason: CloseReason) {
        let Some(mut entry) = self.udp.peers.remove(&addr) else { return };
        let counters = &self.shared.workers[self.index].counters;
        bump(&counters.closed, 1);
        if reason.is_error() {
            bump(&counters.errors, 1);
        }
        if reason != CloseReason::HandlerPanicked {
            // Sends made while closing are discarded, as on a connection.
            let closing = PeerState { close: true, ..PeerState::default() };
            let endpoints = &mut self.udp.endpoints;
            call_peer(&mut entry, addr, endpoints, (&self.shared, counters), closing, "on_close", |s, p| {
                s.on_peer_close(p, reason)
            });
        }
        let id = entry.id;
        guarded(counters, id, "drop", move || drop(entry));
    }

    /// Peer timers that are due, and the sweep of silent peers.
    fn run_peer_timers(&mut self) {
        while let Some(&Reverse((at, id, addr))) = self.udp.timers.peek() {
            if at > self.now_ms {
                break;
            }
            self.udp.timers.pop();
            let Some(entry) = self.udp.peers.get_mut(&addr).filter(|e| e.id.as_u64() == id && e.timer == Some(at))
            else {
                continue;
            };
            entry.timer = None;
            let counters = &self.shared.workers[self.index].counters;
            let endpoints = &mut self.udp.endpoints;
            let asked = call_peer(
                entry,
                addr,
                endpoints,
                (&self.shared, counters),
                PeerState::default(),
                "on_timer",
                |s, p| s.on_peer_timer(p),
            );
            match asked {
                Some(state) => {
                    apply_peer_requests(&mut self.udp.timers, &mut self.udp.closing, entry, addr, state, self.now_ms)
                }
                None => self.udp.closing.push((addr, CloseReason::HandlerPanicked)),
            }
        }
        if let (Some(at), Some(idle)) = (self.udp.next_sweep, self.udp.idle_timeout)
            && self.now.wrapping_sub(at) as i32 >= 0
        {
            let idle_ms = idle.as_millis().min(i32::MAX as u128) as u32;
            let now = self.now;
            self.udp.closing.extend(
                self.udp
                    .peers
                    .iter()
                    .filter(|(_, p)| now.wrapping_sub(p.last_active) >= idle_ms)
                    .map(|(addr, _)| (*addr, CloseReason::Timeout)),
            );
            self.udp.next_sweep = Some(now.wrapping_add((idle_ms / 4).clamp(10, 1000)));
        }
        self.settle_peers();
    }

    /// Sends what handlers queued for UDP peers, one `sendmmsg` per batch of datagrams.
    fn flush_udp(&mut self) {
        let counters = &self.shared.workers[self.index].counters;
        for endpoint in &mut self.udp.endpoints {
            let queued = endpoint.queue.len();
            if queued > 0 {
                let dropped = endpoint.socket.send_batch(&mut endpoint.queue);
                bump(&counters.datagrams_out, (queued - dropped) as u64);
                bump(&counters.datagrams_dropped, dropped as u64);
            }
        }
    }

    /// The tick's timerfd fired: run the tick once, however many intervals passed (the rest are
    /// reported as missed, and the lateness measured from the last one due).
    fn run_tick(&mut self) {
        let Some(ticker) = &mut self.ticker else { return };
        let expirations = ticker.fd.expirations();
        if expirations == 0 {
            return;
        }
        // Late since the first of the intervals this run covers fell due.
        let first_due = ticker.interval.as_nanos() * u128::from(ticker.sequence + 1);
        ticker.sequence += expirations;
        let late = ticker.started.elapsed().saturating_sub(Duration::from_nanos(first_due as u64));
        let info = TickInfo { sequence: ticker.sequence, late, missed: expirations - 1 };
        let counters = &self.shared.workers[self.index].counters;
        bump(&counters.ticks, 1);
        bump(&counters.ticks_missed, expirations - 1);
        let mut context = TickContext {
            info,
            worker: self.index,
            table: &mut self.table,
            udp: &mut self.udp,
            pool: &mut self.pool,
            shared: &self.shared,
            counters,
            touched: &mut self.delivered,
            now_ms: self.now_ms,
        };
        let app = &self.app;
        if guarded(counters, ConnId::new(self.index, 0), "on_tick", || app.on_tick(&mut context)).is_none() {
            log::error!("worker {}: on_tick panicked; the next tick runs as scheduled", self.index);
        }
        self.wake_touched();
        self.settle_peers();
    }

    fn wake_touched(&mut self) {
        let mut touched = std::mem::take(&mut self.delivered);
        for token in touched.drain(..) {
            self.wake(token, Wake::Delivered);
        }
        self.delivered = touched;
    }
}

/// Calls one handler of a peer's session with its `Peer` handle (starting from `state`); what
/// the handler asked for comes back, or `None` when it panicked.
fn call_peer<S: Handler>(
    entry: &mut PeerEntry<S>,
    addr: SocketAddr,
    endpoints: &mut [Endpoint],
    (shared, counters): (&Shared, &Counters),
    mut state: PeerState,
    what: &str,
    handler: impl FnOnce(&mut S, &mut Peer<'_>),
) -> Option<PeerState> {
    let queue = &mut endpoints[entry.endpoint].queue;
    let mut peer = Peer { addr, id: entry.id, queue, state: &mut state, shared };
    let session = &mut entry.session;
    guarded(counters, entry.id, what, || handler(session, &mut peer))?;
    Some(state)
}

/// Applies what a peer's handler asked for: a close (after the call), a timer.
fn apply_peer_requests<S>(
    timers: &mut BinaryHeap<Reverse<(u64, u64, SocketAddr)>>,
    closing: &mut Vec<(SocketAddr, CloseReason)>,
    entry: &mut PeerEntry<S>,
    addr: SocketAddr,
    state: PeerState,
    now_ms: u64,
) {
    match state.timer {
        TimerRequest::Unchanged => {}
        TimerRequest::Cancel => entry.timer = None,
        TimerRequest::Set(after) => {
            // At least 1 ms: a deadline of `now` set from inside the timer's own call would be
            // due again at once, and the timer loop would never end.
            let at = now_ms.saturating_add(u64::from(after.max(1)));
            entry.timer = Some(at);
            timers.push(Reverse((at, entry.id.as_u64(), addr)));
        }
    }
    if state.close {
        closing.push((addr, CloseReason::Closed));
    }
}

/// When a tick ran and how it went against its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickInfo {
    /// Intervals since the worker started (a late tick that covers several counts them all).
    pub sequence: u64,
    /// How long after it was due this tick started running (for a tick covering missed ones,
    /// since the first of them was due).
    pub late: Duration,
    /// Ticks that fell due while the worker was busy and are covered by this one (0 normally).
    pub missed: u64,
}

/// One worker's sessions during its tick: step the world, send state.
///
/// Everything here is that worker's own: its connections, its UDP peers, its sockets. Writes
/// and sends leave when the tick returns, batched (`sendmmsg` for UDP).
pub struct TickContext<'w, S> {
    info: TickInfo,
    worker: usize,
    table: &'w mut SessionTable<Connection<S>>,
    udp: &'w mut Udp<S>,
    pool: &'w mut BufPool,
    shared: &'w Shared,
    counters: &'w Counters,
    touched: &'w mut Vec<u64>,
    now_ms: u64,
}

impl<S> std::fmt::Debug for TickContext<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickContext").field("info", &self.info).field("worker", &self.worker).finish()
    }
}

impl<S: Handler> TickContext<'_, S> {
    /// This tick's sequence number and lateness.
    pub fn info(&self) -> TickInfo {
        self.info
    }

    /// The worker's index (0-based).
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// This worker's open connections.
    pub fn connections(&self) -> usize {
        self.table.len()
    }

    /// This worker's UDP peers.
    pub fn peers(&self) -> usize {
        self.udp.peers.len()
    }

    /// Calls `visit` with each UDP peer's session and its [`Peer`] handle.
    pub fn for_each_peer(&mut self, mut visit: impl FnMut(&mut S, &mut Peer<'_>)) {
        let Udp { endpoints, peers, timers, closing, .. } = &mut *self.udp;
        for (addr, entry) in peers.iter_mut() {
            let mut state = PeerState::default();
            let mut peer = Peer {
                addr: *addr,
                id: entry.id,
                queue: &mut endpoints[entry.endpoint].queue,
                state: &mut state,
                shared: self.shared,
            };
            visit(&mut entry.session, &mut peer);
            apply_peer_requests(timers, closing, entry, *addr, state, self.now_ms);
        }
    }

    /// Calls `visit` with each connection's session and its [`Conn`] (of every listener: check
    /// [`Conn::protocol`] before writing raw bytes).
    pub fn for_each_connection(&mut self, mut visit: impl FnMut(&mut S, &mut Conn<'_>)) {
        for (fd, c) in self.table.iter_mut() {
            let mut conn = Connection::<S>::conn(
                &c.stream,
                (&mut c.out, &mut c.flags, &mut c.timer),
                (c.id, c.protocol),
                (self.pool, self.shared, self.counters),
            );
            visit(&mut c.session, &mut conn);
            let wants_settling = c.out.pending() > 0
                || c.flags.has(Flags::CLOSE | Flags::ABORT | Flags::SHUTDOWN_WRITE | Flags::WANT_WRITE)
                || c.timer.request != TimerRequest::Unchanged;
            if wants_settling && !c.flags.has(Flags::DELIVERED) {
                c.flags.set(Flags::DELIVERED);
                self.touched.push(connection_token(fd, c.generation));
            }
        }
    }

    /// Sends a datagram from this worker's first UDP socket to any address; false when the
    /// server has no UDP listener.
    pub fn send_to(&mut self, addr: SocketAddr, datagram: &[u8]) -> bool {
        match self.udp.endpoints.first_mut() {
            Some(endpoint) => {
                endpoint.queue.push(addr, datagram);
                true
            }
            None => false,
        }
    }

    /// Publishes to a WebSocket topic (see [`WsConn::publish`](crate::ws::WsConn::publish)).
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<crate::ws::Message<'m>>) {
        crate::driver::ws::publish(self.shared, Some(self.worker), topic, message.into());
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

impl<S> Connection<S> {
    /// The handler's view of this connection, built from its split-borrowed fields.
    fn conn<'a>(
        stream: &'a Stream,
        (out, flags, timer): (&'a mut Output, &'a mut Flags, &'a mut Timer),
        (id, protocol): (ConnId, Protocol),
        (pool, shared, counters): (&'a mut BufPool, &'a Shared, &'a Counters),
    ) -> Conn<'a> {
        Conn { stream, out, flags, pool, counters, shared, id, protocol, timer }
    }
}

impl<S: Handler> Connection<S> {
    fn can_read(&self, limits: &Limits) -> bool {
        !self.flags.has(Flags::INPUT_ENDED | Flags::READ_CLOSED) && self.out.pending() < limits.max_write_buffer
    }

    /// Calls a handler that takes only the connection; a panic marks the session.
    fn call(&mut self, io: &mut Io<'_>, what: &str, handler: fn(&mut S, &mut Conn<'_>)) {
        let Connection { session, stream, id, protocol, flags, out, timer, .. } = self;
        let mut conn = Self::conn(stream, (out, flags, timer), (*id, *protocol), (io.pool, io.shared, io.counters));
        if guarded(io.counters, *id, what, || handler(session, &mut conn)).is_none() {
            self.flags.set(Flags::PANICKED);
        }
    }

    /// Reads (if there is something to read and room to answer), hands input to the handler,
    /// sends once, and reports whether the connection is done.
    fn run(&mut self, io: &mut Io<'_>, fd: RawFd, why: Wake) -> Option<CloseReason> {
        match why {
            Wake::Connected => self.call(io, "on_connect", S::on_connect),
            Wake::Readable { stops_short } => {
                self.flags.set(Flags::READ_READY);
                if stops_short {
                    self.flags.set(Flags::READ_TO_EAGAIN);
                }
            }
            Wake::Writable => {}
            Wake::Retry => self.flags.clear(Flags::QUEUED),
            Wake::Timer => self.call(io, "on_timer", S::on_timer),
            Wake::Delivered => self.flags.clear(Flags::DELIVERED),
            Wake::Shutdown => self.call(io, "on_shutdown", S::on_shutdown),
        }
        if self.flags.has(Flags::REDELIVER) && self.can_read(io.limits) {
            // The handler stopped at our own backlog with input in hand; the backlog has
            // drained, so hand the kept input back before reading more.
            self.flags.clear(Flags::REDELIVER);
            self.feed_buffered(io);
        }
        if self.flags.has(Flags::READ_READY)
            && self.can_read(io.limits)
            && let Some(reason) = self.read(io)
        {
            return Some(reason);
        }
        self.settle(io, fd)
    }

    fn read(&mut self, io: &mut Io<'_>) -> Option<CloseReason> {
        let mut budget = io.limits.read_budget;
        while budget > 0 && self.can_read(io.limits) {
            let buffered = self.input.capacity() > 0;
            let result = if buffered {
                if self.input.len() >= io.limits.max_read_buffer {
                    return Some(CloseReason::InputOverflow);
                }
                if self.input.capacity() - self.input.len() < MIN_READ_ROOM {
                    // Double: a message that spans many reads costs log(n) copies, not n.
                    self.input.reserve(self.input.len().max(POOL_BUFFER_SIZE));
                }
                let room = (self.input.capacity() - self.input.len())
                    .min(io.limits.max_read_buffer - self.input.len())
                    .min(budget);
                self.stream.recv_spare(&mut self.input, room).map(|n| (n, room))
            } else {
                let room = SCRATCH_SIZE.min(budget);
                self.stream.recv(&mut io.scratch[..room]).map(|n| (n, room))
            };
            let (n, requested) = match result {
                Ok((0, _)) => {
                    self.flags.set(Flags::READ_CLOSED);
                    self.flags.clear(Flags::READ_READY);
                    return None;
                }
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flags.clear(Flags::READ_READY);
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(CloseReason::from_io(&e)),
            };
            bump(&io.counters.bytes_in, n as u64);
            budget -= n;
            if buffered {
                self.feed_buffered(io);
            } else {
                self.feed_scratch(io, n);
            }
            if n < requested && !self.flags.has(Flags::READ_TO_EAGAIN) {
                // A short read emptied the socket's queue; anything arriving later raises a
                // new edge, so the EAGAIN-confirming recv would be a wasted system call. Not so
                // after a FIN or urgent data, whose edge already woke us (see
                // `read_may_stop_short`): then keep reading until recv says so.
                self.flags.clear(Flags::READ_READY);
                return None;
            }
        }
        None
    }

    /// Calls on_data on `input` until it is consumed, the handler stops consuming, or the
    /// connection is closing; returns how much was consumed.
    fn deliver(&mut self, io: &mut Io<'_>, input: &[u8]) -> usize {
        let Connection { session, stream, id, protocol, flags, out, timer, .. } = self;
        let mut consumed = 0;
        while consumed < input.len() && !flags.has(Flags::INPUT_ENDED) {
            let rest = &input[consumed..];
            let mut conn = Self::conn(stream, (out, flags, timer), (*id, *protocol), (io.pool, io.shared, io.counters));
            match guarded(io.counters, *id, "on_data", || session.on_data(&mut conn, rest)) {
                Some(0) => break,
                Some(n) => consumed += n.min(rest.len()),
                None => flags.set(Flags::PANICKED),
            }
        }
        if consumed < input.len() && out.pending() >= io.limits.max_write_buffer {
            // It may have stopped for our backlog rather than for want of bytes (HTTP does, with
            // pipelined requests left): offer the rest again once the backlog drains, since no
            // new bytes may come to trigger it.
            flags.set(Flags::REDELIVER);
        }
        consumed
    }

    fn feed_scratch(&mut self, io: &mut Io<'_>, n: usize) {
        let scratch = std::mem::take(&mut io.scratch);
        let consumed = self.deliver(io, &scratch[..n]);
        if consumed < n && !self.flags.has(Flags::INPUT_ENDED) {
            self.input = io.pool.take(io.counters);
            self.input.extend_from_slice(&scratch[consumed..n]);
        }
        io.scratch = scratch;
    }

    fn feed_buffered(&mut self, io: &mut Io<'_>) {
        let input = std::mem::take(&mut self.input);
        let consumed = self.deliver(io, &input);
        self.input = input;
        if consumed == self.input.len() || self.flags.has(Flags::INPUT_ENDED) {
            io.pool.give(&mut self.input, io.counters);
        } else if consumed > 0 {
            self.input.drain(..consumed);
        }
    }

    /// Sends pending output once, (dis)arms EPOLLOUT, tells the handler when a backlog has
    /// drained, and applies close/shutdown requests.
    fn settle(&mut self, io: &mut Io<'_>, fd: RawFd) -> Option<CloseReason> {
        match std::mem::take(&mut self.timer.request) {
            TimerRequest::Unchanged => {}
            TimerRequest::Cancel => self.timer.deadline = None,
            TimerRequest::Set(after) => {
                // At least 1 ms, as for peers: `set_timer(ZERO)` in on_timer must not spin.
                let at = io.now_ms.saturating_add(u64::from(after.max(1)));
                self.timer.deadline = Some(at);
                io.timers.push(Reverse((at, connection_token(fd, self.generation))));
            }
        }
        if self.flags.has(Flags::PANICKED) {
            return Some(CloseReason::HandlerPanicked);
        }
        if self.flags.has(Flags::ABORT) {
            return Some(CloseReason::Aborted);
        }
        let mut drained = false;
        if self.out.pending() > 0 {
            if let Err(reason) = self.send(io) {
                return Some(reason);
            }
            if self.out.pending() == 0 && self.flags.has(Flags::WRITE_ARMED) {
                // The backlog is gone: stop EPOLLOUT and let the handler stream more.
                if let Err(e) = io.epoll.modify(fd, connection_token(fd, self.generation), Interest::READABLE) {
                    return Some(CloseReason::from_io(&e));
                }
                self.flags.clear(Flags::WRITE_ARMED);
                drained = true;
            }
        }
        let asked = self.out.pending() == 0 && self.flags.has(Flags::WANT_WRITE);
        if (drained || asked) && !self.flags.has(Flags::CLOSE) {
            self.flags.clear(Flags::WANT_WRITE);
            self.call(io, "on_write", S::on_write);
            if self.flags.has(Flags::PANICKED) {
                return Some(CloseReason::HandlerPanicked);
            }
            if self.flags.has(Flags::ABORT) {
                return Some(CloseReason::Aborted);
            }
            if self.out.pending() > 0
                && let Err(reason) = self.send(io)
            {
                return Some(reason);
            }
        }
        if self.out.pending() > 0 && !self.flags.has(Flags::WRITE_ARMED) {
            if let Err(e) = io.epoll.modify(fd, connection_token(fd, self.generation), Interest::READ_WRITE) {
                return Some(CloseReason::from_io(&e));
            }
            self.flags.set(Flags::WRITE_ARMED);
        }
        if self.out.pending() == 0 {
            if self.flags.has(Flags::CLOSE) {
                return Some(if self.flags.has(Flags::SHUTTING_DOWN) {
                    CloseReason::Shutdown
                } else {
                    CloseReason::Closed
                });
            }
            if self.flags.has(Flags::READ_CLOSED) && !self.flags.has(Flags::WANT_WRITE) {
                return Some(CloseReason::PeerClosed);
            }
            if self.flags.has(Flags::SHUTDOWN_WRITE) && !self.flags.has(Flags::WRITE_SHUT) {
                if let Err(e) = self.stream.shutdown_write() {
                    return Some(CloseReason::from_io(&e));
                }
                self.flags.set(Flags::WRITE_SHUT);
            }
        }
        // More to read (budget spent, or reading resumed after backpressure), or on_write asked
        // for another call with nothing queued: no epoll edge will come for either, so run
        // again on the next loop turn.
        let wants_read = self.flags.has(Flags::READ_READY | Flags::REDELIVER) && self.can_read(io.limits);
        let wants_write = self.flags.has(Flags::WANT_WRITE) && self.out.pending() == 0;
        if (wants_read || wants_write) && !self.flags.has(Flags::QUEUED) {
            self.flags.set(Flags::QUEUED);
            io.retry.push(connection_token(fd, self.generation));
        }
        None
    }

    /// One send of the pending output.
    fn send(&mut self, io: &mut Io<'_>) -> Result<(), CloseReason> {
        send_queued(&self.stream, &mut self.out, io.pool, io.counters).map_err(|e| CloseReason::from_io(&e))
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
