//! [`Core`]: everything of one worker that its sessions use while they run, apart from the
//! sessions themselves. The event loop keeps it beside its session tables, so a connection can
//! run with the core borrowed whole while the table holds the connection.

use std::sync::Arc;
use std::time::Instant;

use crate::rt::buf::BufPool;
use crate::rt::config::Limits;
use crate::rt::conn::{Conn, ConnState, ToldPeers};
use crate::rt::shared::{WorkerSet, WorkerShared};
use crate::rt::time::Clock;
use crate::rt::token::{ConnId, GENERATION_MASK, Token};
use crate::rt::wheel::TimerWheel;
use crate::stats::Counters;
use crate::sys::{Epoll, Stream};

/// Every read lands here first; only input a handler leaves unconsumed is copied into a
/// per-connection buffer. 64 KiB takes a full TSO burst or 16 pipelined requests in one recv.
pub(crate) const SCRATCH_SIZE: usize = 64 << 10;

#[derive(Debug)]
pub(crate) struct Core {
    /// This worker's index among the server's workers.
    pub(crate) index: usize,
    pub(crate) epoll: Epoll,
    pub(crate) scratch: Box<[u8]>,
    pub(crate) pool: BufPool,
    /// The real peers of connections behind a load balancer (see `Conn::tell_peer_addr`).
    pub(crate) told_peers: ToldPeers,
    /// This worker's counters and wake-up, as the other threads see them.
    pub(crate) own: Arc<WorkerShared>,
    pub(crate) workers: Arc<WorkerSet>,
    pub(crate) limits: Limits,
    /// Sessions to run again without waiting for an event (read budget spent, reading resumed,
    /// accept batch spent).
    pub(crate) retry: Vec<Token>,
    pub(crate) timers: TimerWheel,
    pub(crate) clock: Clock,
    /// Sessions created on this worker: each one's id and generation.
    sequence: u64,
    /// Input handler calls to let pass before timing one, and the xorshift state that draws
    /// the next gap (see [`Core::sample_handler`]).
    until_timed: u32,
    sample_state: u32,
}

/// Input handler calls are timed one in this many on average. A clock read costs about what a
/// small handler does, so timing every call would make the hot path a good deal slower to
/// measure it; a random one in 16 gives the same histogram's shape over any scrape interval.
const HANDLER_SAMPLE: u32 = 16;

impl Core {
    pub(crate) fn new(index: usize, epoll: Epoll, workers: Arc<WorkerSet>, limits: Limits) -> Core {
        Core {
            index,
            epoll,
            scratch: vec![0; SCRATCH_SIZE].into_boxed_slice(),
            pool: BufPool::default(),
            told_peers: ToldPeers::default(),
            own: workers.workers[index].clone(),
            workers,
            limits,
            retry: Vec::new(),
            timers: TimerWheel::default(),
            clock: Clock::start(),
            sequence: 0,
            until_timed: 0,
            sample_state: 0x9E37_79B9 ^ index as u32,
        }
    }

    /// Starts timing this input handler call if it is the sampled one: `Some(start)`, to hand
    /// to [`Core::handler_done`]. The calls skipped before the next sample are random (0 to 30), so
    /// sessions served in a fixed order are not always the one timed.
    #[inline]
    pub(crate) fn sample_handler(&mut self) -> Option<Instant> {
        if self.until_timed > 0 {
            self.until_timed -= 1;
            return None;
        }
        let mut x = self.sample_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.sample_state = x;
        self.until_timed = x % (2 * HANDLER_SAMPLE - 1);
        Some(Instant::now())
    }

    /// Records a sampled handler call's duration in `handler_seconds`.
    #[inline]
    pub(crate) fn handler_done(&self, started: Option<Instant>) {
        if let Some(started) = started {
            self.own.handlers.record(started.elapsed().as_nanos() as u64);
        }
    }

    /// A demultiplexed socket's view of this worker for one call, sending into `queue`.
    pub(crate) fn demux_io<'a>(&'a self, queue: &'a mut crate::sys::SendQueue) -> crate::rt::demux::DemuxIo<'a> {
        let clock = &self.clock;
        crate::rt::demux::DemuxIo {
            queue,
            now: clock.now(),
            unix_seconds: clock.unix_seconds(),
            counters: &self.own.counters,
        }
    }

    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        &self.own.counters
    }

    /// The next session's id and generation (connections and peers count together). The
    /// generation is what a token carries, so it wraps as a token's does.
    pub(crate) fn next_session(&mut self) -> (ConnId, u32) {
        self.sequence += 1;
        (ConnId::new(self.index, self.sequence), self.sequence as u32 & GENERATION_MASK)
    }

    /// The handler's view of a connection: its socket and state, with this worker's buffers and
    /// counters.
    #[inline]
    pub(crate) fn conn<'a>(&'a mut self, stream: &'a Stream, state: &'a mut ConnState, id: ConnId) -> Conn<'a> {
        Conn {
            stream,
            state,
            id,
            pool: &mut self.pool,
            told_peers: &mut self.told_peers,
            counters: &self.own.counters,
            workers: &self.workers,
            max_write_buffer: self.limits.max_write_buffer,
            now: self.clock.now(),
            unix_seconds: self.clock.unix_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::config::{Limits, RuntimeConfig};
    use crate::rt::token::Kind;

    /// A session's stored generation must equal the one its tokens carry back, or every event
    /// for it is taken for a stale one: across the generation's wrap too.
    #[test]
    fn a_sessions_generation_survives_its_token_across_the_wrap() {
        let config = RuntimeConfig::default();
        let workers = Arc::new(WorkerSet::new(1, &config.caps(1), None).unwrap());
        let limits = Limits::resolve(&config, 0);
        let mut core = Core::new(0, Epoll::new().unwrap(), workers, limits);
        core.sequence = u64::from(GENERATION_MASK) - 2;
        for _ in 0..6 {
            let (id, generation) = core.next_session();
            assert_eq!(id.generation(), generation, "the id carries its generation");
            assert_eq!(Token::new(Kind::Connection, 9, generation).generation(), generation);
            assert_eq!(Token::new(Kind::Peer, 9, generation).generation(), generation);
        }
    }
}
