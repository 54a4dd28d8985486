//! Two endpoints over a simulated link that loses, delays, reorders and duplicates packets.

use super::*;
use wire::Part;

/// xorshift: the same "random" link every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// A one-way link: each packet is lost with `loss_percent`, delayed 20–59 ms (so later packets
/// overtake earlier ones), and sent twice with `duplicate_percent`.
struct Link {
    dice: Dice,
    loss_percent: u64,
    duplicate_percent: u64,
    in_flight: Vec<(u64, Vec<u8>)>,
    largest: usize,
}

impl Link {
    fn new(seed: u64, loss_percent: u64) -> Link {
        Link { dice: Dice(seed), loss_percent, duplicate_percent: 5, in_flight: vec![], largest: 0 }
    }

    fn carry(&mut self, now: u64, packet: &[u8]) {
        self.largest = self.largest.max(packet.len());
        let copies = if self.dice.roll(100) < self.duplicate_percent { 2 } else { 1 };
        for _ in 0..copies {
            if self.dice.roll(100) >= self.loss_percent {
                self.in_flight.push((now + 20 + self.dice.roll(40), packet.to_vec()));
            }
        }
    }

    fn arrived(&mut self, now: u64) -> Vec<Vec<u8>> {
        let (due, later) = std::mem::take(&mut self.in_flight).into_iter().partition(|(at, _)| *at <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, packet)| packet).collect()
    }
}

/// Client and server endpoints, each flushing every `step` ms, for `millis`.
fn run(
    client: &mut Channels,
    server: &mut Channels,
    links: &mut (Link, Link),
    from: u64,
    millis: u64,
    mut delivered: impl FnMut(Channel, &[u8]),
) {
    for now in (from..from + millis).step_by(10) {
        client.flush(now, |packet| links.0.carry(now, packet));
        server.flush(now, |packet| links.1.carry(now, packet));
        for packet in links.0.arrived(now) {
            server.receive(now, &packet, &mut delivered);
        }
        for packet in links.1.arrived(now) {
            client.receive(now, &packet, |_, _| {});
        }
    }
}

fn message(i: u32) -> Vec<u8> {
    // Mostly small, every 50th 64 KiB, every 7th larger than one packet.
    let len = match i {
        i if i % 50 == 0 => MAX_MESSAGE_BYTES,
        i if i % 7 == 0 => 3_000 + i as usize,
        i => 4 + (i as usize * 31) % 200,
    };
    let mut bytes = vec![(i % 251) as u8; len];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    bytes
}

fn id_of(message: &[u8]) -> u32 {
    u32::from_le_bytes(message[..4].try_into().unwrap())
}

#[test]
fn reliable_ordered_delivers_every_message_once_in_order_through_ten_percent_loss() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut links = (Link::new(1, 10), Link::new(2, 10));
    let mut got = vec![];
    for batch in 0..40u32 {
        for i in batch * 10..batch * 10 + 10 {
            client.send(Channel::ReliableOrdered, &message(i)).unwrap();
        }
        run(&mut client, &mut server, &mut links, u64::from(batch) * 100, 100, |channel, m| {
            assert_eq!(channel, Channel::ReliableOrdered);
            assert_eq!(m, message(id_of(m)), "message {} arrived whole", id_of(m));
            got.push(id_of(m));
        });
    }
    run(&mut client, &mut server, &mut links, 4_000, 3_000, |_, m| got.push(id_of(m)));
    assert_eq!(got, (0..400).collect::<Vec<_>>());
    assert_eq!(client.reliable_backlog(), 0, "everything acknowledged");
    assert!(links.0.largest <= MAX_PACKET_BYTES && links.1.largest <= MAX_PACKET_BYTES);
    let stats = client.stats();
    assert!((40..=120).contains(&stats.rtt.as_millis()), "rtt {:?} over a 20–59 ms each way link", stats.rtt);
    assert!(stats.loss > 0.03 && stats.loss < 0.35, "loss {}", stats.loss);
    assert!(stats.sent_bytes_per_second > 0);
}

