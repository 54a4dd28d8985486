//! The syntax of a request head (RFC 9112 §2-§5): the request line and the header lines, read
//! in one pass over the input without copying or storing them. Each header is handed to the
//! caller as it is read (the framing checks in `head.rs` need a few of them); the handler's
//! `Request` finds the rest again in the header block when asked, so a request costs no table
//! of header slots, filled or zeroed.
//!
//! What it accepts is what httparse, which smoke used before, accepts in its default strict
//! mode: empty lines before the request line, CRLF or a bare LF ending a line, a method that is
//! a token, a target of visible characters (UTF-8 above ASCII), `HTTP/1.0` or `HTTP/1.1`, header
//! names that are tokens followed at once by a colon, and values of visible characters, spaces,
//! tabs and obs-text. The fuzz target `http_head` holds the two to the same answers.

/// A head's request line and where its header block lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'b> {
    pub(crate) method: &'b [u8],
    pub(crate) target: &'b [u8],
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor_version: u8,
    pub(crate) fields: Fields<'b>,
    /// Bytes of the head, through the blank line.
    pub(crate) len: usize,
}

/// Why a head could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax<E> {
    /// More input is needed.
    Incomplete,
    /// More header lines than allowed.
    TooManyHeaders,
    /// The request line does not end in `HTTP/1.0` or `HTTP/1.1`.
    Version,
    /// A header line starting with whitespace: obsolete line folding.
    Folded,
    /// Anything else malformed, said in a few words.
    Malformed(&'static str),
    /// The caller's header callback refused a header.
    Refused(E),
}

/// Reads the head at the start of `buf`, handing each header's name and value (its surrounding
/// whitespace trimmed) to `on_header` in order.
pub(crate) fn parse<'b, E>(
    buf: &'b [u8],
    max_headers: usize,
    mut on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), E>,
) -> Result<Parsed<'b>, Syntax<E>> {
    let (method, target, minor_version, block_start) = request_line(buf)?;
    let mut at = block_start;
    let mut count = 0;
    loop {
        let len = match (buf.get(at), buf.get(at + 1)) {
            (Some(b'\n'), _) => 1,
            (Some(b'\r'), Some(b'\n')) => 2,
            (None, _) | (Some(b'\r'), None) => return Err(Syntax::Incomplete),
            (Some(b'\r'), Some(_)) => return Err(Syntax::Malformed("a CR without its LF")),
            (Some(b' ' | b'\t'), _) => return Err(Syntax::Folded),
            (Some(_), _) => 0,
        };
        if len > 0 {
            let fields = Fields(&buf[block_start..at]);
            return Ok(Parsed { method, target, minor_version, fields, len: at + len });
        }
        let rest = &buf[at..];
        let Some(name_len) = rest.iter().position(|&b| !is_token(b)) else { return Err(Syntax::Incomplete) };
        if name_len == 0 || rest[name_len] != b':' {
            return Err(Syntax::Malformed("malformed header name"));
        }
        // The whitespace before a value (nearly always one space) is stepped over here, so the
        // value is trimmed only at its end.
        let mut value_start = at + name_len + 1;
        while let Some(b' ' | b'\t') = buf.get(value_start) {
            value_start += 1;
        }
        let (value_end, next_line) = field_value(buf, value_start)?;
        // Counted once the line is whole, so a head cut inside one header too many is only
        // incomplete, as it is to httparse.
        count += 1;
        if count > max_headers {
            return Err(Syntax::TooManyHeaders);
        }
        on_header(&rest[..name_len], trim_end(&buf[value_start..value_end])).map_err(Syntax::Refused)?;
        at = next_line;
    }
}

