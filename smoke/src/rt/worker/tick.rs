//! The tick: a timerfd per worker at the configured cadence, how late each run is against its
//! schedule ([`TickInfo`]), and what a tick can reach ([`Tick`]: the worker's own connections,
//! peers and sockets).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::datagram::{Datagrams, apply_peer_requests};
use super::stream::Connection;
use super::{EventLoop, Service, guarded};
use crate::rt::conn::{Conn, Flags};
use crate::rt::core::Core;
use crate::rt::demux::DemuxIo;
use crate::rt::peer::{Peer, PeerState};
use crate::rt::shared::WorkerSet;
use crate::rt::table::SessionTable;
use crate::rt::token::{ConnId, Kind, Token};
use crate::rt::wheel::TimerRequest;
use crate::stats::bump;
use crate::sys::TimerFd;

/// The worker's tick: its timerfd and the schedule lateness is measured against.
#[derive(Debug)]
pub(super) struct Ticker {
    pub(super) fd: TimerFd,
    interval: Duration,
    started: Instant,
    sequence: u64,
}

impl Ticker {
    pub(super) fn new(interval: Duration) -> std::io::Result<Ticker> {
        Ok(Ticker { fd: TimerFd::periodic(interval)?, interval, started: Instant::now(), sequence: 0 })
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

/// One worker's sessions during its tick. Everything here is that worker's own: its
/// connections, its UDP peers, its sockets. Writes and sends leave when the tick returns,
/// batched (`sendmmsg` for UDP).
pub(crate) struct Tick<'w, St, P, D> {
    info: TickInfo,
    connections: &'w mut SessionTable<Connection<St>>,
    datagrams: &'w mut Datagrams<P, D>,
    core: &'w mut Core,
    /// Connections written to during the tick, to send to once it returns.
    touched: &'w mut Vec<Token>,
}

impl<St, P, D> Tick<'_, St, P, D> {
    /// This tick's sequence number and lateness.
    pub(crate) fn info(&self) -> TickInfo {
        self.info
    }

    /// The worker's index (0-based).
    pub(crate) fn worker(&self) -> usize {
        self.core.index
    }

    /// The server's workers, for publications.
    pub(crate) fn workers(&self) -> &WorkerSet {
        &self.core.workers
    }

    /// This worker's open connections.
    pub(crate) fn connections(&self) -> usize {
        // Lingering sockets hold a table entry, but their sessions have ended.
        let lingering = self.core.counters().lingering.load(std::sync::atomic::Ordering::Relaxed);
        self.connections.len().saturating_sub(lingering as usize)
    }

    /// This worker's UDP peers.
    pub(crate) fn peers(&self) -> usize {
        self.datagrams.peers.len()
    }

    /// Calls `visit` with each UDP peer's session and its [`Peer`] handle.
    pub(crate) fn for_each_peer(&mut self, mut visit: impl FnMut(&mut P, &mut Peer<'_>)) {
        let Datagrams { endpoints, peers, closing, .. } = &mut *self.datagrams;
        for (token, entry) in peers.iter_mut() {
            let mut state = PeerState::default();
            let queue = &mut endpoints[entry.endpoint].queue;
            let mut peer =
                Peer { addr: entry.addr, id: entry.id, queue, state: &mut state, workers: &self.core.workers };
            visit(&mut entry.session, &mut peer);
            apply_peer_requests(self.core, closing, entry, token, state);
        }
    }

    /// Calls `visit` with each connection's session and its [`Conn`] (not those that are
    /// lingering: their sessions have ended).
    pub(crate) fn for_each_connection(&mut self, mut visit: impl FnMut(&mut St, &mut Conn<'_>)) {
        for (fd, c) in self.connections.iter_mut() {
            if c.state.flags.has(Flags::LINGERING) {
                continue;
            }
            let mut conn = self.core.conn(&c.stream, &mut c.state, c.id);
            visit(&mut c.session, &mut conn);
            let flags = c.state.flags;
            let wants_settling = c.state.out.pending() > 0
                || flags.has(Flags::CLOSE | Flags::ABORT | Flags::SHUTDOWN_WRITE | Flags::WANT_WRITE)
                || c.state.timer.request != TimerRequest::Unchanged;
            if wants_settling && !flags.has(Flags::DELIVERED) {
                c.state.flags.set(Flags::DELIVERED);
                self.touched.push(Token::new(Kind::Connection, fd as usize, c.id.generation()));
            }
        }
    }

    /// Calls `visit` with each demultiplexed socket's machine on this worker and its I/O.
    #[cfg_attr(not(feature = "game"), allow(dead_code))]
    pub(crate) fn for_each_demux(&mut self, mut visit: impl FnMut(&mut D, &mut DemuxIo<'_>)) {
        for endpoint in &mut self.datagrams.endpoints {
            let Some(demux) = endpoint.demux.as_mut() else { continue };
            visit(demux, &mut self.core.demux_io(&mut endpoint.queue));
        }
    }

    /// Sends a datagram from this worker's first UDP socket to any address; false when the
    /// server has no UDP listener.
    pub(crate) fn send_to(&mut self, addr: SocketAddr, datagram: &[u8]) -> bool {
        match self.datagrams.endpoints.first_mut() {
            Some(endpoint) => {
                endpoint.queue.push(addr, datagram);
                true
            }
            None => false,
        }
    }
}

impl<S: Service> EventLoop<S> {
    /// The tick's timerfd fired: run the tick once, however many intervals passed (the rest are
    /// reported as missed, and the lateness measured from the last one due).
    pub(super) fn run_tick(&mut self) {
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
        let counters = &self.core.own.counters;
        bump(&counters.ticks, 1);
        bump(&counters.ticks_missed, expirations - 1);
        self.core.own.tick_lateness.record(late.as_nanos() as u64);
        let counters = self.core.own.clone();
        let id = ConnId::new(self.core.index, 0);
        let mut tick = Tick {
            info,
            connections: &mut self.connections,
            datagrams: &mut self.datagrams,
            core: &mut self.core,
            touched: &mut self.delivered,
        };
        let service = &*self.service;
        let started = Instant::now();
        let ran = guarded(&counters.counters, id, "on_tick", || service.on_tick(&mut tick));
        counters.tick_handler.record(started.elapsed().as_nanos() as u64);
        if ran.is_none() {
            log::error!("worker {}: on_tick panicked; the next tick runs as scheduled", self.core.index);
        }
        self.wake_touched();
        self.settle_peers();
    }
}
