//! TCP sockets: listeners (SO_REUSEPORT, TCP_DEFER_ACCEPT, the exclusive probe bind) and
//! accepted streams (non-blocking recv/send with MSG_NOSIGNAL, shutdown, SO_LINGER reset), and the
//! sockaddr conversions and setsockopt helpers the UDP and packet sockets share.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use super::{direct_syscall, syscall};

/// Pending connections the kernel may queue per listening socket. The kernel caps it at
/// `net.core.somaxconn` (4096 on current kernels); asking for more costs nothing.
const LISTEN_BACKLOG: libc::c_int = 4096;

/// A non-blocking listening TCP socket.
#[derive(Debug)]
pub(crate) struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Binds with SO_REUSEPORT (one socket per worker; the kernel spreads connections across
    /// them) and starts listening. `defer_accept` (TCP_DEFER_ACCEPT) holds a connection back
    /// until its first bytes arrive, for protocols where the client speaks first.
    pub(crate) fn bind(addr: SocketAddr, defer_accept: bool) -> io::Result<Listener> {
        let fd = new_socket(addr, libc::SOCK_STREAM)?;
        set_flag(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
        set_flag(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
        if defer_accept {
            // Seconds to wait for data; after that the kernel hands the connection over anyway.
            setsockopt(&fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, &(1 as libc::c_int))?;
        }
        bind(&fd, addr)?;
        // SAFETY: plain call on a socket we own.
        unsafe { syscall!(listen(fd.as_raw_fd(), LISTEN_BACKLOG))? };
        Ok(Listener { fd })
    }

    /// A listening socket this process was handed (see `sys::inherit`), already non-blocking.
    pub(crate) fn from_inherited(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    /// Another descriptor for the same listening socket (to hand over to another process).
    pub(crate) fn duplicate(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Binds (without listening) a socket that does not share its port, and returns the bound
    /// address. Fails with EADDRINUSE while anyone listens on `addr`, even other SO_REUSEPORT
    /// servers, which `bind` alone would silently join.
    pub(crate) fn probe_exclusive(addr: SocketAddr) -> io::Result<SocketAddr> {
        let fd = new_socket(addr, libc::SOCK_STREAM)?;
        set_flag(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
        bind(&fd, addr)?;
        local_addr(&fd)
    }

    /// Accepts one pending connection as a non-blocking, close-on-exec stream.
    pub(crate) fn accept(&self) -> io::Result<Stream> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: null address pointers are allowed by accept4 and mean "do not report the peer".
        let fd = unsafe { syscall!(accept4(self.fd.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), flags))? };
        // SAFETY: accept4 returned a fresh fd that nobody else owns.
        Ok(Stream { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A connected, non-blocking TCP socket.
#[derive(Debug)]
pub(crate) struct Stream {
    fd: OwnedFd,
}

impl Stream {
    /// Reads into `buf`; `Ok(0)` is end of stream.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let (fd, ptr, len) = (self.fd.as_raw_fd(), buf.as_mut_ptr(), buf.len());
        // SAFETY: `buf` is valid for writes of `len` bytes for the duration of the call; no
        // source address is asked for.
        let n = unsafe { direct_syscall!(libc::SYS_recvfrom, fd, ptr, len, 0, 0, 0)? };
        Ok(n as usize)
    }

    /// Reads into the spare capacity of `buf` (at most `max` bytes) and extends its length.
    pub(crate) fn recv_spare(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        let (fd, ptr) = (self.fd.as_raw_fd(), spare.as_mut_ptr());
        // SAFETY: the spare capacity is allocated and exclusively borrowed; recv writes at most
        // `len` bytes into it and we only extend the length by what it reports as written.
        let n = unsafe { direct_syscall!(libc::SYS_recvfrom, fd, ptr, len, 0, 0, 0)? } as usize;
        // SAFETY: the first `n` bytes of the spare capacity were initialised by recv above.
        unsafe { buf.set_len(buf.len() + n) };
        Ok(n)
    }

    /// Sends without raising SIGPIPE on a closed peer (the error comes back as EPIPE instead).
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let (fd, ptr, len) = (self.fd.as_raw_fd(), buf.as_ptr(), buf.len());
        // SAFETY: `buf` is valid for reads of `len` bytes for the duration of the call; no
        // destination address is given (the socket is connected).
        let n = unsafe { direct_syscall!(libc::SYS_sendto, fd, ptr, len, libc::MSG_NOSIGNAL, 0, 0)? };
        Ok(n as usize)
    }

    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        // SAFETY: plain call on a socket we own.
        unsafe { syscall!(shutdown(self.fd.as_raw_fd(), libc::SHUT_WR))? };
        Ok(())
    }

    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        set_flag(&self.fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)
    }

    /// Gives up the fd without closing it: for a stale entry whose fd number the kernel has
    /// already handed to a new connection.
    pub(crate) fn forget(self) {
        let _ = self.fd.into_raw_fd();
    }

    /// Makes the coming close send RST instead of FIN and drop unsent data (linger 0).
    pub(crate) fn set_reset_on_close(&self) -> io::Result<()> {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger)
    }

    /// The bytes of this connection's output the peer has acknowledged, in all: what it has
    /// taken, as opposed to what our own socket buffer accepted (`tcpi_bytes_acked` of
    /// `TCP_INFO`, Linux 4.1 and later).
    pub(crate) fn bytes_acked(&self) -> io::Result<u64> {
        // struct tcp_info up to tcpi_bytes_acked, the u64 at byte 120 (linux/tcp.h); glibc's
        // struct stops short of it, so the bytes are read where the kernel puts them.
        const BYTES_ACKED_AT: usize = 120;
        let mut info = [0u64; 16];
        let mut len = mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: `info` is writable for `len` bytes, which the kernel fills and then shortens
        // `len` to what it wrote.
        unsafe {
            syscall!(getsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len
            ))?
        };
        if (len as usize) < BYTES_ACKED_AT + 8 {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "TCP_INFO without tcpi_bytes_acked"));
        }
        Ok(info[BYTES_ACKED_AT / 8])
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` has room for any address family and `len` says so.
        unsafe { syscall!(getpeername(self.fd.as_raw_fd(), storage.as_mut_ptr().cast(), &mut len))? };
        // SAFETY: zero-initialised storage, partly overwritten by the kernel: fully initialised.
        let storage = unsafe { storage.assume_init() };
        sockaddr_to(&storage)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(super) fn new_socket(addr: SocketAddr, kind: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes only integers; on success it returns a new fd we now own.
    let fd = unsafe { syscall!(socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))? };
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_from(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for the socket's family.
    unsafe { syscall!(bind(fd.as_raw_fd(), (&raw const storage).cast(), len))? };
    Ok(())
}

pub(super) fn set_flag(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    setsockopt(fd, level, name, &(1 as libc::c_int))
}

pub(super) fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` points to a live `T` of `len` bytes; callers pass the type the option expects.
    unsafe { syscall!(setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len))? };
    Ok(())
}

pub(super) fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` has room for any address family and `len` says so.
    unsafe { syscall!(getsockname(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &mut len))? };
    // SAFETY: zero-initialised storage, partly overwritten by the kernel: fully initialised.
    let storage = unsafe { storage.assume_init() };
    sockaddr_to(&storage)
}

pub(super) fn sockaddr_from(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

pub(super) fn sockaddr_to(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is aligned for it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6; storage is aligned for it.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
        }
        family => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected address family {family}"))),
    }
}
