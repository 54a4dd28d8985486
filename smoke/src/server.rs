//! What `#[smoke::server]` generates code against: the [`Server`] trait (a [`Session`] type
//! with a configuration, a tick and its entry points), and the tick's view of a worker
//! ([`Worker`]).
//!
//! The macro only forwards: it turns the attribute into a [`Config`] and each `#[on_*]` method
//! into a method of [`Handler`](crate::Handler), [`Session`] or [`Server`]. The event loop stays
//! in the runtime, the protocols in the driver.

use std::net::SocketAddr;

use crate::config::Config;
use crate::driver::session::Session;
use crate::driver::ws_conn::{WsConn, publish};
use crate::driver::{Demux, Machine, SessionService, Stream, ws};
use crate::handle::{ServerHandle, announce_server};
use crate::proto::ws::Message;
use crate::rt::conn::Conn;
use crate::rt::error::Error;
use crate::rt::peer::Peer;
use crate::rt::worker::{Tick, TickInfo};
use crate::sys::ShutdownSignals;
use crate::sys::inherit::InheritedSocket;

/// A session type turned into a server: its configuration, what each worker does on a tick,
/// and the entry points. `#[smoke::server]` writes this impl (with those of
/// [`Handler`](crate::Handler) and [`Session`]); see [`Session`] for one written by hand.
pub trait Server: Session {
    /// The configuration given in the attribute, before environment overrides.
    fn config() -> Config;

    /// Runs on every worker at the `tick` cadence, with that worker's sessions.
    fn on_tick(worker: &mut Worker<'_, '_, Self>) {
        let _ = worker;
    }

    /// Starts the server with `config` (usually `Self::config()`, adjusted) and returns its
    /// handle: for tests, and for programs that do more than serve.
    fn spawn(config: Config) -> Result<ServerHandle, Error> {
        if config.processes > 1 {
            return Err(Error::config("processes needs Server::serve: spawn runs the server in this process"));
        }
        spawn_server::<Self>(config, Vec::new())
    }

    /// Runs the server until SIGINT/SIGTERM: [`config`](Server::config) with the environment
    /// overrides of [`Config::apply_env`] applied, the bound addresses printed to stdout, then a
    /// graceful drain on the signal.
    ///
    /// Sockets systemd passed (socket activation: `LISTEN_FDS`) are served by the listeners
    /// they match; with [`Config::handoff`], the ones of the server running at that path are
    /// taken over, and that server drains once this one serves.
    fn serve() -> Result<(), Error> {
        serve_server::<Self>(Self::config().apply_env()?, |_| {})
    }

    /// [`serve`](Server::serve) with `config` (the environment overrides applied on top), and
    /// `ready` called with the server once it is bound and before it is announced: for what
    /// only the bound addresses tell (a port the kernel chose). In a worker process of
    /// [`Config::processes`] it runs in each worker.
    fn serve_with(config: Config, ready: impl FnOnce(&ServerHandle)) -> Result<(), Error> {
        serve_server::<Self>(config.apply_env()?, ready)
    }
}

/// `Server::serve`: the sockets handed to the process, the server, its announcement, the
/// handover from a predecessor and to a successor, then the wait for a signal.
fn serve_server<T: Server>(config: Config, ready: impl FnOnce(&ServerHandle)) -> Result<(), Error> {
    let signals = ShutdownSignals::install().map_err(|e| Error::io("install the SIGINT/SIGTERM handlers", e))?;
    let name = std::any::type_name::<T>().rsplit("::").next().unwrap_or("smoke");
    let supervised = crate::sys::process::supervised()
        .map_err(|e| Error::io("take the sockets the supervisor passed (SMOKE_SUPERVISED)", e))?;
    if let Some(supervised) = supervised {
        return serve_supervised::<T>(config, name, signals, supervised, ready);
    }
    let mut inherited = crate::sys::inherit::systemd_sockets()
        .map_err(|e| Error::io("take the sockets systemd passed (LISTEN_FDS)", e))?;
    let handoff_path = config.handoff.clone();
    let predecessor = match &handoff_path {
        Some(path) => crate::handoff::Predecessor::take_over(path)?.map(|(predecessor, sockets)| {
            inherited.extend(sockets);
            predecessor
        }),
        None => None,
    };
    if config.processes > 1 {
        check_before_starting_workers(&config)?;
        return crate::supervisor::supervise(&config, name, signals, inherited, predecessor);
    }
    let server = spawn_server::<T>(config, inherited)?;
    server.reload_on_sighup(name)?;
    ready(&server);
    announce_server(name, &server);
    if let Some(predecessor) = predecessor {
        // Serving already: a predecessor that does not confirm is its problem, not ours.
        if let Err(e) = predecessor.serving() {
            eprintln!("{name}: {e}");
        }
    }
    if let Some(path) = &handoff_path {
        crate::handoff::await_successor(path, &server, name)?;
    }
    server.wait_for(signals)
}

