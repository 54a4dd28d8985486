//! Starting, running and stopping a server.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::app::{App, FromFn};
use crate::config::{Config, Protocol};
use crate::handler::Handler;
use crate::rt::conn::Conn;
use crate::rt::pubsub::Mailbox;
use crate::rt::worker::{Limits, Worker};
use crate::stats::{Counters, Stats};
use crate::sys::{Epoll, EventFd, Events, Interest, Listener, PacketRing, ShutdownSignals, UdpSocket};

/// State every worker and the handle can see. Nothing here is written on the hot path except
/// each worker's own counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stopping: AtomicBool,
    pub(crate) workers: Box<[WorkerShared]>,
    pub(crate) http_limits: crate::http::Limits,
    pub(crate) max_write_buffer: usize,
    pub(crate) ws: crate::ws::WsConfig,
    /// Written by a worker whose loop ends, so a thread waiting in `wait_for_signal` notices.
    pub(crate) exited: EventFd,
}

#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) counters: Counters,
    pub(crate) waker: EventFd,
    /// Topic publications for this worker's subscribers (see `ws::topics`).
    pub(crate) mailbox: Mutex<Mailbox>,
    /// Set when the mailbox goes from empty to not empty; the worker checks it every turn.
    pub(crate) has_mail: AtomicBool,
}

impl WorkerShared {
    fn new() -> io::Result<WorkerShared> {
        Ok(WorkerShared {
            counters: Counters::default(),
            waker: EventFd::new()?,
            mailbox: Mutex::default(),
            has_mail: AtomicBool::new(false),
        })
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        Stats::sum(self.workers.iter().map(|w| &w.counters))
    }
}

impl crate::stats::StatsSource for Shared {
    fn stats(&self) -> Stats {
        Shared::stats(self)
    }
}

/// A running server: its bound addresses, its counters, and the way to stop it.
///
/// Dropping the handle shuts the server down (as [`shutdown`](ServerHandle::shutdown) does).
#[derive(Debug)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<(Protocol, SocketAddr)>,
}

impl ServerHandle {
    /// Every listener's bound address (port 0 resolved), in configuration order.
    pub fn local_addrs(&self) -> &[(Protocol, SocketAddr)] {
        &self.addrs
    }

    /// The first listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0].1
    }

    /// All workers' counters, summed.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Each worker's counters, by worker index.
    pub fn worker_stats(&self) -> Vec<Stats> {
        self.shared.workers.iter().map(|w| w.counters.snapshot()).collect()
    }

    /// Publishes `message` to `topic` on this server's WebSocket subscribers, from any thread
    /// (see [`WsConn::publish`](crate::ws::WsConn::publish)).
    pub fn publish<'m>(&self, topic: &str, message: impl Into<crate::ws::Message<'m>>) {
        crate::driver::ws::publish(&self.shared, None, topic, message.into());
    }

    /// Stops accepting, lets pending output flush (up to `shutdown_timeout`), closes every
    /// connection with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown) and joins the
    /// workers.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    /// Blocks until SIGINT or SIGTERM (or until a worker stops on its own), then shuts down.
    pub fn wait_for_signal(self) -> io::Result<()> {
        let signals = ShutdownSignals::install()?;
        self.wait_for(signals)
    }

    /// [`wait_for_signal`](ServerHandle::wait_for_signal) with the handlers already installed:
    /// `serve` installs them before it announces the server, so a supervisor that signals as
    /// soon as it sees the announcement cannot kill the process with the default action.
    pub(crate) fn wait_for(mut self, signals: ShutdownSignals) -> io::Result<()> {
        {
            let epoll = Epoll::new()?;
            epoll.add(signals.as_raw_fd(), 0, Interest::READABLE)?;
            epoll.add(self.shared.exited.as_raw_fd(), 1, Interest::READABLE)?;
            let mut events = Events::with_capacity(2);
            while events.len() == 0 {
                epoll.wait(&mut events, None)?;
            }
            if events.get(0).token == 0 {
                log::info!("shutdown signal received; draining connections");
            }
            drop(signals);
        }
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for worker in self.shared.workers.iter() {
            worker.waker.wake();
        }
        let mut panicked = 0;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                panicked += 1;
            }
        }
        if panicked > 0 {
            return Err(io::Error::other(format!("{panicked} worker thread(s) panicked")));
        }
        Ok(())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            log::error!("{e}");
        }
    }
}

