//! eventfd: the wake-up other threads use to get a worker out of epoll_wait.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::syscall;

/// A non-blocking eventfd: other threads `wake` a worker blocked in epoll_wait.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes only integers; on success it returns a new fd we now own.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))? };
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd { fd })
    }

    /// Adds one to the counter, making the fd readable. Never blocks: a full counter (2^64 - 2
    /// pending wakes) is already readable, so EAGAIN is as good as success.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        let _ = unsafe { syscall!(write(self.fd.as_raw_fd(), (&raw const one).cast(), 8)) };
    }

    /// Resets the counter so the next `wake` produces a new edge.
    pub(crate) fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64, as eventfd requires.
        let _ = unsafe { syscall!(read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8)) };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
