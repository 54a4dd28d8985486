//! Channels over a secure session's payloads: unreliable, unreliable-sequenced, reliable-ordered
//! and reliable-unordered messages of up to 64 KiB, in packets of at most 1,200 bytes.
//!
//! Each packet carries a sequence number and acknowledges the last 65 it received (a sequence
//! and a bitfield, as Glenn Fiedler's reliability articles and renet do), so acks ride on the
//! traffic both ways. A reliable message stays queued until every fragment of it is
//! acknowledged, and is sent again when a round trip and a margin pass without that; the round
//! trip is measured from the acks. Larger messages go in fragments that the receiver puts back
//! together. [`Channels`] is one side's state; the server and a client each run one per session.

mod acks;
mod fragment;
mod reliable;
mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

use acks::{Received, SentPackets};
use reliable::{OrderedReceiver, Sender, UnorderedReceiver};
use wire::{FRAGMENT_PART_BYTES, HEADER_BYTES, Header, PART_BYTES, Part};

/// A session's four channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Delivered if it arrives, in any order, possibly never: positions, inputs.
    Unreliable = 0,
    /// Delivered if it arrives and nothing newer on this channel was delivered first: the
    /// latest state, where an older one arriving late would move things backwards.
    Sequenced = 1,
    /// Delivered once, in the order sent, however many packets are lost: chat, game events.
    ReliableOrdered = 2,
    /// Delivered once, as soon as it arrives: events whose order does not matter.
    ReliableUnordered = 3,
}

impl Channel {
    /// Every channel, by its number on the wire.
    pub const ALL: [Channel; 4] =
        [Channel::Unreliable, Channel::Sequenced, Channel::ReliableOrdered, Channel::ReliableUnordered];

    fn from_bits(bits: u8) -> Channel {
        Channel::ALL[usize::from(bits & 0b11)]
    }

    /// Whether it resends until acknowledged.
    pub fn is_reliable(self) -> bool {
        matches!(self, Channel::ReliableOrdered | Channel::ReliableUnordered)
    }
}

/// The largest packet the layer writes: netcode's largest payload.
pub(crate) const MAX_PACKET_BYTES: usize = 1200;
/// The largest message.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// A fragment's bytes: what fits in a packet beside the header and a fragment part's header.
pub(crate) const FRAGMENT_BYTES: usize = MAX_PACKET_BYTES - HEADER_BYTES - FRAGMENT_PART_BYTES;
/// Fragments of the largest message; a bitmask of u64 covers them.
pub(crate) const MAX_FRAGMENTS: usize = MAX_MESSAGE_BYTES.div_ceil(FRAGMENT_BYTES);
/// Packets one flush writes at most: no more than one ack (65 packets) can acknowledge, even
/// with a second flush before it comes back. A 64 KiB message goes out over two flushes.
const PACKETS_PER_FLUSH: usize = 32;
/// Unreliable bytes queued before `send` refuses: more than flushes carry.
const UNRELIABLE_BACKLOG_BYTES: usize = 1024 * 1024;
/// The round trip assumed before one is measured.
const INITIAL_RTT_MILLIS: f32 = 100.0;

const _: () = assert!(MAX_FRAGMENTS <= 64);

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Empty, or longer than 64 KiB.
    Size,
    /// The channel's queue is full: for a reliable one, the other side is not acknowledging;
    /// for the others, more was sent than flushes carry.
    Backlog,
}

/// What one side measures of its session.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChannelStats {
    /// The smoothed round trip, from acknowledgements.
    pub rtt: Duration,
    /// The fraction of recent packets never acknowledged, 0.0 to 1.0.
    pub loss: f32,
    /// Bytes of packets sent per second, over the last whole second.
    pub sent_bytes_per_second: u64,
    /// Bytes of packets received per second, over the last whole second.
    pub received_bytes_per_second: u64,
}

/// Buffers handed back and forth, so the steady state allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<Vec<u8>>,
}

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    fn give(&mut self, mut buffer: Vec<u8>) {
        buffer.clear();
        self.free.push(buffer);
    }
}

/// Bytes per second, over whole seconds.
#[derive(Debug, Default)]
struct Rate {
    window_start: u64,
    in_window: u64,
    per_second: u64,
}

