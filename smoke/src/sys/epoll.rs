//! epoll: an instance, edge-triggered registrations carrying a 64-bit token, and the events a
//! wait returns.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{direct_syscall, syscall};

/// What a registration waits for. Every registration is edge-triggered: the runtime always reads
/// or writes until `EAGAIN` (or re-queues the fd itself), so level-triggered re-reporting would
/// only cost wake-ups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest(u32);

impl Interest {
    /// Input, plus the peer's FIN (EPOLLRDHUP) and urgent data (EPOLLPRI): see
    /// [`Event::read_may_stop_short`].
    pub(crate) const READABLE: Interest = Interest((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32);
    pub(crate) const READ_WRITE: Interest =
        Interest((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLOUT) as u32);

    /// A listening or UDP socket: input only, and one waiting worker woken per event
    /// (EPOLLEXCLUSIVE) when several workers share the socket, as they do one handed over by
    /// another process. (EPOLLEXCLUSIVE admits no EPOLLRDHUP or EPOLLPRI.)
    pub(crate) const SHARED_INPUT: Interest = Interest((libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32);

    fn bits(self) -> u32 {
        self.0 | libc::EPOLLET as u32
    }
}

/// An epoll instance owned by one worker thread.
#[derive(Debug)]
pub(crate) struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes only flags; on success it returns a new fd we now own.
        let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    pub(crate) fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub(crate) fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`. Closing an fd is not enough while another descriptor for the same
    /// socket stays open (a successor's, a supervisor's): the registration would live on, and
    /// with `EPOLLEXCLUSIVE` take wake-ups meant for the processes that still accept.
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, Interest(0))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event { events: interest.bits(), u64: token };
        // SAFETY: `event` is a valid epoll_event that outlives the call; the kernel copies it.
        unsafe { syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event))? };
        Ok(())
    }

    /// Waits for events; `None` blocks indefinitely. An interrupted wait returns no events.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        self.wait_ms(events, timeout_ms(timeout))
    }

    /// [`wait`](Epoll::wait) with epoll_wait's own timeout: milliseconds, -1 blocking.
    pub(crate) fn wait_ms(&self, events: &mut Events, timeout_ms: libc::c_int) -> io::Result<()> {
        events.list.clear();
        let capacity = events.list.capacity() as libc::c_int;
        let (fd, list) = (self.fd.as_raw_fd(), events.list.as_mut_ptr());
        // SAFETY: the kernel writes at most `capacity` entries into the vector's spare capacity,
        // which is allocated and exclusively borrowed for the duration of the call. epoll_pwait
        // with no signal mask is epoll_wait, on every architecture (some lack epoll_wait).
        let res = unsafe { direct_syscall!(libc::SYS_epoll_pwait, fd, list, capacity, timeout_ms, 0, 0) };
        match res {
            Ok(n) => {
                // SAFETY: epoll_wait initialised exactly `n` (<= capacity) entries.
                unsafe { events.list.set_len(n as usize) };
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// epoll_wait's timeout: -1 for none, else milliseconds rounded up, so a 0.4 ms deadline does
/// not turn into a busy poll with timeout 0. In 64 bits: this runs every loop turn, and a
/// 128-bit division is a library call.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    let Some(t) = timeout else { return -1 };
    let ms = t.as_secs().saturating_mul(1000).saturating_add(u64::from(t.subsec_nanos().div_ceil(1_000_000)));
    ms.min(i32::MAX as u64) as libc::c_int
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A reusable buffer of ready events.
pub(crate) struct Events {
    list: Vec<libc::epoll_event>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("len", &self.list.len()).finish()
    }
}

/// One ready event, copied out of the kernel's (packed) record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) token: u64,
    flags: u32,
}

impl Event {
    pub(crate) fn is_readable(&self) -> bool {
        self.flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP | libc::EPOLLPRI) as u32 != 0
    }
    /// A recv may return less than is queued without the queue being empty: at a FIN or error
    /// that came with the data (the end is reported by a later recv), or at an urgent-data mark.
    /// Either way its edge is already spent, so the reader must go on until EAGAIN.
    pub(crate) fn read_may_stop_short(&self) -> bool {
        self.flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32 != 0
    }
    pub(crate) fn is_writable(&self) -> bool {
        self.flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
    }
}

impl Events {
    pub(crate) fn with_capacity(capacity: usize) -> Events {
        Events { list: Vec::with_capacity(capacity) }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn get(&self, index: usize) -> Event {
        let raw = self.list[index];
        Event { token: raw.u64, flags: raw.events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        let cases = [
            (None, -1),
            (Some(Duration::ZERO), 0),
            (Some(Duration::from_nanos(1)), 1),
            (Some(Duration::from_micros(400)), 1),
            (Some(Duration::from_millis(1)), 1),
            (Some(Duration::from_micros(1001)), 2),
            (Some(Duration::from_millis(2500)), 2500),
            (Some(Duration::from_secs(u64::MAX)), i32::MAX),
        ];
        for (timeout, ms) in cases {
            assert_eq!(timeout_ms(timeout), ms, "{timeout:?}");
        }
    }
}
