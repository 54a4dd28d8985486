//! Topics across nodes, bridged through core NATS: the runtime hands the bridge every
//! publication made here and tells it which topics have subscribers here; the bridge, on a
//! thread of its own with a current-thread tokio runtime and the NATS project's client
//! (`async-nats`), publishes the former and subscribes to the latter, and puts what other nodes
//! publish into the workers' mailboxes as if it had been published here.
//!
//! - A topic is the subject `smoke.topic.<topic>`, its bytes outside `[A-Za-z0-9_-]` written
//!   `~XX` (NATS subjects split on `.` and reserve `*` and `>`).
//! - A message carries its node's id in the `Smoke-Node` header, so a node drops its own
//!   publications when they come back; its payload is a format byte, then the publication as
//!   the protocol encoded it (a WebSocket frame, with its compressed twin if there is one), so
//!   a receiving node encodes nothing again.
//! - Workers never wait for the bridge: publications go into an outbox (a mailbox capped at
//!   `max_mailbox`) and a full outbox, or a broker that is unreachable, drops and counts them.
//!   At most once, as NATS core is.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::rt::error::Error;
use crate::rt::mailbox::Mailbox;
use crate::rt::pubsub;
use crate::rt::shared::{TopicBridge, WorkerSet};
use crate::stats::Counters;

