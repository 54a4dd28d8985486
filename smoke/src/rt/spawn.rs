//! Starting and stopping a server's workers: the listeners are checked and bound here (so an
//! address in use is this call's error), each worker gets its own sockets and thread, and
//! [`Running`] stops them: on request, on a signal, or when one of them ends.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use smoke_rules::Listen;

use crate::rt::config::{Limits, RuntimeConfig};
use crate::rt::core::Core;
use crate::rt::error::Error;
use crate::rt::pubsub;
use crate::rt::shared::{TopicBridge, WorkerSet};
use crate::rt::worker::Service;
use crate::rt::worker::{EventLoop, StreamListener, WorkerSockets};
use crate::sys::inherit::InheritedSocket;
use crate::sys::{Epoll, Events, Interest, Listener, PacketRing, ShutdownSignals, UdpSocket};

/// A listener as the runtime sees it: where it binds, the name messages give it, and the
/// transport; its protocol is the service's business (it gets the listener's index at accept).
#[derive(Clone, Debug)]
pub(crate) struct ListenerSpec {
    pub(crate) listen: Listen,
    /// `tcp`, `http`, ...: how errors name it.
    pub(crate) name: &'static str,
    pub(crate) datagram: bool,
    /// See `smoke_rules::Protocol::client_speaks_first`.
    pub(crate) client_speaks_first: bool,
}

/// A running server's workers: their shared state, their threads, and where each listener
/// bound (port 0 resolved, in the order the listeners were given).
#[derive(Debug)]
pub(crate) struct Running {
    workers: Arc<WorkerSet>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
    /// Every listening socket, once more (each worker's, or the ones handed to this process),
    /// by listener: what a successor takes over. Let go before the workers stop, so a server
    /// that stops without one closes its sockets as before (and a new connection is refused,
    /// not queued where nobody accepts).
    listening: Arc<Mutex<Vec<Listening>>>,
}

/// One listener's sockets, as a successor takes them over.
#[derive(Debug)]
pub(crate) struct Listening {
    pub(crate) name: &'static str,
    pub(crate) datagram: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) fds: Vec<OwnedFd>,
}

/// Starts `service` on the workers `config` asks for, with `listeners`; returns once every
/// listener is bound and every worker thread started. `min_read_buffer`: see [`Limits::resolve`].
/// A listener that one of `inherited` matches (its transport, and its address, or its port on
/// a listener bound to every address) serves that socket instead of binding its own; an
/// inherited socket no listener matches is a configuration error.
pub(crate) fn spawn<S: Service>(
    config: &RuntimeConfig,
    listeners: &[ListenerSpec],
    min_read_buffer: usize,
    service: S,
    bridge: Option<Arc<dyn TopicBridge>>,
    inherited: Vec<InheritedSocket>,
) -> Result<Running, Error> {
    check(config, listeners)?;
    let wanted = resolve_all(config.bind, listeners)?;
    refuse_overlaps(listeners, &wanted)?;
    for index in 0..listeners.len() {
        service.check_listener(index).map_err(Error::config)?;
    }
    let handed = match_inherited(listeners, &wanted, inherited)?;
    let addrs = probe_all(listeners, &wanted, &handed)?;
    // Again with the ports the kernel chose for port 0.
    refuse_overlaps(listeners, &addrs)?;
    let threads = config.worker_threads();
    let fanout_group = next_fanout_group();
    let mut sockets = Vec::with_capacity(threads);
    for _ in 0..threads {
        sockets.push(worker_sockets(config, listeners, &addrs, &handed, fanout_group)?);
    }
    let listening = listening(listeners, &addrs, handed, &sockets)?;
    let caps = config.caps(threads);
    let workers =
        Arc::new(WorkerSet::new(threads, &caps, bridge).map_err(|e| Error::io("create the workers' eventfds", e))?);
    pubsub::register(&workers);
    let limits = Limits::resolve(config, min_read_buffer);
    let service = Arc::new(service);
    let listening = Arc::new(Mutex::new(listening));
    let mut running = Running { workers: workers.clone(), threads: Vec::with_capacity(threads), addrs, listening };
    for (index, sockets) in sockets.into_iter().enumerate() {
        let epoll = Epoll::new().map_err(|e| Error::io("create an epoll instance", e))?;
        let core = Core::new(index, epoll, workers.clone(), limits.clone());
        let service = service.clone();
        let exited = ExitNotice(workers.clone());
        let thread = std::thread::Builder::new()
            .name(format!("smoke-worker-{index}"))
            .spawn(move || {
                match EventLoop::new(core, sockets, service) {
                    Ok(event_loop) => event_loop.run(),
                    Err(e) => log::error!("worker {index} failed to start: {e}"),
                }
                drop(exited);
            })
            .map_err(|e| Error::io("start a worker thread", e))?;
        running.threads.push(thread);
    }
    Ok(running)
}

