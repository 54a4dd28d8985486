//! What a datagram demultiplexer sees while it runs ([`DemuxIo`]): a UDP socket whose datagrams
//! one per-worker machine takes, whatever their source, rather than a session per address. A
//! protocol that must keep nothing for an unproven source (secure game sessions: a spoofed
//! request costs one stateless answer) makes its own sessions, after its own handshake.

// Only the game listener demultiplexes today: a build without it compiles the path unused.
#![cfg_attr(not(feature = "game"), allow(dead_code))]

use std::net::SocketAddr;

use crate::stats::Counters;
use crate::sys::SendQueue;

/// A demultiplexer's view of its socket and worker during one call: replies leave in the
/// worker's next `sendmmsg` batch.
pub(crate) struct DemuxIo<'a> {
    pub(crate) queue: &'a mut SendQueue,
    /// Milliseconds on the worker's monotonic clock.
    pub(crate) now: u64,
    /// Seconds since the Unix epoch, as of this wake-up.
    pub(crate) unix_seconds: u64,
    /// The worker's counters, for the machine's own.
    pub(crate) counters: &'a Counters,
}

impl std::fmt::Debug for DemuxIo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemuxIo").field("now", &self.now).finish_non_exhaustive()
    }
}

impl DemuxIo<'_> {
    /// Queues a datagram to `to`.
    pub(crate) fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.queue.push(to, datagram);
    }
}
