//! The kernel's zero-copy packet ring: an AF_PACKET socket with a TPACKET_V3 receive ring
//! mmap'd into the process, joined to a fanout group (one ring per worker, flows hashed across
//! them), behind a classic-BPF filter so only the server's UDP reaches user space.

use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{Ordering, fence};

use super::bpf::BpfInstruction;
use super::socket::setsockopt;
use super::syscall;

/// Ring geometry: 8 blocks of 1 MiB, each holding many frames; a block is handed to user space
/// when full or after `BLOCK_TIMEOUT_MS`, which bounds the latency a quiet link adds.
const BLOCK_SIZE: usize = 1 << 20;
const BLOCK_COUNT: usize = 8;
const FRAME_SIZE: usize = 2048;
const BLOCK_TIMEOUT_MS: u32 = 1;

#[derive(Debug)]
pub(crate) struct PacketRing {
    fd: OwnedFd,
    map: *mut u8,
    next_block: usize,
    /// The interface's addresses when the ring was opened: where a datagram for a listener
    /// bound to the unspecified address may be going.
    pub(crate) addresses: Vec<IpAddr>,
}

/// `sll_pkttype` of a frame sent to this host's own link-layer address (linux/if_packet.h).
const PACKET_HOST: u8 = 0;

/// A frame the ring captured, and what the kernel said of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingFrame<'a> {
    /// From the link-layer header on, at most the filter's snap length.
    pub(crate) bytes: &'a [u8],
    /// The frame was longer than what was kept.
    pub(crate) cut: bool,
    /// The kernel vouches for its transport checksum: the NIC verified it, or the packet was
    /// made on this host and its checksum is not computed yet (a veth from a local namespace).
    /// Otherwise it must be verified before the datagram is believed, as the UDP stack would.
    pub(crate) checksum_trusted: bool,
    /// Sent to this host's link-layer address: not a broadcast, a multicast, or another host's
    /// frame seen on a shared link.
    pub(crate) to_this_host: bool,
}

// SAFETY: the mapping is owned by this value alone (nothing else holds its address), so moving
// the ring to the worker thread that uses it moves exclusive access with it.
unsafe impl Send for PacketRing {}

/// A non-blocking AF_PACKET socket for `protocol` (network byte order); without CAP_NET_RAW,
/// an error that says so.
fn packet_socket(protocol: u16) -> io::Result<OwnedFd> {
    // SAFETY: socket takes only integers; on success it returns a new fd we now own.
    let fd = match unsafe {
        syscall!(socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(protocol)
        ))
    } {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "pfring needs CAP_NET_RAW: run as root, or `setcap cap_net_raw+ep` on the binary",
            ));
        }
        Err(e) => return Err(e),
    };
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asks the kernel for the TPACKET_V3 receive ring on `fd` and maps it.
fn map_ring(fd: OwnedFd) -> io::Result<PacketRing> {
    let request = libc::tpacket_req3 {
        tp_block_size: BLOCK_SIZE as libc::c_uint,
        tp_block_nr: BLOCK_COUNT as libc::c_uint,
        tp_frame_size: FRAME_SIZE as libc::c_uint,
        tp_frame_nr: (BLOCK_SIZE * BLOCK_COUNT / FRAME_SIZE) as libc::c_uint,
        tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &request)?;
    // SAFETY: maps the ring the kernel just allocated for this socket, at a kernel-chosen
    // address; the length is exactly the ring's size.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            BLOCK_SIZE * BLOCK_COUNT,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(PacketRing { fd, map: map.cast(), next_block: 0, addresses: Vec::new() })
}

