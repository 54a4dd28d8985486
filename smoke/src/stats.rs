//! The counters: one list of what a server counts, as the atomics each worker writes and the
//! snapshot that sums them. Plain data that every layer may name (the HTTP request hands its
//! server's snapshot to handlers), so this file imports nothing of the crate.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Declares every counter once: its name and what it counts. From the list come the public
/// snapshot [`Stats`], the per-worker atomics [`Counters`], the snapshot read and the sum.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// A snapshot of a server's counters (one worker's, or all workers' summed).
        ///
        /// Counters only grow, except the gauges `buffers_held` (the input/output buffers lent to
        /// connections right now: zero when every connection is idle, because an idle connection
        /// holds no heap buffer), `lingering`, `peers`, `players`, `subscriptions` and `timers`, which say what is
        /// held now.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[doc = $doc])+ pub $name: u64,)+
        }

        /// One worker's live counters. Only the owning worker writes them, so an update is a plain
        /// load and store (no locked read-modify-write on the hot path); readers on other threads
        /// may see a value a moment old, never a torn one. Padded to its own cache lines so workers
        /// do not share.
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)+
        }

        impl Counters {
            /// Reads every counter, in the list's order (fields of a struct literal are evaluated as
            /// written).
            pub(crate) fn snapshot(&self) -> Stats {
                Stats { $($name: self.$name.load(Relaxed),)+ }
            }
        }

        /// How many counters [`Stats`] has.
        pub(crate) const COUNTERS: usize = [$(stringify!($name)),+].len();

        impl Stats {
            /// Every counter with its name and what it counts (its doc comment), in the list's
            /// order: for exporters.
            pub(crate) fn fields(&self) -> [(&'static str, &'static str, u64); COUNTERS] {
                [$((stringify!($name), concat!($($doc, "\n"),+), self.$name),)+]
            }

            fn add(mut self, other: &Stats) -> Stats {
                $(self.$name += other.$name;)+
                self
            }
        }
    };
}

counters! {
    /// Connections closed, for any reason. (Listed, and so read, before `accepted`: a snapshot
    /// racing an accept then never shows more closed than accepted, and `current()` cannot
    /// underflow.)
    closed,
    /// Connections accepted.
    accepted,
    /// Connections that ended in an error: reset by the peer, an I/O error, a handler panic, or
    /// input above `max_read_buffer`.
    errors,
    /// Handler calls that panicked (each also closed its connection).
    panics,
    /// `accept` failures other than "nothing pending", such as EMFILE.
    accept_errors,
    /// Connections closed by the runtime's timeouts: no input for `idle_timeout`, or output
    /// not taken for `send_timeout`.
    timeouts,
    /// HTTP requests handed to the server's handlers (routes, `on_request`, WebSocket upgrades).
    requests,
    /// HTTP requests refused by the protocol layer (400, 413, 431, 505), each closing its
    /// connection.
    rejected,
    /// WebSocket messages received and handed to `on_message`.
    ws_messages,
    /// TLS connections closed for a failed handshake (not TLS, a bad ClientHello, nothing in
    /// common, or not done within `header_timeout`) or a record that did not authenticate.
    tls_failures,
    /// Connections to a `proxy_protocol` listener closed for their PROXY header: missing,
    /// malformed, or not whole within `header_timeout`.
    proxy_failures,
    /// Bytes received.
    bytes_in,
    /// Bytes sent.
    bytes_out,
    /// Buffers lent to connections right now (see above).
    buffers_held,
    /// Sockets lingering right now: their session closed while the peer may still have been
    /// sending, so they read and drop its input for a while rather than reset it.
    lingering,
    /// UDP peer sessions open right now (`current()` counts them too, with the connections).
    peers,
    /// Topic subscriptions held right now, on all workers.
    subscriptions,
    /// Timers armed right now, on all workers: the sessions' own and the runtime's (send
    /// timeouts, lingering, UDP peer expiry). Re-arming one reuses its entry.
    timers,
    /// WebSocket messages (sends and topic deliveries) dropped at `max_backpressure`.
    dropped,
    /// Topic publications a worker's mailbox refused at `max_mailbox` (each one for all of that
    /// worker's subscribers).
    mail_dropped,
    /// UDP datagrams received and delivered.
    datagrams_in,
    /// UDP datagrams dropped because they came from a new address while `max_peers` sessions
    /// were open.
    peers_refused,
    /// UDP datagrams sent.
    datagrams_out,
    /// UDP datagrams dropped on arrival for being longer than `max_datagram`.
    datagrams_truncated,
    /// Frames the packet ring captured but did not deliver: not addressed to this host and a
    /// udp listener's address and port, damaged (a checksum that does not add up), or
    /// malformed. (Datagrams above `max_datagram` count in `datagrams_truncated`.)
    ring_dropped,
    /// UDP datagrams that could not be sent (socket buffer full, or refused by the kernel).
    datagrams_dropped,
    /// Publications this node sent to the cluster's broker.
    cluster_published,
    /// Publications from other nodes delivered here.
    cluster_received,
    /// Publications that did not cross to other nodes: made while the broker was unreachable,
    /// or while the bridge was behind by `max_mailbox` bytes.
    cluster_dropped,
    /// Times the connection to the cluster's broker was lost.
    cluster_outages,
    /// Game players connected right now.
    players,
    /// Game connection requests ignored: malformed, expired, for another game or server, a
    /// token that does not open with the key, or one already used from another address.
    game_requests_ignored,
    /// Game connection requests and responses answered "denied": every seat was taken.
    game_denied,
    /// Game packets that failed to authenticate: forged, altered, or sealed with another key.
    game_forged,
    /// Game packets dropped as replays: a sequence already received, or too old to tell.
    game_replayed,
    /// Game packets of a kind or size that cannot be valid where they arrived, and channel
    /// packets a player's client wrote wrong.
    game_malformed,
    /// Game packets from addresses with neither a session nor a handshake under way (what a
    /// flood of spoofed sources costs: a count, no answer).
    game_unknown_source,
    /// Messages handed to `on_game_message`.
    game_messages,
    /// Ticks run (on all workers).
    ticks,
    /// Ticks that were due while a worker was busy and ran late as one (each late tick reports
    /// its lateness).
    ticks_missed,
}