/// What every worker process would find wrong at start, found once by their supervisor: the
/// certificates and the cluster address.
fn check_before_starting_workers(config: &Config) -> Result<(), Error> {
    if config.metrics.is_some() {
        return Err(Error::config(
            "metrics cannot be used with processes > 1 yet: the worker processes would share its port",
        ));
    }
    #[cfg(feature = "tls")]
    if let Some(files) = config.tls_files()? {
        crate::driver::certs::TlsConfigs::load(&files, config.runtime.max_read_buffer)?;
    }
    #[cfg(not(feature = "tls"))]
    config.tls_files()?;
    config.cluster.as_deref().map_or(Ok(()), check_cluster_url)
}

fn check_cluster_url(url: &str) -> Result<(), Error> {
    smoke_rules::check_cluster_url(url).map_err(|why| Error::config(format!("cluster {url:?}: {why}")))
}

/// One of a supervisor's worker processes: the server on the sockets it was handed, with its
/// share of the cores unless `threads` says otherwise; the supervisor announces, hands over and
/// restarts.
fn serve_supervised<T: Server>(
    mut config: Config,
    name: &str,
    signals: ShutdownSignals,
    mut supervised: crate::sys::process::Supervised,
    ready: impl FnOnce(&ServerHandle),
) -> Result<(), Error> {
    if config.runtime.threads == 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = (cores / config.processes.max(1)).max(1);
        config = config.threads(share);
    }
    let sockets = std::mem::take(&mut supervised.sockets);
    let server = spawn_server::<T>(config, sockets)?;
    server.reload_on_sighup(name)?;
    ready(&server);
    if let Err(e) = supervised.serving() {
        return Err(Error::io("tell the supervisor this worker serves", e));
    }
    server.wait_for(signals)
}

/// Starts a [`Server`] type: its sessions, speaking each listener's protocol.
fn spawn_server<T: Server>(config: Config, inherited: Vec<InheritedSocket>) -> Result<ServerHandle, Error> {
    let (specs, min_read_buffer) = (config.listener_specs(), config.min_read_buffer());
    let tls_files = config.tls_files()?;
    let proxy_protocol = config.proxy_protocol;
    let (cluster, metrics, bind) = (config.cluster.clone(), config.metrics.clone(), config.runtime.bind);
    #[cfg(feature = "game")]
    let game = config.game.clone().with_shared();
    let (runtime, http, ws, protocols) = config.into_parts();
    crate::driver::ws_conn::note_deflating(ws.deflate);
    let deflate = ws.deflate;
    #[cfg(feature = "tls")]
    let tls = match tls_files {
        Some(files) => {
            Some(crate::driver::certs::TlsConfigs::load(&files, runtime.max_read_buffer.max(min_read_buffer))?)
        }
        None => None,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls_files;
    let service = SessionService {
        protocols: protocols.clone(),
        http,
        ws,
        on_tick: on_tick::<T>,
        #[cfg(feature = "tls")]
        tls: tls.clone(),
        proxy_protocol,
        #[cfg(feature = "game")]
        game,
    };
    let bridge = start_bridge(cluster.as_deref(), runtime.max_mailbox)?;
    let bridge_for_workers = bridge.clone().map(|b| b as _);
    let server =
        ServerHandle::start(&runtime, &specs, min_read_buffer, protocols, service, bridge_for_workers, inherited)?
            .with_deflate(deflate)
            .with_metrics(metrics.as_ref(), bind)?;
    #[cfg(feature = "cluster")]
    if let Some(bridge) = bridge {
        bridge.attach(server.workers());
    }
    #[cfg(feature = "tls")]
    let server = server.with_certificates(tls.map(|tls| tls.certificates));
    Ok(server)
}

#[cfg(feature = "cluster")]
type Bridge = std::sync::Arc<crate::driver::cluster::Bridge>;
#[cfg(not(feature = "cluster"))]
type Bridge = std::sync::Arc<dyn crate::rt::shared::TopicBridge>;

/// The bridge to the cluster at `url`, started (it connects in the background), if there is one.
fn start_bridge(url: Option<&str>, max_outbox: usize) -> Result<Option<Bridge>, Error> {
    let Some(url) = url else { return Ok(None) };
    check_cluster_url(url)?;
    #[cfg(feature = "cluster")]
    return Ok(Some(std::sync::Arc::new(crate::driver::cluster::Bridge::start(url, max_outbox)?)));
    #[cfg(not(feature = "cluster"))]
    {
        let _ = max_outbox;
        Err(Error::config("cluster needs smoke's `cluster` feature, which this build leaves out"))
    }
}

/// `Server::on_tick`, as the driver calls it.
fn on_tick<T: Server>(tick: &mut Tick<'_, Stream<T>, T, Demux<T>>, service: &SessionService<T>) {
    T::on_tick(&mut Worker { tick, service });
}

/// One worker during its tick, as `#[on_tick]` sees it: its UDP peers, TCP connections and
/// WebSockets with their sessions, sends to any address, publications, and how late the tick
/// is. Writes and sends leave when the tick returns, batched.
pub struct Worker<'t, 'w, T> {
    tick: &'t mut Tick<'w, Stream<T>, T, Demux<T>>,
    service: &'t SessionService<T>,
}

impl<T> std::fmt::Debug for Worker<'_, '_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("index", &self.tick.worker()).field("tick", &self.tick.info()).finish()
    }
}

