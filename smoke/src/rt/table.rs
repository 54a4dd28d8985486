//! The per-worker session table: fd → session, a flat array for small fds, a hash map above.

use std::collections::HashMap;
use std::os::fd::RawFd;

/// Maps a connection's fd to its state. Fds below `fd_cache` index a flat array (one bounds check
/// and no hashing on the hot path); the kernel hands out the lowest free fd, so that covers almost
/// every connection. Larger fds go to a `HashMap`: a connection is never refused for its fd.
///
/// The array grows on demand to the largest fd seen (by a quarter at a time), never up-front to
/// `fd_cache`.
#[derive(Debug)]
pub(crate) struct SessionTable<T> {
    flat: Vec<Option<T>>,
    map: HashMap<RawFd, T>,
    fd_cache: usize,
    len: usize,
}

/// The first allocation of the flat array: enough for a small server without regrowing.
const INITIAL_FLAT_SLOTS: usize = 64;

impl<T> SessionTable<T> {
    /// An empty table; nothing is allocated until the first insert.
    pub(crate) fn new(fd_cache: usize) -> SessionTable<T> {
        SessionTable { flat: Vec::new(), map: HashMap::new(), fd_cache, len: 0 }
    }

    /// Number of sessions.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when there are no sessions.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sessions stored in the hash map (fd at or above `fd_cache`).
    #[cfg(test)]
    pub(crate) fn overflow_len(&self) -> usize {
        self.map.len()
    }

    /// Slots allocated in the flat array.
    #[cfg(test)]
    pub(crate) fn flat_capacity(&self) -> usize {
        self.flat.len()
    }

    fn flat_index(&self, fd: RawFd) -> Option<usize> {
        usize::try_from(fd).ok().filter(|&i| i < self.fd_cache)
    }

    /// Stores `value` for `fd`, returning what was there (which means a bug in fd bookkeeping).
    pub(crate) fn insert(&mut self, fd: RawFd, value: T) -> Option<T> {
        let previous = match self.flat_index(fd) {
            Some(i) => {
                if i >= self.flat.len() {
                    // Grow by a quarter, not double: every slot costs a session's size for each fd
                    // up to the largest, idle or not, and fds grow one accept at a time.
                    let wanted =
                        (i + 1).max(self.flat.len() + self.flat.len() / 4).max(INITIAL_FLAT_SLOTS).min(self.fd_cache);
                    self.flat.resize_with(wanted, || None);
                }
                self.flat[i].replace(value)
            }
            None => self.map.insert(fd, value),
        };
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// The session for `fd`, if any.
    #[inline]
    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<&mut T> {
        match self.flat_index(fd) {
            Some(i) => self.flat.get_mut(i).and_then(Option::as_mut),
            None => self.map.get_mut(&fd),
        }
    }

    /// Removes and returns the session for `fd`.
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<T> {
        let removed = match self.flat_index(fd) {
            Some(i) => self.flat.get_mut(i).and_then(Option::take),
            None => self.map.remove(&fd),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Every (fd, session) pair, in no particular order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (RawFd, &mut T)> {
        let flat = self.flat.iter_mut().enumerate().filter_map(|(i, slot)| slot.as_mut().map(|v| (i as RawFd, v)));
        flat.chain(self.map.iter_mut().map(|(fd, v)| (*fd, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_fds_use_the_array_and_large_ones_the_map() {
        let mut table = SessionTable::new(16);
        assert_eq!(table.flat_capacity(), 0, "nothing allocated up-front");
        assert_eq!(table.insert(3, "a"), None);
        assert_eq!(table.insert(15, "b"), None);
        assert_eq!(table.insert(16, "c"), None);
        assert_eq!(table.insert(40_000, "d"), None);
        assert_eq!(table.len(), 4);
        assert_eq!(table.overflow_len(), 2);
        assert!(table.flat_capacity() <= 16);
        assert_eq!(table.get_mut(15), Some(&mut "b"));
        assert_eq!(table.get_mut(40_000), Some(&mut "d"));
        assert_eq!(table.get_mut(4), None);
        assert_eq!(table.get_mut(-1), None);
        assert_eq!(table.remove(16), Some("c"));
        assert_eq!(table.remove(16), None);
        assert_eq!(table.remove(3), Some("a"));
        assert_eq!(table.len(), 2);
        let mut seen: Vec<_> = table.iter_mut().map(|(fd, v)| (fd, *v)).collect();
        seen.sort();
        assert_eq!(seen, [(15, "b"), (40_000, "d")]);
    }

    #[test]
    fn the_array_grows_lazily_to_the_largest_fd_seen() {
        let mut table = SessionTable::new(1 << 20);
        table.insert(5, ());
        assert_eq!(table.flat_capacity(), INITIAL_FLAT_SLOTS);
        table.insert(1000, ());
        assert_eq!(table.flat_capacity(), 1001);
        assert_eq!(table.overflow_len(), 0);
    }

    #[test]
    fn replacing_an_entry_keeps_the_count() {
        let mut table = SessionTable::new(8);
        table.insert(2, 1);
        assert_eq!(table.insert(2, 2), Some(1));
        assert_eq!(table.len(), 1);
    }
}