#[test]
fn reliable_unordered_delivers_every_message_once() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut links = (Link::new(3, 10), Link::new(4, 10));
    let mut got = vec![];
    for i in 0..300 {
        client.send(Channel::ReliableUnordered, &message(i)).unwrap();
    }
    run(&mut client, &mut server, &mut links, 0, 5_000, |_, m| got.push(id_of(m)));
    got.sort();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
}

#[test]
fn sequenced_never_delivers_an_older_message_after_a_newer_one() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut links = (Link::new(5, 10), Link::new(6, 10));
    let mut got = vec![];
    for step in 0..500u32 {
        client.send(Channel::Sequenced, &step.to_le_bytes()).unwrap();
        client.send(Channel::Unreliable, &(step | 1 << 31).to_le_bytes()).unwrap();
        run(&mut client, &mut server, &mut links, u64::from(step) * 10, 10, |channel, m| got.push((channel, id_of(m))));
    }
    let sequenced: Vec<u32> = got.iter().filter(|(c, _)| *c == Channel::Sequenced).map(|&(_, id)| id).collect();
    assert!(sequenced.windows(2).all(|pair| pair[0] < pair[1]), "out of order: {sequenced:?}");
    assert!(sequenced.len() > 350 && sequenced.len() < 500, "{} of 500 through 10% loss", sequenced.len());
    let mut unreliable: Vec<u32> = got.iter().filter(|(c, _)| *c == Channel::Unreliable).map(|&(_, id)| id).collect();
    let arrived = unreliable.len();
    unreliable.sort();
    unreliable.dedup();
    assert_eq!(unreliable.len(), arrived, "a duplicated packet delivers nothing twice");
}

#[test]
fn large_messages_reassemble_on_every_channel() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut links = (Link::new(7, 0), Link::new(8, 0));
    let mut got = vec![];
    for (at, channel) in Channel::ALL.into_iter().enumerate() {
        client.send(channel, &message(50)).unwrap();
        client.send(channel, &message(7)).unwrap();
        run(&mut client, &mut server, &mut links, at as u64 * 500, 500, |channel, m| {
            assert_eq!(m, message(id_of(m)));
            got.push((channel, m.len()));
        });
    }
    assert_eq!(got.len(), 8, "{got:?}");
    assert!(got.iter().filter(|(_, len)| *len == MAX_MESSAGE_BYTES).count() == 4);
    assert_eq!(client.send(Channel::Unreliable, &vec![0; MAX_MESSAGE_BYTES + 1]), Err(SendError::Size));
    assert_eq!(client.send(Channel::ReliableOrdered, &[]), Err(SendError::Size));
}

#[test]
fn a_peer_that_never_acknowledges_fills_the_backlog_and_send_says_so() {
    let mut client = Channels::default();
    let mut refused = None;
    for i in 0..10_000 {
        if let Err(error) = client.send(Channel::ReliableOrdered, &[1; 100]) {
            refused = Some((i, error));
            break;
        }
        if i % 100 == 0 {
            client.flush(i as u64, |_| {});
        }
    }
    assert_eq!(refused, Some((reliable::BACKLOG_MESSAGES, SendError::Backlog)));
}

#[test]
fn acks_alone_go_back_when_nothing_else_is_queued() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut packets = vec![];
    client.send(Channel::ReliableOrdered, b"hello").unwrap();
    client.flush(0, |packet| packets.push(packet.to_vec()));
    let mut got = vec![];
    server.receive(10, &packets[0], |_, m| got.push(m.to_vec()));
    assert_eq!(got, vec![b"hello".to_vec()]);
    assert!(server.wants_flush(10));
    let mut acks = vec![];
    server.flush(10, |packet| acks.push(packet.to_vec()));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].len(), wire::HEADER_BYTES, "a header and no parts");
    client.receive(20, &acks[0], |_, _| {});
    assert_eq!(client.reliable_backlog(), 0);
    assert!(!client.wants_flush(1_000), "acknowledged: nothing to resend");
    assert!(!server.wants_flush(20));
}

