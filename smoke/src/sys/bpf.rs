//! Classic BPF, the kernel's socket-filter language: the instruction layout (`struct
//! sock_filter`), a small assembler with labels, and the program the packet ring attaches so
//! only UDP to the server's ports reaches user space.

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

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
const JA: u16 = 0x05; // pc += k (32 bits)
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// The most instructions the kernel takes in a classic-BPF program (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;
/// The most ports one filter can check: two instructions each, after a fixed head.
pub(crate) const MAX_FILTER_PORTS: usize = (MAX_INSTRUCTIONS - 64) / 2;

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
    /// An unconditional jump: its distance is 32 bits, where a conditional one's is 8.
    fn jump_always(&mut self, to: usize) {
        self.code.push((JA, Target::Label(to), Target::Next, 0));
    }

    /// The program, its labels resolved. A conditional jump reaches at most 255 instructions
    /// ahead; one that would reach further is an error here (it would silently wrap in the
    /// kernel's 8 bits and land on the wrong instruction).
    fn finish(self) -> Result<Vec<BpfInstruction>, String> {
        let distance = |at: usize, target: Target| match target {
            Target::Next => 0,
            Target::Label(label) => self.labels[label].unwrap_or(at + 1) - (at + 1),
        };
        let mut program = Vec::with_capacity(self.code.len());
        for (at, &(code, yes, no, k)) in self.code.iter().enumerate() {
            let instruction = if code == JA {
                BpfInstruction { code, jt: 0, jf: 0, k: distance(at, yes) as u32 }
            } else {
                let (jt, jf) = (distance(at, yes), distance(at, no));
                let short = |d: usize| u8::try_from(d).map_err(|_| format!("a jump of {d} at {at}"));
                BpfInstruction { code, jt: short(jt)?, jf: short(jf)?, k }
            };
            program.push(instruction);
        }
        Ok(program)
    }
}

/// The socket filter: accept UDP over IPv4 (unfragmented) or IPv6 to one of `ports`, directly
/// on Ethernet or behind one or two VLAN tags (as the frame parser does), keeping the first `snap` bytes of each frame (a longer
/// one arrives cut, and is counted as a datagram above `max_datagram`); drop everything else in
/// the kernel. At most [`MAX_FILTER_PORTS`] ports.
///
/// The head (link and network headers) jumps only a few dozen instructions; each address
/// family's path loads the destination port and jumps to the one list of ports with `JA`,
/// whose reach is 32 bits; each port in the list is a compare that skips its own `RET`, so no
/// conditional jump grows with the number of ports.
pub(crate) fn udp_port_filter(ports: &[u16], snap: u32) -> Result<Vec<BpfInstruction>, String> {
    if ports.len() > MAX_FILTER_PORTS {
        return Err(format!("{} udp ports; the packet ring's filter checks at most {MAX_FILTER_PORTS}", ports.len()));
    }
    let mut a = Assembler::default();
    let (drop, port_list) = (a.label(), a.label());
    // Where the link header may end: untagged, behind one VLAN tag, behind two (QinQ).
    const LINK_ENDS: [u32; 3] = [14, 18, 22];
    let v4 = LINK_ENDS.map(|_| a.label());
    let v6 = LINK_ENDS.map(|_| a.label());
    let tagged = [a.label(), a.label()];
    for (index, l3) in LINK_ENDS.into_iter().enumerate() {
        if index > 0 {
            a.place(tagged[index - 1]);
        }
        a.op(LD_H_ABS, l3 - 2);
        if let Some(&next) = tagged.get(index) {
            a.jump(JEQ_K, u32::from(ETHERTYPE_VLAN), Target::Label(next), Target::Next);
            a.jump(JEQ_K, u32::from(ETHERTYPE_QINQ), Target::Label(next), Target::Next);
        }
        a.jump(JEQ_K, u32::from(ETHERTYPE_IPV4), Target::Label(v4[index]), Target::Next);
        a.jump(JEQ_K, u32::from(ETHERTYPE_IPV6), Target::Label(v6[index]), Target::Label(drop));
    }
    for (index, l3) in LINK_ENDS.into_iter().enumerate() {
        a.place(v4[index]);
        a.op(LD_B_ABS, l3 + 9);
        a.jump(JEQ_K, u32::from(IPPROTO_UDP), Target::Next, Target::Label(drop));
        a.op(LD_H_ABS, l3 + 6);
        a.jump(JSET_K, 0x3fff, Target::Label(drop), Target::Next);
        a.op(LDX_B_MSH, l3);
        a.op(LD_H_IND, l3 + 2);
        a.jump_always(port_list);
        a.place(v6[index]);
        a.op(LD_B_ABS, l3 + 6);
        a.jump(JEQ_K, u32::from(IPPROTO_UDP), Target::Next, Target::Label(drop));
        a.op(LD_H_ABS, l3 + 42);
        a.jump_always(port_list);
    }
    a.place(drop);
    a.op(RET_K, 0);
    a.place(port_list);
    for port in ports {
        // Equal: on to the RET that accepts; otherwise past it, to the next port.
        let next = a.label();
        a.jump(JEQ_K, u32::from(*port), Target::Next, Target::Label(next));
        a.op(RET_K, snap);
        a.place(next);
    }
    a.op(RET_K, 0);
    a.finish()
}

