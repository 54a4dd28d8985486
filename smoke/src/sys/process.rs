//! Worker processes (`processes = N`): the supervisor starts each one as a fresh copy of its own
//! program (`/proc/self/exe`, same arguments), with the listening sockets left open across the
//! exec and a pipe to say "serving" on; the worker finds them in `SMOKE_SUPERVISED`. A pidfd per
//! worker lets the supervisor wait on exits with epoll, and signals reach the workers by pid.
//!
//! A fork without exec would copy whatever threads' locks the program holds at that moment
//! (a logger's, an allocator arena's, a runtime the program started before serving), and only
//! the forking thread would carry on; an exec starts the worker clean, at the price of running
//! `main` up to `serve` once more.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use super::inherit::InheritedSocket;
use super::syscall;

/// Where a worker process finds its "serving" pipe and its sockets: `<ready fd> <fd>,<fd>,...`.
/// Set by the supervisor only.
const SUPERVISED: &str = "SMOKE_SUPERVISED";

/// A worker process as its supervisor holds it.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    /// Readable once the process has exited.
    pub(crate) pidfd: OwnedFd,
    /// Where the worker writes one line once it serves; end of file if it dies first.
    pub(crate) ready: io::PipeReader,
}

/// Starts a worker copy of this program, handing it `sockets` (which stay open in it under the
/// same numbers). The worker leads its own process group, so a terminal's Ctrl-C reaches the
/// supervisor alone, which drains the workers once; and it gets SIGTERM if the supervisor dies.
pub(crate) fn start_worker(sockets: &[RawFd]) -> io::Result<WorkerProcess> {
    let (ready, ready_writer) = io::pipe()?;
    let handed: Vec<RawFd> = sockets.iter().copied().chain([ready_writer.as_raw_fd()]).collect();
    let listed: Vec<String> = sockets.iter().map(|fd| fd.to_string()).collect();
    let supervisor = std::process::id() as libc::pid_t;
    let mut command = Command::new("/proc/self/exe");
    command
        .args(std::env::args_os().skip(1))
        .env(SUPERVISED, format!("{} {}", ready_writer.as_raw_fd(), listed.join(",")))
        .stdin(Stdio::null());
    if let Some(arg0) = std::env::args_os().next() {
        command.arg0(arg0);
    }
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions (fcntl,
    // setpgid, prctl, getppid, _exit) on values copied before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for &fd in &handed {
                syscall!(fcntl(fd, libc::F_SETFD, 0))?;
            }
            syscall!(setpgid(0, 0))?;
            syscall!(prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0))?;
            // The supervisor died before the line above: nobody would stop this worker.
            if libc::getppid() != supervisor {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(ready_writer);
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the pid is our
    // unreaped child's, so it cannot name another process.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    Ok(WorkerProcess { child, pidfd, ready })
}

/// Sends `signal` (SIGTERM, SIGHUP) to a worker that has not been reaped yet.
pub(crate) fn signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain values; an unreaped child's pid cannot have been reused.
    unsafe { syscall!(kill(child.id() as libc::pid_t, signal)) }.map(drop)
}

/// This process as a supervisor's worker: the sockets it serves, and the way to say it does.
#[derive(Debug)]
pub(crate) struct Supervised {
    pub(crate) sockets: Vec<InheritedSocket>,
    ready: io::PipeWriter,
}

impl Supervised {
    /// Tells the supervisor this worker serves.
    pub(crate) fn serving(mut self) -> io::Result<()> {
        self.ready.write_all(b"serving\n")
    }
}

/// Taken once per process, as systemd's sockets are.
static SUPERVISED_TAKEN: AtomicBool = AtomicBool::new(false);

/// `Some` when a supervisor started this process as one of its workers; the descriptors it
/// handed are taken (and made close-on-exec again) on the first call only.
pub(crate) fn supervised() -> io::Result<Option<Supervised>> {
    let Ok(value) = std::env::var(SUPERVISED) else { return Ok(None) };
    if SUPERVISED_TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("{SUPERVISED}={value:?}"));
    let mut parts = value.split(' ');
    let ready: RawFd = parts.next().and_then(|n| n.parse().ok()).ok_or_else(invalid)?;
    let fds: Vec<RawFd> = match parts.next() {
        Some("") | None => Vec::new(),
        Some(list) => list.split(',').map(|n| n.parse().map_err(|_| invalid())).collect::<io::Result<_>>()?,
    };
    // SAFETY: the supervisor left these descriptors open across the exec for this process
    // alone, and SUPERVISED_TAKEN makes sure they are wrapped once.
    let ready = unsafe { OwnedFd::from_raw_fd(ready) };
    // SAFETY: as above; fcntl on a descriptor we own.
    unsafe { syscall!(fcntl(ready.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC)) }?;
    let sockets = fds
        .into_iter()
        // SAFETY: as above.
        .map(|fd| InheritedSocket::new(unsafe { OwnedFd::from_raw_fd(fd) }))
        .collect::<io::Result<_>>()?;
    Ok(Some(Supervised { sockets, ready: io::PipeWriter::from(ready) }))
}

/// Reads what a worker wrote on its "serving" pipe: `true` once it said so, `false` at the end
/// of the file (it exited first).
pub(crate) fn read_serving(ready: &mut io::PipeReader) -> io::Result<bool> {
    let mut line = [0u8; 16];
    let read = ready.read(&mut line)?;
    Ok(read > 0 && line[..read].starts_with(b"serving"))
}
