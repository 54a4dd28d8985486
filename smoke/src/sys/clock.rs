//! The clocks: the monotonic one the event loop runs on, and the wall clock it looks at once a
//! second for `Date` headers.

/// Nanoseconds on CLOCK_MONOTONIC, as one integer: the loop reads it twice a turn, and
/// `Instant` arithmetic (a normalised seconds-and-nanoseconds pair, and 128-bit conversions out
/// of `Duration`) costs more than the read. A u64 of nanoseconds lasts 584 years of uptime.
pub(crate) fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes one timespec into a live local; the clock id is a constant Linux supports.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if result == 0 { (now.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(now.tv_nsec as u64) } else { 0 }
}

/// Milliseconds since the Unix epoch from CLOCK_REALTIME (the precise wall clock), for the
/// worker clock's once-a-second look at the wall.
pub(crate) fn unix_millis() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes one timespec into a live local; the clock id is a constant Linux supports.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    if result == 0 { (now.tv_sec.max(0) as u64) * 1000 + now.tv_nsec as u64 / 1_000_000 } else { 0 }
}
