//! Accepting: a worker's TCP listeners, batches of `accept4` per wake-up, the pause at
//! `max_connections`, and the back-off after a failure such as EMFILE.

use std::io;
use std::time::Duration;

use super::{EventLoop, Service};
use crate::rt::token::{Kind, Token};
use crate::stats::bump;
use crate::sys::Listener;

/// Connections accepted per listener per wake-up before the others get a turn.
const ACCEPT_BATCH: usize = 128;
/// Pause after an accept failure such as EMFILE: long enough not to spin on a full fd table,
/// short enough that clients in the backlog barely notice once fds free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One of the worker's TCP listening sockets.
#[derive(Debug)]
pub(crate) struct StreamListener {
    pub(crate) socket: Listener,
    /// Its index among the server's listeners, handed to the service at accept.
    pub(crate) index: usize,
    /// Its protocol's client speaks first: the socket defers accept until data arrives, and a
    /// new connection is read at once.
    pub(crate) client_speaks_first: bool,
}

/// A worker's listeners and whether it is accepting.
#[derive(Debug)]
pub(super) struct Listeners {
    sockets: Vec<StreamListener>,
    /// Accepting is paused until then (clock milliseconds) after a failure.
    pub(super) paused_until: Option<u64>,
    /// At `max_connections`: accepting resumes when a connection closes.
    full: bool,
    /// The last accept failed (logged once until one succeeds).
    failing: bool,
}

impl Listeners {
    pub(super) fn new(sockets: Vec<StreamListener>) -> Listeners {
        Listeners { sockets, paused_until: None, full: false, failing: false }
    }

    /// Closes every listening socket (the kernel resets connections still queued on them).
    pub(super) fn close(&mut self) {
        self.sockets.clear();
        self.paused_until = None;
        self.full = false;
    }
}

impl<S: Service> EventLoop<S> {
    pub(super) fn accept_from(&mut self, listener: usize) {
        if self.listeners.paused_until.is_some() || self.listeners.full || listener >= self.listeners.sockets.len() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            if self.connections.len() >= self.core.limits.max_connections {
                self.listeners.full = true;
                return;
            }
            let StreamListener { socket, index, client_speaks_first } = &self.listeners.sockets[listener];
            let (index, client_speaks_first) = (*index, *client_speaks_first);
            match socket.accept() {
                Ok(stream) => {
                    if self.listeners.failing {
                        self.listeners.failing = false;
                        log::info!("worker {}: accepting connections again", self.core.index);
                    }
                    self.open(stream, index, client_speaks_first);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO)) => {}
                Err(e) => {
                    bump(&self.core.counters().accept_errors, 1);
                    if !self.listeners.failing {
                        self.listeners.failing = true;
                        log::warn!(
                            "worker {}: accept failed ({e}); retrying every {} ms while existing connections are served",
                            self.core.index,
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    self.listeners.paused_until = Some(self.core.clock.deadline(ACCEPT_BACKOFF));
                    return;
                }
            }
        }
        self.core.retry.push(Token::of(Kind::Listener, listener));
    }

    pub(super) fn accept_all(&mut self) {
        for listener in 0..self.listeners.sockets.len() {
            self.accept_from(listener);
        }
    }

    /// The back-off after a failed accept is over: try again.
    pub(super) fn resume_accepting(&mut self) {
        if let Some(at) = self.listeners.paused_until
            && self.core.clock.now() >= at
        {
            self.listeners.paused_until = None;
            self.accept_all();
        }
    }

    /// A connection closed: below `max_connections` again, take what waits in the backlog.
    pub(super) fn connection_closed(&mut self) {
        if self.listeners.full && self.drain_deadline.is_none() {
            self.listeners.full = false;
            self.accept_all();
        }
    }
}
