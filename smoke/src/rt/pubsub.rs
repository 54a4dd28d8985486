//! Topics: publish/subscribe of opaque byte frames across every worker of a server.
//!
//! Each worker keeps its own subscriber lists (thread-local: only that worker touches them, and
//! a connection's handle stays small) and has a mailbox other threads append publications to. A
//! publication is a frame its protocol encoded once (a WebSocket message, say); it is appended
//! to every worker's mailbox (the publisher's own included, so one path keeps per-publisher
//! order everywhere), and each worker hands it to its subscribers. A worker is woken by its
//! eventfd only when its mailbox goes from empty to not empty; its own publications need no
//! wake-up, since it looks at its mailbox every loop turn.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use crate::rt::shared::{TopicBridge, WorkerSet, WorkerShared};
use crate::rt::token::ConnId;

/// A subscriber: its fd (the session table's key) and its id (so a reused fd never receives
/// what its previous owner subscribed to).
type Subscriber = (RawFd, ConnId);

/// One worker's subscriptions.
#[derive(Debug, Default)]
struct Registry {
    topics: HashMap<Box<str>, Vec<Subscriber>>,
    by_connection: HashMap<ConnId, Vec<Box<str>>>,
    /// The server's cluster bridge, told when a topic gains or loses this worker's interest.
    bridge: Option<Arc<dyn TopicBridge>>,
    /// This worker as other threads see it: its per-topic subscriber counts are kept there.
    own: Option<Arc<WorkerShared>>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Makes this thread the worker `own` of the server `workers` runs: its topics' interest goes
/// to the server's bridge, if it has one, and its subscriber counts to `own`.
pub(crate) fn attach(workers: &WorkerSet, own: &Arc<WorkerShared>) {
    REGISTRY.with_borrow_mut(|registry| {
        registry.bridge = workers.bridge.clone();
        registry.own = Some(own.clone());
    });
}

pub(crate) fn subscribe(fd: RawFd, id: ConnId, topic: &str) -> bool {
    REGISTRY.with_borrow_mut(|registry| {
        // A connection's own list is short; a topic's can hold thousands of subscribers.
        let topics = registry.by_connection.entry(id).or_default();
        if topics.iter().any(|t| &**t == topic) {
            return false;
        }
        topics.push(topic.into());
        let count = match registry.topics.get_mut(topic) {
            Some(subscribers) => {
                subscribers.push((fd, id));
                subscribers.len()
            }
            None => {
                registry.topics.insert(topic.into(), vec![(fd, id)]);
                if let Some(bridge) = &registry.bridge {
                    bridge.interest(topic, true);
                }
                1
            }
        };
        registry.count(topic, count);
        true
    })
}

pub(crate) fn unsubscribe(fd: RawFd, id: ConnId, topic: &str) -> bool {
    REGISTRY.with_borrow_mut(|registry| {
        let Some(topics) = registry.by_connection.get_mut(&id) else { return false };
        let Some(index) = topics.iter().position(|t| &**t == topic) else { return false };
        topics.swap_remove(index);
        if topics.is_empty() {
            registry.by_connection.remove(&id);
        }
        registry.remove_subscriber(topic, (fd, id));
        true
    })
}

/// Ends every subscription of a connection; returns how many there were.
pub(crate) fn unsubscribe_all(fd: RawFd, id: ConnId) -> usize {
    REGISTRY.with_borrow_mut(|registry| {
        let topics = registry.by_connection.remove(&id).unwrap_or_default();
        for topic in &topics {
            registry.remove_subscriber(topic, (fd, id));
        }
        topics.len()
    })
}

impl Registry {
    fn remove_subscriber(&mut self, topic: &str, subscriber: Subscriber) {
        if let Some(subscribers) = self.topics.get_mut(topic) {
            if let Some(index) = subscribers.iter().position(|s| *s == subscriber) {
                subscribers.swap_remove(index);
            }
            let count = subscribers.len();
            if count == 0 {
                self.topics.remove(topic);
                if let Some(bridge) = &self.bridge {
                    bridge.interest(topic, false);
                }
            }
            self.count(topic, count);
        }
    }

    /// Publishes a topic's new subscriber count on this worker for the metrics.
    fn count(&self, topic: &str, count: usize) {
        let Some(own) = &self.own else { return };
        let mut counts = own.topic_subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        match counts.get_mut(topic) {
            Some(_) if count == 0 => drop(counts.remove(topic)),
            Some(held) => *held = count,
            None if count == 0 => {}
            None => drop(counts.insert(topic.into(), count)),
        }
    }
}

/// Calls `deliver` for every subscriber of `topic` on this worker.
pub(crate) fn for_each_subscriber(topic: &str, mut deliver: impl FnMut(RawFd, ConnId)) {
    REGISTRY.with_borrow(|registry| {
        for &(fd, id) in registry.topics.get(topic).map_or(&[][..], Vec::as_slice) {
            deliver(fd, id);
        }
    });
}

/// Publishes `frame` (its parts, concatenated) to `topic` on every worker of `workers`, from a
/// worker (`from`: its index, which needs no wake-up) or any other thread.
///
/// A worker whose mailbox holds `max_mailbox` bytes already (stuck, or flooded) does not get
/// it: the publication is dropped for that worker's subscribers and counted
/// (`Stats::mail_dropped`); the publisher never waits.
pub(crate) fn publish_to(workers: &WorkerSet, from: Option<usize>, topic: &str, frame: &[&[u8]]) {
    let published = Instant::now();
    if let Some(bridge) = &workers.bridge {
        bridge.publish(topic, frame, published);
    }
    deliver_locally(workers, from, topic, frame, published);
}

/// Appends `frame` to every worker's mailbox for its subscribers of `topic`, without handing it
/// to the bridge: a publication another node made (or this process's, on its way out).
/// `published` starts the clock of `publish_delivery_seconds`: when the publication was made,
/// or reached this process from another node.
pub(crate) fn deliver_locally(
    workers: &WorkerSet,
    from: Option<usize>,
    topic: &str,
    frame: &[&[u8]],
    published: Instant,
) {
    for (index, worker) in workers.workers.iter().enumerate() {
        let (was_empty, stored) = {
            let mut mailbox = worker.mailbox.lock().unwrap_or_else(PoisonError::into_inner);
            let was_empty = mailbox.is_empty();
            (was_empty, mailbox.push(topic, frame, workers.max_mailbox, published))
        };
        if !stored {
            // From any thread, so a real read-modify-write (not the owner-only `bump`).
            worker.counters.mail_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if was_empty {
            worker.has_mail.store(true, Ordering::Release);
            if from != Some(index) {
                worker.waker.wake();
            }
        }
    }
}

/// Every running server in this process, for [`publish_everywhere`].
static SERVERS: Mutex<Vec<Weak<WorkerSet>>> = Mutex::new(Vec::new());

pub(crate) fn register(workers: &std::sync::Arc<WorkerSet>) {
    let mut servers = SERVERS.lock().unwrap_or_else(PoisonError::into_inner);
    servers.retain(|s| s.strong_count() > 0);
    servers.push(std::sync::Arc::downgrade(workers));
}

/// Publishes `frame` to `topic` on every server running in this process, from any thread.
pub(crate) fn publish_everywhere(topic: &str, frame: &[&[u8]]) {
    let servers = SERVERS.lock().unwrap_or_else(PoisonError::into_inner);
    for workers in servers.iter().filter_map(Weak::upgrade) {
        if !workers.stopping.load(Ordering::Relaxed) {
            publish_to(&workers, None, topic, frame);
        }
    }
}
