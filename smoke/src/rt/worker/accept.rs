//! Accepting: a worker's TCP listeners, batches of `accept4` per wake-up, the pause at
//! server-wide `max_connections`, and the back-off after a failure such as EMFILE.

use std::io;
use std::time::Duration;

use super::{EventLoop, Service};
use crate::rt::token::{Kind, Token};
use crate::stats::bump;
use crate::sys::{Epoll, Listener};
use std::os::fd::AsRawFd;

/// Connections accepted per listener per wake-up before the others get a turn.
const ACCEPT_BATCH: usize = 128;
/// Pause after an accept failure such as EMFILE, or at `max_connections`: long enough not to
/// spin on a full fd table, short enough that clients in the backlog barely notice once places
/// free up.
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
    /// Accepting is paused until then (clock milliseconds): after a failure such as EMFILE, or
    /// at `max_connections`. A connection closing on this worker resumes it sooner.
    pub(super) paused_until: Option<u64>,
    /// Why it is paused, logged once per pause: the last accept failed, or the server is full.
    pause: Pause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    None,
    Failing,
    Full,
}

impl Listeners {
    pub(super) fn new(sockets: Vec<StreamListener>) -> Listeners {
        Listeners { sockets, paused_until: None, pause: Pause::None }
    }

    /// Stops listening: every socket leaves `epoll`, then closes (the kernel resets connections
    /// still queued on a socket nobody else holds; on one handed over, they wait for the
    /// successor, which a registration left behind could keep from being woken).
    pub(super) fn close(&mut self, epoll: &Epoll) {
        for listener in self.sockets.drain(..) {
            if let Err(e) = epoll.delete(listener.socket.as_raw_fd()) {
                log::warn!("could not stop watching a listening socket: {e}");
            }
        }
        self.paused_until = None;
    }
}

impl<S: Service> EventLoop<S> {
    pub(super) fn accept_from(&mut self, listener: usize) {
        if self.listeners.paused_until.is_some() || listener >= self.listeners.sockets.len() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            if !self.core.workers.connections.admit() {
                // Every place is taken, on this worker or another: wait (clients queue in the
                // backlog) and look again, since a close on another worker does not wake this one.
                self.pause_accepting(Pause::Full, "the server is at max_connections");
                return;
            }
            let StreamListener { socket, index, client_speaks_first } = &self.listeners.sockets[listener];
            let (index, client_speaks_first) = (*index, *client_speaks_first);
            match socket.accept() {
                Ok(stream) => {
                    if self.listeners.pause != Pause::None {
                        self.listeners.pause = Pause::None;
                        log::info!("worker {}: accepting connections again", self.core.index);
                    }
                    self.open(stream, index, client_speaks_first);
                }
                Err(e) => {
                    self.core.workers.connections.release();
                    match e.raw_os_error() {
                        _ if e.kind() == io::ErrorKind::WouldBlock => return,
                        Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => {}
                        _ => {
                            bump(&self.core.counters().accept_errors, 1);
                            self.pause_accepting(Pause::Failing, &format!("accept failed ({e})"));
                            return;
                        }
                    }
                }
            }
        }
        self.core.retry.push(Token::of(Kind::Listener, listener));
    }

    /// Stops accepting for `ACCEPT_BACKOFF`, logging `why` at the start of an episode.
    fn pause_accepting(&mut self, pause: Pause, why: &str) {
        if self.listeners.pause != pause {
            self.listeners.pause = pause;
            log::warn!(
                "worker {}: {why}; retrying every {} ms while existing connections are served",
                self.core.index,
                ACCEPT_BACKOFF.as_millis()
            );
        }
        self.listeners.paused_until = Some(self.core.clock.deadline(ACCEPT_BACKOFF));
    }

    pub(super) fn accept_all(&mut self) {
        for listener in 0..self.listeners.sockets.len() {
            self.accept_from(listener);
        }
    }

    /// The back-off is over: try again.
    pub(super) fn resume_accepting(&mut self) {
        if let Some(at) = self.listeners.paused_until
            && self.core.clock.now() >= at
        {
            self.listeners.paused_until = None;
            self.accept_all();
        }
    }

    /// A connection's socket closed: its place (and its fd) is free, so a paused worker takes
    /// what waits in its backlog now.
    pub(super) fn connection_closed(&mut self) {
        self.core.workers.connections.release();
        if self.listeners.paused_until.is_some() && self.drain_deadline.is_none() {
            self.listeners.paused_until = None;
            self.accept_all();
        }
    }
}
