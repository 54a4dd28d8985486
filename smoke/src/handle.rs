//! A running server's handle ([`ServerHandle`]), starting raw TCP servers from a closure
//! ([`spawn`], [`serve`]), and the one announcement a served server prints.

use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "tls")]
use std::os::fd::AsRawFd;
use std::sync::Arc;

use smoke_rules::{Listen, Protocol};

use crate::admin::Admin;
use crate::config::{Config, RuntimeConfig};
use crate::driver::raw::{FromFn, Handler};
use crate::driver::ws_conn::publish;
use crate::proto::ws::Message;
use crate::rt::conn::Conn;
use crate::rt::error::Error;
use crate::rt::shared::TopicBridge;
use crate::rt::spawn::{ListenerSpec, Listening, Running};
use crate::rt::worker::Service;
use crate::stats::Stats;
use crate::sys::ShutdownSignals;
use crate::sys::inherit::InheritedSocket;

/// A running server: its bound addresses, its counters, and the way to stop it.
///
/// Dropping the handle shuts the server down (as [`shutdown`](ServerHandle::shutdown) does).
#[derive(Debug)]
pub struct ServerHandle {
    running: Running,
    addrs: Vec<(Protocol, SocketAddr)>,
    /// Its WebSockets may negotiate permessage-deflate: publications are compressed too.
    deflate: bool,
    /// The TLS listeners' certificates, when it has any.
    #[cfg(feature = "tls")]
    certificates: Option<std::sync::Arc<crate::driver::certs::Certificates>>,
    /// The admin listener (`metrics`), stopped after the workers (it says "not ready" while
    /// they drain).
    admin: Option<Admin>,
}

impl ServerHandle {
    /// Starts `service` and pairs each bound address with its listener's protocol.
    pub(crate) fn start<S: Service>(
        runtime: &RuntimeConfig,
        specs: &[ListenerSpec],
        min_read_buffer: usize,
        protocols: Vec<Protocol>,
        service: S,
        bridge: Option<Arc<dyn TopicBridge>>,
        inherited: Vec<InheritedSocket>,
    ) -> Result<ServerHandle, Error> {
        let running = crate::rt::spawn::spawn(runtime, specs, min_read_buffer, service, bridge, inherited)?;
        let addrs = protocols.into_iter().zip(running.addrs().iter().copied()).collect();
        Ok(ServerHandle {
            running,
            addrs,
            deflate: false,
            #[cfg(feature = "tls")]
            certificates: None,
            admin: None,
        })
    }

