//! Acknowledgements: which packets arrived (for the acks sent back), and which packets sent
//! were acknowledged (for the reliable parts they carried, the round trip and the loss).

use std::collections::VecDeque;

use super::Channel;

/// Packets remembered after sending: as many as an ack reaches back (the newest and 64 before
/// it), so a packet is judged by its ack or by time, not pushed out, at the rate a flush allows.
const SENT_RECORDS: usize = 64;
/// Weight of one packet in the loss average: about the last 40 packets count.
const LOSS_WEIGHT: f32 = 0.025;

/// A reliable part a packet carried: its channel, message id and fragment.
pub(crate) type ReliablePart = (Channel, u16, u8);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    /// Sent, no ack yet.
    Waiting,
    /// Acknowledged, not yet counted in the loss.
    Acked,
}

/// A packet sent: when, and where its reliable parts are in the shared queue.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    sent_at: u64,
    /// The number of its first part, counted over all parts ever carried.
    first_part: u32,
    sequence: u16,
    parts: u16,
    state: State,
}

/// The packets sent, by sequence, until each is acknowledged or judged lost. Their reliable
/// parts wait in one queue in sending order (a packet's are together), and leave it as their
/// packets are judged, oldest first: no list per packet, 24 bytes a record.
#[derive(Debug)]
pub(crate) struct SentPackets {
    /// Empty until the first packet: a session that sends nothing holds none.
    records: Vec<Sent>,
    parts: VecDeque<ReliablePart>,
    /// The number of `parts[0]`.
    parts_base: u32,
    /// The next sequence to send. From 1: ack 0 with no bits then means "nothing received".
    next: u16,
    /// The oldest sequence not yet counted in the loss.
    unjudged: u16,
    /// Fraction of recent packets lost.
    pub(crate) loss: f32,
    /// The newest ack the other side sent, and the 64 before it that it also reported, as
    /// taken so far: a header's acks are mostly repeats of the last one's.
    acks_seen: Option<(u16, u64)>,
}

impl Default for SentPackets {
    fn default() -> SentPackets {
        SentPackets {
            records: Vec::new(),
            parts: VecDeque::new(),
            parts_base: 0,
            next: 1,
            unjudged: 1,
            loss: 0.0,
            acks_seen: None,
        }
    }
}

impl SentPackets {
    /// A new packet's sequence, its record ready for its reliable parts.
    pub(crate) fn start(&mut self, now: u64) -> u16 {
        if self.records.is_empty() {
            self.records = vec![Sent::default(); SENT_RECORDS];
        }
        let sequence = self.next;
        if usize::from(sequence.wrapping_sub(self.unjudged)) >= SENT_RECORDS {
            // The ring is full of packets not yet judged: the oldest is judged now.
            let oldest = self.unjudged;
            self.judge(oldest);
        }
        self.next = sequence.wrapping_add(1);
        let first_part = self.parts_base.wrapping_add(self.parts.len() as u32);
        self.records[usize::from(sequence) % SENT_RECORDS] =
            Sent { sent_at: now, first_part, sequence, parts: 0, state: State::Waiting };
        sequence
    }

    /// Of a header's ack bits (bit `i`: `ack - 1 - i` arrived), the ones no earlier header
    /// reported. A header older than the newest seen (reordered) has all of its bits returned.
    pub(crate) fn unseen_acks(&mut self, ack: u16, bits: u64) -> u64 {
        let Some((newest, seen_bits)) = self.acks_seen else {
            self.acks_seen = Some((ack, bits));
            return bits;
        };
        let ahead = ack.wrapping_sub(newest);
        if ahead >= 0x8000 {
            return bits;
        }
        // What was seen, as bits relative to `ack`: the old newest is `ahead` behind it.
        let shift = u32::from(ahead);
        let seen = match shift {
            0 => seen_bits,
            1..=64 => (seen_bits << (shift - 1) << 1) | 1 << (shift - 1),
            _ => 0,
        };
        self.acks_seen = Some((ack, seen | bits));
        bits & !seen
    }

    /// Whether a packet can start without judging one still waiting for its ack: the packets
    /// in flight are bounded by what acks can reach.
    pub(crate) fn has_room(&self) -> bool {
        usize::from(self.next.wrapping_sub(self.unjudged)) < SENT_RECORDS
    }

    /// Notes a reliable part in the packet being written.
    pub(crate) fn carried(&mut self, part: ReliablePart) {
        let sequence = self.next.wrapping_sub(1);
        self.records[usize::from(sequence) % SENT_RECORDS].parts += 1;
        self.parts.push_back(part);
    }

