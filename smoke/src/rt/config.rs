//! The runtime's settings ([`RuntimeConfig`], part of the public `Config`), their defaults, and
//! the per-worker [`Limits`] they resolve to when a server starts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::rt::shared::Caps;

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
/// Default [`Config::udp_idle_timeout`](crate::Config::udp_idle_timeout): 30 s.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::max_datagram`](crate::Config::max_datagram): 2 KiB, above an Ethernet
/// MTU's payload.
pub const DEFAULT_MAX_DATAGRAM: usize = 2048;
/// Default [`Config::max_mailbox`](crate::Config::max_mailbox): 16 MiB of publications waiting
/// for one worker, seconds of a busy topic's traffic; a worker that far behind is stuck.
pub const DEFAULT_MAX_MAILBOX: usize = 16 << 20;
/// Default [`Config::send_timeout`](crate::Config::send_timeout): 30 s without the peer taking
/// any of the output waiting for it, as nginx's `send_timeout` (60 s) but for realtime peers,
/// where a reader stalled for half a minute is gone.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::max_peers`](crate::Config::max_peers): UDP sessions across all workers.
/// 65,536 is a large game shard's players many times over, and bounds what a spoofed-source
/// flood can make the server hold.
pub const DEFAULT_MAX_PEERS: usize = 65_536;
/// Default [`Config::udp_new_peer_timeout`](crate::Config::udp_new_peer_timeout): a peer that
/// has sent one datagram and nothing since is dropped after 5 s, so a spoofed source (which
/// never sends twice from the same address on purpose) costs its slot for seconds, not
/// `udp_idle_timeout`.
pub const DEFAULT_UDP_NEW_PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// File descriptors [`Config::max_connections`](crate::Config::max_connections) leaves to the
/// process when it is derived from `RLIMIT_NOFILE`, beyond the server's own (listeners, epoll
/// instances, event and timer fds): the files, pipes and client sockets of the application
/// and its libraries.
pub const FD_RESERVE: usize = 64;

/// The runtime's part of a server's configuration: threads, the bind address, and the limits
/// of connections and UDP peers. Read it through [`Config::runtime`](crate::Config::runtime);
/// each field is set by the `Config` setter of the same name, which documents it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// See [`Config::bind`](crate::Config::bind).
    pub bind: IpAddr,
    /// See [`Config::threads`](crate::Config::threads); 0 means one per core.
    pub threads: usize,
    /// See [`Config::fd_cache`](crate::Config::fd_cache).
    pub fd_cache: usize,
    /// See [`Config::max_connections`](crate::Config::max_connections); `None` derives it from
    /// `RLIMIT_NOFILE` when the server starts.
    pub max_connections: Option<usize>,
    /// See [`Config::send_timeout`](crate::Config::send_timeout).
    pub send_timeout: Option<Duration>,
    /// See [`Config::idle_timeout`](crate::Config::idle_timeout).
    pub idle_timeout: Option<Duration>,
    /// See [`Config::max_write_buffer`](crate::Config::max_write_buffer).
    pub max_write_buffer: usize,
    /// See [`Config::max_read_buffer`](crate::Config::max_read_buffer).
    pub max_read_buffer: usize,
    /// See [`Config::read_budget`](crate::Config::read_budget).
    pub read_budget: usize,
    /// See [`Config::shutdown_timeout`](crate::Config::shutdown_timeout).
    pub shutdown_timeout: Duration,
    /// See [`Config::tick`](crate::Config::tick).
    pub tick: Option<Duration>,
    /// See [`Config::udp_idle_timeout`](crate::Config::udp_idle_timeout).
    pub udp_idle_timeout: Option<Duration>,
    /// See [`Config::max_datagram`](crate::Config::max_datagram).
    pub max_datagram: usize,
    /// See [`Config::max_peers`](crate::Config::max_peers).
    pub max_peers: usize,
    /// See [`Config::udp_new_peer_timeout`](crate::Config::udp_new_peer_timeout).
    pub udp_new_peer_timeout: Duration,
    /// See [`Config::pfring`](crate::Config::pfring).
    pub pfring: Option<String>,
    /// See [`Config::max_mailbox`](crate::Config::max_mailbox).
    pub max_mailbox: usize,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            threads: 0,
            fd_cache: DEFAULT_FD_CACHE,
            max_connections: None,
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
            idle_timeout: None,
            max_write_buffer: DEFAULT_MAX_WRITE_BUFFER,
            max_read_buffer: DEFAULT_MAX_READ_BUFFER,
            read_budget: DEFAULT_READ_BUDGET,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            tick: None,
            udp_idle_timeout: Some(DEFAULT_UDP_IDLE_TIMEOUT),
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_peers: DEFAULT_MAX_PEERS,
            udp_new_peer_timeout: DEFAULT_UDP_NEW_PEER_TIMEOUT,
            pfring: None,
            max_mailbox: DEFAULT_MAX_MAILBOX,
        }
    }
}

impl RuntimeConfig {
    /// The worker count this configuration starts: `threads`, or the available cores when 0.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 { self.threads } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }

    /// The caps the workers of a server share, for `threads` workers whose sockets are open
    /// (they are counted against `RLIMIT_NOFILE` when `max_connections` is derived from it).
    pub(crate) fn caps(&self, threads: usize) -> Caps {
        Caps {
            max_connections: self.max_connections.unwrap_or_else(|| derived_max_connections(threads)),
            max_peers: self.max_peers,
            max_mailbox: self.max_mailbox,
        }
    }
}

/// `max_connections` when the configuration leaves it to the fd limit: what the process may
/// still open, less an epoll and a timer fd per worker (opened after this count) and
/// [`FD_RESERVE`] for the rest of the process. A connection beyond it would fail with EMFILE
/// somewhere less prepared for it than accept, which backs off (see `worker/accept.rs`).
fn derived_max_connections(threads: usize) -> usize {
    let (Ok(limit), Ok(open)) = (crate::sys::open_files_limit(), crate::sys::open_files()) else {
        log::warn!("cannot read the fd limit; max_connections is unlimited");
        return usize::MAX;
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    limit.saturating_sub(open + 2 * threads + FD_RESERVE).max(1)
}

/// The configuration a worker runs with, resolved once at start.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) fd_cache: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) send_timeout: Option<Duration>,
    pub(crate) max_write_buffer: usize,
    pub(crate) max_read_buffer: usize,
    pub(crate) read_budget: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) tick: Option<Duration>,
    pub(crate) max_datagram: usize,
    pub(crate) udp_idle_timeout: Option<Duration>,
    pub(crate) udp_new_peer_timeout: Duration,
}

impl Limits {
    /// `config` for one worker. `min_read_buffer` is what the protocols need to
    /// keep of one message before they can answer it (an HTTP request up to its limits, a
    /// WebSocket message up to `max_message`): less, and a connection would be cut before its
    /// protocol could answer 413 or 1009.
    pub(crate) fn resolve(config: &RuntimeConfig, min_read_buffer: usize) -> Limits {
        Limits {
            fd_cache: config.fd_cache,
            idle_timeout: config.idle_timeout,
            send_timeout: config.send_timeout,
            max_write_buffer: config.max_write_buffer,
            max_read_buffer: config.max_read_buffer.max(min_read_buffer),
            read_budget: config.read_budget,
            shutdown_timeout: config.shutdown_timeout,
            tick: config.tick,
            max_datagram: config.max_datagram,
            udp_idle_timeout: config.udp_idle_timeout,
            udp_new_peer_timeout: config.udp_new_peer_timeout,
        }
    }
}
