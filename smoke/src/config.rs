//! What a server listens on and the limits it runs with.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Sessions whose fd is below this live in a flat array indexed by fd; the rest in a hash map.
/// A process here may hold 20,000 files; 65,536 covers a default-configured Linux box, and the
/// array only grows as high as the largest fd actually seen.
pub const DEFAULT_FD_CACHE: usize = 65_536;
/// Output buffered for one connection above which smoke stops reading from it until the peer
/// catches up. 1 MiB keeps a fast link busy across a few round trips while bounding what one slow
/// reader can pin.
pub const DEFAULT_MAX_WRITE_BUFFER: usize = 1 << 20;
/// Unconsumed input kept for one connection before it is closed with
/// [`CloseReason::InputOverflow`](crate::CloseReason::InputOverflow): a handler that never
/// consumes must not let a peer grow memory without limit.
pub const DEFAULT_MAX_READ_BUFFER: usize = 1 << 20;
/// Bytes read from one connection per wake-up before the worker serves the others; 256 KiB is
/// a few scratch buffers' worth, enough to drain a burst without letting a flood starve anyone.
pub const DEFAULT_READ_BUDGET: usize = 256 << 10;
/// How long [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) waits for pending output
/// to flush before closing what is left.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`Config::udp_idle_timeout`]: 30 s.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`Config::max_datagram`]: 2 KiB, above an Ethernet MTU's payload.
pub const DEFAULT_MAX_DATAGRAM: usize = 2048;

pub use smoke_rules::{Listen, Protocol};

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

/// A server's configuration: listeners, worker threads and limits. Built with chained setters;
/// every limit has a documented default.
///
/// ```
/// use std::time::Duration;
/// let config = smoke::Config::new()
///     .tcp(9090)
///     .tcp("127.0.0.1:9091")
///     .threads(2)
///     .idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(config.listeners.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Listeners in the order they were added; see [`Config::tcp`].
    pub listeners: Vec<(Protocol, Listen)>,
    /// See [`Config::bind`].
    pub bind: IpAddr,
    /// See [`Config::threads`].
    pub threads: usize,
    /// See [`Config::fd_cache`].
    pub fd_cache: usize,
    /// See [`Config::max_connections`].
    pub max_connections: usize,
    /// See [`Config::idle_timeout`].
    pub idle_timeout: Option<Duration>,
    /// See [`Config::max_write_buffer`].
    pub max_write_buffer: usize,
    /// See [`Config::max_read_buffer`].
    pub max_read_buffer: usize,
    /// See [`Config::read_budget`].
    pub read_budget: usize,
    /// See [`Config::shutdown_timeout`].
    pub shutdown_timeout: Duration,
    /// Request size limits of HTTP listeners; see [`Config::max_body`] and its neighbours.
    pub http_limits: crate::http::Limits,
    /// WebSocket settings; see [`Config::ws_path`] and its neighbours.
    pub ws: crate::ws::WsConfig,
    /// See [`Config::udp_idle_timeout`].
    pub udp_idle_timeout: Option<Duration>,
    /// See [`Config::max_datagram`].
    pub max_datagram: usize,
    /// See [`Config::tick`].
    pub tick: Option<Duration>,
    /// See [`Config::pfring`].
    pub pfring: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

impl Config {
    /// No listeners, one worker per available core, default limits.
    pub fn new() -> Config {
        Config {
            listeners: Vec::new(),
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            threads: 0,
            fd_cache: DEFAULT_FD_CACHE,
            max_connections: usize::MAX,
            idle_timeout: None,
            max_write_buffer: DEFAULT_MAX_WRITE_BUFFER,
            max_read_buffer: DEFAULT_MAX_READ_BUFFER,
            read_budget: DEFAULT_READ_BUDGET,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            http_limits: crate::http::Limits::default(),
            ws: crate::ws::WsConfig::default(),
            udp_idle_timeout: Some(DEFAULT_UDP_IDLE_TIMEOUT),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            tick: None,
            pfring: None,
        }
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
        self.http_limits.max_header_bytes = bytes.max(smoke_rules::limits::MIN_HEADER_BYTES);
        self
    }

    /// HTTP: header count above which a request gets 431. Default 64, at most 128.
    pub fn max_headers(mut self, count: usize) -> Config {
        self.http_limits.max_headers = count.clamp(1, smoke_rules::limits::MAX_HEADERS);
        self
    }

    /// HTTP: how long a started request may take to complete its header block before it gets
    /// 408 and a close (slowloris protection). Default 10 s.
    pub fn header_timeout(mut self, timeout: Duration) -> Config {
        self.http_limits.header_timeout = timeout;
        self
    }

