//! Time in the event loop: the worker's clock, the compact activity stamps sessions keep, a
//! session's timer and the queue of armed timers (one queue for connections and UDP peers),
//! the periodic sweep of idle sessions, and the wall clock for protocols that print dates.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::rt::token::Token;

/// A worker's clock: milliseconds since the worker started, read once per loop turn (a 64-bit
/// count that never wraps, so deadlines compare plainly).
#[derive(Debug)]
pub(crate) struct Clock {
    started: Instant,
    now: u64,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock { started: Instant::now(), now: 0 }
    }

    /// Reads the time again; everything in this loop turn sees this instant.
    pub(crate) fn refresh(&mut self) {
        self.now = self.started.elapsed().as_millis() as u64;
    }

    /// Milliseconds since the worker started, as of the last refresh.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// `after` from now.
    pub(crate) fn deadline(&self, after: Duration) -> u64 {
        self.now.saturating_add(after.as_millis().min(u128::from(u64::MAX)) as u64)
    }

    /// A session timer's deadline: `after` from now, at least 1 ms (a deadline of `now` set
    /// from inside its own expiry would be due again at once, and the loop would never finish
    /// a turn).
    pub(crate) fn timer_deadline(&self, after: Duration) -> u64 {
        self.deadline(after.max(Duration::from_millis(1)))
    }

    /// How long until `deadline` (zero when it has passed).
    pub(crate) fn until(&self, deadline: u64) -> Duration {
        Duration::from_millis(deadline.saturating_sub(self.now))
    }

    /// This instant as a session's activity stamp.
    #[inline]
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp(self.now as u32)
    }
}

/// When a session was last active: the clock's milliseconds in 32 bits, which wrap after 49
/// days. Every connection carries one, so it is half the size of a deadline; the one compare
/// that has to know about the wrap is [`Stamp::idle_for`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp(u32);

impl Stamp {
    /// Milliseconds from this stamp to `now` (correct across the wrap for spans under 49 days).
    #[inline]
    pub(crate) fn idle_for(self, now: Stamp) -> u32 {
        now.0.wrapping_sub(self.0)
    }
}

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

/// A session's timer: the deadline it is armed for, and what its handler asked last. 16 bytes
/// (a deadline is never 0: it is at least 1 ms after the clock's start), because every session
/// slot carries one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timer {
    deadline: Option<NonZeroU64>,
    pub(crate) request: TimerRequest,
}

impl Timer {
    /// True when this timer is armed for `deadline`: an entry of the queue for another
    /// deadline is stale.
    pub(crate) fn is_due_at(&self, deadline: u64) -> bool {
        self.deadline.map(NonZeroU64::get) == Some(deadline)
    }

    /// The timer fired: it is no longer armed.
    pub(crate) fn disarm(&mut self) {
        self.deadline = None;
    }
}

/// Armed timers of a worker's sessions (connections and peers) as (deadline, token), earliest
/// first. A timer set again or cancelled leaves its old entry behind; it is skipped when it
/// surfaces, because the session's own deadline no longer matches (or its generation changed).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(u64, Token)>>,
}

impl TimerQueue {
    /// Applies what a handler asked of `timer` (the session of `token`) during its last call.
    pub(crate) fn apply(&mut self, timer: &mut Timer, token: Token, clock: &Clock) {
        match std::mem::take(&mut timer.request) {
            TimerRequest::Unchanged => {}
            TimerRequest::Cancel => timer.deadline = None,
            TimerRequest::Set(after) => {
                let at = clock.timer_deadline(Duration::from_millis(u64::from(after)));
                timer.deadline = NonZeroU64::new(at);
                self.heap.push(Reverse((at, token)));
            }
        }
    }