/// Binds every listener for worker processes (`processes = N`): the same checks and errors as
/// [`spawn`], `count` SO_REUSEPORT sockets per listener, one for each process, so the kernel
/// spreads connections (and UDP peers, each always to the same process) as it does across a
/// server's workers, and no workers. A listener handed sockets (`inherited`) takes those
/// instead. The packet ring is refused: its fanout group is per process.
pub(crate) fn bind_for_processes(
    config: &RuntimeConfig,
    listeners: &[ListenerSpec],
    inherited: Vec<InheritedSocket>,
    count: usize,
) -> Result<Vec<Listening>, Error> {
    check(config, listeners)?;
    if config.pfring.is_some() {
        return Err(Error::config("pfring serves one process's workers; it cannot be used with processes > 1"));
    }
    let wanted = resolve_all(config.bind, listeners)?;
    refuse_overlaps(listeners, &wanted)?;
    let handed = match_inherited(listeners, &wanted, inherited)?;
    let addrs = probe_all(listeners, &wanted, &handed)?;
    refuse_overlaps(listeners, &addrs)?;
    let mut listening = Vec::with_capacity(listeners.len());
    for ((spec, &addr), handed) in listeners.iter().zip(&addrs).zip(handed) {
        let mut fds: Vec<OwnedFd> = handed.into_iter().map(|socket| socket.fd).collect();
        for _ in 0..if fds.is_empty() { count } else { 0 } {
            let fd = if spec.datagram {
                UdpSocket::bind(addr, true).and_then(|socket| socket.duplicate())
            } else {
                Listener::bind(addr, spec.client_speaks_first).and_then(|socket| socket.duplicate())
            };
            fds.push(fd.map_err(|e| bind_error(addr, spec, e))?);
        }
        listening.push(Listening { name: spec.name, datagram: spec.datagram, addr, fds });
    }
    Ok(listening)
}

/// The mistakes a configuration can hold before any address is looked at.
fn check(config: &RuntimeConfig, listeners: &[ListenerSpec]) -> Result<(), Error> {
    if listeners.is_empty() {
        return Err(Error::config("no listener configured"));
    }
    if let Some(interface) = &config.pfring {
        if !listeners.iter().any(|l| l.datagram) {
            return Err(Error::config(
                "pfring feeds the udp listeners' sessions and sends their replies: add a udp listener",
            ));
        }
        if let Err(why) = smoke_rules::check_interface_name(interface) {
            return Err(Error::config(format!("pfring {interface:?}: {why}")));
        }
    }
    Ok(())
}

/// Resolves every listener's address (a bare port on `bind`; a name to its first address).
fn resolve_all(bind: IpAddr, listeners: &[ListenerSpec]) -> Result<Vec<SocketAddr>, Error> {
    listeners
        .iter()
        .map(|listener| {
            resolve(&listener.listen, bind)
                .map_err(|e| Error::config(format!("listen {} ({}): {e}", listener.listen, listener.name)))
        })
        .collect()
}

/// Refuses two listeners that would share a socket: probes close before the real sockets bind,
/// so listeners of one server would not see each other, and SO_REUSEPORT would quietly split
/// the port between them.
fn refuse_overlaps(listeners: &[ListenerSpec], addrs: &[SocketAddr]) -> Result<(), Error> {
    let socket = |spec: &ListenerSpec, addr: SocketAddr| smoke_rules::Socket {
        datagram: spec.datagram,
        host: smoke_rules::Host::Ip(addr.ip()),
        port: addr.port(),
    };
    for (i, (listener, &wanted)) in listeners.iter().zip(addrs).enumerate() {
        let mut earlier = listeners[..i].iter().zip(&addrs[..i]);
        let overlapping =
            earlier.find(|(other, taken)| smoke_rules::overlap(&socket(other, **taken), &socket(listener, wanted)));
        if let Some((other, taken)) = overlapping {
            let message =
                format!("bind {wanted} ({}): overlaps this server's {} listener on {taken}", listener.name, other.name);
            return Err(Error::config_as(io::ErrorKind::AddrInUse, message));
        }
    }
    Ok(())
}

