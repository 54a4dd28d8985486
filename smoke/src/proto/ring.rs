//! The packet-ring input (`pfring`): the parser that turns a captured frame (Ethernet, VLAN
//! tags, IPv4 or IPv6, UDP) into what a UDP socket would have delivered: the sender and the
//! payload. `sys::packet` owns the socket and the mmap'd ring, `sys::bpf` the filter that lets
//! only the server's UDP into it.
//!
//! The name is libsmoke's: there it meant PF_RING, an out-of-tree kernel module. smoke uses
//! the kernel's own zero-copy ring instead (AF_PACKET, TPACKET_V3), which needs no module, only
//! CAP_NET_RAW.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

/// A UDP datagram found in a captured frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Captured<'a> {
    pub(crate) from: SocketAddr,
    /// Where it was going: the address and port a socket would have received it on.
    pub(crate) to: SocketAddr,
    pub(crate) payload: &'a [u8],
}

/// Why a captured frame holds no datagram to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not UDP over IPv4 or IPv6, an IPv4 fragment, or lengths that disagree with the frame.
    Malformed,
    /// A checksum (the IPv4 header's, or the datagram's) does not add up: the network damaged
    /// it, and the kernel's UDP stack would have dropped it too.
    Checksum,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The ones'-complement sum of `bytes` as 16-bit big-endian words (an odd last byte padded
/// with zero), added to `sum` and not yet folded.
fn ones_complement_sum(sum: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    let sum = words.by_ref().fold(sum, |sum, w| sum + u64::from(u16::from_be_bytes([w[0], w[1]])));
    sum + words.remainder().first().map_or(0, |&last| u64::from(last) << 8)
}

/// True when `sum` folds to all ones: the checksum of the words it covers, checksum field
/// included, is right.
fn folds_to_ones(mut sum: u64) -> bool {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Parses an Ethernet frame carrying UDP over IPv4 or IPv6, behind up to two VLAN tags, into
/// what a UDP socket would have delivered. Refused: anything else, including IPv4 fragments
/// (the ring's fanout reassembles those first) and datagrams whose lengths disagree with the
/// frame; an IPv4 header whose checksum is wrong; and, when `verify` (the kernel did not vouch
/// for it), a datagram whose UDP checksum is wrong.
pub(crate) fn parse_udp(frame: &[u8], verify: bool) -> Result<Captured<'_>, Refused> {
    let mut at = 12;
    let mut ethertype = be16(frame, at).ok_or(Refused::Malformed)?;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        at += 4;
        ethertype = be16(frame, at).ok_or(Refused::Malformed)?;
    }
    let l3 = frame.get(at + 2..).ok_or(Refused::Malformed)?;
    let (from_ip, to_ip, udp, pseudo) = match ethertype {
        ETHERTYPE_IPV4 => ipv4(l3)?,
        ETHERTYPE_IPV6 => ipv6(l3)?,
        _ => return Err(Refused::Malformed),
    };
    let (from_port, to_port, udp_len) = match (be16(udp, 0), be16(udp, 2), be16(udp, 4)) {
        (Some(from), Some(to), Some(len)) => (from, to, usize::from(len)),
        _ => return Err(Refused::Malformed),
    };
    if udp_len < 8 || udp_len > udp.len() {
        return Err(Refused::Malformed);
    }
    let datagram = &udp[..udp_len];
    let unchecked = matches!(to_ip, IpAddr::V4(_)) && be16(udp, 6) == Some(0);
    if verify && !unchecked {
        let sum = ones_complement_sum(pseudo + udp_len as u64, datagram);
        if !folds_to_ones(sum) {
            return Err(Refused::Checksum);
        }
    }
    let (from, to) = (SocketAddr::new(from_ip, from_port), SocketAddr::new(to_ip, to_port));
    Ok(Captured { from, to, payload: &datagram[8..] })
}

/// An IPv4 packet's addresses, its payload, and the UDP pseudo-header's sum without the
/// length. Its header checksum is always checked: the capture comes before the IP layer that
/// would check it, and it costs ten additions.
fn ipv4(l3: &[u8]) -> Result<(IpAddr, IpAddr, &[u8], u64), Refused> {
    let header_len = usize::from(*l3.first().ok_or(Refused::Malformed)? & 0x0f) * 4;
    let (Some(total_len), Some(flags)) = (be16(l3, 2), be16(l3, 6)) else { return Err(Refused::Malformed) };
    let fragment = flags & 0x3fff; // more-fragments flag and offset
    if l3[0] >> 4 != 4 || header_len < 20 || l3.get(9) != Some(&IPPROTO_UDP) || fragment != 0 {
        return Err(Refused::Malformed);
    }
    let header = l3.get(..header_len).ok_or(Refused::Malformed)?;
    if !folds_to_ones(ones_complement_sum(0, header)) {
        return Err(Refused::Checksum);
    }
    let payload = l3.get(header_len..usize::from(total_len).min(l3.len())).ok_or(Refused::Malformed)?;
    let addresses = &header[12..20];
    let pseudo = ones_complement_sum(u64::from(IPPROTO_UDP), addresses);
    let from: [u8; 4] = addresses[..4].try_into().map_err(|_| Refused::Malformed)?;
    let to: [u8; 4] = addresses[4..].try_into().map_err(|_| Refused::Malformed)?;
    Ok((IpAddr::V4(Ipv4Addr::from(from)), IpAddr::V4(Ipv4Addr::from(to)), payload, pseudo))
}