/// The end of the field value starting at `start` (before its CR LF or LF) and the start of the
/// next line. RFC 9110 §5.5: a value holds visible characters, spaces, tabs and obs-text; any
/// other control character (a lone CR above all) could split or smuggle a header. Eight bytes
/// at a time to the first control character (the line's end is one), then judged alone.
fn field_value<E>(buf: &[u8], start: usize) -> Result<(usize, usize), Syntax<E>> {
    let mut at = start;
    loop {
        while let Some(word) = buf.get(at..at + 8).and_then(|word| <[u8; 8]>::try_from(word).ok()) {
            let found = below_or_delete(u64::from_le_bytes(word), 0x20);
            if found != 0 {
                at += first_lane(found);
                break;
            }
            at += 8;
        }
        match buf.get(at) {
            None => return Err(Syntax::Incomplete),
            Some(b'\n') => return Ok((at, at + 1)),
            Some(b'\r') => {
                return match buf.get(at + 1) {
                    Some(b'\n') => Ok((at, at + 2)),
                    None => Err(Syntax::Incomplete),
                    Some(_) => Err(Syntax::Malformed("a control character in a header value")),
                };
            }
            Some(&b) if b != b'\t' && (b < b' ' || b == 0x7f) => {
                return Err(Syntax::Malformed("a control character in a header value"));
            }
            Some(_) => at += 1,
        }
    }
}

/// Where the request target at the start of `rest` ends (at a space, control character or
/// 0x7f), eight bytes at a time, and whether a byte before that is above ASCII; `None` when it
/// has not ended yet.
#[inline]
fn target_end(rest: &[u8]) -> Option<(usize, bool)> {
    let mut at = 0;
    let mut bits = 0u64;
    while let Some(word) = rest.get(at..at + 8).and_then(|word| <[u8; 8]>::try_from(word).ok()) {
        let word = u64::from_le_bytes(word);
        // A space ends the target too.
        let found = below_or_delete(word, 0x21);
        if found != 0 {
            // The target's own bytes in this word: the lanes below the first one found.
            let lanes_before = (1u64 << (found.trailing_zeros() & !7)) - 1;
            return Some((at + first_lane(found), (bits | (word & lanes_before)) & HIGH != 0));
        }
        bits |= word;
        at += 8;
    }
    let end = at + rest[at..].iter().position(|&b| b <= b' ' || b == 0x7f)?;
    Some((end, bits & HIGH != 0 || rest[at..end].iter().any(|&b| b >= 0x80)))
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Bit 7 set in the lanes of `word` (little-endian) holding a byte below `limit` (at most 0x80)
/// or 0x7f; bytes above 0x7f are neither. Bit 7 of such a byte is set in `x - limit` where it
/// was clear in `x` (and the same for zero after XOR with 0x7f). A borrow can flag a lane above
/// a flagged one too, never one below: the lowest flagged lane is exact, which is all that is
/// read.
#[inline]
fn below_or_delete(word: u64, limit: u8) -> u64 {
    let below = word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH;
    let delete = word ^ (ONES * 0x7f);
    let is_delete = delete.wrapping_sub(ONES) & !delete & HIGH;
    below | is_delete
}

/// Where `byte` first occurs in `bytes`, eight bytes at a time: for short haystacks (a path,
/// looked at for its `?`), where memchr's setup costs more than the search.
#[inline]
pub(crate) fn find_byte(bytes: &[u8], byte: u8) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8).and_then(|word| <[u8; 8]>::try_from(word).ok()) {
        // Lanes equal to `byte` are zero after the XOR; a zero lane borrows in the subtraction
        // and sets bit 7 where it was clear. As in `below_or_delete`, only the lowest flagged
        // lane is exact, and only it is read.
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(byte));
        let found = x.wrapping_sub(ONES) & !x & HIGH;
        if found != 0 {
            return Some(at + first_lane(found));
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == byte).map(|i| at + i)
}