    /// The earliest deadline queued (possibly a stale one).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next entry due at `now`, removed from the queue: (deadline, token). The caller
    /// fires it only if the session's timer still has this deadline.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, Token)> {
        match self.heap.peek() {
            Some(&Reverse((at, token))) if at <= now => {
                self.heap.pop();
                Some((at, token))
            }
            _ => None,
        }
    }
}

/// The periodic look for sessions idle past a timeout: due a few times per timeout, so a
/// session closes at most a quarter late, without a timer per session.
#[derive(Debug)]
pub(crate) struct IdleSweep {
    idle_ms: u32,
    next: u64,
}

impl IdleSweep {
    /// A sweep for `timeout`, or none when there is no timeout; the first one is due at once.
    pub(crate) fn new(timeout: Option<Duration>) -> Option<IdleSweep> {
        let timeout = timeout.filter(|t| !t.is_zero())?;
        Some(IdleSweep { idle_ms: timeout.as_millis().min(i32::MAX as u128) as u32, next: 0 })
    }

    pub(crate) fn next_deadline(&self) -> u64 {
        self.next
    }

    /// When the sweep is due at `now`: schedules the next one and returns the test a session's
    /// stamp must fail to stay (`true`: idle too long).
    pub(crate) fn due(&mut self, clock: &Clock) -> Option<impl Fn(Stamp) -> bool + use<>> {
        if clock.now() < self.next {
            return None;
        }
        self.next = clock.now() + u64::from((self.idle_ms / 4).clamp(10, 1000));
        let (now, idle_ms) = (clock.stamp(), self.idle_ms);
        Some(move |last_active: Stamp| last_active.idle_for(now) >= idle_ms)
    }
}

/// Seconds since the Unix epoch at the resolution a `Date` header needs (the kernel's coarse
/// clock: no system call).
pub(crate) fn wall_clock_seconds() -> u64 {
    crate::sys::unix_seconds_coarse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::token::Kind;

    #[test]
    fn stamps_measure_idleness_across_the_wrap() {
        assert_eq!(Stamp(u32::MAX - 5).idle_for(Stamp(4)), 10);
        assert_eq!(Stamp(100).idle_for(Stamp(150)), 50);
    }

    #[test]
    fn timers_fire_in_deadline_order_and_reset_ones_are_recognisable() {
        let clock = Clock::start();
        let mut queue = TimerQueue::default();
        let (a, b) = (Token::new(Kind::Connection, 1, 1), Token::new(Kind::Peer, 2, 1));
        let mut timer_a = Timer { request: TimerRequest::after(Duration::from_millis(20)), ..Timer::default() };
        let mut timer_b = Timer { request: TimerRequest::after(Duration::ZERO), ..Timer::default() };
        queue.apply(&mut timer_a, a, &clock);
        queue.apply(&mut timer_b, b, &clock);
        assert!(timer_b.is_due_at(1), "at least 1 ms, even for zero");
        assert_eq!(queue.pop_due(0), None);
        assert_eq!(queue.pop_due(100), Some((1, b)));
        timer_a.request = TimerRequest::Cancel;
        queue.apply(&mut timer_a, a, &clock);
        assert_eq!(queue.pop_due(100), Some((20, a)), "the stale entry surfaces");
        assert!(!timer_a.is_due_at(20), "and its session's timer tells it is stale");
    }

    #[test]
    fn the_idle_sweep_runs_a_few_times_per_timeout() {
        let mut clock = Clock::start();
        let mut sweep = IdleSweep::new(Some(Duration::from_millis(400))).unwrap();
        let idle = sweep.due(&clock).expect("due at once");
        assert!(!idle(clock.stamp()));
        assert_eq!(sweep.next_deadline(), 100);
        assert!(sweep.due(&clock).is_none());
        clock.now = 500;
        assert!(sweep.due(&clock).expect("due again")(Stamp(50)), "idle for 450 ms of a 400 ms timeout");
        assert!(IdleSweep::new(Some(Duration::ZERO)).is_none() && IdleSweep::new(None).is_none());
    }
}
