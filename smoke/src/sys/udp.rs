//! UDP sockets with batched I/O: `recvmmsg` fills many datagram slots per system call, and
//! `sendmmsg` sends everything a read batch or a tick produced in one.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::direct_syscall;
use super::socket::{bind, local_addr, new_socket, set_flag, setsockopt, sockaddr_from, sockaddr_to};

/// Datagrams per `sendmmsg` call (well under the kernel's UIO_MAXIOV).
const SEND_CHUNK: usize = 64;
/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`): a burst of
/// datagrams between two wake-ups is kept rather than dropped by the kernel.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// A non-blocking UDP socket bound with SO_REUSEPORT (one per worker).
#[derive(Debug)]
pub(crate) struct UdpSocket {
    fd: OwnedFd,
}

impl UdpSocket {
    pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
        let fd = new_socket(addr, libc::SOCK_DGRAM)?;
        set_flag(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
        if reuse_port {
            set_flag(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
        }
        // Best effort: a smaller buffer still works, it only drops sooner under bursts.
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &SOCKET_BUFFER);
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &SOCKET_BUFFER);
        bind(&fd, addr)?;
        Ok(UdpSocket { fd })
    }

    /// A bound socket this process was handed (see `sys::inherit`), already non-blocking.
    pub(crate) fn from_inherited(fd: OwnedFd) -> UdpSocket {
        UdpSocket { fd }
    }

    /// Another descriptor for the same socket (to hand over to another process).
    pub(crate) fn duplicate(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Drops everything this socket would receive (a filter that accepts nothing): with the
    /// packet ring on, the UDP socket only sends, or each datagram would arrive twice.
    pub(crate) fn drop_all_input(&self) -> io::Result<()> {
        let mut program = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
        let fprog = libc::sock_fprog { len: 1, filter: program.as_mut_ptr() };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(&self.fd)
    }

    /// Receives up to `batch.capacity()` datagrams; `Ok(0)` when none is waiting.
    pub(crate) fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.prepare();
        let (fd, headers, count) = (self.fd.as_raw_fd(), batch.headers.as_mut_ptr(), batch.headers.len());
        // SAFETY: `prepare` pointed every header at its own live slot, address storage and iovec
        // in `batch`, which stays borrowed (and unmoved) for the call. (A direct call: glibc's
        // recvmmsg is a cancellation point, see `direct_syscall`.)
        let received = unsafe { direct_syscall!(libc::SYS_recvmmsg, fd, headers, count, libc::MSG_DONTWAIT, 0) };
        let received = match received {
            Ok(received) => received,
            Err(error) => {
                batch.count = 0;
                return if error.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(error) };
            }
        };
        batch.count = received as usize;
        Ok(batch.count)
    }

    /// Sends the queued datagrams in `sendmmsg` batches and empties the queue. Returns how many
    /// could not be sent (the socket's buffer was full, or the kernel refused one, as it does
    /// for an unreachable peer): UDP drops rather than queueing behind a slow network.
    pub(crate) fn send_batch(&self, queue: &mut SendQueue) -> usize {
        let mut dropped = 0;
        let mut next = 0;
        while next < queue.entries.len() {
            let end = (next + SEND_CHUNK).min(queue.entries.len());
            queue.prepare(next..end);
            let (fd, headers, count) = (self.fd.as_raw_fd(), queue.headers.as_mut_ptr(), end - next);
            // SAFETY: `prepare` built `end - next` headers pointing at live addresses and iovecs
            // in `queue`, whose iovecs point into `queue.bytes`; all stay unmoved for the call.
            // (A direct call: glibc's sendmmsg is a cancellation point, see `direct_syscall`;
            // -1 with errno on failure, as the wrapper.)
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_sendmmsg,
                    fd as libc::c_long,
                    headers as libc::c_long,
                    count as libc::c_long,
                    libc::MSG_DONTWAIT as libc::c_long,
                )
            };
            if sent < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        dropped += queue.entries.len() - next;
                        break;
                    }
                    // The first datagram of the chunk was refused (EMSGSIZE, ECONNREFUSED from
                    // an earlier ICMP, ...): drop it and go on with the rest.
                    _ => {
                        dropped += 1;
                        next += 1;
                    }
                }
            } else {
                next += sent as usize;
            }
        }
        queue.clear();
        dropped
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Slots for one `recvmmsg`: `slots` datagrams of up to `slot_size` bytes each.
pub(crate) struct RecvBatch {
    buffers: Box<[u8]>,
    slot_size: usize,
    addrs: Box<[libc::sockaddr_storage]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    count: usize,
}

impl RecvBatch {
    pub(crate) fn new(slots: usize, slot_size: usize) -> RecvBatch {
        // SAFETY: these libc structs are plain old data for which all-zero bytes are valid.
        let zeroed = || unsafe { mem::zeroed::<libc::sockaddr_storage>() };
        RecvBatch {
            buffers: vec![0; slots * slot_size].into_boxed_slice(),
            slot_size,
            addrs: (0..slots).map(|_| zeroed()).collect(),
            iovecs: (0..slots).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            // SAFETY: as above.
            headers: (0..slots).map(|_| unsafe { mem::zeroed::<libc::mmsghdr>() }).collect(),
            count: 0,
        }
    }

    /// Datagrams one receive can return.
    pub(crate) fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Points each header at its slot (pointers are refreshed every call rather than kept, so
    /// nothing depends on the boxes never moving).
    fn prepare(&mut self) {
        // One base pointer per array, each element's address derived from it: taking a fresh
        // `&mut` to the whole array per element would invalidate the pointers taken before.
        let buffers = self.buffers.as_mut_ptr();
        let iovecs = self.iovecs.as_mut_ptr();
        let addrs = self.addrs.as_mut_ptr();
        for (i, header) in self.headers.iter_mut().enumerate() {
            let iovec =
                libc::iovec { iov_base: buffers.wrapping_add(i * self.slot_size).cast(), iov_len: self.slot_size };
            // SAFETY: `i` is below the iovec count (one per header), so the write is in bounds
            // of the live array `iovecs` points into.
            unsafe { iovecs.add(i).write(iovec) };
            header.msg_hdr.msg_name = addrs.wrapping_add(i).cast();
            header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
    }

    /// The `i`th datagram of the last receive: its sender, its bytes (lent mutably, so a
    /// protocol can decrypt in place), and whether it was longer than a slot (then the bytes are
    /// cut short and must not be used as the datagram).
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<(SocketAddr, &mut [u8], bool)> {
        if i >= self.count {
            return None;
        }
        let header = &self.headers[i];
        let addr = sockaddr_to(&self.addrs[i]).ok()?;
        let len = (header.msg_len as usize).min(self.slot_size);
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        Some((addr, &mut self.buffers[i * self.slot_size..i * self.slot_size + len], truncated))
    }
}

/// Datagrams waiting for the next `sendmmsg`: their bytes packed in one reused vector.
#[derive(Default)]
pub(crate) struct SendQueue {
    bytes: Vec<u8>,
    entries: Vec<(SocketAddr, usize, usize)>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl SendQueue {
    pub(crate) fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.entries.push((to, self.bytes.len(), datagram.len()));
        self.bytes.extend_from_slice(datagram);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    fn prepare(&mut self, range: std::ops::Range<usize>) {
        self.addrs.clear();
        self.iovecs.clear();
        self.headers.clear();
        // One base pointer into the bytes, each datagram's address derived from it (a fresh
        // `&mut` to the vector per datagram would invalidate the pointers taken before).
        let bytes = self.bytes.as_mut_ptr();
        for &(to, start, len) in &self.entries[range] {
            let (storage, addr_len) = sockaddr_from(to);
            self.addrs.push(storage);
            self.iovecs.push(libc::iovec { iov_base: bytes.wrapping_add(start).cast(), iov_len: len });
            // SAFETY: plain old data for which all-zero bytes are valid.
            let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
            header.msg_hdr.msg_namelen = addr_len;
            self.headers.push(header);
        }
        // Pointers are taken once the vectors are filled, so no push can move what they point
        // at, and from one base pointer each.
        let (addrs, iovecs) = (self.addrs.as_mut_ptr(), self.iovecs.as_mut_ptr());
        for (i, header) in self.headers.iter_mut().enumerate() {
            header.msg_hdr.msg_name = addrs.wrapping_add(i).cast();
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
        }
    }
}
