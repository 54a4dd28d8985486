//! Per-worker buffer recycling and the per-connection output queue.

use crate::stats::{Counters, bump, lower};

/// Capacity of a fresh pooled buffer: a typical request or response fits, and a TCP segment
/// train of ~11 full-size segments drains in one send.
pub(crate) const POOL_BUFFER_SIZE: usize = 16 << 10;
/// Buffers that grew beyond this (a one-off large response) are freed instead of pooled, so the
/// pool never pins a burst's worth of memory.
const MAX_POOLED_CAPACITY: usize = 256 << 10;
/// Bytes of idle buffers a worker keeps for reuse: 256 fresh buffers' worth, enough for a burst
/// of partial reads and backpressured writes. Counted in bytes, not buffers, since buffers that
/// grew (up to `MAX_POOLED_CAPACITY`) are pooled too: 256 of those would pin 64 MiB.
const MAX_POOLED_BYTES: usize = 256 * POOL_BUFFER_SIZE;
/// Buffers lent and kept together, past which [`BufPool::can_lend`] says no: as many fresh
/// buffers as the pool would keep.
const MAX_BUFFERS: usize = MAX_POOLED_BYTES / POOL_BUFFER_SIZE;

/// Lends buffers to connections and takes them back, so a busy server recycles instead of
/// allocating, and an idle connection holds none. `held` mirrors into the worker's counters.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    /// The capacity of the buffers in `free`, together.
    free_bytes: usize,
}

impl BufPool {
    #[inline]
    pub(crate) fn take(&mut self, counters: &Counters) -> Vec<u8> {
        bump(&counters.buffers_held, 1);
        match self.free.pop() {
            Some(buf) => {
                self.free_bytes -= buf.capacity();
                buf
            }
            None => Vec::with_capacity(POOL_BUFFER_SIZE),
        }
    }

    /// Returns `buf` (which must have come from `take`) and leaves an unallocated Vec behind.
    pub(crate) fn give(&mut self, buf: &mut Vec<u8>, counters: &Counters) {
        if buf.capacity() == 0 {
            return;
        }
        let mut buf = std::mem::take(buf);
        lower(&counters.buffers_held, 1);
        if buf.capacity() <= MAX_POOLED_CAPACITY && self.free_bytes + buf.capacity() <= MAX_POOLED_BYTES {
            buf.clear();
            self.free_bytes += buf.capacity();
            self.free.push(buf);
        }
    }

    /// True when a buffer can be lent for a while without allocating in steady state: one is
    /// free, or the pool has not yet grown to what it keeps, so a buffer allocated now comes
    /// back to be kept. Past that (more buffers out at once than the pool would keep), a
    /// caller that has another way, as a delivery sent at once, takes it. The buffers out are
    /// the `buffers_held` gauge, which only this pool moves: no count of its own on the hot path.
    pub(crate) fn can_lend(&self, counters: &Counters) -> bool {
        let lent = counters.buffers_held.load(std::sync::atomic::Ordering::Relaxed) as usize;
        !self.free.is_empty() || lent + self.free.len() < MAX_BUFFERS
    }

    /// Bytes the pool keeps for reuse.
    #[cfg(test)]
    pub(crate) fn free_bytes(&self) -> usize {
        self.free_bytes
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
        self.prepare(pool, counters);
        self.buf.extend_from_slice(data);
    }

    /// Makes the buffer ready to append to: one from the pool if none is held, the unsent
    /// rest slid down if most of it was sent. Returns its length, where appending starts.
    #[inline]
    pub(crate) fn prepare(&mut self, pool: &mut BufPool, counters: &Counters) -> usize {
        if self.buf.capacity() == 0 {
            self.buf = pool.take(counters);
        } else if self.head > 0 && self.head >= self.buf.len() / 2 {
            // Most of the buffer is already sent: slide the rest down instead of growing.
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.len()
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
    fn the_pool_lends_until_it_holds_what_it_keeps_then_only_recycles() {
        let (mut pool, counters) = (BufPool::default(), Counters::default());
        let mut lent: Vec<Vec<u8>> = Vec::new();
        while pool.can_lend(&counters) {
            lent.push(pool.take(&counters));
        }
        assert_eq!(lent.len(), MAX_BUFFERS, "an empty pool lends as many fresh buffers as it keeps");
        pool.give(&mut lent.pop().unwrap(), &counters);
        assert!(pool.can_lend(&counters), "a buffer given back can be lent again");
        lent.push(pool.take(&counters));
        assert!(!pool.can_lend(&counters));
        for buf in &mut lent {
            pool.give(buf, &counters);
        }
        assert_eq!(pool.free_bytes(), MAX_POOLED_BYTES, "all of them came back to be kept");
        assert!(pool.can_lend(&counters));
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

    #[test]
    fn the_pool_keeps_at_most_its_bytes_however_large_its_buffers_grew() {
        // Buffers that grew to the largest pooled size, given back after a burst: the pool
        // keeps as many as its byte budget holds, not 256 of them (64 MiB).
        let counters = Counters::default();
        let mut pool = BufPool::default();
        let mut lent: Vec<Vec<u8>> = (0..300).map(|_| pool.take(&counters)).collect();
        for buf in &mut lent {
            buf.reserve_exact(MAX_POOLED_CAPACITY);
        }
        for buf in &mut lent {
            pool.give(buf, &counters);
        }
        assert!(pool.free_bytes() <= MAX_POOLED_BYTES, "{} bytes pooled", pool.free_bytes());
        assert_eq!(pool.free.len(), MAX_POOLED_BYTES / MAX_POOLED_CAPACITY);
        assert_eq!(pool.free_bytes(), pool.free.iter().map(Vec::capacity).sum::<usize>());
    }
}