impl PacketRing {
    /// Opens a ring on `interface` that receives what `filter` accepts, in fanout group `group`
    /// (every worker's ring joins the same one; the kernel hashes flows across them).
    pub(crate) fn open(interface: &str, filter: &[BpfInstruction], group: u16) -> io::Result<PacketRing> {
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        let fd = packet_socket(protocol)?;
        let name = CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pfring: interface name with a NUL byte"))?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("pfring: no network interface named {interface:?} (see `ip link`)"),
            ));
        }
        // The filter first, so nothing unfiltered is ever queued.
        let mut program: Vec<libc::sock_filter> =
            filter.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
        let fprog = libc::sock_fprog { len: program.len() as libc::c_ushort, filter: program.as_mut_ptr() };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &(libc::tpacket_versions::TPACKET_V3 as libc::c_int))?;
        // Our own replies leave through this interface too; they are not input.
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &(1 as libc::c_int))?;
        let mut ring = map_ring(fd)?;
        ring.addresses = interface_addresses(interface)?;

        // SAFETY: sockaddr_ll is plain old data for which all-zero bytes are valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = index as libc::c_int;
        // SAFETY: `addr` is a valid sockaddr_ll and the length says so.
        unsafe {
            syscall!(bind(
                ring.fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t
            ))?
        };
        let fanout = u32::from(group) | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) << 16);
        setsockopt(&ring.fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &fanout)?;
        Ok(ring)
    }

    /// Hands every packet of the blocks the kernel has filled to `each`, returning each block
    /// to the kernel after it. Returns the count.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(RingFrame<'_>)) -> usize {
        let mut packets = 0;
        for _ in 0..BLOCK_COUNT {
            // SAFETY: the block lies inside the mapping (next_block < BLOCK_COUNT), which starts
            // with a tpacket_block_desc per block as TPACKET_V3 lays it out.
            let block = unsafe { self.map.add(self.next_block * BLOCK_SIZE) };
            let desc = block.cast::<libc::tpacket_block_desc>();
            // SAFETY: `desc` points at this block's descriptor; the status word is shared with
            // the kernel, so it is read volatile and ordered before the packets with a fence.
            let status = unsafe { (&raw const (*desc).hdr.bh1.block_status).read_volatile() };
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            fence(Ordering::Acquire);
            // SAFETY: the block is ours until we hand it back (TP_STATUS_USER); its header's
            // counts and offsets were written by the kernel before it set the status.
            let (count, first) = unsafe { ((*desc).hdr.bh1.num_pkts, (*desc).hdr.bh1.offset_to_first_pkt) };
            let mut offset = first as usize;
            for _ in 0..count {
                if offset + libc::TPACKET3_HDRLEN > BLOCK_SIZE {
                    break;
                }
                // SAFETY: the block is ours and the kernel placed a packet's headers at `offset`
                // (checked to fit above).
                let (frame, next) = unsafe { frame_at(block, offset) };
                if let Some(frame) = frame {
                    each(frame);
                    packets += 1;
                }
                if next == 0 {
                    break;
                }
                offset += next;
            }
            fence(Ordering::Release);
            // SAFETY: as above; handing the block back is a volatile store of its status.
            unsafe { (&raw mut (*desc).hdr.bh1.block_status).write_volatile(libc::TP_STATUS_KERNEL) };
            self.next_block = (self.next_block + 1) % BLOCK_COUNT;
        }
        packets
    }
}

/// The frame at `offset` in a block, and the distance to the next one (0: none).
///
/// # Safety
/// `block` is a block of the ring that user space owns (TP_STATUS_USER), and a packet's
/// headers (a `tpacket3_hdr`, then at its aligned end a `sockaddr_ll`) lie at `offset`, within
/// the block.
unsafe fn frame_at<'a>(block: *const u8, offset: usize) -> (Option<RingFrame<'a>>, usize) {
    // SAFETY: the caller's promise: a tpacket3_hdr the kernel wrote lies at `offset`.
    let header = unsafe { &*block.add(offset).cast::<libc::tpacket3_hdr>() };
    // SAFETY: and behind it, at TPACKET_ALIGN(sizeof(tpacket3_hdr)), the sockaddr_ll, within
    // the TPACKET3_HDRLEN bytes the caller checked.
    let link = unsafe {
        &*block
            .add(offset + libc::TPACKET3_HDRLEN - std::mem::size_of::<libc::sockaddr_ll>())
            .cast::<libc::sockaddr_ll>()
    };
    let next = header.tp_next_offset as usize;
    let start = offset + usize::from(header.tp_mac);
    let len = header.tp_snaplen as usize;
    if start + len > BLOCK_SIZE {
        return (None, next);
    }
    // SAFETY: the packet's bytes lie inside the block (checked above) and stay untouched by
    // the kernel until the block is handed back, after every frame of it has been handled.
    let bytes = unsafe { std::slice::from_raw_parts(block.add(start), len) };
    let status = header.tp_status;
    let frame = RingFrame {
        bytes,
        cut: header.tp_len > header.tp_snaplen,
        checksum_trusted: status & (libc::TP_STATUS_CSUM_VALID | libc::TP_STATUS_CSUMNOTREADY) != 0,
        to_this_host: link.sll_pkttype == PACKET_HOST,
    };
    (Some(frame), next)
}

/// The IPv4 and IPv6 addresses of `interface`, as `getifaddrs` lists them now.
fn interface_addresses(interface: &str) -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes the head of a list it allocated into our live pointer.
    unsafe { syscall!(getifaddrs(&mut list))? };
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) };
        if node.ifa_addr.is_null() || name.to_bytes() != interface.as_bytes() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points at a sockaddr whose family says its real type.
        match i32::from(unsafe { (*node.ifa_addr).sa_family }) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let v4 = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in>() };
                addresses.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))));
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let v6 = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in6>() };
                addresses.push(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)));
            }
            _ => {}
        }
    }
    // SAFETY: frees the list getifaddrs allocated, once; no reference into it outlives the loop.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

impl AsRawFd for PacketRing {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: `map` is the mapping made in `open`, of that length, and no slice into it
        // outlives `drain`.
        unsafe { libc::munmap(self.map.cast(), BLOCK_SIZE * BLOCK_COUNT) };
    }
}
