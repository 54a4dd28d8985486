//! The face's [`Config`]: what a server listens on and the limits it runs with, built with
//! chained setters and composed of the runtime's, HTTP's and WebSocket's own settings, with the
//! environment overrides in `env.rs`. One setter per knob; the parts are readable, not writable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use smoke_rules::{Listen, Protocol};

use crate::proto::http::{self, Limits};
use crate::proto::ws::WsConfig;
pub use crate::rt::config::{
    DEFAULT_FD_CACHE, DEFAULT_MAX_DATAGRAM, DEFAULT_MAX_MAILBOX, DEFAULT_MAX_PEERS, DEFAULT_MAX_READ_BUFFER,
    DEFAULT_MAX_WRITE_BUFFER, DEFAULT_READ_BUDGET, DEFAULT_SEND_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_UDP_IDLE_TIMEOUT, DEFAULT_UDP_NEW_PEER_TIMEOUT, FD_RESERVE, RuntimeConfig,
};
use crate::rt::spawn::ListenerSpec;

/// A server's configuration: listeners, worker threads and limits. Built with chained setters;
/// every limit has a documented default. What it holds is read through [`listeners`],
/// [`runtime`], [`http_limits`] and [`ws_config`]; it is changed only through the setters.
///
/// ```
/// use std::time::Duration;
/// let config = smoke::Config::new()
///     .tcp(9090)
///     .tcp("127.0.0.1:9091")
///     .threads(2)
///     .idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(config.listeners().len(), 2);
/// assert_eq!(config.runtime().threads, 2);
/// ```
///
/// [`listeners`]: Config::listeners
/// [`runtime`]: Config::runtime
/// [`http_limits`]: Config::http_limits
/// [`ws_config`]: Config::ws_config
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub(crate) listeners: Vec<(Protocol, Listen)>,
    pub(crate) runtime: RuntimeConfig,
    pub(crate) http: Limits,
    pub(crate) ws: WsConfig,
    /// The TLS listeners' certificate chains and their private keys, as PEM files, paired in
    /// order.
    pub(crate) tls_certs: Vec<PathBuf>,
    pub(crate) tls_keys: Vec<PathBuf>,
    /// Every stream listener's connections start with a PROXY protocol header.
    pub(crate) proxy_protocol: bool,
    /// The NATS server that bridges topics between nodes.
    pub(crate) cluster: Option<String>,
    /// Where a running server hands its sockets to its successor (see `Config::handoff`).
    pub(crate) handoff: Option<PathBuf>,
    /// Worker processes [`Server::serve`](crate::Server::serve) starts; 0 or 1 for none.
    pub(crate) processes: usize,
    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`) binds, if anywhere.
    pub(crate) metrics: Option<Listen>,
    /// The game listeners' protocol, key, public addresses and seats.
    #[cfg(feature = "game")]
    pub(crate) game: crate::driver::game::GameSettings,
}

impl Config {
    /// No listeners, one worker per available core, default limits.
    pub fn new() -> Config {
        Config::default()
    }

    /// Adds a raw TCP listener: a port (on the [`bind`](Config::bind) address) or `"host:port"`.
    pub fn tcp(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Tcp, listen)
    }

    /// Adds an HTTP/1.1 listener: a port (on the [`bind`](Config::bind) address) or `"host:port"`.
    pub fn http(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Http, listen)
    }

    /// HTTP: header block size above which a request gets 431. Default 8 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Config {
        self.http.max_header_bytes = bytes.max(smoke_rules::limits::MIN_HEADER_BYTES);
        self
    }

    /// HTTP: header count above which a request gets 431. Default 64, at most 128.
    pub fn max_headers(mut self, count: usize) -> Config {
        self.http.max_headers = count.clamp(1, smoke_rules::limits::MAX_HEADERS);
        self
    }

    /// HTTP: how long a request's head may take, from its first byte (from accept for a
    /// connection's first request), before it gets 408 and a close: slowloris protection, and
    /// what closes a socket that connects and says nothing (quietly). Default 10 s.
    pub fn header_timeout(mut self, timeout: Duration) -> Config {
        self.http.header_timeout = timeout;
        self
    }

    /// HTTP: how long a kept-alive connection may wait for its next request's first byte
    /// before it is closed, quietly. Default 30 s.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Config {
        self.http.keep_alive_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// HTTP: how long a request's body may go without progress before it gets 408 and a close.
    /// Default 30 s.
    pub fn body_timeout(mut self, timeout: Duration) -> Config {
        self.http.body_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// HTTP: body size above which a request gets 413. Default 1 MiB.
    pub fn max_body(mut self, bytes: usize) -> Config {
        self.http.max_body = bytes;
        self
    }

    /// Adds an HTTPS listener: HTTP/1.1 over TLS 1.3 (ALPN `http/1.1`), with the certificates
    /// of [`tls_cert`](Config::tls_cert). [`ws_path`](Config::ws_path) upgrades work on it too
    /// (`wss://`).
    pub fn https(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Https, listen)
    }

    /// Adds a dedicated WebSocket listener over TLS (`wss://`), as [`ws`](Config::ws).
    pub fn wss(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Wss, listen)
    }

    /// Adds a raw TCP listener over TLS: the handlers of `tcp` see the plaintext, and their
    /// `on_connect` runs once the handshake is done.
    pub fn tls(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Tls, listen)
    }

    /// TLS: a certificate chain's PEM file (the server's certificate first), for the TLS
    /// listeners; its private key is the [`tls_key`](Config::tls_key) given in the same place.
    /// Given several times, each handshake gets the first certificate valid for the name the
    /// client asked for (SNI), or the first one. Files are read at start and again on
    /// [`ServerHandle::reload_certificates`](crate::ServerHandle::reload_certificates) (SIGHUP
    /// under `serve`).
    pub fn tls_cert(mut self, path: impl Into<PathBuf>) -> Config {
        self.tls_certs.push(path.into());
        self
    }

    /// TLS: the PEM file of the private key (PKCS#8, PKCS#1 or SEC1) of the
    /// [`tls_cert`](Config::tls_cert) given in the same place.
    pub fn tls_key(mut self, path: impl Into<PathBuf>) -> Config {
        self.tls_keys.push(path.into());
        self
    }

    /// Adds a dedicated WebSocket listener: every request on it must be an upgrade (any path;
    /// [`Session::on_upgrade`](crate::Session::on_upgrade) may refuse); others get 426.
    pub fn ws(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Ws, listen)
    }

    /// WebSocket: also accept upgrades on the HTTP listeners at this path (the query is
    /// ignored when matching). Default: none.
    pub fn ws_path(mut self, path: impl Into<String>) -> Config {
        self.ws.path = Some(path.into());
        self
    }

    /// WebSocket: a message (all its fragments) above this closes the connection with 1009.
    /// Default [`DEFAULT_MAX_MESSAGE`](crate::ws::DEFAULT_MAX_MESSAGE).
    pub fn max_message(mut self, bytes: usize) -> Config {
        self.ws.max_message = bytes.max(1);
        self
    }

    /// WebSocket: output buffered per connection (waiting for a slow peer) above which a send
    /// or a topic delivery is dropped. Default
    /// [`DEFAULT_MAX_BACKPRESSURE`](crate::ws::DEFAULT_MAX_BACKPRESSURE).
    pub fn max_backpressure(mut self, bytes: usize) -> Config {
        self.ws.max_backpressure = bytes.max(1);
        self
    }

    /// Behind a load balancer (HAProxy's `send-proxy` or `send-proxy-v2`, an AWS or GCP network
    /// balancer with the PROXY protocol on): every connection to the server's stream listeners
    /// (TCP, HTTP, WebSocket, and their TLS forms, where the header comes before TLS) starts
    /// with a PROXY protocol header, v1 or v2, and `peer_addr()` reports the client it names.
    /// A connection without a valid header, or without all of it within `header_timeout`, is
    /// closed and counted in [`Stats::proxy_failures`](crate::Stats::proxy_failures): a client
    /// that could skip the header could forge one. The balancer's own health checks (`LOCAL`,
    /// `UNKNOWN`) keep the balancer's address. Default off.
    pub fn proxy_protocol(mut self, on: bool) -> Config {
        self.proxy_protocol = on;
        self
    }

    /// Restarts that drop nobody: [`Server::serve`](crate::Server::serve) takes the listening
    /// sockets over from the server already running with the same `path` (a Unix socket it
    /// answers on), starts serving on them, and only then does the old one stop accepting and
    /// drain (HTTP connections after the answer they are owed, with `Connection: close`;
    /// WebSockets with 1001). Then this one answers at `path` for the next. A first start, with
    /// nobody at `path`, binds as usual. Default: none.
    pub fn handoff(mut self, path: impl Into<PathBuf>) -> Config {
        self.handoff = Some(path.into());
        self
    }

    /// Worker processes: [`Server::serve`](crate::Server::serve) becomes a supervisor that
    /// binds the listeners, starts `count` copies of the program sharing them (each with
    /// [`threads`](Config::threads) workers; by default the cores divided among them), restarts
    /// one that dies (after 0.1 s, doubling up to 10 s while they keep dying young), and on
    /// SIGINT/SIGTERM drains them all. With [`handoff`](Config::handoff) the supervisor hands
    /// the sockets over. A crash then costs the connections of one process, not of the server.
    /// Not available to [`Server::spawn`](crate::Server::spawn), which runs in the caller's
    /// process. Default 1: no supervisor.
    pub fn processes(mut self, count: usize) -> Config {
        self.processes = count.clamp(1, smoke_rules::limits::MAX_PROCESSES);
        self
    }

    /// An admin listener on `listen` (a port on the [`bind`](Config::bind) address, or
    /// `"host:port"`): Prometheus's text exposition of every counter at `/metrics` (summed and
    /// per worker), `/healthz` (200 while the process serves) and `/readyz` (200 while every
    /// worker runs and none is draining, else 503), on a thread of its own. Meant for the
    /// monitoring network: keep it off the public one. Default: none.
    pub fn metrics(mut self, listen: impl Into<Listen>) -> Config {
        self.metrics = Some(listen.into());
        self
    }

    /// Topics across nodes: every publication is also sent to the NATS server at `url`
    /// (`"nats://HOST:PORT"`), and publications other nodes send there reach this server's
    /// subscribers, each once, in each publisher's order. Delivery between nodes is at most
    /// once, as NATS core's is: while the broker is unreachable, local delivery goes on and what
    /// would have crossed is dropped and counted (`Stats::cluster_dropped`); the bridge
    /// reconnects with back-off and subscribes again. Only topics with subscribers here are
    /// subscribed to on the broker. Needs the `cluster` feature (on by default). Default: none.
    pub fn cluster(mut self, url: &str) -> Config {
        self.cluster = Some(url.to_owned());
        self
    }

    /// WebSocket: close a connection (at once, without a close frame: its queue is full) when a
    /// send or delivery hits `max_backpressure`, instead of dropping that message. Default off.
    pub fn close_on_backpressure_limit(mut self, close: bool) -> Config {
        self.ws.close_on_backpressure_limit = close;
        self
    }

    /// WebSocket: permessage-deflate (RFC 7692) for clients that offer it (browsers do). Every
    /// answer sets `server_no_context_takeover` and `client_no_context_takeover`: no message
    /// depends on the one before, so one compressor and one decompressor per worker serve
    /// every connection (a connection holds no zlib memory), and a publication is compressed
    /// once for all its subscribers. Messages under 64 bytes go uncompressed; `max_message`
    /// bounds the inflated size (1009 before a bomb inflates further). Default off: it costs
    /// CPU on every message, which a deployment should choose to spend.
    pub fn ws_deflate(mut self, on: bool) -> Config {
        self.ws.deflate = on;
        self
    }

    /// WebSocket: permessage-deflate with a dedicated compression context per connection, kept
    /// between messages as the client offers (its `server_no_context_takeover` and
    /// `client_no_context_takeover` honoured, not imposed): similar consecutive messages
    /// compress far better, at the cost of each connection's own zlib state (measured in the
    /// book's TLS and compression chapter). Publications are compressed per subscriber. Turns
    /// [`ws_deflate`](Config::ws_deflate) on. Default off.
    pub fn ws_deflate_dedicated(mut self, on: bool) -> Config {
        self.ws.deflate_dedicated = on;
        self.ws.deflate |= on;
        self
    }

    /// WebSocket: a connection silent this long gets a ping; silent for as long again, it is
    /// closed with 1001. `None` disables. Default
    /// [`DEFAULT_WS_IDLE_TIMEOUT`](crate::ws::DEFAULT_WS_IDLE_TIMEOUT).
    pub fn ws_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.ws.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Topics: bytes of publications waiting for one worker above which a new publication is
    /// dropped for that worker's subscribers (and counted in
    /// [`Stats::mail_dropped`](crate::Stats::mail_dropped)); publishers never wait. Default
    /// [`DEFAULT_MAX_MAILBOX`].
    pub fn max_mailbox(mut self, bytes: usize) -> Config {
        self.runtime.max_mailbox = bytes.max(1);
        self
    }

    /// Adds a UDP socket per worker (SO_REUSEPORT): datagrams go to
    /// [`Session::on_datagram`](crate::Session::on_datagram), one session per remote address.
    pub fn udp(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Udp, listen)
    }

    /// UDP: a peer silent this long has its session closed
    /// ([`CloseReason::Timeout`](crate::CloseReason::Timeout)). `None` keeps peers until closed.
    /// Default [`DEFAULT_UDP_IDLE_TIMEOUT`].
    pub fn udp_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.runtime.udp_idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// UDP: peer sessions across all workers. A datagram from a new address while this many
    /// exist is dropped and counted ([`Stats::peers_refused`](crate::Stats::peers_refused)).
    /// Default [`DEFAULT_MAX_PEERS`].
    pub fn max_peers(mut self, max: usize) -> Config {
        self.runtime.max_peers = max.max(1);
        self
    }

    /// UDP: a peer that has sent a single datagram is closed after this long
    /// ([`CloseReason::Timeout`](crate::CloseReason::Timeout)), unless a second one comes: a
    /// spoofed source costs its session seconds, not `udp_idle_timeout`. Never longer than
    /// `udp_idle_timeout`, and off with it. Default [`DEFAULT_UDP_NEW_PEER_TIMEOUT`].
    pub fn udp_new_peer_timeout(mut self, timeout: Duration) -> Config {
        self.runtime.udp_new_peer_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// UDP: the largest datagram received; a longer one is dropped and counted
    /// ([`Stats::datagrams_truncated`](crate::Stats::datagrams_truncated)), never delivered cut
    /// short. Default [`DEFAULT_MAX_DATAGRAM`], at most 65,507.
    pub fn max_datagram(mut self, bytes: usize) -> Config {
        self.runtime.max_datagram = bytes.clamp(1, smoke_rules::limits::MAX_DATAGRAM);
        self
    }

    /// Runs the tick on every worker at this cadence (a timerfd per worker). Default: none.
    pub fn tick(mut self, interval: Duration) -> Config {
        self.runtime.tick = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// UDP input from the kernel's packet ring on `interface` instead of the UDP sockets: an
    /// AF_PACKET TPACKET_V3 ring per worker (mmap'd, filled a block at a time), flows hashed
    /// across workers (PACKET_FANOUT), a BPF filter letting only UDP to the `udp` listeners'
    /// ports through. Datagrams reach `on_datagram` exactly as from a socket; replies leave
    /// through the UDP sockets, which then receive nothing themselves (every datagram would
    /// otherwise arrive twice), so input comes from `interface` only. Needs CAP_NET_RAW and a
    /// `udp` listener. (The name is libsmoke's, whose PF_RING needed a kernel module; this is
    /// the kernel's own ring.)
    pub fn pfring(mut self, interface: impl Into<String>) -> Config {
        self.runtime.pfring = Some(interface.into());
        self
    }

    /// Adds a listener for `protocol`: a port (on the [`bind`](Config::bind) address) or
    /// `"host:port"`.
    pub fn listen(mut self, protocol: Protocol, listen: impl Into<Listen>) -> Config {
        self.listeners.push((protocol, listen.into()));
        self
    }

    /// The address bare ports bind to. Default `0.0.0.0`; `::` listens on IPv6 (and IPv4, unless
    /// the host sets `net.ipv6.bindv6only`).
    pub fn bind(mut self, addr: IpAddr) -> Config {
        self.runtime.bind = addr;
        self
    }

    /// Worker threads; 0 (the default) means one per available core.
    pub fn threads(mut self, threads: usize) -> Config {
        self.runtime.threads = threads;
        self
    }

    /// Fds below this are looked up in a flat array, the rest in a hash map. Default
    /// [`DEFAULT_FD_CACHE`]. Connections are never refused because of their fd.
    pub fn fd_cache(mut self, fd_cache: usize) -> Config {
        self.runtime.fd_cache = fd_cache;
        self
    }

    /// Open connections across all workers (lingering ones included: they hold an fd). Any
    /// worker accepts while the server has room; at the limit, accepting pauses (connections
    /// wait in the kernel's backlog) until one closes. Default: what `RLIMIT_NOFILE` leaves
    /// after the server's own fds and [`FD_RESERVE`] more, so accept reaches the cap before
    /// the process runs out of fds.
    pub fn max_connections(mut self, max: usize) -> Config {
        self.runtime.max_connections = Some(max.max(1));
        self
    }

    /// Closes connections that send nothing for this long ([`CloseReason::Timeout`]): only
    /// input counts, not timers, topic deliveries or output. `None` (or zero) keeps them (the
    /// protocols have their own: HTTP's `keep_alive_timeout`, WebSocket's ping). Default: none.
    ///
    /// [`CloseReason::Timeout`]: crate::CloseReason::Timeout
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.runtime.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Closes a connection whose output waits while the peer takes none of it
    /// ([`CloseReason::SendTimeout`]): a client that stops reading cannot pin its output
    /// forever. Progress is what the peer acknowledges (TCP's count), not what our socket
    /// buffer takes; it is looked at every half timeout, and two looks in a row without any
    /// close the connection: between one and one and a half timeouts after the peer stopped.
    /// A peer that takes a byte per half timeout stays; one that is cut is reset, so the kernel
    /// does not go on holding its output. Needs Linux 4.1 or later (`tcpi_bytes_acked`); on an
    /// older kernel there is no telling, and the timeout is off. `None` (or zero) waits.
    /// Default [`DEFAULT_SEND_TIMEOUT`].
    ///
    /// [`CloseReason::SendTimeout`]: crate::CloseReason::SendTimeout
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.runtime.send_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Buffered output per connection above which reading from it pauses. Default
    /// [`DEFAULT_MAX_WRITE_BUFFER`].
    pub fn max_write_buffer(mut self, bytes: usize) -> Config {
        self.runtime.max_write_buffer = bytes.max(1);
        self
    }

    /// Unconsumed input per connection above which it is closed. Default
    /// [`DEFAULT_MAX_READ_BUFFER`].
    pub fn max_read_buffer(mut self, bytes: usize) -> Config {
        self.runtime.max_read_buffer = bytes.max(1);
        self
    }

    /// Bytes read from one connection per wake-up. Default [`DEFAULT_READ_BUDGET`].
    pub fn read_budget(mut self, bytes: usize) -> Config {
        self.runtime.read_budget = bytes.max(1);
        self
    }

    /// How long shutdown waits for pending output. Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Config {
        self.runtime.shutdown_timeout = timeout;
        self
    }

    /// The listeners, in the order they were added.
    pub fn listeners(&self) -> &[(Protocol, Listen)] {
        &self.listeners
    }

    /// The runtime's settings: threads, the bind address, connection and UDP limits.
    pub fn runtime(&self) -> &RuntimeConfig {
        &self.runtime
    }

    /// The request limits of HTTP listeners.
    pub fn http_limits(&self) -> &Limits {
        &self.http
    }

    /// The WebSocket settings.
    pub fn ws_config(&self) -> &WsConfig {
        &self.ws
    }

    /// The worker count this configuration starts: `threads`, or the available cores when 0.
    pub fn worker_threads(&self) -> usize {
        self.runtime.worker_threads()
    }

    /// The listeners as the runtime starts them.
    pub(crate) fn listener_specs(&self) -> Vec<ListenerSpec> {
        self.listeners
            .iter()
            .map(|(protocol, listen)| ListenerSpec {
                listen: listen.clone(),
                name: protocol.name(),
                datagram: protocol.is_datagram(),
                client_speaks_first: protocol.client_speaks_first(),
            })
            .collect()
    }

    /// The input a connection must be able to keep for its protocol to answer a message at its
    /// limit (413 for an HTTP request, 1009 for a WebSocket message) rather than be cut.
    pub(crate) fn min_read_buffer(&self) -> usize {
        let serves = |wanted: &[Protocol]| self.listeners.iter().any(|(p, _)| wanted.contains(&p.family()));
        let mut floor = 0;
        if serves(&[Protocol::Http, Protocol::Ws]) {
            floor = http::chunked::max_encoded_len(self.http.max_body).saturating_add(self.http.max_header_bytes);
        }
        if serves(&[Protocol::Ws]) || self.ws.path.is_some() {
            // A frame's header is at most 14 bytes.
            floor = floor.max(self.ws.max_message.saturating_add(14));
        }
        floor
    }

    /// The TLS listeners' certificate and key files, paired; `None` when no listener speaks
    /// TLS. A TLS listener without certificates, or certificates without their keys, is a
    /// configuration error.
    pub(crate) fn tls_files(&self) -> Result<Option<Vec<(PathBuf, PathBuf)>>, crate::Error> {
        let Some((protocol, _)) = self.listeners.iter().find(|(p, _)| p.is_tls()) else { return Ok(None) };
        if !cfg!(feature = "tls") {
            return Err(crate::Error::config(format!(
                "a {} listener needs smoke's `tls` feature, which this build leaves out",
                protocol.name()
            )));
        }
        if self.tls_certs.is_empty() {
            return Err(crate::Error::config(format!(
                "a {} listener needs a certificate: set tls_cert and tls_key (or SMOKE_TLS_CERT and SMOKE_TLS_KEY)",
                protocol.name()
            )));
        }
        if self.tls_certs.len() != self.tls_keys.len() {
            return Err(crate::Error::config(format!(
                "{} tls_cert file(s) but {} tls_key file(s): each certificate needs its key",
                self.tls_certs.len(),
                self.tls_keys.len()
            )));
        }
        Ok(Some(self.tls_certs.iter().cloned().zip(self.tls_keys.iter().cloned()).collect()))
    }

    /// The parts a server starts from: the runtime's settings, the protocols' settings and the
    /// listeners' protocols.
    pub(crate) fn into_parts(self) -> (RuntimeConfig, Limits, WsConfig, Vec<Protocol>) {
        let protocols = self.listeners.iter().map(|(p, _)| *p).collect();
        (self.runtime, self.http, self.ws, protocols)
    }
}