/// Starts a server and returns at once with its handle. `new_session` builds each connection's
/// session on the worker that accepted it (before [`Handler::on_connect`]).
///
/// Binding happens here, so an address in use is reported by this call:
/// `bind 127.0.0.1:9090 (tcp): address in use`.
///
/// ```
/// use smoke::{Config, Conn, Handler};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
///         conn.write(input);
///         input.len()
///     }
/// }
///
/// let server = smoke::spawn(Config::new().tcp("127.0.0.1:0").threads(1), |_: &mut Conn| Echo)?;
/// let addr = server.local_addr();
/// # use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// let mut reply = [0; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"ping");
/// server.shutdown()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn<S, F>(config: Config, new_session: F) -> io::Result<ServerHandle>
where
    S: Handler,
    F: Fn(&mut Conn<'_>) -> S + Send + Sync + 'static,
{
    spawn_app(config, FromFn(new_session))
}

/// [`spawn`] for an [`App`]: sessions for UDP peers too, and a per-worker tick.
pub fn spawn_app<A: App>(config: Config, app: A) -> io::Result<ServerHandle> {
    let serves_udp = config.listeners.iter().any(|(p, _)| *p == Protocol::Udp);
    if serves_udp && !app.builds_peers() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a udp listener needs sessions for peers: implement App::peer and App::builds_peers",
        ));
    }
    if config.listeners.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener configured"));
    }
    if config.pfring.is_some() && !serves_udp {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pfring feeds the udp listeners' sessions and sends their replies: add a udp listener",
        ));
    }
    let threads = config.worker_threads();
    let mut addrs = Vec::with_capacity(config.listeners.len());
    for (protocol, listen) in &config.listeners {
        let wanted = crate::config::resolve(listen, config.bind)
            .map_err(|e| io::Error::new(e.kind(), format!("listen {listen} ({}): {e}", protocol.name())))?;
        // Probes close before the real sockets bind, so listeners of this server that overlap
        // would not see each other: check here, or SO_REUSEPORT would quietly split the port
        // between them.
        let socket = |protocol: Protocol, addr: SocketAddr| smoke_rules::Socket {
            datagram: protocol.is_datagram(),
            host: smoke_rules::Host::Ip(addr.ip()),
            port: addr.port(),
        };
        let overlapping = addrs.iter().find(|(other, taken): &&(Protocol, SocketAddr)| {
            smoke_rules::overlap(&socket(*other, *taken), &socket(*protocol, wanted))
        });
        if let Some((other, taken)) = overlapping {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "bind {wanted} ({}): overlaps this server's {} listener on {taken}",
                    protocol.name(),
                    other.name()
                ),
            ));
        }
        let bound = match protocol {
            Protocol::Udp => UdpSocket::bind(wanted, false).and_then(|probe| probe.local_addr()),
            _ => Listener::probe_exclusive(wanted),
        }
        .map_err(|e| bind_error(wanted, *protocol, e))?;
        addrs.push((*protocol, bound));
    }

    let udp_ports: Vec<u16> = addrs.iter().filter(|(p, _)| *p == Protocol::Udp).map(|(_, a)| a.port()).collect();
    let ring_filter = crate::sys::bpf::udp_port_filter(&udp_ports);
    let fanout_group = next_fanout_group();
    let mut workers = Vec::with_capacity(threads);
    let mut setups = Vec::with_capacity(threads);
    for _ in 0..threads {
        let epoll = Epoll::new()?;
        let mut listeners = Vec::with_capacity(addrs.len());
        let mut udp = Vec::new();
        for &(protocol, addr) in &addrs {
            if protocol == Protocol::Udp {
                let socket = UdpSocket::bind(addr, true).map_err(|e| bind_error(addr, protocol, e))?;
                if config.pfring.is_some() {
                    socket.drop_all_input()?;
                }
                udp.push(socket);
                continue;
            }
            let socket =
                Listener::bind(addr, protocol.client_speaks_first()).map_err(|e| bind_error(addr, protocol, e))?;
            listeners.push((protocol, socket));
        }
        let ring = match &config.pfring {
            Some(interface) => Some(PacketRing::open(interface, &ring_filter, fanout_group)?),
            None => None,
        };
        workers.push(WorkerShared::new()?);
        setups.push((epoll, (listeners, udp, ring)));
    }
    let shared = Arc::new(Shared {
        stopping: AtomicBool::new(false),
        workers: workers.into(),
        http_limits: config.http_limits,
        max_write_buffer: config.max_write_buffer.max(1),
        ws: config.ws.clone(),
        exited: EventFd::new()?,
    });
    crate::rt::pubsub::register(&shared);
    let limits = Limits::from_config(&config, threads);
    let app = Arc::new(app);

    let mut handle = ServerHandle { shared: shared.clone(), threads: Vec::with_capacity(threads), addrs };
    for (index, (epoll, listeners)) in setups.into_iter().enumerate() {
        let worker_parts = (epoll, listeners, shared.clone(), app.clone(), limits.clone());
        let thread = std::thread::Builder::new().name(format!("smoke-worker-{index}")).spawn(move || {
            let (epoll, listeners, shared, app, limits) = worker_parts;
            let exited = ExitNotice(shared.clone());
            match Worker::<A>::new(index, epoll, listeners, shared, app, limits) {
                Ok(worker) => worker.run(),
                Err(e) => log::error!("worker {index} failed to start: {e}"),
            }
            drop(exited);
        })?;
        handle.threads.push(thread);
    }
    Ok(handle)
}

/// Runs a server until SIGINT or SIGTERM, then drains and stops it: [`spawn`] followed by
/// [`ServerHandle::wait_for_signal`].
pub fn serve<S, F>(config: Config, new_session: F) -> io::Result<()>
where
    S: Handler,
    F: Fn(&mut Conn<'_>) -> S + Send + Sync + 'static,
{
    let signals = ShutdownSignals::install()?;
    let server = spawn(config, new_session)?;
    for (protocol, addr) in server.local_addrs() {
        log::info!("listening on {addr} ({})", protocol.name());
    }
    server.wait_for(signals)
}

/// Tells `wait_for_signal` that a worker's loop ended, however it ended (including a panic).
struct ExitNotice(Arc<Shared>);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        self.0.exited.wake();
    }
}

/// A packet-ring fanout group id no other server of this process uses (the kernel's groups are
/// per network namespace; the process id keeps two processes apart in practice).
fn next_fanout_group() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn bind_error(addr: SocketAddr, protocol: Protocol, error: io::Error) -> io::Error {
    let why = match error.raw_os_error() {
        Some(libc::EADDRINUSE) => "address in use".to_owned(),
        Some(libc::EADDRNOTAVAIL) => "address not available on this host".to_owned(),
        Some(libc::EACCES) => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_owned(),
        Some(libc::EAFNOSUPPORT) => "address family not supported (is IPv6 disabled?)".to_owned(),
        _ => error.to_string(),
    };
    io::Error::new(error.kind(), format!("bind {addr} ({}): {why}", protocol.name()))
}
