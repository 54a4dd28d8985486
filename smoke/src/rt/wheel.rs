//! [`TimerWheel`]: the armed timers of a worker's sessions (connections and UDP peers), in a
//! hierarchical timing wheel. Arming, re-arming and cancelling are O(1) and re-use the timer's
//! one entry, so a handler that re-arms a keep-alive timer per message costs neither time nor
//! memory; finding the next deadline is O(levels).
//!
//! Six levels of 64 slots: level `l`'s slots each span 64^l milliseconds, so the wheel covers
//! 64^6 ms (over two years) at millisecond resolution. A timer sits in the level where its
//! deadline first differs from the wheel's time; as the time reaches a slot of a higher level,
//! its timers move down, until they fire from level 0 (the scheme of Varghese and Lauck, as
//! Linux and tokio use it).

use std::num::NonZeroU32;
use std::time::Duration;

use crate::rt::time::Clock;
use crate::rt::token::Token;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const NIL: u32 = u32::MAX;
/// Where a node is linked: a level and slot, or the list of timers already due.
const DUE: u8 = LEVELS as u8;

/// A timer's entry in the wheel, held by its session while armed.
pub(crate) type EntryId = NonZeroU32;

/// What a handler asked of its session's timer during one call; applied when the call returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TimerRequest {
    #[default]
    Unchanged,
    /// Milliseconds from now; a u32 (49 days) keeps every idle session's entry small.
    Set(u32),
    Cancel,
}

impl TimerRequest {
    /// A timer `after` from now, in the milliseconds a request holds (at most 49 days).
    pub(crate) fn after(after: Duration) -> TimerRequest {
        TimerRequest::Set(after.as_millis().min(u128::from(u32::MAX)) as u32)
    }
}

/// A session's timer: its entry in the wheel while armed, and what its handler asked last.
/// 12 bytes, because every session slot carries one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timer {
    entry: Option<EntryId>,
    pub(crate) request: TimerRequest,
}

impl Timer {
    /// The wheel fired `entry`: true (and the timer disarmed) when it was this timer's.
    pub(crate) fn fired(&mut self, entry: EntryId) -> bool {
        let mine = self.entry == Some(entry);
        if mine {
            self.entry = None;
        }
        mine
    }
}

/// A timer's entry: 24 bytes, since every armed timer has one (an idle HTTP connection's
/// keep-alive timer among them).
#[derive(Clone, Copy, Debug)]
struct Node {
    token: Token,
    /// The deadline in the low 48 bits (milliseconds: nine thousand years), and where the node
    /// is linked in the high 16: its level (`DUE`, or `NIL as u8` while free) and slot.
    at: u64,
    prev: u32,
    next: u32,
}

const DEADLINE_BITS: u32 = 48;
/// The latest deadline a node holds; later ones wait until then (no deadline here is near).
const LATEST: u64 = (1 << DEADLINE_BITS) - 1;

impl Node {
    fn new(token: Token, deadline: u64) -> Node {
        let mut node = Node { token, at: 0, prev: NIL, next: NIL };
        node.place(NIL as u8, 0, deadline);
        node
    }
    #[inline]
    fn deadline(&self) -> u64 {
        self.at & LATEST
    }
    #[inline]
    fn level(&self) -> u8 {
        (self.at >> 56) as u8
    }
    #[inline]
    fn slot(&self) -> u8 {
        (self.at >> DEADLINE_BITS) as u8
    }
    #[inline]
    fn place(&mut self, level: u8, slot: u8, deadline: u64) {
        self.at = (u64::from(level) << 56) | (u64::from(slot) << DEADLINE_BITS) | deadline.min(LATEST);
    }
}

#[derive(Debug)]
pub(crate) struct TimerWheel {
    nodes: Vec<Node>,
    /// Free nodes, linked through `next`.
    free: u32,
    heads: [[u32; SLOTS]; LEVELS],
    /// Per level, a bit per slot that holds timers.
    occupied: [u64; LEVELS],
    /// Timers whose deadline had passed when they were armed or moved down.
    due: u32,
    /// The wheel's time: every slot before it has been emptied.
    elapsed: u64,
    /// Nothing needs attention before this (a lower bound: an arm lowers it, a poll that finds
    /// nothing due sets it exactly); `u64::MAX` when nothing is armed. It makes a loop turn's
    /// poll and its next-deadline question one compare.
    next_due: u64,
    armed: usize,
}

