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

#[cfg(test)]
mod tests {
    use super::*;

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