impl Rate {
    fn add(&mut self, now: u64, bytes: usize) {
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed >= 1000 {
            self.per_second = self.in_window * 1000 / elapsed;
            (self.window_start, self.in_window) = (now, 0);
        }
        self.in_window += bytes as u64;
    }
}

/// One side of a session's channels.
#[derive(Debug)]
pub struct Channels {
    sent: SentPackets,
    received: Received,
    /// Unreliable and sequenced messages waiting for the next flush: (channel, id, end in
    /// `unreliable_bytes`).
    unreliable: Vec<(Channel, u16, usize)>,
    unreliable_bytes: Vec<u8>,
    /// The fragment the first queued unreliable message resumes from.
    unreliable_resume: u8,
    next_unreliable_id: [u16; 2],
    senders: [Sender; 2],
    ordered: OrderedReceiver,
    unordered: UnorderedReceiver,
    last_sequenced: Option<u16>,
    reassembly: fragment::Reassembly,
    pool: Pool,
    packet: Vec<u8>,
    rtt_millis: f32,
    sent_rate: Rate,
    received_rate: Rate,
    /// Packets that could not be read (a broken peer: they came through a sealed session).
    pub(crate) malformed: u64,
}

impl Default for Channels {
    fn default() -> Channels {
        Channels {
            sent: SentPackets::default(),
            received: Received::default(),
            unreliable: Vec::new(),
            unreliable_bytes: Vec::new(),
            unreliable_resume: 0,
            next_unreliable_id: [0; 2],
            senders: [Sender::default(), Sender::default()],
            ordered: OrderedReceiver::default(),
            unordered: UnorderedReceiver::default(),
            last_sequenced: None,
            reassembly: fragment::Reassembly::default(),
            pool: Pool::default(),
            packet: Vec::new(),
            rtt_millis: INITIAL_RTT_MILLIS,
            sent_rate: Rate::default(),
            received_rate: Rate::default(),
            malformed: 0,
        }
    }
}

impl Channels {
    /// Queues `message` on `channel` for the next [`flush`](Channels::flush).
    pub fn send(&mut self, channel: Channel, message: &[u8]) -> Result<(), SendError> {
        if message.is_empty() || message.len() > MAX_MESSAGE_BYTES {
            return Err(SendError::Size);
        }
        let fragments = fragments_of(message.len());
        match channel {
            Channel::ReliableOrdered | Channel::ReliableUnordered => {
                let sender = &mut self.senders[channel as usize - 2];
                if sender.push(message, fragments, &mut self.pool) { Ok(()) } else { Err(SendError::Backlog) }
            }
            Channel::Unreliable | Channel::Sequenced => {
                if self.unreliable_bytes.len() + message.len() > UNRELIABLE_BACKLOG_BYTES {
                    return Err(SendError::Backlog);
                }
                let id = &mut self.next_unreliable_id[channel as usize];
                self.unreliable_bytes.extend_from_slice(message);
                self.unreliable.push((channel, *id, self.unreliable_bytes.len()));
                *id = id.wrapping_add(1);
                Ok(())
            }
        }
    }

    /// Whether a flush has something to send: queued messages, a reliable one due again, or
    /// acknowledgements owed.
    pub fn wants_flush(&self, now: u64) -> bool {
        let resend_after = self.resend_after();
        self.received.unacknowledged
            || !self.unreliable.is_empty()
            || self.senders.iter().any(|sender| {
                sender.queue.iter().any(|p| !p.is_acked() && p.last_sent.is_none_or(|at| now >= at + resend_after))
            })
    }

