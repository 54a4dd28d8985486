//! A UDP peer as its handlers see it ([`Peer`]), and what they ask of it during a call
//! ([`PeerState`]). A peer is one session per remote address, created on its first datagram and
//! kept in the worker that received it, until it closes itself or falls silent for
//! `udp_idle_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::rt::shared::WorkerSet;
use crate::rt::token::ConnId;
use crate::rt::wheel::TimerRequest;
use crate::stats::Stats;
use crate::sys::SendQueue;

/// A UDP peer as its handlers see it: replies, its address, its timer, its end.
///
/// What [`send`](Peer::send) queues leaves in one `sendmmsg` with everything else the current
/// read batch (or tick) produced.
pub struct Peer<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) id: ConnId,
    pub(crate) queue: &'a mut SendQueue,
    pub(crate) state: &'a mut PeerState,
    pub(crate) workers: &'a WorkerSet,
}

/// What a handler asked of its peer during one call, applied by the worker afterwards.
#[derive(Debug, Default)]
pub(crate) struct PeerState {
    pub(crate) close: bool,
    pub(crate) timer: TimerRequest,
}

impl std::fmt::Debug for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("addr", &self.addr).field("id", &self.id).finish()
    }
}

impl Peer<'_> {
    /// Queues a datagram to this peer (sent when the handler's batch is done; UDP may drop it).
    pub fn send(&mut self, datagram: &[u8]) {
        if !self.state.close {
            self.queue.push(self.addr, datagram);
        }
    }

    /// The peer's address: the session's key.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The session's id, unique for the server's life.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Ends the session after this call (`on_close` follows with
    /// [`CloseReason::Closed`](crate::CloseReason::Closed)); a later datagram from the same
    /// address starts a new one.
    pub fn close(&mut self) {
        self.state.close = true;
    }

    /// Arms this session's timer: `on_timer` runs once, `after` from now, unless set again or
    /// cancelled.
    pub fn set_timer(&mut self, after: Duration) {
        self.state.timer = TimerRequest::after(after);
    }

    /// Disarms the timer, if armed.
    pub fn cancel_timer(&mut self) {
        self.state.timer = TimerRequest::Cancel;
    }

    /// The counters of all workers, summed.
    pub fn server_stats(&self) -> Stats {
        self.workers.stats()
    }
}