    /// Packet `sequence` was acknowledged: its send time and the positions of its reliable parts
    /// (read with [`part`](SentPackets::part)), or `None` if it was already, or is unknown.
    pub(crate) fn acknowledged(&mut self, sequence: u16) -> Option<(u64, std::ops::Range<usize>)> {
        let record = self.records.get_mut(usize::from(sequence) % SENT_RECORDS)?;
        if record.state != State::Waiting || record.sequence != sequence {
            return None;
        }
        record.state = State::Acked;
        let start = record.first_part.wrapping_sub(self.parts_base) as usize;
        Some((record.sent_at, start..start + usize::from(record.parts)))
    }

    /// The reliable part at `position` of the queue.
    pub(crate) fn part(&self, position: usize) -> ReliablePart {
        self.parts[position]
    }

    /// Counts in the loss every packet, oldest first, acknowledged or sent more than
    /// `lost_after` ms ago without an ack; stops at the first still waiting in time.
    pub(crate) fn judge_until(&mut self, now: u64, lost_after: u64) {
        while self.unjudged != self.next {
            let record = &self.records[usize::from(self.unjudged) % SENT_RECORDS];
            if record.state == State::Waiting && now < record.sent_at + lost_after {
                return;
            }
            let sequence = self.unjudged;
            self.judge(sequence);
        }
    }

    /// The oldest packet's fate goes into the loss, and its parts leave the queue.
    fn judge(&mut self, sequence: u16) {
        let record = &mut self.records[usize::from(sequence) % SENT_RECORDS];
        let lost = if record.state == State::Waiting { 1.0 } else { 0.0 };
        record.state = State::Free;
        self.parts.drain(..usize::from(record.parts));
        self.parts_base = self.parts_base.wrapping_add(u32::from(record.parts));
        self.loss += (lost - self.loss) * LOSS_WEIGHT;
        self.unjudged = sequence.wrapping_add(1);
    }
}

/// Which packets arrived, for the acks sent back.
#[derive(Debug, Default)]
pub(crate) struct Received {
    any: bool,
    pub(crate) latest: u16,
    /// Bit `i`: `latest - 1 - i` arrived.
    pub(crate) bits: u64,
    /// Something arrived since the last packet sent, which would carry its ack.
    pub(crate) unacknowledged: bool,
}

impl Received {
    /// Records `sequence`; false if it was already recorded (a duplicate). A packet too far
    /// behind the newest to acknowledge is taken but not recorded: its reliable parts come again
    /// (and are delivered once), its others are delivered now.
    pub(crate) fn record(&mut self, sequence: u16) -> bool {
        if !self.any {
            (self.any, self.latest, self.bits) = (true, sequence, 0);
            return true;
        }
        let ahead = sequence.wrapping_sub(self.latest);
        if ahead == 0 {
            return false;
        }
        if ahead < 0x8000 {
            let shift = u32::from(ahead);
            self.bits = if shift > 64 { 0 } else { (self.bits << (shift - 1) << 1) | 1 << (shift - 1) };
            self.latest = sequence;
            return true;
        }
        let behind = u32::from(self.latest.wrapping_sub(sequence));
        if behind > 64 {
            return true;
        }
        let repeat = self.bits & 1 << (behind - 1) != 0;
        self.bits |= 1 << (behind - 1);
        !repeat
    }
}

#[cfg(test)]
mod tests {
    use super::SentPackets;

    /// Each header's acks are the newest and the 64 before it; only the ones no earlier header
    /// reported are handed on, and a reordered (older) header is handed on whole.
    #[test]
    fn only_acks_not_seen_before_are_handed_on() {
        let mut sent = SentPackets::default();
        assert_eq!(sent.unseen_acks(10, 0b101), 0b101, "the first header: all of it");
        assert_eq!(sent.unseen_acks(10, 0b111), 0b010, "the same newest: the new bit only");
        // 12 now: 10 is 2 behind (bit 1), and 10's bits move up by 2.
        assert_eq!(sent.unseen_acks(12, 0b11111), 0b00001, "11 is new; 10, 9, 8, 7 were seen");
        assert_eq!(sent.unseen_acks(11, 0b1), 0b1, "an older header is handed on whole");
        assert_eq!(sent.unseen_acks(12 + 200, u64::MAX), u64::MAX, "far ahead: nothing seen applies");
        assert_eq!(sent.unseen_acks(12 + 200 + 64, 0), 0);
        assert_eq!(sent.unseen_acks(12 + 200 + 64, 1 << 63), 0, "the old newest, 64 behind, was seen");
    }
}
