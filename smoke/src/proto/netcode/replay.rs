//! Replay protection: which of the last 256 sequence numbers a session has already accepted.
//!
//! The standard asks for a buffer "a few seconds worth of packets" deep and suggests 256
//! entries; this keeps them as 256 bits beside the newest sequence (40 bytes a session, not the
//! 2 KiB of a table of u64s), so an older packet is refused and a newer one slides the window.

const WINDOW: u64 = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// One more than the newest sequence accepted; 0 before the first.
    next: u64,
    /// Bit `s % 256` is set when sequence `s`, within 256 of the newest, was accepted.
    seen: [u64; 4],
}

impl ReplayWindow {
    /// True when `sequence` must be refused: accepted before, or too old to tell.
    pub(crate) fn already_received(&self, sequence: u64) -> bool {
        // The last sequence would wrap the window's "next" to 0 and forget every packet before:
        // no session lives to send it honestly, so it is refused.
        if sequence == u64::MAX {
            return true;
        }
        if sequence >= self.next {
            return false;
        }
        if self.next - sequence > WINDOW {
            return true;
        }
        let bit = sequence % WINDOW;
        self.seen[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    /// Records `sequence` as accepted, after its packet opened: a forged packet must not move
    /// the window.
    pub(crate) fn accept(&mut self, sequence: u64) {
        if sequence >= self.next {
            // Clear the bits of the sequences the window slides over, at most all 256.
            let skipped = (sequence + 1 - self.next).min(WINDOW);
            for step in 0..skipped {
                let bit = (self.next + step) % WINDOW;
                self.seen[(bit / 64) as usize] &= !(1 << (bit % 64));
            }
            self.next = sequence + 1;
        }
        let bit = sequence % WINDOW;
        self.seen[(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayWindow;
    use std::collections::BTreeSet;

    #[test]
    fn refuses_repeats_and_the_too_old_and_accepts_late_but_new() {
        let mut window = ReplayWindow::default();
        assert!(!window.already_received(0));
        window.accept(0);
        assert!(window.already_received(0));
        window.accept(5);
        assert!(!window.already_received(3), "late, inside the window, never seen");
        window.accept(3);
        assert!(window.already_received(3));
        window.accept(300);
        assert!(window.already_received(44), "more than 256 behind the newest");
        assert!(!window.already_received(45));
        assert!(window.already_received(300));
        assert!(!window.already_received(u64::MAX - 1));
        assert!(window.already_received(u64::MAX), "the sequence that would wrap the window");
    }

    /// Against a set of everything accepted, over a pseudo-random walk with jumps, repeats and
    /// stragglers: inside the window the answer is exact, outside it is "refuse".
    #[test]
    fn agrees_with_a_set_of_everything_accepted() {
        let mut window = ReplayWindow::default();
        let mut accepted = BTreeSet::new();
        let mut newest = 0u64;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let sequence = match state % 8 {
                0 => newest + 1 + state % 600,
                1..=5 => (newest + 3).saturating_sub(state % 300),
                _ => newest.saturating_sub(state % 40),
            };
            let refused = window.already_received(sequence);
            let expected = accepted.contains(&sequence) || sequence + 256 < newest + 1;
            assert_eq!(refused, expected, "{sequence} after {newest}");
            if !refused {
                window.accept(sequence);
                accepted.insert(sequence);
                newest = newest.max(sequence);
            }
        }
    }
}