    /// Starts the admin listener on `listen` (a bare port on `bind`), if there is one.
    pub(crate) fn with_metrics(mut self, listen: Option<&Listen>, bind: IpAddr) -> Result<ServerHandle, Error> {
        if let Some(listen) = listen {
            let addr =
                crate::rt::spawn::resolve(listen, bind).map_err(|e| Error::config(format!("metrics {listen}: {e}")))?;
            self.admin = Some(Admin::start(addr, self.running.workers().clone())?);
        }
        Ok(self)
    }

    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`) bound, if the server has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    pub(crate) fn with_deflate(mut self, deflate: bool) -> ServerHandle {
        self.deflate = deflate;
        self
    }

    #[cfg(feature = "tls")]
    pub(crate) fn with_certificates(
        mut self,
        certificates: Option<std::sync::Arc<crate::driver::certs::Certificates>>,
    ) -> ServerHandle {
        self.certificates = certificates;
        self
    }

    /// Reads the TLS certificates and keys again from their files: new handshakes get the new
    /// ones, connections already open keep theirs, none is dropped. On any error (a file
    /// missing or malformed, a key that does not match) the certificates in use stay and the
    /// error names the file. A server without TLS listeners has nothing to reload: `Ok`.
    /// `serve` calls this on SIGHUP.
    pub fn reload_certificates(&self) -> Result<(), Error> {
        #[cfg(feature = "tls")]
        if let Some(certificates) = &self.certificates {
            return certificates.reload();
        }
        Ok(())
    }

    /// The server's workers as other threads see them (for the cluster bridge).
    #[cfg(feature = "cluster")]
    pub(crate) fn workers(&self) -> &Arc<crate::rt::shared::WorkerSet> {
        self.running.workers()
    }

    /// Every listener's sockets, for a successor to take over; empty once the server stops.
    pub(crate) fn listening(&self) -> &Arc<std::sync::Mutex<Vec<Listening>>> {
        self.running.listening()
    }

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
        self.running.workers().stats()
    }

    /// Each worker's counters, by worker index.
    pub fn worker_stats(&self) -> Vec<Stats> {
        self.running.workers().worker_stats()
    }

    /// Publishes `message` to `topic` on this server's WebSocket subscribers, from any thread
    /// (see [`WsConn::publish`](crate::ws::WsConn::publish)).
    pub fn publish<'m>(&self, topic: &str, message: impl Into<Message<'m>>) {
        publish(self.running.workers(), None, topic, message.into(), self.deflate);
    }

    /// Reloads the certificates on every SIGHUP from now on (`serve` does this), on a thread of
    /// its own, saying on stdout that it did (or on stderr why not). Nothing to do without TLS
    /// listeners.
    pub(crate) fn reload_on_sighup(&self, name: &str) -> Result<(), Error> {
        #[cfg(feature = "tls")]
        if let Some(certificates) = self.certificates.clone() {
            let failed = |e| Error::io("install the SIGHUP handler", e);
            let event = crate::sys::reload_signal().map_err(failed)?;
            let epoll = crate::sys::Epoll::new().map_err(failed)?;
            epoll.add(event.as_raw_fd(), 0, crate::sys::Interest::READABLE).map_err(failed)?;
            let name = name.to_owned();
            let waiter = move || {
                let mut events = crate::sys::Events::with_capacity(1);
                while epoll.wait(&mut events, None).is_ok() {
                    if events.len() == 0 {
                        continue; // interrupted by another signal
                    }
                    event.drain();
                    match certificates.reload() {
                        Ok(()) => println!("{name}: certificates reloaded"),
                        Err(e) => eprintln!("{name}: certificates not reloaded, the old ones stay: {e}"),
                    }
                }
            };
            std::thread::Builder::new()
                .name("smoke-reload".into())
                .spawn(waiter)
                .map_err(|e| Error::io("start the certificate reload thread", e))?;
        }
        let _ = name;
        Ok(())
    }

    /// Stops accepting, lets pending output flush (up to `shutdown_timeout`), closes every
    /// connection with [`CloseReason::Shutdown`](crate::CloseReason::Shutdown) and joins the
    /// workers.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.running.stop_and_join()
    }

    /// Blocks until SIGINT or SIGTERM (or until a worker stops on its own), then shuts down.
    pub fn wait_for_signal(self) -> Result<(), Error> {
        let signals = ShutdownSignals::install().map_err(|e| Error::io("install the SIGINT/SIGTERM handlers", e))?;
        self.wait_for(signals)
    }

    /// [`wait_for_signal`](ServerHandle::wait_for_signal) with the handlers already installed:
    /// `serve` installs them before it announces the server, so a supervisor that signals as
    /// soon as it sees the announcement cannot kill the process with the default action.
    pub(crate) fn wait_for(mut self, signals: ShutdownSignals) -> Result<(), Error> {
        self.running.wait_for(signals)
    }
}

/// Says where a served server listens, one line per listener on stdout:
/// `Echo listening on 127.0.0.1:9000 (tcp)`; an HTTP listener adds the address a browser on
/// this machine opens: `Chatter listening on 0.0.0.0:8090 (http), open http://127.0.0.1:8090/`.
pub(crate) fn announce(name: &str, addrs: &[(Protocol, SocketAddr)]) {
    for (protocol, addr) in addrs {
        match browser_url(*protocol, *addr) {
            Some(url) => println!("{name} listening on {addr} ({}), open {url}", protocol.name()),
            None => println!("{name} listening on {addr} ({})", protocol.name()),
        }
    }
}

/// Where a browser on this machine reaches an HTTP listener: its address, or loopback for a
/// listener on every address.
fn browser_url(protocol: Protocol, addr: SocketAddr) -> Option<String> {
    let scheme = match protocol {
        Protocol::Http => "http",
        Protocol::Https => "https",
        _ => return None,
    };
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    Some(format!("{scheme}://{host}:{}/", addr.port()))
}

/// [`announce`]s `server`'s listeners, and its admin listener last:
/// `Echo listening on 127.0.0.1:9100 (metrics)`.
pub(crate) fn announce_server(name: &str, server: &ServerHandle) {
    announce(name, server.local_addrs());
    if let Some(addr) = server.metrics_addr() {
        println!("{name} listening on {addr} (metrics)");
    }
}

/// Starts a raw TCP server and returns at once with its handle. `new_session` builds each
/// connection's session on the worker that accepted it (before [`Handler::on_connect`]). Every
/// listener must be a `tcp` one: the other protocols need a [`Server`](crate::Server).
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
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn<H, F>(config: Config, new_session: F) -> Result<ServerHandle, Error>
where
    H: Handler,
    F: Fn(&mut Conn<'_>) -> H + Send + Sync + 'static,
{
    if config.cluster.is_some() {
        return Err(Error::config(
            "cluster bridges WebSocket topics, which need a smoke::Server (#[smoke::server]); \
             smoke::spawn serves raw TCP",
        ));
    }
    if config.processes > 1 {
        return Err(Error::config("processes needs a smoke::Server served with Server::serve"));
    }
    if config.proxy_protocol {
        return Err(Error::config(
            "proxy_protocol needs a smoke::Server (#[smoke::server]): smoke::spawn hands every byte, \
             a PROXY header too, to its Handler",
        ));
    }
    let (specs, min_read_buffer) = (config.listener_specs(), config.min_read_buffer());
    let metrics = config.metrics.clone();
    let (runtime, _, _, protocols) = config.into_parts();
    let service = FromFn { new_session, protocols: protocols.clone() };
    ServerHandle::start(&runtime, &specs, min_read_buffer, protocols, service, None, Vec::new())?
        .with_metrics(metrics.as_ref(), runtime.bind)
}

/// Runs a raw TCP server until SIGINT or SIGTERM, then drains and stops it: [`spawn`], the
/// bound addresses printed to stdout, then [`ServerHandle::wait_for_signal`].
pub fn serve<H, F>(config: Config, new_session: F) -> Result<(), Error>
where
    H: Handler,
    F: Fn(&mut Conn<'_>) -> H + Send + Sync + 'static,
{
    let signals = ShutdownSignals::install().map_err(|e| Error::io("install the SIGINT/SIGTERM handlers", e))?;
    let server = spawn(config, new_session)?;
    announce_server("smoke", &server);
    server.wait_for(signals)
}
