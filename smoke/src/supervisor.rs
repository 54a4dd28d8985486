//! `processes = N`: the supervisor [`Server::serve`](crate::Server::serve) becomes. It binds the
//! listeners once, starts N worker processes that serve those sockets (see `sys::process`),
//! announces the server once all of them serve, starts a new one after back-off when one dies,
//! and on SIGINT/SIGTERM (or when a successor takes the sockets over) drains them all.
//!
//! The workers share sockets, not memory: each has its own sessions, counters and topics. A
//! publication reaches the subscribers of other processes only through a `cluster`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use smoke_rules::Protocol;

use crate::config::Config;
use crate::handoff::{Predecessor, Sockets};
use crate::rt::error::Error;
use crate::sys::inherit::InheritedSocket;
use crate::sys::process::{self, WorkerProcess};
use crate::sys::{Epoll, Events, Interest, ShutdownSignals};

/// The first wait before a dead worker's replacement starts; it doubles with each death of a
/// process that served less than [`STEADY`], up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that served this long before dying died of something new: back-off starts over.
const STEADY: Duration = Duration::from_secs(10);
/// How long the workers may take to drain beyond their own `shutdown_timeout`, before SIGKILL.
const DRAIN_SLACK: Duration = Duration::from_secs(5);

const SIGNALS: u64 = 0;
const SUCCESSOR: u64 = 1;
#[cfg(feature = "tls")]
const RELOAD: u64 = 2;
/// Worker `i`'s exit is token `FIRST_WORKER + 2i`, its "serving" line the next one.
const FIRST_WORKER: u64 = 8;

/// One worker process's place: the process in it, if one runs, and its history.
#[derive(Debug, Default)]
struct Slot {
    process: Option<WorkerProcess>,
    serving_since: Option<Instant>,
    /// Deaths in a row of processes that served less than [`STEADY`].
    failures: u32,
    restart_at: Option<Instant>,
}

/// What the supervisor heard in one wait.
enum Heard {
    Nothing,
    /// SIGINT/SIGTERM, or a successor serves: drain.
    Stop,
    /// A worker died while the server was starting (which it then does not).
    DiedStarting(String),
}

struct Supervisor<'a> {
    name: &'a str,
    epoll: Epoll,
    slots: Vec<Slot>,
    /// Until every first worker serves: a death then stops the server instead of being replaced.
    starting: bool,
    /// Each listener's descriptors, in the order the listeners were given (see `fds_for`).
    fds: Vec<Vec<RawFd>>,
    sockets: Sockets,
    successors: Option<(UnixListener, std::path::PathBuf)>,
    /// Installed until the supervisor returns: a second SIGTERM while draining changes nothing.
    _signals: ShutdownSignals,
    #[cfg(feature = "tls")]
    reload: Option<&'static crate::sys::EventFd>,
}

/// Runs `config`'s server as `config.processes` worker processes until a signal or a successor
/// stops it. `inherited`: sockets systemd or a predecessor handed this process.
pub(crate) fn supervise(
    config: &Config,
    name: &str,
    signals: ShutdownSignals,
    inherited: Vec<InheritedSocket>,
    predecessor: Option<Predecessor>,
) -> Result<(), Error> {
    let (specs, count) = (config.listener_specs(), config.processes);
    let listening = crate::rt::spawn::bind_for_processes(&config.runtime, &specs, inherited, count)?;
    let fds = listening.iter().map(|l| l.fds.iter().map(AsRawFd::as_raw_fd).collect()).collect();
    let addrs: Vec<(Protocol, SocketAddr)> =
        config.listeners.iter().map(|(protocol, _)| *protocol).zip(listening.iter().map(|l| l.addr)).collect();
    let failed = |e| Error::io("start the supervisor", e);
    let epoll = Epoll::new().map_err(failed)?;
    epoll.add(signals.as_raw_fd(), SIGNALS, Interest::READABLE).map_err(failed)?;
    let slots = (0..config.processes).map(|_| Slot::default()).collect();
    let sockets = Arc::new(Mutex::new(listening));
    #[rustfmt::skip]
    let mut supervisor = Supervisor {
        name, epoll, slots, starting: true, fds, sockets, successors: None, _signals: signals,
        #[cfg(feature = "tls")]
        reload: None,
    };
    #[cfg(feature = "tls")]
    if config.tls_files()?.is_some() {
        // The workers reload their certificates on SIGHUP; the supervisor passes it on.
        let reload = crate::sys::reload_signal().map_err(failed)?;
        supervisor.epoll.add(reload.as_raw_fd(), RELOAD, Interest::READABLE).map_err(failed)?;
        supervisor.reload = Some(reload);
    }
    let started = supervisor.start_all();
    if !matches!(started, Ok(true)) {
        supervisor.drain(config.runtime.shutdown_timeout);
        return started.map(drop);
    }
    crate::handle::announce(name, &addrs);
    let pids: Vec<String> = supervisor.live().map(|p| p.child.id().to_string()).collect();
    println!("{name}: {} worker processes serving (pids {})", pids.len(), pids.join(", "));
    if let Some(Err(e)) = predecessor.map(Predecessor::serving) {
        eprintln!("{name}: {e}");
    }
    if let Some(path) = &config.handoff {
        let listener = crate::handoff::listen_for_successor(path)?;
        listener.set_nonblocking(true).map_err(|e| Error::io("listen for a successor", e))?;
        supervisor.epoll.add(listener.as_raw_fd(), SUCCESSOR, Interest::READABLE).map_err(failed)?;
        supervisor.successors = Some((listener, path.clone()));
    }
    let served = supervisor.serve();
    supervisor.drain(config.runtime.shutdown_timeout);
    served
}

