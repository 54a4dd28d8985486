//! Per-worker buffer recycling and the per-connection output queue.

use crate::stats::{Counters, bump, lower};

/// Capacity of a fresh pooled buffer: a typical request or response fits, and a TCP segment
/// train of ~11 full-size segments drains in one send.
pub(crate) const POOL_BUFFER_SIZE: usize = 16 << 10;
/// Buffers that grew beyond this (a one-off large response) are freed instead of pooled, so the
/// pool never pins a burst's worth of memory.
const MAX_POOLED_CAPACITY: usize = 256 << 10;
/// Idle buffers a worker keeps for reuse: enough for a burst of partial reads and backpressured
/// writes, at most 4 MiB per worker.
const MAX_POOLED_BUFFERS: usize = 256;

/// Lends buffers to connections and takes them back, so a busy server recycles instead of
/// allocating, and an idle connection holds none. `held` mirrors into the worker's counters.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    pub(crate) fn take(&mut self, counters: &Counters) -> Vec<u8> {
        bump(&counters.buffers_held, 1);
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(POOL_BUFFER_SIZE))
    }

    /// Returns `buf` (which must have come from `take`) and leaves an unallocated Vec behind.
    pub(crate) fn give(&mut self, buf: &mut Vec<u8>, counters: &Counters) {
        if buf.capacity() == 0 {
            return;
        }
        let mut buf = std::mem::take(buf);
        lower(&counters.buffers_held, 1);
        if buf.capacity() <= MAX_POOLED_CAPACITY && self.free.len() < MAX_POOLED_BUFFERS {
            buf.clear();
            self.free.push(buf);
        }
    }
}

/// Bytes waiting to be sent on one connection: `buf[head..]`. Unallocated while empty.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) buf: Vec<u8>,
    pub(crate) head: usize,
}

impl Output {
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    #[inline]
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    pub(crate) fn push(&mut self, data: &[u8], pool: &mut BufPool, counters: &Counters) {
        if self.buf.capacity() == 0 {
            self.buf = pool.take(counters);
        } else if self.head > 0 && self.head >= self.buf.len() / 2 {
            // Most of the buffer is already sent: slide the rest down instead of growing.
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` bytes as sent; gives the buffer back once everything went out.
    pub(crate) fn consume(&mut self, n: usize, pool: &mut BufPool, counters: &Counters) {
        self.head += n;
        if self.head == self.buf.len() {
            self.head = 0;
            pool.give(&mut self.buf, counters);
        }
    }

    pub(crate) fn discard(&mut self, pool: &mut BufPool, counters: &Counters) {
        self.head = 0;
        pool.give(&mut self.buf, counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_unallocated_when_empty_and_recycled_through_the_pool() {
        let counters = Counters::default();
        let mut pool = BufPool::default();
        let mut out = Output::default();
        assert_eq!(out.buf.capacity(), 0);
        out.push(b"hello ", &mut pool, &counters);
        out.push(b"world", &mut pool, &counters);
        assert_eq!(out.unsent(), b"hello world");
        assert_eq!(counters.snapshot().buffers_held, 1);
        out.consume(6, &mut pool, &counters);
        assert_eq!(out.unsent(), b"world");
        out.push(b"!", &mut pool, &counters);
        assert_eq!(out.unsent(), b"world!");
        out.consume(6, &mut pool, &counters);
        assert_eq!(out.buf.capacity(), 0, "drained output holds no buffer");
        assert_eq!(counters.snapshot().buffers_held, 0);
        let reused = pool.take(&counters);
        assert!(reused.capacity() >= POOL_BUFFER_SIZE, "the drained buffer was pooled");
    }

    #[test]
    fn oversized_buffers_are_freed_not_pooled() {
        let counters = Counters::default();
        let mut pool = BufPool::default();
        let mut big = pool.take(&counters);
        big.resize(MAX_POOLED_CAPACITY + 1, 0);
        pool.give(&mut big, &counters);
        assert!(pool.free.is_empty());
        assert_eq!(counters.snapshot().buffers_held, 0);
    }
}
