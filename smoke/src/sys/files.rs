//! The process's file descriptors: how many it may hold and how many it holds.

use std::io;

use super::syscall;

/// The soft `RLIMIT_NOFILE`: the number of file descriptors this process may hold (one more
/// than the highest it may be given).
pub(crate) fn open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the live local we pass.
    unsafe { syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit))? };
    Ok(limit.rlim_cur)
}

/// The file descriptors this process holds now (as /proc lists them, less the one the listing
/// itself opens).
pub(crate) fn open_files() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count().saturating_sub(1))
}