/// Runs a classic-BPF program over a packet as the kernel does: the bytes of it kept (0: the
/// packet is dropped, as it is when a load reaches past its end). For the tests and the fuzz
/// target, which check the programs `udp_port_filter` writes.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn run(program: &[BpfInstruction], packet: &[u8]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |at: usize, len: usize| {
        packet.get(at..at.checked_add(len)?).map(|b| b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
    };
    while let Some(i) = program.get(pc) {
        pc += 1;
        match i.code {
            LD_H_ABS | LD_B_ABS | LD_H_IND | LDX_B_MSH => {
                let (at, len) = match i.code {
                    LD_H_ABS => (i.k as usize, 2),
                    LD_H_IND => (x.wrapping_add(i.k) as usize, 2),
                    _ => (i.k as usize, 1),
                };
                let Some(value) = load(at, len) else { return 0 };
                if i.code == LDX_B_MSH {
                    x = 4 * (value & 0xf);
                } else {
                    a = value;
                }
            }
            JA => pc += i.k as usize,
            JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
            RET_K => return i.k,
            other => panic!("an opcode udp_port_filter does not write: {other:#x}"),
        }
    }
    // Falling off the end is refused by the kernel's verifier; here it drops.
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a frame the filter reads, at their offsets (the rest stays zero): 0 to 2
    /// VLAN tags, IPv4 (20-byte header) or IPv6, then the UDP ports.
    fn frame(tags: usize, v6: bool, protocol: u8, to_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        let mut l3 = 14;
        for tag in [ETHERTYPE_QINQ, ETHERTYPE_VLAN].into_iter().skip(2 - tags) {
            f[l3 - 2..l3].copy_from_slice(&tag.to_be_bytes());
            l3 += 4;
        }
        let ethertype = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
        f[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
        let udp = if v6 {
            f[l3 + 6] = protocol;
            l3 + 40
        } else {
            f[l3] = 0x45;
            f[l3 + 9] = protocol;
            l3 + 20
        };
        f[udp + 2..udp + 4].copy_from_slice(&to_port.to_be_bytes());
        f
    }

    #[test]
    fn the_filter_accepts_udp_to_our_ports_only() {
        let program = udp_port_filter(&[9092, 9093], 2048).unwrap();
        assert!(program.len() < 64);
        for tags in 0..=2 {
            for v6 in [false, true] {
                assert_ne!(run(&program, &frame(tags, v6, IPPROTO_UDP, 9092)), 0, "tags {tags} v6 {v6}");
                assert_ne!(run(&program, &frame(tags, v6, IPPROTO_UDP, 9093)), 0);
                assert_eq!(run(&program, &frame(tags, v6, IPPROTO_UDP, 9094)), 0);
            }
        }
        assert_eq!(run(&program, &frame(0, false, 6, 9092)), 0, "TCP to our port");
        let mut arp = frame(0, false, IPPROTO_UDP, 9092);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(run(&program, &arp), 0);
    }

    /// A conditional jump's distance is 8 bits: with many ports, a jump from the head past the
    /// port list to a shared drop would wrap and land inside the list (59 ports were enough).
    #[test]
    fn hundreds_of_ports_are_all_routed_right() {
        let ports: Vec<u16> = (0..600).map(|i| 10_000 + 3 * i).collect();
        let program = udp_port_filter(&ports, 2048).unwrap();
        for tags in 0..=2 {
            for v6 in [false, true] {
                for port in 9_990..11_900u16 {
                    let accepted = run(&program, &frame(tags, v6, IPPROTO_UDP, port));
                    let ours = ports.contains(&port);
                    assert_eq!(accepted, if ours { 2048 } else { 0 }, "port {port} tags {tags} v6 {v6}");
                }
                assert_eq!(run(&program, &frame(tags, v6, 6, ports[500])), 0, "TCP to one of our ports");
            }
        }
        let most: Vec<u16> = (0..MAX_FILTER_PORTS as u16).collect();
        assert!(udp_port_filter(&most, 2048).unwrap().len() <= MAX_INSTRUCTIONS);
        let too_many: Vec<u16> = (0..=MAX_FILTER_PORTS as u16).collect();
        assert!(udp_port_filter(&too_many, 2048).unwrap_err().contains("at most"));
    }
}