/// Whether `a`, each byte ORed with `fold`, is `b`, eight bytes at a time in line: for the
/// short strings compared once a request (a header's name, case-folded with 0x20; a response's
/// header lines, exactly with 0), where a `memcmp` call costs more than the compare.
#[inline]
pub(crate) fn equal_in_words(a: &[u8], b: &[u8], fold: u8) -> bool {
    let len = a.len();
    if b.len() != len {
        return false;
    }
    if len < 4 {
        return a.iter().zip(b).all(|(x, y)| x | fold == *y);
    }
    if len < 8 {
        // Two four-byte words, overlapping when the length is not 8.
        let word =
            |bytes: &[u8], at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let fold = 0x0101_0101 * u32::from(fold);
        return word(a, 0) | fold == word(b, 0) && word(a, len - 4) | fold == word(b, len - 4);
    }
    let fold = ONES * u64::from(fold);
    let word = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let mut at = 0;
    while at + 8 < len {
        if word(a, at) | fold != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before it when the length is not a multiple of 8.
    word(a, len - 8) | fold == word(b, len - 8)
}

/// The index of the lowest lane flagged in a nonzero `below_or_delete` result.
#[inline]
fn first_lane(found: u64) -> usize {
    (found.trailing_zeros() / 8) as usize
}

/// A request line: method, target, minor version, and where the line after it starts.
type RequestLine<'b> = (&'b [u8], &'b [u8], u8, usize);

/// The request line after any empty lines.
fn request_line<E>(buf: &[u8]) -> Result<RequestLine<'_>, Syntax<E>> {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let mut at = 0;
    // Nearly always, the first byte is the method's: no empty line to step over.
    if !matches!(buf.first(), Some(b) if b.is_ascii_uppercase()) {
        loop {
            match (buf.get(at), buf.get(at + 1)) {
                (Some(b'\n'), _) => at += 1,
                (Some(b'\r'), Some(b'\n')) => at += 2,
                (None, _) | (Some(b'\r'), None) => return Err(Syntax::Incomplete),
                _ => break,
            }
        }
    }
    let rest = &buf[at..];
    let method_len = match rest.first_chunk::<4>() {
        // Most requests are GETs: one compare instead of a token check per byte.
        Some(b"GET ") => 3,
        _ => rest.iter().position(|&b| !is_token(b)).ok_or(Syntax::Incomplete)?,
    };
    if method_len == 0 || rest[method_len] != b' ' {
        return Err(Syntax::Malformed("malformed method"));
    }
    let method = &rest[..method_len];
    let rest = &rest[method_len + 1..];
    let (target_len, above_ascii) = target_end(rest).ok_or(Syntax::Incomplete)?;
    if target_len == 0 || rest[target_len] != b' ' {
        return Err(Syntax::Malformed("malformed request target"));
    }
    let target = &rest[..target_len];
    // Above ASCII only as UTF-8, so the handler can have the path as text.
    if above_ascii && std::str::from_utf8(target).is_err() {
        return Err(Syntax::Malformed("a request target that is not UTF-8"));
    }
    let rest = &rest[target_len + 1..];
    // Nearly every request line ends so: one compare of ten bytes.
    if let Some(b"HTTP/1.1\r\n") = rest.first_chunk::<10>() {
        return Ok((method, target, 1, buf.len() - rest.len() + 10));
    }
    const VERSION: &[u8; 8] = b"HTTP/1.1";
    let minor_version = match rest.first_chunk::<8>() {
        Some(version) if version[..7] == VERSION[..7] && matches!(version[7], b'0' | b'1') => version[7] - b'0',
        Some(_) => return Err(Syntax::Version),
        None if VERSION.starts_with(rest) || rest == b"HTTP/1." => return Err(Syntax::Incomplete),
        None => return Err(Syntax::Version),
    };
    let at = buf.len() - rest.len() + 8;
    match (buf.get(at), buf.get(at + 1)) {
        (Some(b'\n'), _) => Ok((method, target, minor_version, at + 1)),
        (Some(b'\r'), Some(b'\n')) => Ok((method, target, minor_version, at + 2)),
        (None, _) | (Some(b'\r'), None) => Err(Syntax::Incomplete),
        _ => Err(Syntax::Version),
    }
}

