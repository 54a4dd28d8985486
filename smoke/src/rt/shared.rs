//! [`WorkerSet`]: what every thread can see of a running server's workers. Nothing here is
//! written on the hot path except each worker's own counters.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::rt::mailbox::Mailbox;
use crate::stats::{Counters, Histogram, Stats, StatsSource};
use crate::sys::EventFd;

/// A server's workers as other threads (the handle, publishers, the other workers) see them.
#[derive(Debug)]
pub(crate) struct WorkerSet {
    /// Set by the handle to stop the server; each worker looks at it every loop turn.
    pub(crate) stopping: AtomicBool,
    pub(crate) workers: Box<[Arc<WorkerShared>]>,
    /// Written by a worker whose loop ends, so a thread waiting in `wait_for_signal` notices.
    pub(crate) exited: EventFd,
    /// Workers whose loop has ended (or never started): a server with any is not ready.
    pub(crate) exits: AtomicUsize,
    /// Bytes a worker's mailbox may hold; publications beyond it are dropped for that worker.
    pub(crate) max_mailbox: usize,
    /// Open connections (sockets, lingering ones too) across the workers, at most
    /// `max_connections`.
    pub(crate) connections: Admission,
    /// UDP peer sessions across the workers, at most `max_peers`.
    pub(crate) peers: Admission,
    /// Where topics meet other nodes', if the server is part of a cluster.
    pub(crate) bridge: Option<Arc<dyn TopicBridge>>,
}

/// Where a server's topics meet other processes' (the cluster bridge). The runtime tells it
/// when a worker gains its first subscriber of a topic or loses its last, and hands it every
/// publication made in this process (as the opaque frame its protocol encoded); publications
/// from other nodes come back through `pubsub::deliver_locally`.
pub(crate) trait TopicBridge: Send + Sync + std::fmt::Debug {
    /// A worker's first subscriber of `topic` arrived (`true`) or its last one left (`false`).
    fn interest(&self, topic: &str, subscribed: bool);
    /// A publication made in this process at `published`, for the other nodes. It must not
    /// wait.
    fn publish(&self, topic: &str, frame: &[&[u8]], published: Instant);
    /// The bridge's own counters (cluster_*), summed into the server's.
    fn counters(&self) -> &Counters;
}

/// A server-wide cap on sessions of one kind. Each worker admits while the server as a whole
/// has room, so a worker the kernel happens to hash more clients to is not full while the
/// others sit half empty (a per-worker share would be). One atomic update per session opened
/// or closed, never per message.
#[derive(Debug)]
pub(crate) struct Admission {
    open: AtomicUsize,
    max: usize,
}

impl Admission {
    pub(crate) fn new(max: usize) -> Admission {
        Admission { open: AtomicUsize::new(0), max }
    }

    /// Takes a place for a new session; false at the cap.
    pub(crate) fn admit(&self) -> bool {
        self.open.fetch_update(Relaxed, Relaxed, |open| (open < self.max).then_some(open + 1)).is_ok()
    }

    /// Gives back a place [`admit`](Admission::admit) took.
    pub(crate) fn release(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

/// The limits the workers share, resolved when the server starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    pub(crate) max_connections: usize,
    pub(crate) max_peers: usize,
    pub(crate) max_mailbox: usize,
}

/// One worker, as other threads see it: its counters, its wake-up, its topic mailbox.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) counters: Counters,
    /// How long each turn of the event loop took, from a wake-up to the next wait.
    pub(crate) turns: Histogram,
    /// How late each tick ran against its schedule.
    pub(crate) tick_lateness: Histogram,
    /// How long input handler calls took (a sample of them: see `Core::sample_handler`).
    pub(crate) handlers: Histogram,
    /// How long each tick's handler took.
    pub(crate) tick_handler: Histogram,
    /// From a topic publication to its send to this worker's last subscriber of it.
    pub(crate) publish_delivery: Histogram,
    pub(crate) waker: EventFd,
    /// Topic publications for this worker's subscribers (see `rt::pubsub`).
    pub(crate) mailbox: Mutex<Mailbox>,
    /// Set when the mailbox goes from empty to not empty; the worker checks it every turn.
    pub(crate) has_mail: AtomicBool,
    /// How many of this worker's connections subscribe to each topic: `rt::pubsub` keeps it
    /// as subscriptions come and go (never per publication), for the metrics.
    pub(crate) topic_subscribers: Mutex<HashMap<Box<str>, usize>>,
}

impl WorkerSet {
    /// `threads` workers' shared state, with the server-wide caps.
    pub(crate) fn new(threads: usize, caps: &Caps, bridge: Option<Arc<dyn TopicBridge>>) -> io::Result<WorkerSet> {
        let workers = (0..threads)
            .map(|_| {
                Ok(Arc::new(WorkerShared {
                    counters: Counters::default(),
                    turns: Histogram::default(),
                    tick_lateness: Histogram::default(),
                    handlers: Histogram::default(),
                    tick_handler: Histogram::default(),
                    publish_delivery: Histogram::default(),
                    waker: EventFd::new()?,
                    mailbox: Mutex::default(),
                    has_mail: AtomicBool::new(false),
                    topic_subscribers: Mutex::default(),
                }))
            })
            .collect::<io::Result<_>>()?;
        Ok(WorkerSet {
            stopping: AtomicBool::new(false),
            workers,
            exited: EventFd::new()?,
            exits: AtomicUsize::new(0),
            max_mailbox: caps.max_mailbox,
            connections: Admission::new(caps.max_connections),
            peers: Admission::new(caps.max_peers),
            bridge,
        })
    }

    /// Every worker runs and none is draining: the server takes new connections.
    pub(crate) fn ready(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && self.exits.load(Ordering::SeqCst) == 0
    }

    /// All workers' counters, summed (a few relaxed atomic loads per worker).
    pub(crate) fn stats(&self) -> Stats {
        let bridge = self.bridge.as_ref().map(|bridge| bridge.counters());
        Stats::sum(self.workers.iter().map(|w| &w.counters).chain(bridge))
    }

    /// Each worker's counters, by worker index.
    pub(crate) fn worker_stats(&self) -> Vec<Stats> {
        self.workers.iter().map(|w| w.counters.snapshot()).collect()
    }
}

impl StatsSource for WorkerSet {
    fn stats(&self) -> Stats {
        WorkerSet::stats(self)
    }
}