/// Found by the `channels` fuzz target: a part of length 0 was delivered as an empty message,
/// which no sender can send.
#[test]
fn an_empty_part_is_malformed_and_delivers_nothing() {
    let mut receiver = Channels::default();
    let mut packet = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    packet.extend_from_slice(&[Channel::Unreliable as u8, 0, 0, 0, 0]);
    let mut delivered = 0;
    receiver.receive(0, &packet, |_, _| delivered += 1);
    assert_eq!((delivered, receiver.malformed), (0, 1));
}

/// A backlog far larger than one flush (and than the bytes allowed in flight) drains over a
/// lossless link, in order, and leaves nothing counted in flight: a message whose first send
/// spans two flushes is counted once.
#[test]
fn a_backlog_larger_than_a_flush_drains_and_leaves_nothing_in_flight() {
    let (mut client, mut server) = (Channels::default(), Channels::default());
    let mut links = (Link::new(9, 0), Link::new(10, 0));
    for i in 0..3000u32 {
        let mut message = vec![0u8; 200];
        message[..4].copy_from_slice(&i.to_le_bytes());
        client.send(Channel::ReliableOrdered, &message).unwrap();
    }
    let mut got = vec![];
    run(&mut client, &mut server, &mut links, 0, 10_000, |_, m| got.push(id_of(m)));
    assert_eq!(got, (0..3000).collect::<Vec<_>>());
    assert_eq!((client.reliable_backlog(), client.senders[0].in_flight_bytes), (0, 0));
}

/// Packets a hostile peer writes by hand: ordered messages of 64 KiB, all but the one that
/// would let them be delivered.
fn early_ordered_fragments(first_id: u16, messages: u16) -> Vec<Vec<u8>> {
    let mut packets = vec![];
    let fragments = MAX_FRAGMENTS as u8;
    for id in first_id..first_id + messages {
        for fragment in 0..fragments {
            let len = if fragment + 1 == fragments {
                MAX_MESSAGE_BYTES - FRAGMENT_BYTES * (MAX_FRAGMENTS - 1)
            } else {
                FRAGMENT_BYTES
            };
            let mut packet = vec![];
            let sequence = (packets.len() + 1) as u16;
            wire::write_header(&mut packet, wire::Header { sequence, ack: 0, ack_bits: 0 });
            let bytes = vec![id as u8; len];
            wire::write_part(
                &mut packet,
                Part { channel: Channel::ReliableOrdered, id, fragment: Some((fragment, fragments)), bytes: &bytes },
            );
            packets.push(packet);
        }
    }
    packets
}

/// What a receiver holds for a peer that never sends the message the others wait for is
/// bounded, and the missing message, when it comes with parts that do not fit, is still taken
/// and unblocks the rest: no deadlock.
#[test]
fn early_ordered_messages_are_bounded_and_the_missing_one_still_unblocks_them() {
    let mut receiver = Channels::default();
    let mut delivered = vec![];
    for packet in early_ordered_fragments(1, 200) {
        receiver.receive(0, &packet, |_, m| delivered.push(m.len()));
    }
    let held = receiver.reassembly.reliable_bytes + receiver.ordered.early_bytes();
    assert!(delivered.is_empty());
    assert!(held <= 2 * reliable::IN_FLIGHT_BYTES, "{held} bytes held for 200 early 64 KiB messages");
    // Message 0 arrives beside a fragment of yet another early message, which does not fit.
    let mut packet = vec![];
    wire::write_header(&mut packet, wire::Header { sequence: 60_000, ack: 0, ack_bits: 0 });
    wire::write_part(
        &mut packet,
        Part { channel: Channel::ReliableOrdered, id: 0, fragment: None, bytes: b"the first" },
    );
    let big = vec![7u8; FRAGMENT_BYTES - 20];
    wire::write_part(
        &mut packet,
        Part { channel: Channel::ReliableOrdered, id: 300, fragment: Some((0, 2)), bytes: &big[..1000] },
    );
    receiver.receive(0, &packet, |_, m| delivered.push(m.len()));
    assert_eq!(delivered[0], 9, "the first message is delivered even from a refused packet");
    assert!(delivered.len() > 1, "and the messages held after it follow");
    assert!(delivered[1..].iter().all(|&len| len == MAX_MESSAGE_BYTES));
}
