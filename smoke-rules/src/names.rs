//! Names: HTTP tokens (methods, header names) and network interface names.

/// True for a non-empty RFC 9110 token (§5.6.2): what an HTTP method or a header name is made
/// of. Anything else in a header name could inject a line into a response.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// One RFC 9110 token character.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks `name` the way Linux checks a network device name (`dev_valid_name`): 1 to 15 bytes,
/// not `.` or `..`, without `/`, `:`, whitespace or NUL.
pub fn check_interface_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 15 {
        return Err("a network interface name has 1 to 15 characters");
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return Err("a network interface name has no `/`, `:` or spaces");
    }
    Ok(())
}

/// Checks a cluster's broker address: `nats://HOST` or `nats://HOST:PORT` (a name or an IP
/// address, IPv6 in brackets; the port 1 to 65535, 4222 when left out).
pub fn check_cluster_url(url: &str) -> Result<(), &'static str> {
    const EXPECTED: &str = "expected nats://HOST or nats://HOST:PORT";
    let authority = url.strip_prefix("nats://").ok_or(EXPECTED)?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && (!host.starts_with('[') || host.ends_with(']')) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    let bare_host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let host_ok = !bare_host.is_empty()
        && bare_host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        && (host.starts_with('[') || !bare_host.contains(':'));
    if !host_ok {
        return Err(EXPECTED);
    }
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err("the port of a nats:// address is 1 to 65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls() {
        for good in ["nats://127.0.0.1:4222", "nats://localhost", "nats://[::1]:4222", "nats://nats.internal:14222"] {
            assert_eq!(check_cluster_url(good), Ok(()), "{good}");
        }
        for bad in ["127.0.0.1:4222", "nats://", "nats://host:0", "nats://host:99999", "nats://a b", "nats://::1:4222"]
        {
            assert!(check_cluster_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_interface_names() {
        assert!(is_token("GET") && is_token("X-Custom_1") && is_token("M-SEARCH"));
        assert!(!is_token("") && !is_token("Bad Name") && !is_token("a:b") && !is_token("é"));
        for good in ["eth0", "veth-smoke1", "lo", "wlp3s0.100"] {
            assert_eq!(check_interface_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a-name-of-16-ch!", "eth/0", "eth 0", "eth0:1", ".", "..", "a\0b"] {
            assert!(check_interface_name(bad).is_err(), "{bad:?}");
        }
    }
}