    /// HTTP: body size above which a request gets 413. Default 1 MiB.
    pub fn max_body(mut self, bytes: usize) -> Config {
        self.http_limits.max_body = bytes;
        self
    }

    /// Adds a dedicated WebSocket listener: every request on it must be an upgrade (any path;
    /// [`Server::on_upgrade`](crate::Server::on_upgrade) may refuse); others get 426.
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

    /// WebSocket: close a connection (at once, without a close frame: its queue is full) when a
    /// send or delivery hits `max_backpressure`, instead of dropping that message. Default off.
    pub fn close_on_backpressure_limit(mut self, close: bool) -> Config {
        self.ws.close_on_backpressure_limit = close;
        self
    }

    /// WebSocket: a connection silent this long gets a ping; silent for as long again, it is
    /// closed with 1001. `None` disables. Default
    /// [`DEFAULT_WS_IDLE_TIMEOUT`](crate::ws::DEFAULT_WS_IDLE_TIMEOUT).
    pub fn ws_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.ws.idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Adds a UDP socket per worker (SO_REUSEPORT): datagrams go to
    /// [`Handler::on_datagram`](crate::Handler::on_datagram), one session per remote address.
    pub fn udp(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Udp, listen)
    }

    /// UDP: a peer silent this long has its session closed
    /// ([`CloseReason::Timeout`](crate::CloseReason::Timeout)). `None` keeps peers until closed.
    /// Default [`DEFAULT_UDP_IDLE_TIMEOUT`].
    pub fn udp_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.udp_idle_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// UDP: the largest datagram received; a longer one is dropped and counted
    /// ([`Stats::datagrams_truncated`](crate::Stats::datagrams_truncated)), never delivered cut
    /// short. Default [`DEFAULT_MAX_DATAGRAM`], at most 65,507.
    pub fn max_datagram(mut self, bytes: usize) -> Config {
        self.max_datagram = bytes.clamp(1, smoke_rules::limits::MAX_DATAGRAM);
        self
    }

    /// Runs the tick on every worker at this cadence (a timerfd per worker). Default: none.
    pub fn tick(mut self, interval: Duration) -> Config {
        self.tick = Some(interval.max(Duration::from_millis(1)));
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
        self.pfring = Some(interface.into());
        self
    }

    /// Adds a listener for `protocol`.
    pub fn listen(mut self, protocol: Protocol, listen: impl Into<Listen>) -> Config {
        self.listeners.push((protocol, listen.into()));
        self
    }

    /// The address bare ports bind to. Default `0.0.0.0`; `::` listens on IPv6 (and IPv4, unless
    /// the host sets `net.ipv6.bindv6only`).
    pub fn bind(mut self, addr: IpAddr) -> Config {
        self.bind = addr;
        self
    }

    /// Worker threads; 0 (the default) means one per available core.
    pub fn threads(mut self, threads: usize) -> Config {
        self.threads = threads;
        self
    }

    /// Fds below this are looked up in a flat array, the rest in a hash map. Default
    /// [`DEFAULT_FD_CACHE`]. Connections are never refused because of their fd.
    pub fn fd_cache(mut self, fd_cache: usize) -> Config {
        self.fd_cache = fd_cache;
        self
    }

    /// Open connections across all workers; each worker takes its share (rounded up). At the
    /// limit a worker stops accepting (connections wait in the kernel's backlog) until one of its
    /// connections closes. Default: unlimited.
    pub fn max_connections(mut self, max: usize) -> Config {
        self.max_connections = max.max(1);
        self
    }

    /// Closes connections with no I/O for this long ([`CloseReason::Timeout`](crate::CloseReason)).
    /// Default: none.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Buffered output per connection above which reading from it pauses. Default
    /// [`DEFAULT_MAX_WRITE_BUFFER`].
    pub fn max_write_buffer(mut self, bytes: usize) -> Config {
        self.max_write_buffer = bytes.max(1);
        self
    }

    /// Unconsumed input per connection above which it is closed. Default
    /// [`DEFAULT_MAX_READ_BUFFER`].
    pub fn max_read_buffer(mut self, bytes: usize) -> Config {
        self.max_read_buffer = bytes.max(1);
        self
    }

    /// Bytes read from one connection per wake-up. Default [`DEFAULT_READ_BUDGET`].
    pub fn read_budget(mut self, bytes: usize) -> Config {
        self.read_budget = bytes.max(1);
        self
    }

    /// How long shutdown waits for pending output. Default [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Config {
        self.shutdown_timeout = timeout;
        self
    }

    /// Applies the documented environment overrides, so a deployment (or a test) can move a
    /// compiled server without rebuilding it:
    ///
    /// | variable | value | effect |
    /// |---|---|---|
    /// | `SMOKE_TCP` | port or host:port, comma-separated | replaces every TCP listener |
    /// | `SMOKE_HTTP`, `SMOKE_WS`, `SMOKE_UDP` | as above | the same for those protocols (an error while this server has none) |
    /// | `SMOKE_PFRING` | a network interface name | takes UDP input from the packet ring on it ([`Config::pfring`]; needs a udp listener) |
    /// | `SMOKE_THREADS` | `auto` or a number ≥ 1 | worker threads |
    /// | `SMOKE_BIND` | an IP address | address for bare ports |
    ///
    /// A malformed value is an `InvalidInput` error naming the variable and the value.
    pub fn apply_env(self) -> io::Result<Config> {
        self.apply_overrides(|name| std::env::var(name).ok())
    }

    /// [`apply_env`](Config::apply_env) over any lookup (used by tests without touching the
    /// process environment).
    pub fn apply_overrides(mut self, lookup: impl Fn(&str) -> Option<String>) -> io::Result<Config> {
        let bad = |name: &str, value: &str, why: String| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{name}={value:?}: {why}"))
        };
        if let Some(value) = lookup("SMOKE_BIND") {
            self.bind = value.trim().parse().map_err(|_| bad("SMOKE_BIND", &value, "expected an IP address".into()))?;
        }
        if let Some(value) = lookup("SMOKE_THREADS") {
            self.threads = match value.trim() {
                "auto" => 0,
                n => match n.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad("SMOKE_THREADS", &value, "expected `auto` or a number >= 1".into()));
                    }
                },
            };
        }
        if let Some(value) = lookup("SMOKE_PFRING") {
            // Sets or moves the ring: the same binary can take its UDP input from a ring in
            // one deployment and from its sockets in another.
            if !self.listeners.iter().any(|(p, _)| *p == Protocol::Udp) {
                return Err(bad(
                    "SMOKE_PFRING",
                    &value,
                    "the packet ring feeds udp listeners; this server has none".into(),
                ));
            }
            let interface = value.trim();
            if let Err(why) = smoke_rules::check_interface_name(interface) {
                return Err(bad("SMOKE_PFRING", &value, format!("expected a network interface name ({why})")));
            }
            self.pfring = Some(interface.to_owned());
        }
        for protocol in Protocol::ALL {
            let name = protocol.name();
            let variable = format!("SMOKE_{}", name.to_ascii_uppercase());
            let Some(value) = lookup(&variable) else { continue };
            if !self.listeners.iter().any(|(declared, _)| *declared == protocol) {
                return Err(bad(&variable, &value, format!("this server has no {name} listener to move")));
            }
            let mut parsed = Vec::new();
            for part in value.split(',') {
                parsed.push(Listen::parse(part).map_err(|why| bad(&variable, &value, why.to_string()))?);
            }
            self.listeners.retain(|(p, _)| *p != protocol);
            self.listeners.extend(parsed.into_iter().map(|listen| (protocol, listen)));
        }
        Ok(self)
    }

    /// The worker count this configuration starts: `threads`, or the available cores when 0.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_replace_listeners_and_threads() {
        let env = |name: &str| match name {
            "SMOKE_TCP" => Some("127.0.0.1:0,7000".to_string()),
            "SMOKE_THREADS" => Some("3".to_string()),
            "SMOKE_BIND" => Some("::1".to_string()),
            _ => None,
        };
        let config = Config::new().tcp(9090).threads(1).apply_overrides(env).unwrap();
        assert_eq!(
            config.listeners,
            [(Protocol::Tcp, Listen::Addr("127.0.0.1:0".into())), (Protocol::Tcp, Listen::Port(7000))]
        );
        assert_eq!(config.worker_threads(), 3);
        assert_eq!(config.bind, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_overrides_name_the_variable_and_value() {
        let only = |key: &'static str, value: &'static str| move |name: &str| (name == key).then(|| value.to_string());
        let err = Config::new().apply_overrides(only("SMOKE_THREADS", "zero")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_THREADS=\"zero\": expected `auto` or a number >= 1");
        let err = Config::new().tcp(1).apply_overrides(only("SMOKE_TCP", "99999")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_TCP=\"99999\": port 99999 is out of range (0..=65535)");
        let err = Config::new().tcp(1).apply_overrides(only("SMOKE_HTTP", "8080")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_HTTP=\"8080\": this server has no http listener to move");
        let err = Config::new().apply_overrides(only("SMOKE_TCP", "8080")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_TCP=\"8080\": this server has no tcp listener to move");
        let err = Config::new().apply_overrides(only("SMOKE_BIND", "nowhere")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_BIND=\"nowhere\": expected an IP address");
        assert_eq!(Config::new().threads(4).apply_overrides(only("SMOKE_THREADS", "auto")).unwrap().threads, 0);
    }
}
