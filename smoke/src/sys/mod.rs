//! The only home of `unsafe` in smoke: thin, checked wrappers over the Linux system calls the
//! runtime needs. Everything above this module works with safe types (`OwnedFd`, `SocketAddr`,
//! slices) and never sees a raw libc call.
#![allow(unsafe_code)]

pub(crate) mod bpf;
pub(crate) mod clock;
pub(crate) mod epoll;
pub(crate) mod eventfd;
pub(crate) mod files;
pub(crate) mod inherit;
pub(crate) mod packet;
pub(crate) mod process;
#[cfg(feature = "game")]
pub(crate) mod random;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod timerfd;
pub(crate) mod udp;

pub(crate) use clock::{monotonic_nanos, unix_millis};
pub(crate) use epoll::{Epoll, Events, Interest};
pub(crate) use eventfd::EventFd;
pub(crate) use files::{open_files, open_files_limit};
pub(crate) use packet::PacketRing;
#[cfg(feature = "game")]
pub(crate) use random::fill_random;
pub(crate) use signal::ShutdownSignals;
#[cfg(feature = "tls")]
pub(crate) use signal::reload_signal;
pub(crate) use socket::{Listener, Stream};
pub(crate) use timerfd::TimerFd;
pub(crate) use udp::{RecvBatch, SendQueue, UdpSocket};

/// Makes a system call directly (`syscall(2)`), with its arguments as `c_long`s, turning a `-1`
/// return into the thread's `errno` as an `io::Error`. For the calls of the hot path: glibc's
/// own wrappers of recv, send, epoll_wait and recvmmsg/sendmmsg are POSIX cancellation points,
/// and bracket every call with enabling and disabling asynchronous cancellation, about 60
/// instructions a call, more than the rest of the wrapper; smoke never cancels a thread. The
/// caller's `unsafe` block and its SAFETY comment cover the call itself.
macro_rules! direct_syscall {
    ($number:expr $(, $arg:expr)* $(,)?) => {{
        let res = libc::syscall($number $(, $arg as libc::c_long)*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use direct_syscall;

/// Calls a libc function and turns its `-1` return into the thread's `errno` as an `io::Error`.
/// The caller's `unsafe` block and its SAFETY comment cover the call itself.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;
