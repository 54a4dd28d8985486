//! Reassembly of messages sent in fragments: each fragment but the last is `FRAGMENT_BYTES`
//! long, so each has its place in the message before the others arrive.

use super::{Channel, FRAGMENT_BYTES, Pool};

/// Messages being reassembled at once on the unreliable channels: a newer one pushes out the
/// oldest, whose lost fragment will never come.
const UNRELIABLE_ASSEMBLIES: usize = 8;
/// How long an unreliable message's fragments are waited for.
const UNRELIABLE_ASSEMBLY_MILLIS: u64 = 1_000;

#[derive(Debug)]
struct Assembly {
    channel: Channel,
    id: u16,
    count: u8,
    /// Bit `i`: fragment `i` is in.
    received: u64,
    /// The message's length once the last fragment is in (only it can be shorter).
    len: usize,
    bytes: Vec<u8>,
    started: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    assemblies: Vec<Assembly>,
    /// Bytes held for the reliable channels, which a conforming sender bounds.
    pub(crate) reliable_bytes: usize,
}

impl Reassembly {
    /// Adds one fragment; returns the whole message (a buffer for `pool` once used) when this
    /// was its last missing fragment. A fragment that contradicts what was received for its message (another
    /// count, or a non-final fragment of the wrong length) is dropped.
    pub(crate) fn add(
        &mut self,
        now: u64,
        channel: Channel,
        id: u16,
        (index, count): (u8, u8),
        bytes: &[u8],
        pool: &mut Pool,
    ) -> Option<Vec<u8>> {
        let is_last = index + 1 == count;
        if (!is_last && bytes.len() != FRAGMENT_BYTES) || bytes.len() > FRAGMENT_BYTES {
            return None;
        }
        let at = match self.assemblies.iter().position(|a| a.channel == channel && a.id == id) {
            Some(at) => at,
            None => {
                if !channel.is_reliable() {
                    self.make_room(now, pool);
                }
                let mut buffer = pool.take();
                buffer.resize(usize::from(count) * FRAGMENT_BYTES, 0);
                if channel.is_reliable() {
                    self.reliable_bytes += buffer.len();
                }
                self.assemblies.push(Assembly { channel, id, count, received: 0, len: 0, bytes: buffer, started: now });
                self.assemblies.len() - 1
            }
        };
        let assembly = &mut self.assemblies[at];
        if assembly.count != count || assembly.received & (1 << index) != 0 {
            return None;
        }
        let start = usize::from(index) * FRAGMENT_BYTES;
        assembly.bytes[start..start + bytes.len()].copy_from_slice(bytes);
        assembly.received |= 1 << index;
        if is_last {
            assembly.len = start + bytes.len();
        }
        if assembly.received.count_ones() != u32::from(count) {
            return None;
        }
        let mut done = self.assemblies.swap_remove(at);
        if channel.is_reliable() {
            self.reliable_bytes -= done.bytes.len();
        }
        done.bytes.truncate(done.len);
        Some(done.bytes)
    }

    /// Whether the message `id` of `channel` is being assembled (its room is held already).
    pub(crate) fn holds(&self, channel: Channel, id: u16) -> bool {
        self.assemblies.iter().any(|a| a.channel == channel && a.id == id)
    }

    /// Drops unreliable assemblies that waited too long, and the oldest if too many remain;
    /// their buffers go back to `pool`.
    fn make_room(&mut self, now: u64, pool: &mut Pool) {
        let stale =
            |a: &Assembly| !a.channel.is_reliable() && now.saturating_sub(a.started) >= UNRELIABLE_ASSEMBLY_MILLIS;
        while let Some(at) = self.assemblies.iter().position(stale) {
            pool.give(self.assemblies.swap_remove(at).bytes);
        }
        let unreliable = self.assemblies.iter().filter(|a| !a.channel.is_reliable()).count();
        if unreliable >= UNRELIABLE_ASSEMBLIES {
            let oldest = self
                .assemblies
                .iter()
                .enumerate()
                .filter(|(_, a)| !a.channel.is_reliable())
                .min_by_key(|(_, a)| a.started)
                .map(|(at, _)| at);
            if let Some(at) = oldest {
                pool.give(self.assemblies.swap_remove(at).bytes);
            }
        }
    }
}
