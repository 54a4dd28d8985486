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
    pub(crate) to_port: u16,
    pub(crate) payload: &'a [u8],
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Parses an Ethernet frame carrying UDP over IPv4 or IPv6, behind up to two VLAN tags. `None`
/// for anything else, including IPv4 fragments (the ring's fanout reassembles those first) and
/// datagrams whose lengths disagree with the frame.
pub(crate) fn parse_udp(frame: &[u8]) -> Option<Captured<'_>> {
    let mut at = 12;
    let mut ethertype = be16(frame, at)?;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        at += 4;
        ethertype = be16(frame, at)?;
    }
    let l3 = frame.get(at + 2..)?;
    let (from_ip, udp) = match ethertype {
        ETHERTYPE_IPV4 => {
            let header_len = usize::from(*l3.first()? & 0x0f) * 4;
            let total_len = usize::from(be16(l3, 2)?);
            let fragment = be16(l3, 6)? & 0x3fff; // more-fragments flag and offset
            if l3[0] >> 4 != 4 || header_len < 20 || l3.get(9) != Some(&IPPROTO_UDP) || fragment != 0 {
                return None;
            }
            let ip: [u8; 4] = l3.get(12..16)?.try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(ip)), l3.get(header_len..total_len.min(l3.len()))?)
        }
        ETHERTYPE_IPV6 => {
            let payload_len = usize::from(be16(l3, 4)?);
            if *l3.first()? >> 4 != 6 || l3.get(6) != Some(&IPPROTO_UDP) {
                return None;
            }
            let ip: [u8; 16] = l3.get(8..24)?.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(ip)), l3.get(40..(40 + payload_len).min(l3.len()))?)
        }
        _ => return None,
    };
    let from_port = be16(udp, 0)?;
    let to_port = be16(udp, 2)?;
    let udp_len = usize::from(be16(udp, 4)?);
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    Some(Captured { from: SocketAddr::new(from_ip, from_port), to_port, payload: &udp[8..udp_len] })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame: Ethernet (with `vlan` tags) + IPv4 or IPv6 + UDP.
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
        if v6 {
            f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[IPPROTO_UDP, 64]);
            f.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            f.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        } else {
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, IPPROTO_UDP, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        }
        f.extend_from_slice(&udp);
        f.extend_from_slice(&[0; 6]); // Ethernet padding after the datagram
        f
    }

    #[test]
    fn frames_parse_to_sender_port_and_payload() {
        for vlan in 0..=2 {
            for v6 in [false, true] {
                let f = frame(vlan, v6, 5555, 9092, b"hello");
                let captured = parse_udp(&f).unwrap_or_else(|| panic!("vlan {vlan} v6 {v6}"));
                assert_eq!((captured.from.port(), captured.to_port, captured.payload), (5555, 9092, &b"hello"[..]));
                let ip: IpAddr = if v6 { Ipv6Addr::LOCALHOST.into() } else { Ipv4Addr::new(10, 0, 0, 2).into() };
                assert_eq!(captured.from.ip(), ip);
            }
        }
    }

    #[test]
    fn malformed_and_other_frames_are_ignored() {
        let good = frame(0, false, 1, 2, b"data");
        for cut in 0..good.len() - 6 {
            // Cut anywhere before the datagram's end: never a panic, never a wrong payload.
            assert!(parse_udp(&good[..cut]).is_none_or(|c| c.payload == b"data"), "cut at {cut}");
        }
        let mut fragment = good.clone();
        fragment[14 + 6] = 0x20; // more fragments
        assert_eq!(parse_udp(&fragment), None);
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        assert_eq!(parse_udp(&tcp), None);
        let mut long = good;
        long[14 + 20 + 5] = 200; // UDP length beyond the packet
        assert_eq!(parse_udp(&long), None);
    }
}