    /// Writes what is queued into packets of at most 1,200 bytes, each handed to `transmit`:
    /// reliable messages due (first sends and resends), then the unreliable ones. When nothing
    /// is queued but packets arrived since the last one sent, a packet of acks alone.
    pub fn flush(&mut self, now: u64, mut transmit: impl FnMut(&[u8])) {
        let mut packets = 0;
        let resend_after = self.resend_after();
        // Unacknowledged after two round trips and a margin: lost, for the loss figure.
        self.sent.judge_until(now, 2 * self.rtt_millis as u64 + 100);
        for sender_index in 0..2 {
            let channel = Channel::ALL[sender_index + 2];
            let mut index = 0;
            while index < self.senders[sender_index].queue.len() && packets < PACKETS_PER_FLUSH {
                let sender = &self.senders[sender_index];
                let pending = &sender.queue[index];
                let due = !pending.is_acked() && pending.last_sent.is_none_or(|at| now >= at + resend_after);
                if !due {
                    index += 1;
                    continue;
                }
                if !pending.started {
                    if !sender.may_start(index) {
                        break;
                    }
                    self.senders[sender_index].started(index);
                }
                let id = self.senders[sender_index].id_of(index);
                if !self.send_reliable(now, channel, sender_index, index, id, &mut packets, &mut transmit) {
                    break;
                }
                index += 1;
            }
        }
        self.send_unreliable(now, &mut packets, &mut transmit);
        if !self.packet.is_empty() {
            self.finish_packet(now, &mut transmit);
            packets += 1;
        }
        if packets == 0 && self.received.unacknowledged {
            self.start_packet(now);
            self.finish_packet(now, &mut transmit);
        }
    }

    /// Writes the unacknowledged fragments of one reliable message, from where its round left
    /// off; false when the flush's packet budget ran out first.
    #[allow(clippy::too_many_arguments)]
    fn send_reliable(
        &mut self,
        now: u64,
        channel: Channel,
        sender_index: usize,
        index: usize,
        id: u16,
        packets: &mut usize,
        transmit: &mut impl FnMut(&[u8]),
    ) -> bool {
        let fragments = self.senders[sender_index].queue[index].fragments;
        while self.senders[sender_index].queue[index].cursor < fragments {
            let pending = &self.senders[sender_index].queue[index];
            let fragment = pending.cursor;
            if pending.acked & (1 << fragment) == 0 {
                let (bytes, fragment_field) = fragment_bytes(&pending.data, fragment, fragments);
                let need = if fragment_field.is_some() { FRAGMENT_PART_BYTES } else { PART_BYTES } + bytes.len();
                if !self.make_room(now, need, packets, transmit) {
                    return false;
                }
                let pending = &self.senders[sender_index].queue[index];
                let (bytes, fragment_field) = fragment_bytes(&pending.data, fragment, fragments);
                wire::write_part(&mut self.packet, Part { channel, id, fragment: fragment_field, bytes });
                self.sent.carried((channel, id, fragment));
            }
            self.senders[sender_index].queue[index].cursor += 1;
        }
        let pending = &mut self.senders[sender_index].queue[index];
        pending.cursor = 0;
        pending.last_sent = Some(now);
        true
    }

