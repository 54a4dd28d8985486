//! SIGINT and SIGTERM as an fd: a sigaction handler writes a never-closed eventfd, which
//! `wait_for_signal` waits on with epoll; the previous handlers come back when it is dropped.
//! SIGHUP (reload the certificates) the same way, for the process's life.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use super::EventFd;
use super::syscall;

/// The eventfd the signal handler writes to. Created once and never closed, so a handler
/// running on another thread while the handlers are being restored can never write into an fd
/// number that has since been reused.
static SIGNAL_EVENT: OnceLock<EventFd> = OnceLock::new();
static SIGNAL_EVENT_FD: AtomicI32 = AtomicI32::new(-1);
/// One waiter at a time: the handlers are process-wide.
static INSTALLED: AtomicBool = AtomicBool::new(false);

const SHUTDOWN_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// SIGINT and SIGTERM turned into a readable fd, through a process-wide handler that writes to
/// an eventfd (the self-pipe pattern). A handler, unlike a signal mask, works whichever thread
/// the kernel delivers the signal to, so user threads need no special setup. Dropping restores
/// the previous handlers.
#[derive(Debug)]
pub(crate) struct ShutdownSignals {
    event: &'static EventFd,
    previous: [libc::sigaction; 2],
}

extern "C" fn on_shutdown_signal(_signal: libc::c_int) {
    notify_from_handler(&SIGNAL_EVENT_FD);
}

/// What a signal handler does: one write to the eventfd in `event_fd`, errno untouched.
fn notify_from_handler(event_fd: &AtomicI32) {
    // SAFETY: __errno_location returns this thread's errno slot; we restore it so the interrupted
    // code does not see the handler's errno. write(2) is async-signal-safe, and the fds written
    // to are never closed (see SIGNAL_EVENT and RELOAD_EVENT).
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let fd = event_fd.load(Ordering::Relaxed);
        if fd >= 0 {
            let one: u64 = 1;
            libc::write(fd, (&raw const one).cast(), 8);
        }
        *errno = saved;
    }
}

/// Does what SIGTERM would: wakes whoever waits on the installed [`ShutdownSignals`] (a
/// successor has taken over, and this process drains). Nothing when none is installed.
pub(crate) fn request_shutdown() {
    notify_from_handler(&SIGNAL_EVENT_FD);
}

impl ShutdownSignals {
    pub(crate) fn install() -> io::Result<ShutdownSignals> {
        if INSTALLED.swap(true, Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another server is already waiting for SIGINT/SIGTERM",
            ));
        }
        let event = match SIGNAL_EVENT.get() {
            Some(event) => event,
            None => match EventFd::new() {
                // A racing first install may have set it meanwhile; either value works.
                Ok(event) => SIGNAL_EVENT.get_or_init(|| event),
                Err(e) => {
                    INSTALLED.store(false, Ordering::SeqCst);
                    return Err(e);
                }
            },
        };
        event.drain();
        SIGNAL_EVENT_FD.store(event.as_raw_fd(), Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is a valid value (no flags, empty mask) to fill in.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = on_shutdown_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: an all-zero sigaction is valid storage for the previous action.
        let mut previous: [libc::sigaction; 2] = unsafe { mem::zeroed() };
        for (i, &signal) in SHUTDOWN_SIGNALS.iter().enumerate() {
            // SAFETY: `action` is initialised and its handler only touches async-signal-safe state;
            // `previous[i]` is valid storage for the old action.
            if let Err(e) = unsafe { syscall!(sigaction(signal, &action, &mut previous[i])) } {
                restore(&previous[..i]);
                INSTALLED.store(false, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(ShutdownSignals { event, previous })
    }
}

fn restore(previous: &[libc::sigaction]) {
    for (signal, action) in SHUTDOWN_SIGNALS.iter().zip(previous) {
        // SAFETY: `action` is the value sigaction reported for this signal before we replaced it.
        unsafe { libc::sigaction(*signal, action, std::ptr::null_mut()) };
    }
}

impl Drop for ShutdownSignals {
    fn drop(&mut self) {
        restore(&self.previous);
        INSTALLED.store(false, Ordering::SeqCst);
    }
}

impl AsRawFd for ShutdownSignals {
    fn as_raw_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }
}

/// The eventfd SIGHUP's handler writes to; created once, never closed (as `SIGNAL_EVENT`).
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
static RELOAD_EVENT: OnceLock<EventFd> = OnceLock::new();
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
static RELOAD_EVENT_FD: AtomicI32 = AtomicI32::new(-1);

#[cfg_attr(not(feature = "tls"), allow(dead_code))]
extern "C" fn on_reload_signal(_signal: libc::c_int) {
    notify_from_handler(&RELOAD_EVENT_FD);
}

/// SIGHUP turned into a readable fd, for the rest of the process's life (what a served
/// server does on it, reloading its certificates, lasts as long). Installing again returns the
/// same fd.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn reload_signal() -> io::Result<&'static EventFd> {
    if let Some(event) = RELOAD_EVENT.get() {
        return Ok(event);
    }
    let event = RELOAD_EVENT.get_or_init(|| EventFd::new().expect("an eventfd for SIGHUP"));
    RELOAD_EVENT_FD.store(event.as_raw_fd(), Ordering::SeqCst);
    // SAFETY: an all-zero sigaction is a valid value (no flags, empty mask) to fill in.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = on_reload_signal as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is initialised and its handler only touches async-signal-safe state; the
    // previous action is not wanted (null).
    unsafe { syscall!(sigaction(libc::SIGHUP, &action, std::ptr::null_mut())) }?;
    Ok(event)
}
