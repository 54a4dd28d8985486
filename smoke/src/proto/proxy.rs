//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts before a
//! connection's first byte to say whose connection it is. Bytes in, the client's address out.
//!
//! A listener that expects it takes nothing else first: a connection that starts any other way
//! is refused, as the specification asks ("a receiver must not try to guess"), since a client
//! that could skip the header could also forge one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's first twelve bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's first six.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The longest version 1 line, CRLF included (the specification's own bound).
pub(crate) const MAX_V1_LEN: usize = 107;
/// The most a version 2 header may carry after its fixed 16 bytes: the addresses (216 bytes for
/// Unix sockets) and TLVs (ALPN, authority, TLS details, a cloud's link id), with room to spare.
/// The field allows 64 KiB; a header above this is refused rather than buffered.
pub(crate) const MAX_V2_PAYLOAD: usize = 4096;

/// What the start of a connection holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// Not all of the header yet.
    Incomplete,
    /// A whole header of `len` bytes. `client` is the address it gives for the connection's
    /// source; `None` when it gives none (the balancer's own health check, `LOCAL` or `UNKNOWN`,
    /// or a Unix socket), and the connection is the balancer's own.
    Complete { client: Option<SocketAddr>, len: usize },
}

/// Why a connection's start is not a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// It starts with neither version's signature.
    Missing,
    /// Version 1, but not a line the specification allows.
    MalformedV1(&'static str),
    /// Version 2, but not a header the specification allows.
    MalformedV2(&'static str),
    /// Version 2 with more than [`MAX_V2_PAYLOAD`] bytes after its first 16.
    TooLong(usize),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Missing => f.write_str("no PROXY protocol header"),
            ProxyError::MalformedV1(why) => write!(f, "malformed PROXY v1 header: {why}"),
            ProxyError::MalformedV2(why) => write!(f, "malformed PROXY v2 header: {why}"),
            ProxyError::TooLong(len) => write!(f, "PROXY v2 header of {len} bytes, above {MAX_V2_PAYLOAD}"),
        }
    }
}

/// Reads the header at the start of `input` (a connection's first bytes, as many as have come).
pub(crate) fn parse(input: &[u8]) -> Result<Header, ProxyError> {
    let starts = |signature: &[u8]| {
        let n = input.len().min(signature.len());
        input[..n] == signature[..n]
    };
    if input.is_empty() {
        Ok(Header::Incomplete)
    } else if starts(V2_SIGNATURE) {
        parse_v2(input)
    } else if starts(V1_PREFIX) {
        parse_v1(input)
    } else {
        Err(ProxyError::Missing)
    }
}

/// `PROXY TCP4 <source> <destination> <source port> <destination port>\r\n`, `TCP6` likewise,
/// or `PROXY UNKNOWN` and anything up to the CRLF.
fn parse_v1(input: &[u8]) -> Result<Header, ProxyError> {
    let window = &input[..input.len().min(MAX_V1_LEN)];
    // The line ends at its first line feed, which must follow a carriage return: a bare one
    // (anywhere before the CRLF) makes it malformed, however the bytes arrived.
    let Some(line_feed) = window.iter().position(|&b| b == b'\n') else {
        return if input.len() >= MAX_V1_LEN {
            Err(ProxyError::MalformedV1("no CRLF within 107 bytes"))
        } else {
            Ok(Header::Incomplete)
        };
    };
    if window[line_feed - 1] != b'\r' {
        return Err(ProxyError::MalformedV1("a line feed without a carriage return"));
    }
    let end = line_feed - 1;
    let line = std::str::from_utf8(&input[V1_PREFIX.len()..end]).map_err(|_| ProxyError::MalformedV1("not ASCII"))?;
    let len = end + 2;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        return Ok(Header::Complete { client: None, len });
    }
    let fields: Vec<&str> = fields.collect();
    let [source, destination, source_port, destination_port] = fields[..] else {
        return Err(ProxyError::MalformedV1("not four fields after the protocol"));
    };
    let address = |text: &str| -> Result<IpAddr, ProxyError> {
        match family {
            "TCP4" => {
                text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| ProxyError::MalformedV1("a bad IPv4 address"))
            }
            "TCP6" => {
                text.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| ProxyError::MalformedV1("a bad IPv6 address"))
            }
            _ => Err(ProxyError::MalformedV1("a protocol other than TCP4, TCP6 or UNKNOWN")),
        }
    };
    let port = |text: &str| -> Result<u16, ProxyError> {
        let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
        text.parse().ok().filter(|_| canonical).ok_or(ProxyError::MalformedV1("a bad port"))
    };
    let client = SocketAddr::new(address(source)?, port(source_port)?);
    address(destination)?;
    port(destination_port)?;
    Ok(Header::Complete { client: Some(client), len })
}

