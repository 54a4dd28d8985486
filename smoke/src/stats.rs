//! Per-worker counters and the snapshot that sums them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a server's counters (one worker's, or all workers' summed).
///
/// Counters only grow, except `buffers_held`, which is the number of input/output buffers lent
/// to connections right now: it drops to zero when every connection is idle, because an idle
/// connection holds no heap buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Connections that ended in an error: reset by the peer, an I/O error, a handler panic, or
    /// input above `max_read_buffer`.
    pub errors: u64,
    /// Handler calls that panicked (each also closed its connection).
    pub panics: u64,
    /// `accept` failures other than "nothing pending", such as EMFILE.
    pub accept_errors: u64,
    /// HTTP requests refused by the protocol layer (400, 413, 431, 505), each closing its
    /// connection.
    pub rejected: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Buffers lent to connections right now (see above).
    pub buffers_held: u64,
    /// WebSocket messages (sends and topic deliveries) dropped at `max_backpressure`.
    pub dropped: u64,
    /// UDP datagrams received and delivered.
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
    /// UDP datagrams dropped on arrival for being longer than `max_datagram`.
    pub datagrams_truncated: u64,
    /// UDP datagrams that could not be sent (socket buffer full, or refused by the kernel).
    pub datagrams_dropped: u64,
    /// Ticks run (on all workers).
    pub ticks: u64,
    /// Ticks that were due while a worker was busy and ran late as one (each late tick reports its lateness).
    pub ticks_missed: u64,
}

impl Stats {
    /// Connections open right now.
    pub fn current(&self) -> u64 {
        // Counters are read one at a time, so a snapshot may see a close before its accept.
        self.accepted.saturating_sub(self.closed)
    }

    fn add(mut self, other: &Stats) -> Stats {
        self.accepted += other.accepted;
        self.closed += other.closed;
        self.errors += other.errors;
        self.panics += other.panics;
        self.accept_errors += other.accept_errors;
        self.rejected += other.rejected;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.buffers_held += other.buffers_held;
        self.dropped += other.dropped;
        self.datagrams_in += other.datagrams_in;
        self.datagrams_out += other.datagrams_out;
        self.datagrams_truncated += other.datagrams_truncated;
        self.datagrams_dropped += other.datagrams_dropped;
        self.ticks += other.ticks;
        self.ticks_missed += other.ticks_missed;
        self
    }

    pub(crate) fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Stats {
        all.into_iter().fold(Stats::default(), |total, counters| total.add(&counters.snapshot()))
    }
}

/// One worker's live counters. Only the owning worker writes them, so an update is a plain load
/// and store (no locked read-modify-write on the hot path); readers on other threads may see a
/// value a moment old, never a torn one. Padded to its own cache lines so workers do not share.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) buffers_held: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) datagrams_truncated: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) ticks: AtomicU64,
    pub(crate) ticks_missed: AtomicU64,
}

/// Adds to a counter owned by the calling worker.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        // Read `closed` before `accepted` so `current()` never underflows on a racing accept.
        let closed = self.closed.load(Relaxed);
        Stats {
            accepted: self.accepted.load(Relaxed),
            closed,
            errors: self.errors.load(Relaxed),
            panics: self.panics.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            buffers_held: self.buffers_held.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            datagrams_in: self.datagrams_in.load(Relaxed),
            datagrams_out: self.datagrams_out.load(Relaxed),
            datagrams_truncated: self.datagrams_truncated.load(Relaxed),
            datagrams_dropped: self.datagrams_dropped.load(Relaxed),
            ticks: self.ticks.load(Relaxed),
            ticks_missed: self.ticks_missed.load(Relaxed),
        }
    }
}
