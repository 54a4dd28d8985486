//! The reliable channels' two ends: the sender's queue of messages until every fragment is
//! acknowledged, and the receivers that deliver each message once, in order or as it comes.

use std::collections::VecDeque;

use super::Pool;

/// Messages a reliable channel may have in flight: ids span at most this many, so a receiver's
/// window of this size always holds them.
pub(crate) const WINDOW: usize = 1024;
/// Bytes sent but not yet acknowledged, per channel: what a receiver may have to hold before it
/// can deliver (a lost first fragment holds back everything ordered after it).
pub(crate) const IN_FLIGHT_BYTES: usize = 256 * 1024;
/// Messages queued on one reliable channel before `send` refuses: the peer is not keeping up,
/// and the game should know rather than grow memory without bound.
pub(crate) const BACKLOG_MESSAGES: usize = 4096;
/// Bytes queued on one reliable channel before `send` refuses.
pub(crate) const BACKLOG_BYTES: usize = 4 * 1024 * 1024;

/// One message until the peer has acknowledged all of it.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) data: Vec<u8>,
    /// 1 for a message sent whole.
    pub(crate) fragments: u8,
    /// Bit `i`: fragment `i` acknowledged.
    pub(crate) acked: u64,
    /// When it was last sent in full; `None` before its first send.
    pub(crate) last_sent: Option<u64>,
    /// The next fragment to send in the current round (a round can span packets and flushes).
    pub(crate) cursor: u8,
    /// Counted in the bytes in flight (once: its first round can span flushes).
    pub(crate) started: bool,
}

impl Pending {
    pub(crate) fn is_acked(&self) -> bool {
        self.acked.count_ones() == u32::from(self.fragments)
    }
}

/// A reliable channel's outgoing messages, by consecutive id from the oldest unacknowledged.
#[derive(Debug, Default)]
pub(crate) struct Sender {
    /// The id of `queue[0]`.
    pub(crate) front_id: u16,
    pub(crate) queue: VecDeque<Pending>,
    queued_bytes: usize,
    pub(crate) in_flight_bytes: usize,
}

impl Sender {
    /// Queues a message; false when the backlog is full.
    pub(crate) fn push(&mut self, message: &[u8], fragments: u8, pool: &mut Pool) -> bool {
        if self.queue.len() >= BACKLOG_MESSAGES || self.queued_bytes + message.len() > BACKLOG_BYTES {
            return false;
        }
        let mut data = pool.take();
        data.extend_from_slice(message);
        self.queued_bytes += message.len();
        self.queue.push_back(Pending { data, fragments, acked: 0, last_sent: None, cursor: 0, started: false });
        true
    }

    pub(crate) fn id_of(&self, index: usize) -> u16 {
        self.front_id.wrapping_add(index as u16)
    }

    /// Whether the message at `index` may go out for the first time: inside the id window and
    /// within the bytes in flight (one message always may, whatever its size).
    pub(crate) fn may_start(&self, index: usize) -> bool {
        let len = self.queue[index].data.len();
        index < WINDOW && (self.in_flight_bytes == 0 || self.in_flight_bytes + len <= IN_FLIGHT_BYTES)
    }

    /// The message at `index` goes out for the first time: it counts in the bytes in flight.
    pub(crate) fn started(&mut self, index: usize) {
        let pending = &mut self.queue[index];
        if !pending.started {
            pending.started = true;
            self.in_flight_bytes += pending.data.len();
        }
    }

    /// Fragment `fragment` of message `id` was acknowledged; fully acknowledged messages at the
    /// front leave the queue and give their buffers back to `pool`.
    pub(crate) fn acked(&mut self, id: u16, fragment: u8, pool: &mut Pool) {
        let index = usize::from(id.wrapping_sub(self.front_id));
        let Some(pending) = self.queue.get_mut(index) else { return };
        if pending.is_acked() {
            return;
        }
        pending.acked |= 1 << fragment;
        if pending.is_acked() {
            self.in_flight_bytes -= pending.data.len();
        }
        while self.queue.front().is_some_and(Pending::is_acked) {
            let done = self.queue.pop_front().expect("front checked");
            self.queued_bytes -= done.data.len();
            self.front_id = self.front_id.wrapping_add(1);
            pool.give(done.data);
        }
    }
}

/// Where `id` stands against `base`: 0 for `base` itself, up to 32767 ahead; `None` behind.
fn ahead_of(id: u16, base: u16) -> Option<usize> {
    let offset = id.wrapping_sub(base);
    (offset < 0x8000).then_some(usize::from(offset))
}

/// Delivers reliable-ordered messages in id order, holding those that arrive early.
#[derive(Debug, Default)]
pub(crate) struct OrderedReceiver {
    next: u16,
    early: Vec<(u16, Vec<u8>)>,
    early_bytes: usize,
}

impl OrderedReceiver {
    /// The id to deliver next: the one message that is never held.
    pub(crate) fn next(&self) -> u16 {
        self.next
    }