/// The 16-byte fixed part (signature, version and command, family and transport, length), the
/// addresses, then TLVs, which smoke skips.
fn parse_v2(input: &[u8]) -> Result<Header, ProxyError> {
    if input.len() < 16 {
        return Ok(Header::Incomplete);
    }
    let (version_command, family, payload) = (input[12], input[13], u16::from_be_bytes([input[14], input[15]]));
    let payload = usize::from(payload);
    if version_command >> 4 != 2 {
        return Err(ProxyError::MalformedV2("a version other than 2"));
    }
    if payload > MAX_V2_PAYLOAD {
        return Err(ProxyError::TooLong(16 + payload));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::MalformedV2("a command other than LOCAL or PROXY")),
    };
    if input.len() < 16 + payload {
        return Ok(Header::Incomplete);
    }
    let len = 16 + payload;
    let addresses = &input[16..len];
    let client = match family >> 4 {
        // AF_INET: source, destination, source port, destination port.
        1 => {
            let a: &[u8; 12] = addresses.get(..12).and_then(|a| a.try_into().ok()).ok_or(short())?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([a[8], a[9]])))
        }
        // AF_INET6, likewise.
        2 => {
            let a: &[u8; 36] = addresses.get(..36).and_then(|a| a.try_into().ok()).ok_or(short())?;
            let ip: [u8; 16] = a[..16].try_into().expect("16 of 36 bytes");
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), u16::from_be_bytes([a[32], a[33]])))
        }
        // AF_UNSPEC, and AF_UNIX: no address the connection could report as an IP peer.
        0 | 3 => None,
        _ => return Err(ProxyError::MalformedV2("an unknown address family")),
    };
    // A LOCAL header is the balancer speaking for itself: its addresses, if any, say nothing.
    Ok(Header::Complete { client: client.filter(|_| !local), len })
}

fn short() -> ProxyError {
    ProxyError::MalformedV2("a length too short for its addresses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x20 | command, family]);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    fn complete(input: &[u8]) -> (Option<SocketAddr>, usize) {
        match parse(input) {
            Ok(Header::Complete { client, len }) => (client, len),
            other => panic!("{other:?} for {input:?}"),
        }
    }

    #[test]
    fn version_1_gives_the_source_of_tcp4_and_tcp6_and_none_for_unknown() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /";
        assert_eq!(complete(line), (Some("192.0.2.7:56324".parse().unwrap()), line.len() - 5));
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n";
        assert_eq!(complete(line), (Some("[2001:db8::7]:4000".parse().unwrap()), line.len()));
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (None, 15));
        assert_eq!(complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0, None);
    }

    #[test]
    fn version_1_waits_for_its_crlf_and_refuses_what_the_specification_does_not_allow() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
        for cut in 0..line.len() {
            assert_eq!(parse(&line[..cut]), Ok(Header::Incomplete), "{cut} bytes");
        }
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 0443 443\r\n",
            b"PROXY TCP4 192.0.2.7  198.51.100.1 1 443\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",
            // Found by the fuzzer: a bare line feed, then a CRLF further on.
            b"PROXY UNKNOWN \n \0\0\0ET / \r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Err(ProxyError::MalformedV1(_))), "{:?}", String::from_utf8_lossy(bad));
        }
        let endless = [b"PROXY ".as_slice(), &[b'x'; 101]].concat();
        assert!(matches!(parse(&endless), Err(ProxyError::MalformedV1(_))));
    }

    #[test]
    fn anything_else_is_no_header() {
        for start in [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x03\x01", b"PROXX", b"\r\n\r\n\0\r\nQUIX\n"] {
            assert_eq!(parse(start), Err(ProxyError::Missing), "{start:?}");
        }
        assert_eq!(parse(b"PRO"), Ok(Header::Incomplete));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Header::Incomplete));
    }

    #[test]
    fn version_2_gives_the_source_and_skips_tlvs() {
        let mut inet = vec![192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb];
        inet.extend_from_slice(&[0x01, 0x00, 0x08, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1']);
        let header = v2(1, 0x11, &inet);
        assert_eq!(complete(&[header.as_slice(), b"GET /"].concat()), (Some("192.0.2.7:56324".parse().unwrap()), 39));
        let mut inet6 = [0u8; 36];
        inet6[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        inet6[32..34].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(complete(&v2(1, 0x21, &inet6)).0, Some("[2001:db8::7]:4000".parse().unwrap()));
        // The balancer's own connection (a health check), and families with no IP source.
        assert_eq!(complete(&v2(0, 0x11, &inet)).0, None);
        assert_eq!(complete(&v2(1, 0x00, &[])), (None, 16));
        assert_eq!(complete(&v2(1, 0x31, &[0; 216])).0, None);
    }

    #[test]
    fn version_2_waits_for_its_length_and_refuses_the_malformed() {
        let header = v2(1, 0x11, &[127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2]);
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Ok(Header::Incomplete), "{cut} bytes");
        }
        let mut version_1 = header.clone();
        version_1[12] = 0x11;
        let mut command = header.clone();
        command[12] = 0x22;
        let mut family = header.clone();
        family[13] = 0x41;
        for (bad, what) in
            [(version_1, "version"), (command, "command"), (family, "family"), (v2(1, 0x21, &[0; 12]), "short")]
        {
            assert!(matches!(parse(&bad), Err(ProxyError::MalformedV2(_))), "{what}");
        }
        let mut long = v2(1, 0x11, &[]);
        long[14..16].copy_from_slice(&((MAX_V2_PAYLOAD + 1) as u16).to_be_bytes());
        assert_eq!(parse(&long), Err(ProxyError::TooLong(16 + MAX_V2_PAYLOAD + 1)));
    }
}