impl Default for TimerWheel {
    fn default() -> TimerWheel {
        TimerWheel {
            nodes: Vec::new(),
            free: NIL,
            heads: [[NIL; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            due: NIL,
            elapsed: 0,
            next_due: u64::MAX,
            armed: 0,
        }
    }
}

impl TimerWheel {
    /// Arms a new timer for `token`.
    pub(crate) fn insert(&mut self, token: Token, deadline: u64) -> EntryId {
        let index = match self.free {
            NIL => {
                self.nodes.push(Node::new(token, deadline));
                (self.nodes.len() - 1) as u32
            }
            free => {
                self.free = self.nodes[free as usize].next;
                self.nodes[free as usize] = Node::new(token, deadline);
                free
            }
        };
        self.armed += 1;
        self.link(index);
        id_of(index)
    }

    /// Moves an armed timer to a new deadline, in place.
    pub(crate) fn reschedule(&mut self, id: EntryId, deadline: u64) {
        let index = index_of(id);
        self.unlink(index);
        let node = &mut self.nodes[index as usize];
        node.place(node.level(), node.slot(), deadline);
        self.link(index);
    }

    /// Disarms a timer; its entry is free for another.
    pub(crate) fn remove(&mut self, id: EntryId) {
        let index = index_of(id);
        self.unlink(index);
        self.release(index);
    }

    /// Timers armed now.
    pub(crate) fn len(&self) -> usize {
        self.armed
    }

    /// Applies what a handler asked of `timer` (the session of `token`) during its last call:
    /// arming re-uses the timer's entry if it has one.
    #[inline]
    pub(crate) fn apply(&mut self, timer: &mut Timer, token: Token, clock: &Clock) {
        // Checked here, inlined: most calls find nothing asked.
        if !matches!(timer.request, TimerRequest::Unchanged) {
            self.apply_request(timer, token, clock);
        }
    }

    fn apply_request(&mut self, timer: &mut Timer, token: Token, clock: &Clock) {
        match std::mem::take(&mut timer.request) {
            TimerRequest::Unchanged => {}
            TimerRequest::Cancel => self.disarm(timer),
            TimerRequest::Set(after) => {
                let deadline = clock.timer_deadline(Duration::from_millis(u64::from(after)));
                self.arm(&mut timer.entry, token, deadline);
            }
        }
    }

    /// Arms `entry` (a timer of `token`'s session) for `deadline`, in place if it is armed.
    pub(crate) fn arm(&mut self, entry: &mut Option<EntryId>, token: Token, deadline: u64) {
        match *entry {
            Some(id) => self.reschedule(id, deadline),
            None => *entry = Some(self.insert(token, deadline)),
        }
    }

    /// Disarms `entry` if it is armed.
    pub(crate) fn disarm_entry(&mut self, entry: &mut Option<EntryId>) {
        if let Some(id) = entry.take() {
            self.remove(id);
        }
    }

    /// Disarms `timer` if it is armed (its session is closing, or asked).
    pub(crate) fn disarm(&mut self, timer: &mut Timer) {
        self.disarm_entry(&mut timer.entry);
    }

    /// The earliest time the wheel needs a poll (at most the earliest deadline: a timer moving
    /// down a level needs one too).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        (self.next_due != u64::MAX).then_some(self.next_due)
    }

    /// The next timer due at `now`, disarmed: its token and the entry its session held.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(Token, EntryId)> {
        if now < self.next_due {
            return None;
        }
        self.pop_due_scan(now)
    }

    fn pop_due_scan(&mut self, now: u64) -> Option<(Token, EntryId)> {
        loop {
            if self.due != NIL {
                let index = self.due;
                let token = self.nodes[index as usize].token;
                self.unlink(index);
                self.release(index);
                return Some((token, id_of(index)));
            }
            let next = (0..LEVELS).filter_map(|level| self.next_slot(level).map(|(slot, start)| (start, level, slot)));
            match next.min() {
                Some((start, level, slot)) if start <= now => self.expire_slot(level, slot, start),
                next => {
                    // Nothing is due before `now`: the time can move on without passing a timer.
                    self.elapsed = self.elapsed.max(now);
                    self.next_due = next.map_or(u64::MAX, |(start, _, _)| start);
                    return None;
                }
            }
        }
    }

    /// The time has reached a slot: its timers move down (or to the due list).
    fn expire_slot(&mut self, level: usize, slot: usize, start: u64) {
        self.elapsed = self.elapsed.max(start);
        let mut index = self.heads[level][slot];
        self.heads[level][slot] = NIL;
        self.occupied[level] &= !(1 << slot);
        while index != NIL {
            let next = self.nodes[index as usize].next;
            self.link(index);
            index = next;
        }
    }

