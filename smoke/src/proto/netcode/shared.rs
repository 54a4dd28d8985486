//! What a server's workers share: the seats, the client ids connected, and the tokens seen.
//!
//! Each worker runs its own machine on its own socket, and a client's packets reach one worker
//! (SO_REUSEPORT hashes its address), but a token copied and sent from another address may
//! reach another worker. The standard's server-wide rules live here: a client id is connected
//! once, a token serves the first address that showed it, and no two handshakes from one token
//! seal under its keys with the same sequence numbers, whichever workers they reach. Only
//! requests whose token opened and responses to this server's challenges take the lock.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use super::MAC_BYTES;

/// A token's tag: the last 16 bytes of its sealed private part, unique to the token.
pub(crate) type Tag = [u8; MAC_BYTES];

/// Why a seat was not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoSeat {
    /// Every seat is taken: the client is told "denied".
    Full,
    /// The client id is connected already (on any worker): ignored, as the standard says.
    AlreadyConnected,
}

#[derive(Debug)]
pub(crate) struct Shared {
    taken: AtomicU32,
    max: u32,
    handshakes: Mutex<Handshakes>,
}

#[derive(Debug, Default)]
struct Handshakes {
    used_tokens: HashMap<Tag, UsedToken>,
    clients: HashSet<u64>,
}

/// A token seen in a request: where from, until when it matters, the first sequence number its
/// keys have not sealed with, and whether it already made a session.
#[derive(Debug)]
struct UsedToken {
    address: SocketAddr,
    expire_timestamp: u64,
    next_sequence: u64,
    consumed: bool,
}

impl Shared {
    pub(crate) fn new(max: u32) -> Shared {
        Shared { taken: AtomicU32::new(0), max, handshakes: Mutex::default() }
    }

    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    pub(crate) fn is_full(&self) -> bool {
        self.taken.load(Ordering::Relaxed) >= self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Handshakes> {
        // A worker that panicked while holding it left the maps whole: each change is one insert.
        self.handshakes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_connected(&self, client_id: u64) -> bool {
        self.lock().clients.contains(&client_id)
    }

    /// Records a token's use from `from`: false when another address showed it first (a stolen
    /// token replayed from elsewhere), when it already made a session, or when `limit`
    /// unexpired tokens are recorded already.
    pub(crate) fn use_token(&self, tag: Tag, from: SocketAddr, expire_timestamp: u64, now: u64, limit: usize) -> bool {
        let mut handshakes = self.lock();
        let used_tokens = &mut handshakes.used_tokens;
        if used_tokens.len() >= limit && !used_tokens.contains_key(&tag) {
            // An expired token cannot be used again, so its entry can go.
            used_tokens.retain(|_, used| used.expire_timestamp > now);
            if used_tokens.len() >= limit {
                return false;
            }
        }
        let entry = UsedToken { address: from, expire_timestamp, next_sequence: 0, consumed: false };
        let used = used_tokens.entry(tag).or_insert(entry);
        used.address == from && !used.consumed
    }

    /// The first of `count` sequence numbers no packet sealed under this token's keys used, on
    /// any worker: each handshake from one token gets its own range.
    pub(crate) fn reserve_sequences(&self, tag: &Tag, count: u64) -> u64 {
        let mut handshakes = self.lock();
        let Some(used) = handshakes.used_tokens.get_mut(tag) else {
            // Pushed out as expired since it was recorded: its keys are no use any more.
            return u64::MAX - count;
        };
        used.next_sequence = used.next_sequence.saturating_add(count);
        used.next_sequence - count
    }

    /// A seat for `client_id`, whose handshake (with the token `tag`) is done: the token cannot
    /// start another session.
    pub(crate) fn take_seat(&self, client_id: u64, tag: &Tag) -> Result<(), NoSeat> {
        let mut handshakes = self.lock();
        if handshakes.clients.contains(&client_id) {
            return Err(NoSeat::AlreadyConnected);
        }
        if self.taken.load(Ordering::Relaxed) >= self.max {
            return Err(NoSeat::Full);
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        handshakes.clients.insert(client_id);
        if let Some(used) = handshakes.used_tokens.get_mut(tag) {
            used.consumed = true;
        }
        Ok(())
    }

    pub(crate) fn release(&self, client_id: u64) {
        if self.lock().clients.remove(&client_id) {
            self.taken.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