/// An IPv6 packet's addresses, its payload (UDP right after the fixed header), and the UDP
/// pseudo-header's sum without the length.
fn ipv6(l3: &[u8]) -> Result<(IpAddr, IpAddr, &[u8], u64), Refused> {
    let payload_len = usize::from(be16(l3, 4).ok_or(Refused::Malformed)?);
    if *l3.first().ok_or(Refused::Malformed)? >> 4 != 6 || l3.get(6) != Some(&IPPROTO_UDP) {
        return Err(Refused::Malformed);
    }
    let addresses = l3.get(8..40).ok_or(Refused::Malformed)?;
    let payload = l3.get(40..(40 + payload_len).min(l3.len())).ok_or(Refused::Malformed)?;
    let pseudo = ones_complement_sum(u64::from(IPPROTO_UDP), addresses);
    let from: [u8; 16] = addresses[..16].try_into().map_err(|_| Refused::Malformed)?;
    let to: [u8; 16] = addresses[16..].try_into().map_err(|_| Refused::Malformed)?;
    Ok((IpAddr::V6(Ipv6Addr::from(from)), IpAddr::V6(Ipv6Addr::from(to)), payload, pseudo))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum field's value for words summing to `sum`.
    fn checksum(sum: u64) -> u16 {
        let mut sum = sum;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// A frame: Ethernet (with `vlan` tags) + IPv4 (10.0.0.2 → 10.0.0.1) or IPv6 (::1 → ::1)
    /// + UDP, every checksum right.
    fn frame(vlan: usize, v6: bool, from_port: u16, to_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for _ in 0..vlan {
            f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            f.extend_from_slice(&[0, 7]);
        }
        let mut udp = Vec::new();
        udp.extend_from_slice(&from_port.to_be_bytes());
        udp.extend_from_slice(&to_port.to_be_bytes());
        udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        let addresses: Vec<u8> = if v6 {
            [Ipv6Addr::LOCALHOST.octets(), Ipv6Addr::LOCALHOST.octets()].concat()
        } else {
            vec![10, 0, 0, 2, 10, 0, 0, 1]
        };
        let pseudo = ones_complement_sum(u64::from(IPPROTO_UDP) + udp.len() as u64, &addresses);
        let sum = checksum(ones_complement_sum(pseudo, &udp));
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        if v6 {
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[IPPROTO_UDP, 64]);
            f.extend_from_slice(&addresses);
        } else {
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let mut header = vec![0x45, 0];
            header.extend_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
            header.extend_from_slice(&[0, 0, 0x40, 0, 64, IPPROTO_UDP, 0, 0]);
            header.extend_from_slice(&addresses);
            let sum = checksum(ones_complement_sum(0, &header));
            header[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&header);
        }
        f.extend_from_slice(&udp);
        f.extend_from_slice(&[0; 6]); // Ethernet padding after the datagram
        f
    }

    /// Where the UDP header starts in a `frame(0, v6, ..)`.
    fn udp_at(v6: bool) -> usize {
        14 + if v6 { 40 } else { 20 }
    }

    #[test]
    fn frames_parse_to_sender_destination_and_payload() {
        for vlan in 0..=2 {
            for v6 in [false, true] {
                let f = frame(vlan, v6, 5555, 9092, b"hello");
                let captured = parse_udp(&f, true).unwrap_or_else(|e| panic!("vlan {vlan} v6 {v6}: {e:?}"));
                assert_eq!((captured.from.port(), captured.to.port(), captured.payload), (5555, 9092, &b"hello"[..]));
                let (from, to): (IpAddr, IpAddr) = if v6 {
                    (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into())
                } else {
                    (Ipv4Addr::new(10, 0, 0, 2).into(), Ipv4Addr::new(10, 0, 0, 1).into())
                };
                assert_eq!((captured.from.ip(), captured.to.ip()), (from, to));
            }
        }
    }

    #[test]
    fn malformed_and_other_frames_are_ignored() {
        let good = frame(0, false, 1, 2, b"data");
        for cut in 0..good.len() - 6 {
            // Cut anywhere before the datagram's end: never a panic, never a wrong payload.
            assert!(parse_udp(&good[..cut], true).is_err(), "cut at {cut}");
        }
        let mut fragment = good.clone();
        fragment[14 + 6] = 0x20; // more fragments
        assert_eq!(parse_udp(&fragment, false), Err(Refused::Malformed));
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        assert_eq!(parse_udp(&tcp, false), Err(Refused::Malformed));
        let mut long = good;
        long[14 + 20 + 5] = 200; // UDP length beyond the packet
        assert_eq!(parse_udp(&long, false), Err(Refused::Malformed));
    }

    #[test]
    fn damaged_datagrams_fail_their_checksums() {
        for v6 in [false, true] {
            let mut damaged = frame(0, v6, 5555, 9092, b"hello, world");
            damaged[udp_at(v6) + 9] ^= 0x20; // one bit of the payload
            assert_eq!(parse_udp(&damaged, true), Err(Refused::Checksum), "v6 {v6}");
            // Where the kernel vouches for the checksum (the NIC checked it), it is not redone.
            assert!(parse_udp(&damaged, false).is_ok());
        }
        // IPv4's header checksum is checked whatever the kernel said of the datagram's.
        let mut header = frame(0, false, 5555, 9092, b"hi");
        header[14 + 8] = 1; // TTL
        assert_eq!(parse_udp(&header, false), Err(Refused::Checksum));
        // A zero UDP checksum means "none" over IPv4; over IPv6 it is not allowed.
        for v6 in [false, true] {
            let mut unsummed = frame(0, v6, 5555, 9092, b"hi");
            unsummed[udp_at(v6) + 6..udp_at(v6) + 8].copy_from_slice(&[0, 0]);
            let expected = if v6 { Err(Refused::Checksum) } else { Ok(&b"hi"[..]) };
            assert_eq!(parse_udp(&unsummed, true).map(|c| c.payload), expected, "v6 {v6}");
        }
    }
}
