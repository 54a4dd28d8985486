//! The attribute's keys: each one's name and how its value is read and becomes a `Config`
//! setter call. A new setting adds a row here; parsing and expansion are driven by the table.

use smoke_rules::Protocol;

/// How a key's value is read and what it becomes in the generated `Config`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeyKind {
    /// A port, a "host:port" string, or an array of them: `Config::listen(protocol, ..)`.
    Listener(Protocol),
    /// An IP address string: `Config::bind`.
    Bind,
    /// "auto" or a number >= 1: `Config::threads`.
    Threads,
    /// A number in `min..=max`, passed to the `Config` setter of the same name.
    Count { min: u64, max: u64 },
    /// Milliseconds >= 1, passed as a `Duration` (in `Some` when `optional`) to the named
    /// `Config` setter.
    Millis { setter: &'static str, optional: bool },
    /// A path string starting with `/`, passed to the `Config` setter of the same name. It
    /// also declares `declares` (the handlers of that protocol become valid) on the listener of
    /// `needs`.
    Path { declares: Protocol, needs: Protocol },
    /// `true` or `false`, passed to the `Config` setter of the same name.
    Flag,
    /// A network interface name, passed to the `Config` setter of the same name; served
    /// through the listeners of `needs`.
    Interface { needs: Protocol },
    /// A cluster's broker address, `"nats://HOST:PORT"`.
    Broker,
    /// A file path string (or an array of them), passed to the `Config` setter of the same name
    /// once per path.
    File,
    /// A port or a "host:port" string for a listener of the server's own (not a protocol's),
    /// passed to the `Config` setter of the same name.
    Admin,
}

pub(crate) struct KeySpec {
    pub(crate) name: &'static str,
    pub(crate) kind: KeyKind,
}

pub(crate) const KEYS: &[KeySpec] = &[
    KeySpec { name: "tcp", kind: KeyKind::Listener(Protocol::Tcp) },
    KeySpec { name: "http", kind: KeyKind::Listener(Protocol::Http) },
    KeySpec { name: "bind", kind: KeyKind::Bind },
    KeySpec { name: "threads", kind: KeyKind::Threads },
    KeySpec { name: "fd_cache", kind: KeyKind::Count { min: 0, max: u64::MAX } },
    KeySpec { name: "max_connections", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "idle_timeout_ms", kind: KeyKind::Millis { setter: "idle_timeout", optional: true } },
    KeySpec { name: "send_timeout_ms", kind: KeyKind::Millis { setter: "send_timeout", optional: true } },
    KeySpec { name: "max_write_buffer", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "max_read_buffer", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "shutdown_timeout_ms", kind: KeyKind::Millis { setter: "shutdown_timeout", optional: false } },
    KeySpec {
        name: "max_header_bytes",
        kind: KeyKind::Count { min: smoke_rules::limits::MIN_HEADER_BYTES as u64, max: u64::MAX },
    },
    KeySpec { name: "max_headers", kind: KeyKind::Count { min: 1, max: smoke_rules::limits::MAX_HEADERS as u64 } },
    KeySpec { name: "max_body", kind: KeyKind::Count { min: 0, max: u64::MAX } },
    KeySpec { name: "header_timeout_ms", kind: KeyKind::Millis { setter: "header_timeout", optional: false } },
    KeySpec { name: "keep_alive_timeout_ms", kind: KeyKind::Millis { setter: "keep_alive_timeout", optional: false } },
    KeySpec { name: "body_timeout_ms", kind: KeyKind::Millis { setter: "body_timeout", optional: false } },
    KeySpec { name: "ws", kind: KeyKind::Listener(Protocol::Ws) },
    KeySpec { name: "ws_path", kind: KeyKind::Path { declares: Protocol::Ws, needs: Protocol::Http } },
    KeySpec { name: "max_message", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "max_backpressure", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "close_on_backpressure_limit", kind: KeyKind::Flag },
    KeySpec { name: "ws_deflate", kind: KeyKind::Flag },
    KeySpec { name: "ws_deflate_dedicated", kind: KeyKind::Flag },
    KeySpec { name: "ws_idle_timeout_ms", kind: KeyKind::Millis { setter: "ws_idle_timeout", optional: true } },
    KeySpec { name: "max_mailbox", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "udp", kind: KeyKind::Listener(Protocol::Udp) },
    KeySpec { name: "udp_idle_timeout_ms", kind: KeyKind::Millis { setter: "udp_idle_timeout", optional: true } },
    KeySpec {
        name: "udp_new_peer_timeout_ms",
        kind: KeyKind::Millis { setter: "udp_new_peer_timeout", optional: false },
    },
    KeySpec { name: "max_peers", kind: KeyKind::Count { min: 1, max: u64::MAX } },
    KeySpec { name: "max_datagram", kind: KeyKind::Count { min: 1, max: smoke_rules::limits::MAX_DATAGRAM as u64 } },
    KeySpec { name: "pfring", kind: KeyKind::Interface { needs: Protocol::Udp } },
    KeySpec { name: "https", kind: KeyKind::Listener(Protocol::Https) },
    KeySpec { name: "wss", kind: KeyKind::Listener(Protocol::Wss) },
    KeySpec { name: "tls", kind: KeyKind::Listener(Protocol::Tls) },
    KeySpec { name: "game", kind: KeyKind::Listener(Protocol::Game) },
    KeySpec { name: "game_protocol", kind: KeyKind::Count { min: 0, max: u64::MAX } },
    KeySpec { name: "max_clients", kind: KeyKind::Count { min: 1, max: u32::MAX as u64 } },
    KeySpec { name: "tls_cert", kind: KeyKind::File },
    KeySpec { name: "tls_key", kind: KeyKind::File },
    KeySpec { name: "proxy_protocol", kind: KeyKind::Flag },
    KeySpec { name: "cluster", kind: KeyKind::Broker },
    KeySpec { name: "metrics", kind: KeyKind::Admin },
    KeySpec { name: "processes", kind: KeyKind::Count { min: 1, max: smoke_rules::limits::MAX_PROCESSES as u64 } },
];
