//! A periodic timerfd: the worker's tick, delivered through epoll like any other event.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::syscall;

#[derive(Debug)]
pub(crate) struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// A non-blocking CLOCK_MONOTONIC timer firing every `interval`, first after one interval.
    pub(crate) fn periodic(interval: Duration) -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes only integers; on success it returns a new fd we own.
        let fd = unsafe { syscall!(timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC))? };
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let interval = libc::timespec {
            tv_sec: interval.as_secs() as libc::time_t,
            tv_nsec: interval.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec { it_interval: interval, it_value: interval };
        // SAFETY: `spec` is a live itimerspec; a null old-value pointer is allowed.
        unsafe { syscall!(timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()))? };
        Ok(TimerFd { fd })
    }

    /// Expirations since the last read (more than one means ticks were due while the worker
    /// was busy); 0 when none.
    pub(crate) fn expirations(&self) -> u64 {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64, as timerfd requires.
        match unsafe { syscall!(read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8)) } {
            Ok(8) => count,
            _ => 0,
        }
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