impl<T: Session> Worker<'_, '_, T> {
    /// This tick's sequence number, lateness and missed count.
    pub fn tick(&self) -> TickInfo {
        self.tick.info()
    }

    /// This worker's index (0-based).
    pub fn index(&self) -> usize {
        self.tick.worker()
    }

    /// Calls `visit` with each UDP peer's session.
    pub fn for_each_peer(&mut self, visit: impl FnMut(&mut T, &mut Peer<'_>)) {
        self.tick.for_each_peer(visit);
    }

    /// Calls `visit` with each raw TCP connection's session.
    pub fn for_each_tcp(&mut self, mut visit: impl FnMut(&mut T, &mut Conn<'_>)) {
        self.tick.for_each_connection(|stream, conn| {
            if let Some(Machine::Raw) = stream.machine.serving() {
                visit(&mut stream.user, conn);
            }
        });
    }

    /// Calls `visit` with each open WebSocket's session (not those closing).
    pub fn for_each_websocket(&mut self, mut visit: impl FnMut(&mut T, &mut WsConn<'_, '_>)) {
        let settings = &self.service.ws;
        self.tick.for_each_connection(|stream, conn| {
            if let Some(Machine::Ws(machine)) = stream.machine.serving() {
                ws::with_open(machine, conn, settings, |ws| visit(&mut stream.user, ws));
            }
        });
    }

    /// Sends a datagram from this worker's UDP socket; false without a `udp` listener.
    pub fn send_to(&mut self, addr: SocketAddr, datagram: &[u8]) -> bool {
        self.tick.send_to(addr, datagram)
    }

    /// Publishes to a WebSocket topic, reaching subscribers on every worker.
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<Message<'m>>) {
        let from = self.tick.worker();
        publish(self.tick.workers(), Some(from), topic, message.into(), self.service.ws.deflate);
    }

    /// Calls `visit` with each player connected to this worker's game sockets. What it sends
    /// leaves when the visit is done.
    #[cfg(feature = "game")]
    pub fn for_each_player(&mut self, mut visit: impl FnMut(&mut T, &mut crate::game::Player<'_>)) {
        self.tick.for_each_demux(|game, io| game.for_each_player(io, &mut visit));
    }

    /// Queues `message` on `channel` to every player of this worker (each worker reaches its
    /// own: a tick runs on every worker). Players whose queue is full miss it; their count is
    /// returned.
    #[cfg(feature = "game")]
    pub fn broadcast(&mut self, channel: crate::game::Channel, message: &[u8]) -> usize {
        let mut refused = 0;
        self.for_each_player(|_, player| refused += usize::from(player.send(channel, message).is_err()));
        refused
    }

    /// This worker's connected players.
    #[cfg(feature = "game")]
    pub fn players(&mut self) -> usize {
        let mut players = 0;
        self.tick.for_each_demux(|game, _| players += game.players());
        players
    }

    /// This worker's UDP peers.
    pub fn peers(&self) -> usize {
        self.tick.peers()
    }

    /// This worker's connections (all listeners).
    pub fn connections(&self) -> usize {
        self.tick.connections()
    }
}