    /// Writes the queued unreliable and sequenced messages, in fragments where they need them.
    /// What the flush's packet budget leaves out waits for the next flush, from the fragment
    /// where it stopped.
    fn send_unreliable(&mut self, now: u64, packets: &mut usize, transmit: &mut impl FnMut(&[u8])) {
        let queued = std::mem::take(&mut self.unreliable);
        let bytes = std::mem::take(&mut self.unreliable_bytes);
        let mut start = 0;
        let mut stopped = None;
        'messages: for (at, &(channel, id, end)) in queued.iter().enumerate() {
            let message = &bytes[start..end];
            let fragments = fragments_of(message.len());
            let first = if at == 0 { self.unreliable_resume } else { 0 };
            for fragment in first..fragments {
                let (part, fragment_field) = fragment_bytes(message, fragment, fragments);
                let need = if fragment_field.is_some() { FRAGMENT_PART_BYTES } else { PART_BYTES } + part.len();
                if !self.make_room(now, need, packets, transmit) {
                    stopped = Some((at, start, fragment));
                    break 'messages;
                }
                wire::write_part(&mut self.packet, Part { channel, id, fragment: fragment_field, bytes: part });
            }
            start = end;
        }
        (self.unreliable, self.unreliable_bytes) = (queued, bytes);
        match stopped {
            None => {
                self.unreliable.clear();
                self.unreliable_bytes.clear();
                self.unreliable_resume = 0;
            }
            Some((at, start, fragment)) => {
                self.unreliable.drain(..at);
                self.unreliable_bytes.drain(..start);
                self.unreliable.iter_mut().for_each(|(_, _, end)| *end -= start);
                self.unreliable_resume = fragment;
            }
        }
    }

    /// Makes sure the packet being written has `need` bytes free: sends it and starts another
    /// if not (or starts the first); false when the flush may send no more packets.
    fn make_room(&mut self, now: u64, need: usize, packets: &mut usize, transmit: &mut impl FnMut(&[u8])) -> bool {
        if !self.packet.is_empty() && self.packet.len() + need <= MAX_PACKET_BYTES {
            return true;
        }
        if !self.packet.is_empty() {
            self.finish_packet(now, transmit);
            *packets += 1;
        }
        if *packets >= PACKETS_PER_FLUSH || !self.sent.has_room() {
            return false;
        }
        self.start_packet(now);
        true
    }

    /// Starts a packet: its sequence, the acks, and the record its acknowledgement will find.
    fn start_packet(&mut self, now: u64) {
        let sequence = self.sent.start(now);
        let header = Header { sequence, ack: self.received.latest, ack_bits: self.received.bits };
        wire::write_header(&mut self.packet, header);
    }

    fn finish_packet(&mut self, now: u64, transmit: &mut impl FnMut(&[u8])) {
        transmit(&self.packet);
        self.sent_rate.add(now, self.packet.len());
        self.received.unacknowledged = false;
        self.packet.clear();
    }

    /// Takes one packet from the other side: its acks, then its messages, each handed to
    /// `deliver` with its channel as the channel's guarantee allows. A repeated packet is
    /// dropped whole. One whose reliable parts could not be held (more in flight than a
    /// conforming sender sends) is dropped unacknowledged, so it will come again.
    pub fn receive(&mut self, now: u64, packet: &[u8], mut deliver: impl FnMut(Channel, &[u8])) {
        let Some((header, parts)) = wire::read(packet) else {
            self.malformed += 1;
            return;
        };
        if !self.has_room_for(parts.clone()) {
            // Refused unacknowledged, so all of it comes again; but the next ordered message is
            // taken now, since delivering it is what frees the room, and it may always travel
            // with parts that do not fit.
            for part in parts.filter_map(Result::ok) {
                if self.is_next(&part) {
                    self.take_part(now, part, &mut deliver);
                }
            }
            return;
        }
        if !self.received.record(header.sequence) {
            return;
        }
        // A packet of acks alone is not acknowledged: that would echo forever.
        self.received.unacknowledged |= packet.len() > wire::HEADER_BYTES;
        self.received_rate.add(now, packet.len());
        // Sequences start at 1: ack 0 with no bits is "nothing received yet".
        if header.ack != 0 || header.ack_bits != 0 {
            self.acknowledged(now, header.ack, true);
            // Only the acks this header adds: each packet repeats the last 64.
            let mut new = self.sent.unseen_acks(header.ack, header.ack_bits);
            while new != 0 {
                let behind = new.trailing_zeros() as u16;
                new &= new - 1;
                self.acknowledged(now, header.ack.wrapping_sub(behind + 1), false);
            }
        }
        for part in parts {
            match part {
                Ok(part) => self.take_part(now, part, &mut deliver),
                Err(()) => self.malformed += 1,
            }
        }
    }

    /// Whether every reliable part in a packet can be held until its turn, within one budget
    /// for all that is held (assemblies and early ordered messages): twice what a conforming
    /// sender has in flight on both channels. The next ordered message needs no room: it is
    /// delivered, and frees what waited for it.
    fn has_room_for(&self, parts: wire::Parts<'_>) -> bool {
        let limit = 2 * reliable::IN_FLIGHT_BYTES;
        let mut held = self.reassembly.reliable_bytes + self.ordered.early_bytes();
        for part in parts.filter_map(Result::ok) {
            if !part.channel.is_reliable() || !self.wanted(part.channel, part.id) || self.is_next(&part) {
                continue;
            }
            held += match part.fragment {
                Some(_) if self.reassembly.holds(part.channel, part.id) => 0,
                Some((_, count)) => usize::from(count) * FRAGMENT_BYTES,
                // Whole unordered messages are delivered at once; whole ordered ones wait.
                None if part.channel == Channel::ReliableOrdered => part.bytes.len(),
                None => 0,
            };
            if held > limit {
                return false;
            }
        }
        true
    }

    /// Whether a part belongs to the next ordered message.
    fn is_next(&self, part: &Part<'_>) -> bool {
        part.channel == Channel::ReliableOrdered && part.id == self.ordered.next()
    }

    /// Whether a reliable message is still to be delivered (its fragments worth assembling).
    fn wanted(&self, channel: Channel, id: u16) -> bool {
        match channel {
            Channel::ReliableOrdered => self.ordered.wants(id),
            Channel::ReliableUnordered => self.unordered.wants(id),
            _ => true,
        }
    }

    fn take_part(&mut self, now: u64, part: Part<'_>, deliver: &mut impl FnMut(Channel, &[u8])) {
        let Some(fragment) = part.fragment else {
            self.take_message(part.channel, part.id, part.bytes, deliver);
            return;
        };
        if part.channel.is_reliable() && !self.wanted(part.channel, part.id) {
            return;
        }
        let assembled = self.reassembly.add(now, part.channel, part.id, fragment, part.bytes, &mut self.pool);
        if let Some(message) = assembled {
            self.take_message(part.channel, part.id, &message, deliver);
            self.pool.give(message);
        }
    }

    /// A whole message: delivered as its channel allows.
    fn take_message(&mut self, channel: Channel, id: u16, message: &[u8], deliver: &mut impl FnMut(Channel, &[u8])) {
        match channel {
            Channel::Unreliable => deliver(channel, message),
            Channel::Sequenced => {
                if self.last_sequenced.is_none_or(|last| id.wrapping_sub(last).wrapping_sub(1) < 0x7fff) {
                    self.last_sequenced = Some(id);
                    deliver(channel, message);
                }
            }
            Channel::ReliableOrdered => self.ordered.accept(id, message, &mut self.pool, &mut |m| deliver(channel, m)),
            Channel::ReliableUnordered => {
                if self.unordered.first_time(id) {
                    deliver(channel, message);
                }
            }
        }
    }

    /// Packet `sequence` reached the other side: its reliable parts are done. The newest ack
    /// also times the round trip.
    fn acknowledged(&mut self, now: u64, sequence: u16, newest: bool) {
        let Some((sent_at, parts)) = self.sent.acknowledged(sequence) else { return };
        if newest {
            let sample = now.saturating_sub(sent_at) as f32;
            self.rtt_millis += (sample - self.rtt_millis) / 8.0;
        }
        for position in parts {
            let (channel, id, fragment) = self.sent.part(position);
            self.senders[channel as usize - 2].acked(id, fragment, &mut self.pool);
        }
    }

    /// How long a reliable message waits for its ack before going again: the round trip and
    /// half again, at least 20 ms over it (a late ack costs a duplicate, a slow resend a stall).
    fn resend_after(&self) -> u64 {
        let rtt = self.rtt_millis.max(1.0) as u64;
        rtt + (rtt / 2).max(20)
    }

    /// The session's round trip, loss and rates.
    pub fn stats(&self) -> ChannelStats {
        ChannelStats {
            rtt: Duration::from_micros((self.rtt_millis * 1000.0) as u64),
            loss: self.sent.loss,
            sent_bytes_per_second: self.sent_rate.per_second,
            received_bytes_per_second: self.received_rate.per_second,
        }
    }

    /// Reliable messages queued and not yet acknowledged, on both reliable channels.
    pub fn reliable_backlog(&self) -> usize {
        self.senders.iter().map(|sender| sender.queue.len()).sum()
    }
}

/// The fragments a message of `len` bytes goes in: 1 when it fits a packet whole.
fn fragments_of(len: usize) -> u8 {
    if len <= MAX_PACKET_BYTES - HEADER_BYTES - PART_BYTES { 1 } else { len.div_ceil(FRAGMENT_BYTES) as u8 }
}

/// Fragment `fragment` of `message`, and its (index, count) field when it is one of several.
fn fragment_bytes(message: &[u8], fragment: u8, fragments: u8) -> (&[u8], Option<(u8, u8)>) {
    if fragments == 1 {
        return (message, None);
    }
    let start = usize::from(fragment) * FRAGMENT_BYTES;
    let end = (start + FRAGMENT_BYTES).min(message.len());
    (&message[start..end], Some((fragment, fragments)))
}