/// The first byte of every bridged payload: what follows is a publication as this version
/// of smoke encodes it. A node that finds another drops the message (and counts it).
const FORMAT: u8 = 1;
const NODE_HEADER: &str = "Smoke-Node";
const SUBJECT_PREFIX: &str = "smoke.topic.";
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A server's bridge to its cluster. Dropping it stops the bridge's thread.
#[derive(Debug)]
pub(crate) struct Bridge {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Which topics this node needs from the broker, and what changed since the bridge last looked.
#[derive(Debug, Default)]
struct Interest {
    /// How many workers have subscribers of each topic.
    workers: HashMap<Box<str>, usize>,
    /// Subscriptions to make (`true`) or end on the broker, in the order they were decided.
    changes: Vec<(Box<str>, bool)>,
}

/// What the workers and the bridge's thread share.
#[derive(Debug)]
struct Shared {
    /// This node's id, random per process.
    node: String,
    outbox: Mutex<Mailbox>,
    max_outbox: usize,
    interest: Mutex<Interest>,
    /// Something for the bridge's thread to do: an outbox that filled, a change, a stop.
    wake: Notify,
    stopping: AtomicBool,
    connected: AtomicBool,
    counters: Counters,
    /// The server's workers, for publications from other nodes; set once they run.
    workers: OnceLock<Weak<WorkerSet>>,
}

impl Bridge {
    /// Starts the bridge's thread, which connects to `url` in the background (a broker that is
    /// down at start is retried, with back-off, for as long as the server runs).
    pub(crate) fn start(url: &str, max_outbox: usize) -> Result<Bridge, Error> {
        let shared = Arc::new(Shared {
            node: format!("{:016x}", RandomState::new().hash_one(std::process::id())),
            outbox: Mutex::default(),
            max_outbox,
            interest: Mutex::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            counters: Counters::default(),
            workers: OnceLock::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the cluster bridge's runtime", e))?;
        let (url, running) = (url.to_owned(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("smoke-cluster".into())
            .spawn(move || runtime.block_on(run(running, url)))
            .map_err(|e| Error::io("start the cluster bridge's thread", e))?;
        Ok(Bridge { shared, thread: Some(thread) })
    }

    /// Publications from other nodes go to `workers` from now on.
    pub(crate) fn attach(&self, workers: &Arc<WorkerSet>) {
        let _ = self.shared.workers.set(Arc::downgrade(workers));
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        // The last reference may go on the bridge's own thread (a delivery that held the
        // workers as the server stopped): that thread ends by itself.
        if let Some(thread) = self.thread.take().filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

impl TopicBridge for Bridge {
    fn interest(&self, topic: &str, subscribed: bool) {
        let mut guard = self.shared.interest.lock().unwrap_or_else(PoisonError::into_inner);
        let Interest { workers: counts, changes } = &mut *guard;
        let workers = counts.entry(topic.into()).or_insert(0);
        let change = if subscribed {
            *workers += 1;
            *workers == 1
        } else {
            *workers = workers.saturating_sub(1);
            *workers == 0
        };
        if *workers == 0 {
            counts.remove(topic);
        }
        if change {
            // Under the same lock as the counts: changes reach the broker in the order they
            // were decided.
            changes.push((topic.into(), subscribed));
            self.shared.wake.notify_one();
        }
    }

    fn publish(&self, topic: &str, frame: &[&[u8]], published: Instant) {
        let shared = &self.shared;
        if !shared.connected.load(Ordering::Relaxed) {
            count(&shared.counters.cluster_dropped);
            return;
        }
        let (was_empty, stored) = {
            let mut outbox = shared.outbox.lock().unwrap_or_else(PoisonError::into_inner);
            (outbox.is_empty(), outbox.push(topic, frame, shared.max_outbox, published))
        };
        if !stored {
            count(&shared.counters.cluster_dropped);
        } else if was_empty {
            shared.wake.notify_one();
        }
    }

    fn counters(&self) -> &Counters {
        &self.shared.counters
    }
}

/// Adds one to a counter that several threads write.
fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The bridge's thread: connects, then follows the workers' publications and interest until
/// the server stops.
async fn run(shared: Arc<Shared>, url: String) {
    let events = shared.clone();
    let options = ConnectOptions::new()
        .name("smoke")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            MAX_BACKOFF.min(Duration::from_millis(50).saturating_mul(1 << attempts.min(8)))
        })
        .event_callback(move |event| {
            let shared = events.clone();
            async move { shared.on_event(&event) }
        });
    let client = match options.connect(url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            log::error!("cluster: cannot use {url}: {e}");
            return;
        }
    };
    let mut subscriptions: HashMap<Box<str>, AbortHandle> = HashMap::new();
    let mut letters = Mailbox::default();
    while !shared.stopping.load(Ordering::SeqCst) {
        shared.wake.notified().await;
        let changes = std::mem::take(&mut shared.interest.lock().unwrap_or_else(PoisonError::into_inner).changes);
        for (topic, subscribed) in changes {
            if let Some(previous) = subscriptions.remove(&topic) {
                previous.abort();
            }
            if subscribed {
                let task = tokio::spawn(follow(shared.clone(), client.clone(), topic.clone()));
                subscriptions.insert(topic, task.abort_handle());
            }
        }
        letters.clear();
        std::mem::swap(&mut *shared.outbox.lock().unwrap_or_else(PoisonError::into_inner), &mut letters);
        while let Some(letter) = letters.next_letter() {
            shared.send(&client, letter.topic, letter.frame).await;
        }
    }
    for (_, task) in subscriptions {
        task.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.flush()).await;
}

impl Shared {
    fn on_event(&self, event: &Event) {
        match event {
            Event::Connected => {
                self.connected.store(true, Ordering::Relaxed);
                log::info!("cluster: connected");
            }
            Event::Disconnected => {
                self.connected.store(false, Ordering::Relaxed);
                count(&self.counters.cluster_outages);
                log::warn!("cluster: lost the broker; local delivery goes on, reconnecting");
            }
            other => log::debug!("cluster: {other}"),
        }
    }

    async fn send(&self, client: &Client, topic: &str, publication: &[u8]) {
        if !self.connected.load(Ordering::Relaxed) {
            count(&self.counters.cluster_dropped);
            return;
        }
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, self.node.as_str());
        let mut payload = Vec::with_capacity(1 + publication.len());
        payload.push(FORMAT);
        payload.extend_from_slice(publication);
        match client.publish_with_headers(subject(topic), headers, payload.into()).await {
            Ok(()) => count(&self.counters.cluster_published),
            Err(e) => {
                log::debug!("cluster: publication to {topic} dropped: {e}");
                count(&self.counters.cluster_dropped);
            }
        }
    }

    /// A publication from the broker: delivered here unless this node made it.
    fn arrived(&self, topic: &str, message: &async_nats::Message) {
        let from = message.headers.as_ref().and_then(|h| h.get(NODE_HEADER)).map(|node| node.as_str());
        if from == Some(self.node.as_str()) {
            return;
        }
        let Some((&FORMAT, publication)) = message.payload.split_first() else {
            log::debug!("cluster: a message on {topic} in another format, dropped");
            count(&self.counters.cluster_dropped);
            return;
        };
        if let Some(workers) = self.workers.get().and_then(Weak::upgrade) {
            pubsub::deliver_locally(&workers, None, topic, &[publication], Instant::now());
            count(&self.counters.cluster_received);
        }
    }
}

/// Subscribes to `topic` on the broker (again after every reconnection: the client does that)
/// and delivers what arrives, until aborted.
async fn follow(shared: Arc<Shared>, client: Client, topic: Box<str>) {
    let mut subscriber = match client.subscribe(subject(&topic)).await {
        Ok(subscriber) => subscriber,
        Err(e) => {
            log::warn!("cluster: cannot subscribe to {topic}: {e}");
            return;
        }
    };
    while let Some(message) = subscriber.next().await {
        shared.arrived(&topic, &message);
    }
}

/// The NATS subject of `topic`.
fn subject(topic: &str) -> String {
    let mut subject = String::with_capacity(SUBJECT_PREFIX.len() + topic.len());
    subject.push_str(SUBJECT_PREFIX);
    for byte in topic.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            subject.push(byte as char);
        } else {
            subject.push_str(&format!("~{byte:02X}"));
        }
    }
    subject
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_plain_names_and_escape_the_rest() {
        assert_eq!(subject("lobby"), "smoke.topic.lobby");
        assert_eq!(subject("room.1 *>~"), "smoke.topic.room~2E1~20~2A~3E~7E");
        assert_eq!(subject("é"), "smoke.topic.~C3~A9");
        assert_ne!(subject("a.b"), subject("a~2Eb"), "no two topics share a subject");
    }
}