    /// The first occupied slot of `level` from the wheel's time on, and the time it starts.
    fn next_slot(&self, level: usize) -> Option<(usize, u64)> {
        let occupied = self.occupied[level];
        if occupied == 0 {
            return None;
        }
        let shift = SLOT_BITS * level as u32;
        let slot_span = 1u64 << shift;
        let level_span = slot_span << SLOT_BITS;
        let now_slot = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
        let ahead = occupied.rotate_right(now_slot).trailing_zeros();
        let slot = (now_slot + ahead) % SLOTS as u32;
        let level_start = self.elapsed & !(level_span - 1);
        let mut start = level_start + u64::from(slot) * slot_span;
        if slot < now_slot {
            start += level_span;
        }
        Some((slot as usize, start))
    }

    /// Links a (free-standing) node where its deadline puts it relative to the wheel's time.
    fn link(&mut self, index: u32) {
        let deadline = self.nodes[index as usize].deadline();
        self.next_due = self.next_due.min(deadline.max(self.elapsed));
        let (level, slot, head) = if deadline <= self.elapsed {
            (DUE, 0, &mut self.due)
        } else {
            // The highest bit where the deadline and the wheel's time differ picks the level.
            let significant = 63 - ((self.elapsed ^ deadline) | (SLOTS as u64 - 1)).leading_zeros();
            let level = (significant / SLOT_BITS).min(LEVELS as u32 - 1) as usize;
            let slot = ((deadline >> (SLOT_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
            self.occupied[level] |= 1 << slot;
            (level as u8, slot as u8, &mut self.heads[level][slot])
        };
        let old_head = *head;
        *head = index;
        if old_head != NIL {
            self.nodes[old_head as usize].prev = index;
        }
        let node = &mut self.nodes[index as usize];
        (node.prev, node.next) = (NIL, old_head);
        node.place(level, slot, deadline);
    }

    fn unlink(&mut self, index: u32) {
        let node = self.nodes[index as usize];
        let (prev, next, level, slot) = (node.prev, node.next, node.level(), node.slot());
        debug_assert!(level != NIL as u8, "unlinking a free timer entry");
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else if level == DUE {
            self.due = next;
        } else {
            self.heads[level as usize][slot as usize] = next;
            if next == NIL {
                self.occupied[level as usize] &= !(1 << slot);
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn release(&mut self, index: u32) {
        let node = &mut self.nodes[index as usize];
        node.place(NIL as u8, 0, node.deadline());
        node.next = self.free;
        self.free = index;
        self.armed -= 1;
    }
}

fn id_of(index: u32) -> EntryId {
    // Indices stay below u32::MAX: a worker holds far fewer timers than that.
    NonZeroU32::new(index + 1).unwrap_or(NonZeroU32::MAX)
}

fn index_of(id: EntryId) -> u32 {
    id.get() - 1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::rt::token::Kind;

    fn token(i: usize) -> Token {
        Token::new(Kind::Connection, i, 1)
    }

    /// Pops everything due at `now`, as (deadline, token index).
    fn fire(wheel: &mut TimerWheel, now: u64) -> Vec<usize> {
        std::iter::from_fn(|| wheel.pop_due(now)).map(|(token, _)| token.index()).collect()
    }

    #[test]
    fn an_entry_is_24_bytes() {
        // Every armed timer has one: an idle HTTP connection's keep-alive timer among them.
        assert_eq!(std::mem::size_of::<Node>(), 24);
    }

    #[test]
    fn timers_fire_at_their_deadline_across_levels() {
        let mut wheel = TimerWheel::default();
        for (i, deadline) in [5u64, 64, 65, 4_100, 300_000, 30 * 86_400_000].into_iter().enumerate() {
            wheel.insert(token(i), deadline);
        }
        assert_eq!(fire(&mut wheel, 4), Vec::<usize>::new());
        assert_eq!(fire(&mut wheel, 5), [0]);
        assert_eq!(fire(&mut wheel, 64), [1]);
        assert_eq!(fire(&mut wheel, 4_099), [2]);
        assert_eq!(fire(&mut wheel, 4_100), [3]);
        assert_eq!(wheel.next_deadline().map(|d| d <= 300_000), Some(true));
        assert_eq!(fire(&mut wheel, 299_999), Vec::<usize>::new());
        assert_eq!(fire(&mut wheel, 300_000), [4]);
        assert_eq!(fire(&mut wheel, 30 * 86_400_000), [5]);
        assert_eq!((wheel.len(), wheel.next_deadline()), (0, None));
    }

    #[test]
    fn a_sessions_requests_arm_move_and_cancel_its_one_entry() {
        let (mut wheel, clock) = (TimerWheel::default(), Clock::start());
        let mut timer = Timer { request: TimerRequest::after(Duration::ZERO), ..Timer::default() };
        wheel.apply(&mut timer, token(3), &clock);
        let entry = timer.entry.expect("armed");
        assert_eq!(wheel.len(), 1);
        timer.request = TimerRequest::after(Duration::from_millis(50));
        wheel.apply(&mut timer, token(3), &clock);
        assert_eq!(timer.entry, Some(entry), "re-armed in place");
        assert_eq!(fire(&mut wheel, 49), Vec::<usize>::new(), "not at its old deadline (1 ms)");
        let (fired_token, fired) = wheel.pop_due(50).expect("due at 50");
        assert_eq!(fired_token.index(), 3);
        assert!(timer.fired(fired) && timer.entry.is_none());
        timer.request = TimerRequest::after(Duration::from_millis(10));
        wheel.apply(&mut timer, token(3), &clock);
        timer.request = TimerRequest::Cancel;
        wheel.apply(&mut timer, token(3), &clock);
        assert_eq!((wheel.len(), fire(&mut wheel, 1_000)), (0, Vec::<usize>::new()));
    }

    #[test]
    fn re_arming_and_cancelling_reuse_one_entry() {
        let mut wheel = TimerWheel::default();
        let id = wheel.insert(token(1), 30_000);
        for now in 1..10_000u64 {
            // A keep-alive timer re-armed on every message.
            assert_eq!(fire(&mut wheel, now), Vec::<usize>::new());
            wheel.reschedule(id, now + 30_000);
        }
        assert_eq!(wheel.nodes.len(), 1, "one entry, however often it is re-armed");
        assert_eq!(fire(&mut wheel, 39_999 + 30_000), [1]);
        let id = wheel.insert(token(2), 100_000);
        wheel.remove(id);
        assert_eq!(fire(&mut wheel, 200_000), Vec::<usize>::new());
        assert_eq!(wheel.nodes.len(), 1, "the freed entry was reused");
    }

    /// The wheel against a plain ordered set, on a pseudo-random mix of arms, re-arms, cancels
    /// and polls: every timer fires once, at or after its deadline and never after the first
    /// poll that reaches it, and nothing fires early.
    #[test]
    fn it_agrees_with_an_ordered_set() {
        let mut wheel = TimerWheel::default();
        let mut model: BTreeSet<(u64, usize)> = BTreeSet::new();
        let mut armed: Vec<Option<(EntryId, u64)>> = vec![None; 200];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = 0u64;
        for _ in 0..50_000 {
            let i = random(200) as usize;
            let span = [3u64, 70, 5_000, 400_000, 40_000_000][random(5) as usize];
            match random(4) {
                0 | 1 => {
                    let deadline = now + 1 + random(span);
                    match armed[i] {
                        Some((id, old)) => {
                            model.remove(&(old, i));
                            wheel.reschedule(id, deadline);
                            armed[i] = Some((id, deadline));
                        }
                        None => armed[i] = Some((wheel.insert(token(i), deadline), deadline)),
                    }
                    model.insert((deadline, i));
                }
                2 => {
                    if let Some((id, old)) = armed[i].take() {
                        wheel.remove(id);
                        model.remove(&(old, i));
                    }
                }
                _ => {
                    now += random(span);
                    let mut fired = fire(&mut wheel, now);
                    fired.sort_unstable();
                    let mut expected: Vec<usize> =
                        model.iter().take_while(|(d, _)| *d <= now).map(|(_, i)| *i).collect();
                    expected.sort_unstable();
                    assert_eq!(fired, expected, "at {now}");
                    for i in fired {
                        let (_, deadline) = armed[i].take().unwrap();
                        model.remove(&(deadline, i));
                    }
                    if let (Some(next), Some(&(earliest, _))) = (wheel.next_deadline(), model.first()) {
                        assert!(next <= earliest, "next_deadline {next} is after a timer due at {earliest}");
                    }
                }
            }
            assert_eq!(wheel.len(), model.len());
        }
    }
}