impl Supervisor<'_> {
    /// Starts every worker and waits until all serve: `Ok(false)` when a signal came first, an
    /// error when one of them died first (its own error is on stderr).
    fn start_all(&mut self) -> Result<bool, Error> {
        for index in 0..self.slots.len() {
            self.start(index)?;
        }
        while self.slots.iter().any(|slot| slot.serving_since.is_none()) {
            match self.wait(None)? {
                Heard::Nothing => {}
                Heard::Stop => return Ok(false),
                Heard::DiedStarting(why) => return Err(Error::other(why)),
            }
        }
        self.starting = false;
        Ok(true)
    }

    /// Supervises until a signal or a successor.
    fn serve(&mut self) -> Result<(), Error> {
        loop {
            let now = Instant::now();
            let next_restart = self.slots.iter().filter_map(|slot| slot.restart_at).min();
            if let Heard::Stop = self.wait(next_restart.map(|at| at.saturating_duration_since(now)))? {
                return Ok(());
            }
            let now = Instant::now();
            for index in 0..self.slots.len() {
                if self.slots[index].restart_at.is_none_or(|at| at > now) {
                    continue;
                }
                if let Err(e) = self.start(index) {
                    eprintln!("{}: worker process {index} could not start, trying again: {e}", self.name);
                    self.schedule_restart(index, now);
                }
            }
        }
    }

    /// Worker `index`'s sockets: of each listener's, every `processes`-th from the index (its
    /// own, when the supervisor bound them), or all of them when there are fewer than workers
    /// (a predecessor or systemd handed fewer).
    fn fds_for(&self, index: usize) -> Vec<RawFd> {
        let workers = self.slots.len();
        let mut fds = Vec::new();
        for listener in &self.fds {
            if listener.len() < workers {
                fds.extend_from_slice(listener);
            } else {
                fds.extend(listener.iter().skip(index).step_by(workers));
            }
        }
        fds
    }

    fn start(&mut self, index: usize) -> Result<(), Error> {
        let failed = |e| Error::io(format!("start worker process {index}"), e);
        let process = process::start_worker(&self.fds_for(index)).map_err(failed)?;
        let token = FIRST_WORKER + 2 * index as u64;
        self.epoll.add(process.pidfd.as_raw_fd(), token, Interest::READABLE).map_err(failed)?;
        self.epoll.add(process.ready.as_raw_fd(), token + 1, Interest::READABLE).map_err(failed)?;
        let slot = &mut self.slots[index];
        (slot.process, slot.serving_since, slot.restart_at) = (Some(process), None, None);
        Ok(())
    }

    /// Waits up to `timeout` and handles what arrived.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<Heard, Error> {
        let mut events = Events::with_capacity(16);
        self.epoll.wait(&mut events, timeout).map_err(|e| Error::io("wait for the worker processes", e))?;
        let mut heard = Heard::Nothing;
        for token in (0..events.len()).map(|i| events.get(i).token) {
            match token {
                SIGNALS => return Ok(Heard::Stop),
                SUCCESSOR => {
                    if self.answer_successor() {
                        return Ok(Heard::Stop);
                    }
                }
                #[cfg(feature = "tls")]
                RELOAD => self.pass_on_reload(),
                _ => {
                    let index = ((token - FIRST_WORKER) / 2) as usize;
                    if (token - FIRST_WORKER) % 2 == 1 {
                        self.heard_serving(index);
                    } else if let Some(why) = self.reap(index).filter(|_| self.starting) {
                        heard = Heard::DiedStarting(why);
                    }
                }
            }
        }
        Ok(heard)
    }

    fn heard_serving(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let Some(process) = &mut slot.process else { return };
        if slot.serving_since.is_none() && process::read_serving(&mut process.ready).unwrap_or(false) {
            slot.serving_since = Some(Instant::now());
        }
    }

    /// Collects a dead worker and schedules its replacement; says how it died.
    fn reap(&mut self, index: usize) -> Option<String> {
        let slot = &mut self.slots[index];
        let mut process = slot.process.take()?;
        let status = match process.child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                slot.process = Some(process); // not dead after all: a spurious wake
                return None;
            }
        };
        let (pid, now) = (process.child.id(), Instant::now());
        let why = format!("worker process {index} (pid {pid}) ended: {status}");
        if self.starting {
            return Some(why); // the server does not start: nothing to replace
        }
        if slot.serving_since.is_some_and(|since| now - since >= STEADY) {
            slot.failures = 0;
        }
        let delay = self.schedule_restart(index, now);
        eprintln!("{}: {why}; another starts in {delay:?}", self.name);
        Some(why)
    }

    fn schedule_restart(&mut self, index: usize, now: Instant) -> Duration {
        let slot = &mut self.slots[index];
        let delay = FIRST_BACKOFF.saturating_mul(1 << slot.failures.min(16)).min(MAX_BACKOFF);
        slot.failures += 1;
        slot.restart_at = Some(now + delay);
        delay
    }

    /// Hands the sockets to a successor that asks: `true` once it serves.
    fn answer_successor(&mut self) -> bool {
        let Some((listener, path)) = &self.successors else { return false };
        let Ok((stream, _)) = listener.accept() else { return false };
        match crate::handoff::hand_over(&stream, &self.sockets) {
            Ok(()) => {
                println!("{}: a new process serves from {}; draining", self.name, path.display());
                true
            }
            Err(e) => {
                eprintln!("{}: a successor at {} did not take over, still serving: {e}", self.name, path.display());
                false
            }
        }
    }

    #[cfg(feature = "tls")]
    fn pass_on_reload(&mut self) {
        if let Some(reload) = self.reload {
            reload.drain();
        }
        for process in self.live() {
            let _ = process::signal(&process.child, libc::SIGHUP);
        }
    }

    fn live(&self) -> impl Iterator<Item = &WorkerProcess> {
        self.slots.iter().filter_map(|slot| slot.process.as_ref())
    }

    /// Lets go of the sockets, asks every worker to drain (SIGTERM) and waits for them, up to
    /// their `shutdown_timeout` and some slack; the ones still running then are killed.
    fn drain(&mut self, shutdown_timeout: Duration) {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner).clear();
        for process in self.live() {
            let _ = process::signal(&process.child, libc::SIGTERM);
        }
        let deadline = Instant::now() + shutdown_timeout + DRAIN_SLACK;
        while self.live().next().is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut events = Events::with_capacity(16);
            if self.epoll.wait(&mut events, Some(left)).is_err() {
                break;
            }
            for token in (0..events.len()).map(|i| events.get(i).token) {
                if token < FIRST_WORKER || !(token - FIRST_WORKER).is_multiple_of(2) {
                    continue;
                }
                let slot = &mut self.slots[((token - FIRST_WORKER) / 2) as usize];
                if slot.process.as_mut().is_some_and(|p| matches!(p.child.try_wait(), Ok(Some(_)))) {
                    slot.process = None;
                }
            }
        }
        for slot in &mut self.slots {
            if let Some(mut process) = slot.process.take() {
                eprintln!("{}: worker process {} did not drain in time; killed", self.name, process.child.id());
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

impl std::fmt::Debug for Supervisor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("slots", &self.slots).finish_non_exhaustive()
    }
}
