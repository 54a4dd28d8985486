//! A worker's mailbox: the topic publications other threads (and its own handlers) left for
//! its subscribers, packed so a steady stream of publications allocates nothing, bounded so a
//! stuck or flooded worker cannot grow it without limit, and read a budget at a time.

use std::time::Instant;

/// Publications waiting for one worker, packed into two reused vectors: the worker swaps the
/// shared mailbox with one it keeps, reads it (a budget per loop turn), and clears it.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    bytes: Vec<u8>,
    /// (topic length, frame length, when it was published) of each publication, in order; the
    /// topic and frame lie in `bytes`.
    letters: Vec<(usize, usize, Instant)>,
    /// How far reading has got: letters handed out, and their bytes.
    read: (usize, usize),
}

/// A publication read from a [`Mailbox`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Letter<'a> {
    pub(crate) topic: &'a str,
    /// The encoded frame, as published.
    pub(crate) frame: &'a [u8],
    pub(crate) published: Instant,
    /// No unread letter is left after this one.
    pub(crate) last: bool,
}

/// Capacity a mailbox keeps after it is emptied: a spike's worth above it is given back.
const KEPT_CAPACITY: usize = 1 << 20;

impl Mailbox {
    /// Appends a publication (its frame in parts) made at `published`; false, and nothing
    /// stored, when it would take the mailbox above `cap` bytes. A mailbox that is empty takes
    /// one publication of any size, so a publication larger than the cap is not impossible to
    /// deliver.
    pub(crate) fn push(&mut self, topic: &str, frame: &[&[u8]], cap: usize, published: Instant) -> bool {
        let frame_len: usize = frame.iter().map(|part| part.len()).sum();
        let len = topic.len().saturating_add(frame_len);
        if !self.letters.is_empty() && self.bytes.len().saturating_add(len) > cap {
            return false;
        }
        self.bytes.extend_from_slice(topic.as_bytes());
        for part in frame {
            self.bytes.extend_from_slice(part);
        }
        self.letters.push((topic.len(), frame_len, published));
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// Publications held and their bytes (topics included), as the cap counts them.
    pub(crate) fn depth(&self) -> (usize, usize) {
        (self.letters.len(), self.bytes.len())
    }

    /// True while letters remain unread.
    pub(crate) fn has_unread(&self) -> bool {
        self.read.0 < self.letters.len()
    }

    /// The next unread publication, in publish order.
    pub(crate) fn next_letter(&mut self) -> Option<Letter<'_>> {
        let &(topic_len, frame_len, published) = self.letters.get(self.read.0)?;
        let at = self.read.1;
        self.read = (self.read.0 + 1, at + topic_len + frame_len);
        let topic = &self.bytes[at..at + topic_len];
        let frame = &self.bytes[at + topic_len..at + topic_len + frame_len];
        // Pushed from a &str.
        let topic = std::str::from_utf8(topic).unwrap_or_default();
        Some(Letter { topic, frame, published, last: self.read.0 == self.letters.len() })
    }

    /// Empties the mailbox, giving back what a spike made it hold beyond [`KEPT_CAPACITY`].
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.letters.clear();
        self.read = (0, 0);
        if self.bytes.capacity() > KEPT_CAPACITY {
            self.bytes.shrink_to(KEPT_CAPACITY);
        }
        let kept_letters = KEPT_CAPACITY / 64;
        if self.letters.capacity() > kept_letters {
            self.letters.shrink_to(kept_letters);
        }
    }

    /// Bytes the mailbox holds on to (for tests and the counters).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_come_back_in_order_up_to_the_cap_and_a_spike_is_given_back() {
        let mut mailbox = Mailbox::default();
        let (first, second) = (Instant::now(), Instant::now() + std::time::Duration::from_millis(1));
        assert!(mailbox.push("a", &[b"12", b"3"], 10, first));
        assert!(mailbox.push("b", &[b"45"], 10, second));
        assert!(!mailbox.push("c", &[b"6789"], 10, second), "above the cap: refused");
        assert!(mailbox.has_unread());
        let letter = |topic, frame, published, last| Some(Letter { topic, frame, published, last });
        assert_eq!(mailbox.next_letter(), letter("a", &b"123"[..], first, false));
        assert_eq!(mailbox.next_letter(), letter("b", &b"45"[..], second, true));
        assert_eq!(mailbox.next_letter(), None);
        mailbox.clear();
        let huge = vec![0u8; 8 << 20];
        assert!(mailbox.push("big", &[&huge], 1, first), "an empty mailbox takes one of any size");
        mailbox.clear();
        assert!(mailbox.capacity() <= KEPT_CAPACITY, "capacity after a spike: {}", mailbox.capacity());
    }
}