    /// Bytes held for messages that came early.
    pub(crate) fn early_bytes(&self) -> usize {
        self.early_bytes
    }

    /// Whether message `id` is still wanted: not delivered, not held.
    pub(crate) fn wants(&self, id: u16) -> bool {
        ahead_of(id, self.next).is_some_and(|ahead| ahead < WINDOW) && !self.early.iter().any(|(held, _)| *held == id)
    }

    /// Takes message `id`: delivers it and every held one that follows, if it is the next; holds
    /// a copy if it is early; drops it if already delivered or held.
    pub(crate) fn accept(&mut self, id: u16, message: &[u8], pool: &mut Pool, deliver: &mut impl FnMut(&[u8])) {
        match ahead_of(id, self.next) {
            Some(0) => {
                deliver(message);
                self.next = self.next.wrapping_add(1);
                while let Some(at) = self.early.iter().position(|(held, _)| *held == self.next) {
                    let (_, held) = self.early.swap_remove(at);
                    self.early_bytes -= held.len();
                    deliver(&held);
                    pool.give(held);
                    self.next = self.next.wrapping_add(1);
                }
            }
            Some(ahead) if ahead < WINDOW && !self.early.iter().any(|(held, _)| *held == id) => {
                let mut copy = pool.take();
                copy.extend_from_slice(message);
                self.early_bytes += copy.len();
                self.early.push((id, copy));
            }
            _ => {}
        }
    }
}

/// Delivers reliable-unordered messages as they arrive, each once.
#[derive(Debug, Default)]
pub(crate) struct UnorderedReceiver {
    /// Every id before it was received.
    base: u16,
    /// Bit `id % WINDOW`: `id` (in `base..base + WINDOW`) was received.
    seen: [u64; WINDOW / 64],
}

impl UnorderedReceiver {
    /// True the first time `id` is offered (inside the window), false for a repeat.
    pub(crate) fn first_time(&mut self, id: u16) -> bool {
        let Some(ahead) = ahead_of(id, self.base) else { return false };
        if ahead >= WINDOW || self.bit(id) {
            return false;
        }
        self.flip(id);
        while self.bit(self.base) {
            self.flip(self.base);
            self.base = self.base.wrapping_add(1);
        }
        true
    }

    /// Whether message `id` is still wanted: inside the window and not received.
    pub(crate) fn wants(&self, id: u16) -> bool {
        ahead_of(id, self.base).is_some_and(|ahead| ahead < WINDOW) && !self.bit(id)
    }

    fn bit(&self, id: u16) -> bool {
        let at = usize::from(id) % WINDOW;
        self.seen[at / 64] & (1 << (at % 64)) != 0
    }

    fn flip(&mut self, id: u16) {
        let at = usize::from(id) % WINDOW;
        self.seen[at / 64] ^= 1 << (at % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_holds_the_early_and_delivers_in_order_once() {
        let mut receiver = OrderedReceiver { next: 65_534, ..OrderedReceiver::default() };
        let mut pool = Pool::default();
        let mut got = vec![];
        for id in [65_535u16, 1, 65_535, 0, 65_534, 2, 0, 65_534] {
            receiver.accept(id, &id.to_le_bytes(), &mut pool, &mut |m| got.push(u16::from_le_bytes([m[0], m[1]])));
        }
        assert_eq!(got, vec![65_534, 65_535, 0, 1, 2], "across the wrap");
        assert!(receiver.early.is_empty());
    }

    #[test]
    fn unordered_delivers_each_once_across_the_wrap() {
        let mut receiver = UnorderedReceiver { base: 65_000, ..UnorderedReceiver::default() };
        let ids: Vec<u16> = (0..3000u32).map(|i| (65_000 + (i ^ 5)) as u16).collect();
        let mut delivered = 0;
        for (round, &id) in ids.iter().enumerate() {
            assert!(receiver.first_time(id), "{id}");
            delivered += 1;
            assert!(!receiver.first_time(id), "a repeat of {id}");
            if round > 10 {
                assert!(!receiver.first_time(ids[round - 10]), "an old repeat");
            }
        }
        assert_eq!(delivered, 3000);
    }

    #[test]
    fn the_sender_frees_messages_once_every_fragment_is_acked() {
        let mut sender = Sender { front_id: 65_535, ..Sender::default() };
        let mut pool = Pool::default();
        assert!(sender.push(b"one", 1, &mut pool));
        assert!(sender.push(&[0; 3000], 3, &mut pool));
        sender.started(0);
        sender.started(1);
        sender.acked(0, 0, &mut pool);
        sender.acked(0, 2, &mut pool);
        assert_eq!(sender.queue.len(), 2, "the first is not acked yet");
        sender.acked(65_535, 0, &mut pool);
        assert_eq!((sender.queue.len(), sender.front_id), (1, 0));
        sender.acked(0, 1, &mut pool);
        assert!(sender.queue.is_empty());
        assert_eq!((sender.in_flight_bytes, sender.queued_bytes), (0, 0));
        assert_eq!(pool.free.len(), 2, "both buffers are back for reuse");
    }
}
