//! Listening sockets this process did not open itself: the ones systemd's socket activation
//! passes (`LISTEN_FDS`, `LISTEN_PID`), and the ones a running smoke process hands its
//! successor over a Unix socket (`SCM_RIGHTS`) for a restart that drops nobody.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use super::socket::local_addr;
use super::syscall;

/// The most descriptors one message carries (the kernel's `SCM_MAX_FD` is 253).
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 250;

/// A socket handed to this process, ready to serve: a listening TCP socket or a bound UDP one,
/// non-blocking and close-on-exec.
#[derive(Debug)]
pub(crate) struct InheritedSocket {
    pub(crate) fd: OwnedFd,
    pub(crate) datagram: bool,
    pub(crate) addr: SocketAddr,
}

impl InheritedSocket {
    /// Looks at `fd`: its transport and address; refuses anything but a listening TCP socket
    /// or a bound UDP one on IPv4 or IPv6.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<InheritedSocket> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {}: {why}", fd.as_raw_fd()));
        let datagram = match socket_option(&fd, libc::SO_TYPE)? {
            libc::SOCK_STREAM if socket_option(&fd, libc::SO_ACCEPTCONN)? == 1 => false,
            libc::SOCK_STREAM => return Err(invalid("a TCP socket that is not listening")),
            libc::SOCK_DGRAM => true,
            _ => return Err(invalid("neither a TCP nor a UDP socket")),
        };
        let addr = local_addr(&fd).map_err(|_| invalid("not an IPv4 or IPv6 socket"))?;
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            let flags = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
            syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK))?;
            syscall!(fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC))?;
        }
        Ok(InheritedSocket { fd, datagram, addr })
    }
}

fn socket_option(fd: &OwnedFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is a live c_int and `len` says so; both options read here are ints.
    unsafe {
        syscall!(getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, name, (&raw mut value).cast(), &mut len))?;
    }
    Ok(value)
}

/// Taken once per process: a second server must not wrap the same descriptors again.
static SYSTEMD_TAKEN: AtomicBool = AtomicBool::new(false);

/// The sockets systemd passed this process: `LISTEN_FDS` descriptors from fd 3, when
/// `LISTEN_PID` names this process (a child it starts sees another pid and takes none). The
/// variables stay set, as `sd_listen_fds(0)` leaves them. Empty on the second call.
pub(crate) fn systemd_sockets() -> io::Result<Vec<InheritedSocket>> {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|pid| pid.trim().parse::<u32>().ok());
    if for_us != Some(std::process::id()) || SYSTEMD_TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.trim().parse::<RawFd>().ok()).unwrap_or(0);
    (3..3 + count.clamp(0, 1024))
        .map(|fd| {
            // SAFETY: systemd passed these descriptors to this process (LISTEN_PID is ours) for
            // it to own, and `SYSTEMD_TAKEN` makes sure they are wrapped once.
            InheritedSocket::new(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Sends `data` with `fds` attached (`SCM_RIGHTS`), in one message; at most
/// [`MAX_FDS_PER_MESSAGE`] descriptors.
pub(crate) fn send_with_fds(socket: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(!data.is_empty() && fds.len() <= MAX_FDS_PER_MESSAGE);
    let mut control = vec![0u8; control_space(fds.len())];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut header: libc::msghdr = unsafe { mem::zeroed() };
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    if !fds.is_empty() {
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = control.len() as _;
        // SAFETY: `control` has room for one cmsghdr carrying `fds.len()` ints (control_space),
        // so CMSG_FIRSTHDR is non-null and CMSG_DATA points inside it for that many bytes.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * mem::size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `header` points at `iov` (over `data`) and `control`, all alive for the call.
    let sent = unsafe { syscall!(sendmsg(socket.as_raw_fd(), &header, libc::MSG_NOSIGNAL))? };
    if (sent as usize) < data.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "a descriptor message went out cut"));
    }
    Ok(())
}

/// Receives one message into `buf` and the descriptors attached to it (close-on-exec).
/// Returns the bytes received (0 at the end of the stream) and the descriptors.
pub(crate) fn recv_with_fds(socket: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = vec![0u8; control_space(MAX_FDS_PER_MESSAGE)];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut header: libc::msghdr = unsafe { mem::zeroed() };
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = control.len() as _;
    // SAFETY: `header` points at `iov` (over `buf`) and `control`, all alive for the call.
    let received = unsafe { syscall!(recvmsg(socket.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC))? };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to `msg_controllen` with well-formed cmsghdrs;
    // CMSG_FIRSTHDR/CMSG_NXTHDR walk them within that length, and an SCM_RIGHTS one carries
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors, new in this process and owned by nobody else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    if header.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "more descriptors than one message may carry"));
    }
    Ok((received as usize, fds))
}

fn control_space(fds: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((fds * mem::size_of::<RawFd>()) as u32) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn listening_sockets_cross_a_unix_socket_and_keep_their_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (tcp_addr, udp_addr) = (listener.local_addr().unwrap(), udp.local_addr().unwrap());
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fds = [listener.as_fd(), udp.as_fd()];
        send_with_fds(&ours, b"two", &fds).unwrap();
        let mut buf = [0u8; 16];
        let (n, received) = recv_with_fds(&theirs, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");
        let sockets: Vec<InheritedSocket> = received.into_iter().map(|fd| InheritedSocket::new(fd).unwrap()).collect();
        assert_eq!((sockets[0].datagram, sockets[0].addr), (false, tcp_addr));
        assert_eq!((sockets[1].datagram, sockets[1].addr), (true, udp_addr));
        // The same socket: a connection to the address queues on the one received.
        let _client = std::net::TcpStream::connect(tcp_addr).unwrap();
        drop(listener);
        let accepted = std::net::TcpListener::from(sockets.into_iter().next().unwrap().fd);
        accepted.set_nonblocking(false).unwrap();
        assert!(accepted.accept().is_ok());
    }

    #[test]
    fn a_socket_that_does_not_listen_is_refused() {
        let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(bound.local_addr().unwrap()).unwrap();
        let err = InheritedSocket::new(OwnedFd::from(client)).unwrap_err();
        assert!(err.to_string().contains("not listening"), "{err}");
    }
}