/// The inherited sockets each listener serves instead of binding (none for most): every one
/// whose transport matches and whose address is the listener's, or has its port when the
/// listener binds every address (systemd's `ListenStream=8080` is `[::]:8080`), or has its IP
/// when the listener leaves the port to the kernel (port 0: the one it chose last time).
fn match_inherited(
    listeners: &[ListenerSpec],
    wanted: &[SocketAddr],
    inherited: Vec<InheritedSocket>,
) -> Result<Vec<Vec<InheritedSocket>>, Error> {
    let mut handed: Vec<Vec<InheritedSocket>> = listeners.iter().map(|_| Vec::new()).collect();
    for socket in inherited {
        let serves = |(spec, want): &(&ListenerSpec, &SocketAddr)| {
            spec.datagram == socket.datagram
                && (**want == socket.addr
                    || (want.ip().is_unspecified() && want.port() == socket.addr.port())
                    || (want.port() == 0 && want.ip() == socket.addr.ip()))
        };
        match listeners.iter().zip(wanted).position(|pair| serves(&pair)) {
            Some(index) => handed[index].push(socket),
            None => {
                let transport = if socket.datagram { "udp" } else { "tcp" };
                return Err(Error::config(format!(
                    "a socket handed to this process ({transport} on {}) matches none of its listeners",
                    socket.addr
                )));
            }
        }
    }
    Ok(handed)
}

/// Binds each listener's address once, exclusively, to find out whether another process holds
/// it (SO_REUSEPORT would let it join ours) and which port a port 0 gets. A listener handed its
/// sockets has their address.
fn probe_all(
    listeners: &[ListenerSpec],
    wanted: &[SocketAddr],
    handed: &[Vec<InheritedSocket>],
) -> Result<Vec<SocketAddr>, Error> {
    listeners
        .iter()
        .zip(wanted)
        .zip(handed)
        .map(|((listener, &addr), handed)| {
            if let Some(socket) = handed.first() {
                Ok(socket.addr)
            } else if listener.datagram {
                UdpSocket::bind(addr, false).and_then(|probe| probe.local_addr())
            } else {
                Listener::probe_exclusive(addr)
            }
            .map_err(|e| bind_error(addr, listener, e))
        })
        .collect()
}

/// The address `listen` names: a bare port on `bind`, or `host:port` resolved (the first
/// address a name resolves to).
pub(crate) fn resolve(listen: &Listen, bind: IpAddr) -> io::Result<SocketAddr> {
    match listen {
        Listen::Port(port) => Ok(SocketAddr::new(bind, *port)),
        Listen::Addr(text) => {
            if let Ok(addr) = text.parse::<SocketAddr>() {
                return Ok(addr);
            }
            let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("cannot resolve `{text}`"));
            text.to_socket_addrs().map_err(|_| invalid())?.next().ok_or_else(invalid)
        }
    }
}

/// One worker's sockets: a SO_REUSEPORT socket per listener (or every socket a listener was
/// handed, shared with the other workers), and its packet ring (in the server's fanout group,
/// so the kernel spreads flows across the workers' rings).
fn worker_sockets(
    config: &RuntimeConfig,
    listeners: &[ListenerSpec],
    addrs: &[SocketAddr],
    handed: &[Vec<InheritedSocket>],
    fanout_group: u16,
) -> Result<WorkerSockets, Error> {
    let mut sockets = WorkerSockets::default();
    for (index, (spec, &addr)) in listeners.iter().zip(addrs).enumerate() {
        for socket in &handed[index] {
            let fd = socket.fd.try_clone().map_err(|e| Error::io("share a handed socket with a worker", e))?;
            if spec.datagram {
                sockets.udp.push(UdpSocket::from_inherited(fd));
                sockets.udp_listeners.push(index);
            } else {
                let socket = Listener::from_inherited(fd);
                sockets.listeners.push(StreamListener { socket, index, client_speaks_first: spec.client_speaks_first });
            }
        }
        if !handed[index].is_empty() {
            continue;
        }
        if spec.datagram {
            let socket = UdpSocket::bind(addr, true).map_err(|e| bind_error(addr, spec, e))?;
            if config.pfring.is_some() {
                // Every datagram would otherwise arrive twice: through the ring and here.
                socket.drop_all_input().map_err(|e| Error::io("filter the udp socket's input", e))?;
            }
            sockets.udp.push(socket);
            sockets.udp_listeners.push(index);
        } else {
            let socket = Listener::bind(addr, spec.client_speaks_first).map_err(|e| bind_error(addr, spec, e))?;
            sockets.listeners.push(StreamListener { socket, index, client_speaks_first: spec.client_speaks_first });
        }
    }
    if let Some(interface) = &config.pfring {
        let ports: Vec<u16> =
            listeners.iter().zip(addrs).filter(|(spec, _)| spec.datagram).map(|(_, a)| a.port()).collect();
        let snap = (config.max_datagram + RING_HEADROOM) as u32;
        let filter = crate::sys::bpf::udp_port_filter(&ports, snap).map_err(Error::config)?;
        sockets.ring = Some(PacketRing::open(interface, &filter, fanout_group).map_err(Error::os)?);
    }
    Ok(sockets)
}