/// The header lines of a parsed head, read again when a handler asks for a header: they were
/// checked when the head was parsed, so reading them is only splitting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields<'b>(&'b [u8]);

impl<'b> Fields<'b> {
    /// Each header's name and value, in order.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'b [u8], &'b [u8])> {
        self.0.split(|&b| b == b'\n').filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr::memchr(b':', line)?;
            Some((&line[..colon], trim_whitespace(&line[colon + 1..])))
        })
    }
}

/// `value` without the spaces and tabs around it (RFC 9112 §5.1's optional whitespace).
#[inline]
fn trim_whitespace(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    trim_end(value)
}

/// `value` without the spaces and tabs after it.
#[inline]
fn trim_end(mut value: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// RFC 9110 §5.6.2: a token character.
#[inline]
fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_')
            || matches!(c, b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn head(buf: &[u8]) -> Result<Parsed<'_>, Syntax<()>> {
        parse(buf, 64, |_, _| Ok(()))
    }

    #[test]
    fn a_head_is_read_with_its_headers_in_order() {
        let buf = b"\r\n\nGET /a?b=1 HTTP/1.1\r\nHost:  x \r\nX-Empty:\r\nAccept: */*\n\r\nbody";
        let mut seen = Vec::new();
        let parsed = parse(buf, 64, |name, value| {
            seen.push((name, value));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!((parsed.method, parsed.target, parsed.minor_version), (&b"GET"[..], &b"/a?b=1"[..], 1));
        assert_eq!(parsed.len, buf.len() - 4);
        let expected: Vec<(&[u8], &[u8])> = vec![(b"Host", b"x"), (b"X-Empty", b""), (b"Accept", b"*/*")];
        assert_eq!(seen, expected);
        assert_eq!(parsed.fields.iter().collect::<Vec<_>>(), expected, "read again, the same");
        assert_eq!(head(b"GET / HTTP/1.0\n\n").unwrap().minor_version, 0);
    }

    #[test]
    fn every_cut_of_a_head_is_incomplete() {
        let full = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(head(&full[..cut]), Err(Syntax::Incomplete), "cut at {cut}");
        }
        assert!(head(full).is_ok());
    }

    #[test]
    fn malformed_heads_say_what_is_wrong() {
        let version: &[&[u8]] = &[b"GET / HTTP/2.0\r\n", b"GET / HTTP/1.2\r\n", b"GET / HTTP/1.1 x\r\n", b"GET / HTTX"];
        for buf in version {
            assert_eq!(head(buf), Err(Syntax::Version), "{:?}", String::from_utf8_lossy(buf));
        }
        assert_eq!(head(b"GET / HTTP/1.1\r\nA: 1\r\n b\r\n\r\n"), Err(Syntax::Folded));
        assert_eq!(head(b"GET / HTTP/1.1\r\n\tb\r\n\r\n"), Err(Syntax::Folded));
        let malformed: &[&[u8]] = &[
            b"GET  / HTTP/1.1\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo-Colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 01234567\x00abcdef\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 0123456789\x7f\r\n\r\n",
        ];
        for buf in malformed {
            assert!(matches!(head(buf), Err(Syntax::Malformed(_))), "{:?}", String::from_utf8_lossy(buf));
        }
        assert!(head("GET /caf\u{e9} HTTP/1.1\r\n\r\n".as_bytes()).is_ok(), "UTF-8 targets are accepted");
        assert!(head(b"GET / HTTP/1.1\r\nA: tab\there, obs-text \xe9, 0123456789~\r\n\r\n").is_ok());
    }

    #[test]
    fn targets_of_every_length_end_at_their_space_and_refuse_controls() {
        for len in 1..40 {
            let target: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut line = b"GET ".to_vec();
            line.extend_from_slice(&target);
            line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            assert_eq!(head(&line).unwrap().target, &target[..], "{len}");
            for at in 0..len {
                for (byte, accepted) in [(0x7fu8, false), (0x01, false), (b'\t', false), (0xe9, false), (b'~', true)] {
                    let mut bad = line.clone();
                    bad[4 + at] = byte;
                    assert_eq!(head(&bad).is_ok(), accepted, "{byte:#x} at {at} of {len}");
                }
                let mut utf8 = line.clone();
                utf8.splice(4 + at..5 + at, "\u{e9}".bytes());
                assert_eq!(head(&utf8).unwrap().target.len(), len + 1, "é at {at} of {len}");
            }
        }
    }

    #[test]
    fn header_count_and_refusals_stop_the_parse() {
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(parse(two, 2, |_, _| Ok::<(), ()>(())).is_ok());
        assert_eq!(parse(two, 1, |_, _| Ok::<(), ()>(())), Err(Syntax::TooManyHeaders));
        assert_eq!(parse(two, 2, |name, _| if name == b"B" { Err(7) } else { Ok(()) }), Err(Syntax::Refused(7)));
        // Found by the differential fuzzer: a header too many, cut inside its line, is only
        // incomplete (as to httparse); the 431 comes once the line is whole.
        assert_eq!(parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2", 1, |_, _| Ok::<(), ()>(())), Err(Syntax::Incomplete));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n", 1, |_, _| Ok::<(), ()>(())),
            Err(Syntax::TooManyHeaders)
        );
    }

    #[test]
    fn field_values_are_checked_a_word_at_a_time_without_misses() {
        let field = |value: &[u8]| {
            let mut line = b"A:".to_vec();
            line.extend_from_slice(value);
            line.extend_from_slice(b"\r\n");
            field_value::<()>(&line, 2).map(|(end, next)| (end - 2, next == line.len()))
        };
        for len in 1..24 {
            for at in 0..len {
                for bad in [0u8, b'\r', b'\n', 0x1f, 0x7f] {
                    let mut value = vec![b'a'; len];
                    value[at] = bad;
                    if bad == b'\n' {
                        assert_eq!(field(&value), Ok((at, false)), "a LF ends the line at {at} of {len}");
                    } else {
                        assert!(field(&value).is_err(), "{bad:#x} at {at} of {len}");
                    }
                }
                let mut value = vec![0xe9u8; len];
                value[at] = b'\t';
                assert_eq!(field(&value), Ok((len, true)));
            }
        }
    }

    #[test]
    fn the_lowest_flagged_lane_is_the_first_byte_below_the_limit_or_delete() {
        // Words drawn from the bytes that matter (around each limit, 0x7f, 0x80 and above),
        // against the bytewise definition.
        const PICKS: [u8; 12] = [0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x41, 0x7e, 0x7f, 0x80, 0xff];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes: [u8; 8] = std::array::from_fn(|i| PICKS[(state >> (i * 4)) as usize % PICKS.len()]);
            let word = u64::from_le_bytes(bytes);
            for limit in [0x20u8, 0x21] {
                let expected = bytes.iter().position(|&b| b < limit || b == 0x7f);
                let found = below_or_delete(word, limit);
                assert_eq!((found != 0).then(|| first_lane(found)), expected, "{bytes:02x?} below {limit:#x}");
            }
        }
    }

    #[test]
    fn find_byte_finds_the_first_occurrence_at_every_length_and_position() {
        // Neighbours of '?' (0x3f) and bytes whose subtraction borrows, around the one sought.
        const PICKS: [u8; 8] = [b'?', b'>', b'@', 0x00, 0x01, 0x7f, 0x80, 0xbf];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| PICKS[(state >> (i % 16 * 4)) as usize % PICKS.len()]).collect();
            let expected = bytes.iter().position(|&b| b == b'?');
            assert_eq!(find_byte(&bytes, b'?'), expected, "{bytes:02x?}");
        }
    }
}
