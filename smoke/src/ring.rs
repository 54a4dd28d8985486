//! The packet-ring input (`pfring`): the safe half. The classic-BPF program that lets only UDP
//! to the server's ports into the ring, and the parser that turns a captured frame (Ethernet,
//! VLAN tags, IPv4 or IPv6, UDP) into what a UDP socket would have delivered: the sender and
//! the payload. `sys::packet` owns the socket and the mmap'd ring itself.
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

/// One classic-BPF instruction, as `struct sock_filter` lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BpfInstruction {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

// Classic BPF opcodes (linux/filter.h).
const LD_H_ABS: u16 = 0x28; // A = u16 at k
const LD_B_ABS: u16 = 0x30; // A = u8 at k
const LD_H_IND: u16 = 0x48; // A = u16 at X + k
const LDX_B_MSH: u16 = 0xb1; // X = 4 * (u8 at k & 0xf)
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Where a jump goes: the next instruction, or a label resolved when the program is done.
#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Default)]
struct Assembler {
    code: Vec<(u16, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

impl Assembler {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, yes: Target, no: Target) {
        self.code.push((code, yes, no, k));
    }
    fn finish(self) -> Vec<BpfInstruction> {
        let offset = |at: usize, target: Target| match target {
            Target::Next => 0,
            // Programs here are a few dozen instructions: offsets fit a u8.
            Target::Label(label) => (self.labels[label].unwrap_or(at + 1) - (at + 1)) as u8,
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, &(code, jt, jf, k))| BpfInstruction { code, jt: offset(at, jt), jf: offset(at, jf), k })
            .collect()
    }
}

/// The socket filter: accept UDP over IPv4 (unfragmented) or IPv6 to one of `ports`, directly
/// on Ethernet or behind one VLAN tag; drop everything else in the kernel.
pub(crate) fn udp_port_filter(ports: &[u16]) -> Vec<BpfInstruction> {
    let mut a = Assembler::default();
    let (accept, drop, vlan) = (a.label(), a.label(), a.label());
    let v4 = [a.label(), a.label()];
    let v6 = [a.label(), a.label()];
    a.op(LD_H_ABS, 12);
    a.jump(JEQ_K, u32::from(ETHERTYPE_VLAN), Target::Label(vlan), Target::Next);
    a.jump(JEQ_K, u32::from(ETHERTYPE_QINQ), Target::Label(vlan), Target::Next);
    a.jump(JEQ_K, u32::from(ETHERTYPE_IPV4), Target::Label(v4[0]), Target::Next);
    a.jump(JEQ_K, u32::from(ETHERTYPE_IPV6), Target::Label(v6[0]), Target::Label(drop));
    a.place(vlan);
    a.op(LD_H_ABS, 16);
    a.jump(JEQ_K, u32::from(ETHERTYPE_IPV4), Target::Label(v4[1]), Target::Next);
    a.jump(JEQ_K, u32::from(ETHERTYPE_IPV6), Target::Label(v6[1]), Target::Label(drop));
    for (index, l3) in [14u32, 18].into_iter().enumerate() {
        a.place(v4[index]);
        a.op(LD_B_ABS, l3 + 9);
        a.jump(JEQ_K, u32::from(IPPROTO_UDP), Target::Next, Target::Label(drop));
        a.op(LD_H_ABS, l3 + 6);
        a.jump(JSET_K, 0x3fff, Target::Label(drop), Target::Next);
        a.op(LDX_B_MSH, l3);
        a.op(LD_H_IND, l3 + 2);
        port_checks(&mut a, ports, accept, drop);
        a.place(v6[index]);
        a.op(LD_B_ABS, l3 + 6);
        a.jump(JEQ_K, u32::from(IPPROTO_UDP), Target::Next, Target::Label(drop));
        a.op(LD_H_ABS, l3 + 42);
        port_checks(&mut a, ports, accept, drop);
    }
    a.place(accept);
    a.op(RET_K, u32::from(u16::MAX));
    a.place(drop);
    a.op(RET_K, 0);
    a.finish()
}

fn port_checks(a: &mut Assembler, ports: &[u16], accept: usize, drop: usize) {
    for (i, port) in ports.iter().enumerate() {
        let otherwise = if i + 1 == ports.len() { Target::Label(drop) } else { Target::Next };
        a.jump(JEQ_K, u32::from(*port), Target::Label(accept), otherwise);
    }
    if ports.is_empty() {
        a.jump(JEQ_K, 0, Target::Label(drop), Target::Label(drop));
    }
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

    /// Runs a classic-BPF program over a packet: the accepted length (0 = dropped).
    fn run(program: &[BpfInstruction], packet: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |at: usize, len: usize| {
            packet.get(at..at + len).map(|b| b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
        };
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_H_ABS => a = load(i.k as usize, 2).unwrap_or_else(out_of_bounds),
                LD_B_ABS => a = load(i.k as usize, 1).unwrap_or_else(out_of_bounds),
                LD_H_IND => a = load((x + i.k) as usize, 2).unwrap_or_else(out_of_bounds),
                LDX_B_MSH => x = 4 * (load(i.k as usize, 1).unwrap_or(0) & 0xf),
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn out_of_bounds() -> u32 {
        panic!("out-of-bounds load: the kernel would drop; no test packet should get here")
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

    #[test]
    fn the_filter_accepts_udp_to_our_ports_only() {
        let program = udp_port_filter(&[9092, 9093]);
        assert!(program.len() < 64);
        for vlan in 0..=1 {
            for v6 in [false, true] {
                assert_ne!(run(&program, &frame(vlan, v6, 40000, 9092, b"x")), 0, "vlan {vlan} v6 {v6}");
                assert_ne!(run(&program, &frame(vlan, v6, 40000, 9093, b"x")), 0);
                assert_eq!(run(&program, &frame(vlan, v6, 9092, 9094, b"x")), 0);
            }
        }
        let mut tcp = frame(0, false, 1, 9092, b"x");
        tcp[14 + 9] = 6;
        assert_eq!(run(&program, &tcp), 0);
        let mut arp = frame(0, false, 1, 9092, b"x");
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(run(&program, &arp), 0);
    }
}
