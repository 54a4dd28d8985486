//! Listeners: the protocols a server can listen with, what a listener value may be (a port or
//! `host:port`), and when two listeners of one server would share a socket.

use std::fmt;
use std::net::IpAddr;

/// The protocol a listener speaks. Not `#[non_exhaustive]`: the driver that picks a
/// connection's protocol matches on it exhaustively, so a new protocol cannot be forgotten there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Raw TCP: bytes in, bytes out.
    Tcp,
    /// HTTP/1.1 requests.
    Http,
    /// WebSocket: an HTTP/1.1 upgrade on any path, then messages.
    Ws,
    /// UDP datagrams, one session per remote address.
    Udp,
    /// HTTP/1.1 over TLS.
    Https,
    /// WebSocket over TLS (`wss://`).
    Wss,
    /// Raw TCP over TLS: the handlers of `tcp` see the plaintext.
    Tls,
    /// Secure game sessions over UDP (netcode 1.02): connect tokens, a challenge before any
    /// state, sealed packets, channels.
    Game,
}

impl Protocol {
    /// Every protocol, in the order the attribute documents them.
    pub const ALL: [Protocol; 8] = [
        Protocol::Tcp,
        Protocol::Http,
        Protocol::Ws,
        Protocol::Udp,
        Protocol::Https,
        Protocol::Wss,
        Protocol::Tls,
        Protocol::Game,
    ];

    /// The lowercase name used in attribute keys, environment variables (`SMOKE_<NAME>`) and
    /// messages.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Ws => "ws",
            Protocol::Udp => "udp",
            Protocol::Https => "https",
            Protocol::Wss => "wss",
            Protocol::Tls => "tls",
            Protocol::Game => "game",
        }
    }

    /// What the connection speaks inside TLS (itself, for the others): the handlers a listener
    /// needs are those of its family.
    pub fn family(self) -> Protocol {
        match self {
            Protocol::Https => Protocol::Http,
            Protocol::Wss => Protocol::Ws,
            Protocol::Tls => Protocol::Tcp,
            plain => plain,
        }
    }

    /// True for the listeners that speak TLS first.
    pub fn is_tls(self) -> bool {
        self != self.family()
    }

    /// The protocol called `name` (as [`name`](Protocol::name) spells it).
    pub fn from_name(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// True for UDP and game listeners: datagram sockets; the rest are TCP listeners.
    pub fn is_datagram(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::Game)
    }

    /// True when a connection's first bytes come from the client, so accepting can wait for
    /// them (TCP_DEFER_ACCEPT) and reading can start right after accept.
    pub fn client_speaks_first(self) -> bool {
        // A TLS client opens with its ClientHello.
        matches!(self, Protocol::Http | Protocol::Ws) || self.is_tls()
    }
}

/// Where a listener binds: a bare port (on the server's bind address) or a full `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A port on the configured bind address; 0 asks the kernel for a free one.
    Port(u16),
    /// `"127.0.0.1:9090"`, `"[::1]:9090"`, `"localhost:9090"`.
    Addr(String),
}

/// Why a listener value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Nothing was given.
    Empty,
    /// A port above 65535 (the digits as written).
    PortOutOfRange(String),
    /// Neither a port nor `host:port` (the text as written).
    Malformed(String),
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Empty => f.write_str("empty listener: expected a port or \"host:port\""),
            ListenError::PortOutOfRange(port) => write!(f, "port {port} is out of range (0..=65535)"),
            ListenError::Malformed(text) => write!(f, "expected a port or \"host:port\", not {text:?}"),
        }
    }
}

impl std::error::Error for ListenError {}

/// A port as written (digits only): in range, or the error naming it.
pub fn parse_port(digits: &str) -> Result<u16, ListenError> {
    digits.parse::<u16>().map_err(|_| ListenError::PortOutOfRange(digits.to_owned()))
}

impl Listen {
    /// Parses a listener as written in an attribute or an environment variable: a port, or
    /// `host:port` with a non-empty host.
    pub fn parse(text: &str) -> Result<Listen, ListenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ListenError::Empty);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return parse_port(text).map(Listen::Port);
        }
        match text.rsplit_once(':') {
            Some((host, digits))
                if !host.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                parse_port(digits)?;
                Ok(Listen::Addr(text.to_owned()))
            }
            _ => Err(ListenError::Malformed(text.to_owned())),
        }
    }

    /// The port; for an address that does not parse, `None`.
    pub fn port(&self) -> Option<u16> {
        match self {
            Listen::Port(port) => Some(*port),
            Listen::Addr(text) => text.rsplit_once(':').and_then(|(_, digits)| digits.parse().ok()),
        }
    }

    /// The host of `host:port` (brackets of an IPv6 address removed); `None` for a bare port.
    pub fn host(&self) -> Option<&str> {
        match self {
            Listen::Port(_) => None,
            Listen::Addr(text) => {
                let host = text.rsplit_once(':').map_or(text.as_str(), |(host, _)| host);
                Some(host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host))
            }
        }
    }

    /// What this listener binds, as far as it is known without resolving names: a bare port
    /// binds `bind`.
    pub fn socket(&self, protocol: Protocol, bind: IpAddr) -> Socket<'_> {
        let host = match self.host() {
            None => Host::Ip(bind),
            Some(host) => host.parse().map_or(Host::Name(host), Host::Ip),
        };
        Socket { datagram: protocol.is_datagram(), host, port: self.port().unwrap_or(0) }
    }
}