impl Stats {
    /// Connections open right now.
    pub fn current(&self) -> u64 {
        // Counters are read one at a time, so a snapshot may see a close before its accept.
        self.accepted.saturating_sub(self.closed)
    }

    pub(crate) fn sum<'a>(all: impl IntoIterator<Item = &'a Counters>) -> Stats {
        all.into_iter().fold(Stats::default(), |total, counters| total.add(&counters.snapshot()))
    }
}

/// Something that can take a snapshot of a server's counters: what a [`Request`] asks when a
/// handler wants them, without the protocol layer knowing the runtime that counts.
///
/// [`Request`]: crate::http::Request
pub(crate) trait StatsSource: Sync + std::fmt::Debug {
    /// All workers' counters, summed.
    fn stats(&self) -> Stats;
}

/// Adds to a counter owned by the calling worker.
#[inline]
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

/// The upper bounds of the histogram buckets, in microseconds: 10 µs to 1 s in 1-2.5-5 steps.
/// A last bucket takes everything above.
pub(crate) const BUCKET_BOUNDS_US: [u64; 16] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];

/// A worker's histogram of durations: fixed buckets, written by the owning worker only (plain
/// loads and stores, as the counters), merged when read. The sum is kept in nanoseconds, so a
/// mean of sub-microsecond handler calls does not round to zero.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
}

/// What a [`Histogram`] held when read: each bucket's count (not cumulative) and the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Durations {
    pub(crate) buckets: [u64; BUCKET_BOUNDS_US.len() + 1],
    pub(crate) sum_ns: u64,
}

impl Histogram {
    /// Counts one duration of `nanos`.
    #[inline]
    pub(crate) fn record(&self, nanos: u64) {
        let bucket = BUCKET_BOUNDS_US.iter().position(|&bound| nanos <= bound * 1000).unwrap_or(BUCKET_BOUNDS_US.len());
        bump(&self.buckets[bucket], 1);
        bump(&self.sum_ns, nanos);
    }

    pub(crate) fn read(&self) -> Durations {
        Durations { buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)), sum_ns: self.sum_ns.load(Relaxed) }
    }
}

impl Durations {
    /// Every count added to this one's.
    pub(crate) fn merge(mut self, other: &Durations) -> Durations {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_ns += other.sum_ns;
        self
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Takes from a gauge (a counter that also falls) owned by the calling worker.
#[inline]
pub(crate) fn lower(gauge: &AtomicU64, by: u64) {
    gauge.store(gauge.load(Relaxed).wrapping_sub(by), Relaxed);
}
