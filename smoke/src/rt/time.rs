//! Time in the event loop: the worker's clock, the compact activity stamps sessions keep, the
//! periodic sweep of idle sessions, and the wall clock for protocols that print dates. Armed
//! timers live in `wheel.rs`.

use std::time::Duration;

/// A worker's clock: milliseconds since the worker started, read once per loop turn (a 64-bit
/// count that never wraps, so deadlines compare plainly), and the wall clock derived from it.
#[derive(Debug)]
pub(crate) struct Clock {
    /// CLOCK_MONOTONIC when the worker started, in nanoseconds.
    started: u64,
    now: u64,
    /// The same instant in microseconds, for the histograms of how long things take.
    now_us: u64,
    /// Unix milliseconds minus `now` at the last look at the wall clock.
    wall_offset: u64,
    /// `now` at the last look at the wall clock.
    wall_checked: u64,
}

/// How often the clock looks at the wall again: a step of the wall clock (NTP, an operator)
/// shows in `Date` headers within this.
const WALL_CHECK_MS: u64 = 1000;

impl Clock {
    pub(crate) fn start() -> Clock {
        let mut clock =
            Clock { started: crate::sys::monotonic_nanos(), now: 0, now_us: 0, wall_offset: 0, wall_checked: 0 };
        clock.check_wall();
        clock
    }

    /// Reads the time again; everything in this loop turn sees this instant.
    pub(crate) fn refresh(&mut self) {
        self.now_us = crate::sys::monotonic_nanos().saturating_sub(self.started) / 1000;
        self.now = self.now_us / 1000;
        if self.now >= self.wall_checked + WALL_CHECK_MS {
            self.check_wall();
        }
    }

    fn check_wall(&mut self) {
        self.wall_offset = crate::sys::unix_millis().saturating_sub(self.now);
        self.wall_checked = self.now;
    }

    /// Seconds since the Unix epoch as of the last refresh, for `Date` headers: the monotonic
    /// clock plus the wall's offset from it, looked up once a second rather than once a
    /// request.
    #[inline]
    pub(crate) fn unix_seconds(&self) -> u64 {
        (self.now + self.wall_offset) / 1000
    }

    /// Microseconds since the worker started, as of the last refresh.
    pub(crate) fn now_us(&self) -> u64 {
        self.now_us
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

    /// Milliseconds until `deadline` (zero when it has passed).
    pub(crate) fn millis_until(&self, deadline: u64) -> u64 {
        deadline.saturating_sub(self.now)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_wall_clock_is_the_wall_clock() {
        let wall = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut clock = Clock::start();
        for _ in 0..3 {
            clock.refresh();
            let (before, derived, after) = (wall(), clock.unix_seconds(), wall());
            assert!((before.saturating_sub(1)..=after + 1).contains(&derived), "{before} {derived} {after}");
            std::thread::sleep(Duration::from_millis(600));
        }
    }

    #[test]
    fn stamps_measure_idleness_across_the_wrap() {
        assert_eq!(Stamp(u32::MAX - 5).idle_for(Stamp(4)), 10);
        assert_eq!(Stamp(100).idle_for(Stamp(150)), 50);
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