impl From<u16> for Listen {
    fn from(port: u16) -> Listen {
        Listen::Port(port)
    }
}

impl From<&str> for Listen {
    fn from(addr: &str) -> Listen {
        Listen::Addr(addr.to_owned())
    }
}

impl From<String> for Listen {
    fn from(addr: String) -> Listen {
        Listen::Addr(addr)
    }
}

impl From<std::net::SocketAddr> for Listen {
    fn from(addr: std::net::SocketAddr) -> Listen {
        Listen::Addr(addr.to_string())
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Port(port) => write!(f, "{port}"),
            Listen::Addr(addr) => f.write_str(addr),
        }
    }
}

/// A listener's host: an address, or a name not resolved yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// An IP address (`0.0.0.0` and `::` stand for every address).
    Ip(IpAddr),
    /// A host name, such as `localhost`.
    Name(&'a str),
}

/// The socket a listener binds: its transport, host and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Socket<'a> {
    /// UDP rather than TCP.
    pub datagram: bool,
    /// Where it binds.
    pub host: Host<'a>,
    /// Its port; 0 asks the kernel for a free one.
    pub port: u16,
}

/// True when two listeners of one server would bind the same socket: the same transport and
/// port (not 0, which always gets a fresh one) on the same address or on one that covers the
/// other (`0.0.0.0`, `::`). `SO_REUSEPORT` would quietly split the traffic between them, so a
/// server refuses this. Names are compared as written; the runtime compares them once resolved.
pub fn overlap(a: &Socket<'_>, b: &Socket<'_>) -> bool {
    let hosts = match (a.host, b.host) {
        (Host::Ip(x), Host::Ip(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (Host::Name(x), Host::Name(y)) => x.eq_ignore_ascii_case(y),
        (Host::Ip(ip), Host::Name(_)) | (Host::Name(_), Host::Ip(ip)) => ip.is_unspecified(),
    };
    a.datagram == b.datagram && a.port == b.port && a.port != 0 && hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_values_parse_as_port_or_host_port() {
        assert_eq!(Listen::parse("9090"), Ok(Listen::Port(9090)));
        assert_eq!(Listen::parse(" 0 "), Ok(Listen::Port(0)));
        assert_eq!(Listen::parse("127.0.0.1:80"), Ok(Listen::Addr("127.0.0.1:80".into())));
        assert_eq!(Listen::parse("[::1]:80"), Ok(Listen::Addr("[::1]:80".into())));
        assert_eq!(Listen::parse("localhost:8080"), Ok(Listen::Addr("localhost:8080".into())));
        assert_eq!(Listen::parse("70000").unwrap_err().to_string(), "port 70000 is out of range (0..=65535)");
        assert_eq!(Listen::parse("h:99999").unwrap_err().to_string(), "port 99999 is out of range (0..=65535)");
        assert_eq!(
            Listen::parse("localhost").unwrap_err().to_string(),
            "expected a port or \"host:port\", not \"localhost\""
        );
        assert!(Listen::parse("host:").is_err());
        assert!(Listen::parse(":80").is_err());
        assert_eq!(Listen::parse(""), Err(ListenError::Empty));
        assert_eq!(Listen::parse("[::1]:80").unwrap().host(), Some("::1"));
    }

    #[test]
    fn listeners_overlap_on_one_transport_port_and_covering_address() {
        let any = "0.0.0.0".parse().unwrap();
        let tcp = |listen: &'static str| Listen::parse(listen).unwrap();
        let (a, b) = (tcp("9090"), tcp("127.0.0.1:9090"));
        assert!(overlap(&a.socket(Protocol::Tcp, any), &b.socket(Protocol::Http, any)));
        assert!(!overlap(&a.socket(Protocol::Tcp, any), &b.socket(Protocol::Udp, any)), "tcp and udp are apart");
        let (c, d) = (tcp("127.0.0.1:9090"), tcp("127.0.0.2:9090"));
        assert!(!overlap(&c.socket(Protocol::Tcp, any), &d.socket(Protocol::Tcp, any)));
        let (e, f) = (tcp("0"), tcp("0"));
        assert!(!overlap(&e.socket(Protocol::Tcp, any), &f.socket(Protocol::Tcp, any)), "port 0 is always fresh");
        let (g, h) = (tcp("localhost:80"), tcp("LOCALHOST:80"));
        assert!(overlap(&g.socket(Protocol::Tcp, any), &h.socket(Protocol::Tcp, any)));
        let loopback = "127.0.0.1".parse().unwrap();
        assert!(!overlap(&tcp("80").socket(Protocol::Tcp, loopback), &tcp("10.0.0.1:80").socket(Protocol::Tcp, any)));
    }
}