/// Every listener's sockets once more, for a successor to take over: the handed ones as they
/// came, or each worker's own.
fn listening(
    listeners: &[ListenerSpec],
    addrs: &[SocketAddr],
    handed: Vec<Vec<InheritedSocket>>,
    sockets: &[WorkerSockets],
) -> Result<Vec<Listening>, Error> {
    let failed = |e| Error::io("keep a listening socket for a successor", e);
    let mut listening = Vec::with_capacity(listeners.len());
    for (index, ((spec, &addr), handed)) in listeners.iter().zip(addrs).zip(handed).enumerate() {
        let mut fds: Vec<OwnedFd> = handed.into_iter().map(|socket| socket.fd).collect();
        if fds.is_empty() {
            for worker in sockets {
                if spec.datagram {
                    if let Some(position) = worker.udp_listeners.iter().position(|&i| i == index) {
                        fds.push(worker.udp[position].duplicate().map_err(failed)?);
                    }
                } else if let Some(listener) = worker.listeners.iter().find(|l| l.index == index) {
                    fds.push(listener.socket.duplicate().map_err(failed)?);
                }
            }
        }
        listening.push(Listening { name: spec.name, datagram: spec.datagram, addr, fds });
    }
    Ok(listening)
}

/// The most header bytes before a UDP payload in a frame the packet ring keeps: Ethernet (14),
/// two VLAN tags (8), an IPv4 header with every option (60, more than IPv6's 40) and UDP (8).
/// The ring keeps `max_datagram` more; a longer frame arrives cut and is counted as a datagram
/// above `max_datagram`, as a socket's would be, and the kernel copies no more than that.
const RING_HEADROOM: usize = 14 + 8 + 60 + 8;

/// A packet-ring fanout group id no other server of this process uses (the kernel's groups are
/// per network namespace; the process id keeps two processes apart in practice).
fn next_fanout_group() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn bind_error(addr: SocketAddr, spec: &ListenerSpec, error: io::Error) -> Error {
    bind_failure(addr, spec.name, error)
}

/// `bind ADDR (NAME): why`, in words for the errors a deployment meets.
pub(crate) fn bind_failure(addr: SocketAddr, name: &str, error: io::Error) -> Error {
    let why = match error.raw_os_error() {
        Some(libc::EADDRINUSE) => "address in use".to_owned(),
        Some(libc::EADDRNOTAVAIL) => "address not available on this host".to_owned(),
        Some(libc::EACCES) => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_owned(),
        Some(libc::EAFNOSUPPORT) => "address family not supported (is IPv6 disabled?)".to_owned(),
        _ => error.to_string(),
    };
    Error::bind(format!("bind {addr} ({name}): {why}"), error)
}

impl Running {
    /// Every listener's bound address, in the order the listeners were given.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub(crate) fn workers(&self) -> &Arc<WorkerSet> {
        &self.workers
    }

    /// Every listener's sockets, for a successor to take over; empty once the server stops.
    pub(crate) fn listening(&self) -> &Arc<Mutex<Vec<Listening>>> {
        &self.listening
    }

    /// Blocks until one of `signals` arrives (or a worker stops on its own), then stops.
    /// The handlers are installed by the caller, before it announces the server, so a
    /// supervisor that signals as soon as it sees the announcement cannot kill the process with
    /// the default action.
    pub(crate) fn wait_for(&mut self, signals: ShutdownSignals) -> Result<(), Error> {
        {
            let failed = |e| Error::io("wait for a shutdown signal", e);
            let epoll = Epoll::new().map_err(failed)?;
            epoll.add(signals.as_raw_fd(), 0, Interest::READABLE).map_err(failed)?;
            epoll.add(self.workers.exited.as_raw_fd(), 1, Interest::READABLE).map_err(failed)?;
            let mut events = Events::with_capacity(2);
            while events.len() == 0 {
                epoll.wait(&mut events, None).map_err(failed)?;
            }
            if events.get(0).token == 0 {
                log::info!("shutdown signal received; draining connections");
            }
            drop(signals);
        }
        self.stop_and_join()
    }

    /// Stops accepting, lets pending output flush (up to `shutdown_timeout`), closes every
    /// session and joins the workers. Stopping twice is stopping once.
    pub(crate) fn stop_and_join(&mut self) -> Result<(), Error> {
        // Without these, the workers closing theirs closes the sockets (a successor, if one took
        // them over, holds its own).
        self.listening.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.workers.stopping.store(true, Ordering::SeqCst);
        for worker in self.workers.workers.iter() {
            worker.waker.wake();
        }
        let mut panicked = 0;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                panicked += 1;
            }
        }
        if panicked > 0 {
            return Err(Error::other(format!("{panicked} worker thread(s) panicked")));
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            log::error!("{e}");
        }
    }
}

/// Tells `wait_for` that a worker's loop ended, however it ended (including a panic).
struct ExitNotice(Arc<WorkerSet>);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        self.0.exits.fetch_add(1, Ordering::SeqCst);
        self.0.exited.wake();
    }
}
