//! Acknowledgements: which packets arrived (for the acks sent back), and which packets sent
//! were acknowledged (for the reliable parts they carried, the round trip and the loss).

use super::Channel;

/// Packets remembered after sending: more than the 65 an ack reaches back, so a packet is
/// judged by time, not pushed out, at any rate a flush allows.
const SENT_RECORDS: usize = 128;
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

/// A packet sent: when, and the reliable parts it carried.
#[derive(Debug, Default)]
struct Sent {
    sequence: u16,
    sent_at: u64,
    state: State,
    reliable: Vec<ReliablePart>,
}

/// The packets sent, by sequence, until each is acknowledged or judged lost.
#[derive(Debug)]
pub(crate) struct SentPackets {
    records: Box<[Sent; SENT_RECORDS]>,
    /// The next sequence to send. From 1: ack 0 with no bits then means "nothing received".
    next: u16,
    /// The oldest sequence not yet counted in the loss.
    unjudged: u16,
    /// Fraction of recent packets lost.
    pub(crate) loss: f32,
}

impl Default for SentPackets {
    fn default() -> SentPackets {
        SentPackets { records: Box::new(std::array::from_fn(|_| Sent::default())), next: 1, unjudged: 1, loss: 0.0 }
    }
}

impl SentPackets {
    /// A new packet's sequence, its record ready for its reliable parts.
    pub(crate) fn start(&mut self, now: u64) -> u16 {
        let sequence = self.next;
        if usize::from(sequence.wrapping_sub(self.unjudged)) >= SENT_RECORDS {
            // The ring is full of packets not yet judged: the oldest is judged now.
            let oldest = self.unjudged;
            self.judge(oldest);
        }
        self.next = sequence.wrapping_add(1);
        let record = &mut self.records[usize::from(sequence) % SENT_RECORDS];
        record.sequence = sequence;
        record.sent_at = now;
        record.state = State::Waiting;
        record.reliable.clear();
        sequence
    }

    /// Notes a reliable part in the packet being written.
    pub(crate) fn carried(&mut self, part: ReliablePart) {
        let sequence = self.next.wrapping_sub(1);
        self.records[usize::from(sequence) % SENT_RECORDS].reliable.push(part);
    }

    /// Packet `sequence` was acknowledged: its send time and reliable parts (to hand back with
    /// [`give_back`](SentPackets::give_back)), or `None` if it was already, or is unknown.
    pub(crate) fn acknowledged(&mut self, sequence: u16) -> Option<(u64, Vec<ReliablePart>)> {
        let record = &mut self.records[usize::from(sequence) % SENT_RECORDS];
        if record.state != State::Waiting || record.sequence != sequence {
            return None;
        }
        record.state = State::Acked;
        Some((record.sent_at, std::mem::take(&mut record.reliable)))
    }

    /// Returns a record's list of parts, emptied, so its capacity is reused.
    pub(crate) fn give_back(&mut self, sequence: u16, mut parts: Vec<ReliablePart>) {
        parts.clear();
        self.records[usize::from(sequence) % SENT_RECORDS].reliable = parts;
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

    fn judge(&mut self, sequence: u16) {
        let record = &mut self.records[usize::from(sequence) % SENT_RECORDS];
        let lost = if record.state == State::Waiting { 1.0 } else { 0.0 };
        record.state = State::Free;
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
