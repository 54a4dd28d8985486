//! Identities: the [`Token`] an epoll event or an armed timer carries (what it is for), and the
//! [`ConnId`] handlers see.

use std::fmt;

/// What an epoll event or a timer is for: a kind, an index within that kind (a connection's
/// fd, a peer's slot, a listener's position) and, for sessions, a generation, so an event
/// queued for a closed session never reaches a new one that reuses its fd or slot.
///
/// Packed into the `u64` epoll hands back: the kind in the top 3 bits, the generation in the
/// next 29, the index in the low 32. Connections are kind 0, so their tokens are plain
/// `generation << 32 | fd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Token(u64);

/// The kinds of [`Token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A TCP connection: index = fd.
    Connection,
    /// A UDP peer's session: index = its slot.
    Peer,
    /// The worker's eventfd (shutdown, topic mail).
    Waker,
    /// A TCP listener: index = its position among the worker's listeners.
    Listener,
    /// A UDP socket: index = its position among the worker's endpoints.
    Udp,
    /// The tick's timerfd.
    Tick,
    /// The packet ring.
    Ring,
}

const KIND_SHIFT: u32 = 61;
const GENERATION_SHIFT: u32 = 32;
/// Generations wrap within 29 bits: a reused fd or slot must survive 2^29 sessions on one
/// worker before a stale event could be mistaken for it.
pub(crate) const GENERATION_MASK: u32 = (1 << (KIND_SHIFT - GENERATION_SHIFT)) - 1;

impl Token {
    pub(crate) fn new(kind: Kind, index: usize, generation: u32) -> Token {
        let kind = kind as u64;
        Token(
            (kind << KIND_SHIFT) | (u64::from(generation & GENERATION_MASK) << GENERATION_SHIFT) | index as u32 as u64,
        )
    }

    /// A token for one of the worker's own fds (no generation: they live as long as it does).
    pub(crate) fn of(kind: Kind, index: usize) -> Token {
        Token::new(kind, index, 0)
    }

    pub(crate) fn kind(self) -> Kind {
        match self.0 >> KIND_SHIFT {
            0 => Kind::Connection,
            1 => Kind::Peer,
            2 => Kind::Waker,
            3 => Kind::Listener,
            4 => Kind::Udp,
            5 => Kind::Tick,
            _ => Kind::Ring,
        }
    }

    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0 as u32 as usize
    }

    #[inline]
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> GENERATION_SHIFT) as u32 & GENERATION_MASK
    }

    /// As epoll stores it.
    pub(crate) fn to_epoll(self) -> u64 {
        self.0
    }

    /// What epoll handed back.
    pub(crate) fn from_epoll(data: u64) -> Token {
        Token(data)
    }
}

/// A connection's (or UDP peer's) identity, unique across all workers for the life of the
/// server (fds are reused; ids are not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// Bits of the id that count sessions within a worker; the worker index sits above them.
    const SEQUENCE_BITS: u32 = 48;

    pub(crate) fn new(worker: usize, sequence: u64) -> ConnId {
        ConnId(((worker as u64) << Self::SEQUENCE_BITS) | (sequence & ((1 << Self::SEQUENCE_BITS) - 1)))
    }

    /// The worker thread (0-based) that owns the connection.
    pub fn worker(self) -> usize {
        (self.0 >> Self::SEQUENCE_BITS) as usize
    }

    /// The id as a number, e.g. for logs or maps.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The generation its session's tokens carry: its sequence within the worker, wrapped as
    /// a token's generation is.
    #[inline]
    pub(crate) fn generation(self) -> u32 {
        self.0 as u32 & GENERATION_MASK
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.worker(), self.0 & ((1 << Self::SEQUENCE_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_kind_index_and_generation_apart() {
        for kind in [Kind::Connection, Kind::Peer, Kind::Waker, Kind::Listener, Kind::Udp, Kind::Tick, Kind::Ring] {
            let token = Token::new(kind, 70_000, GENERATION_MASK);
            assert_eq!((token.kind(), token.index(), token.generation()), (kind, 70_000, GENERATION_MASK));
            assert_eq!(Token::from_epoll(token.to_epoll()), token);
        }
        assert_eq!(Token::new(Kind::Connection, 7, 3).to_epoll(), 3 << 32 | 7, "a connection's token is plain");
        assert_eq!(Token::new(Kind::Peer, 1, GENERATION_MASK + 2).generation(), 1, "generations wrap");
    }

    #[test]
    fn ids_name_their_worker() {
        let id = ConnId::new(3, 42);
        assert_eq!((id.worker(), id.to_string()), (3, "3#42".to_owned()));
    }
}
