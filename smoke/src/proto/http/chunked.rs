//! `Transfer-Encoding: chunked` decoding (RFC 9112 §7.1) over a byte buffer.

use super::Rejection;

/// Chunk-size lines longer than this are refused: 16 hex digits overflow 64 bits anyway, and the
/// rest is extensions we ignore, which no honest client makes long.
const MAX_CHUNK_LINE: usize = 4096;

/// Where decoding stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// The body is complete: `consumed` bytes of input (through the final CRLF) were used.
    Complete { consumed: usize },
    /// More input is needed.
    Partial,
}

/// Chunk framing (size lines and CRLFs) allowed on top of `max_body`: a body sent in small
/// chunks is legitimately larger on the wire, but not without bound.
pub(crate) fn max_encoded_len(max_body: usize) -> usize {
    max_body.saturating_mul(2).saturating_add(64 << 10)
}

/// Decodes the chunked body at the start of `input`, appending the data to `body`. Trailers are
/// read and ignored (bounded by `max_trailer_bytes`). Decoding resumes at `*resume`, the end of
/// the last complete chunk of an earlier call with the same body start (0 at first), so a body
/// arriving in many reads is decoded once, not again from its start on every read.
pub(crate) fn decode(
    input: &[u8],
    resume: &mut usize,
    body: &mut Vec<u8>,
    max_body: usize,
    max_trailer_bytes: usize,
) -> Result<Decoded, Rejection> {
    let mut at = *resume;
    loop {
        *resume = at;
        if at > max_encoded_len(max_body) {
            return Err(Rejection::PayloadTooLarge);
        }
        let Some(line_end) = find_crlf(&input[at..], MAX_CHUNK_LINE)? else { return Ok(Decoded::Partial) };
        let size = chunk_size(&input[at..at + line_end])?;
        at += line_end + 2;
        if size == 0 {
            return trailers(input, at, max_trailer_bytes);
        }
        if size > max_body.saturating_sub(body.len()) as u64 {
            return Err(Rejection::PayloadTooLarge);
        }
        // With an "unlimited" max_body a size can be near 2^64: compared as what is left of
        // the input, never added to, so nothing overflows.
        let data_and_crlf = input.len() - at;
        if data_and_crlf < 2 || size > (data_and_crlf - 2) as u64 {
            return Ok(Decoded::Partial);
        }
        let size = size as usize;
        body.extend_from_slice(&input[at..at + size]);
        at += size;
        if &input[at..at + 2] != b"\r\n" {
            return Err(Rejection::BadRequest("chunk data not followed by CRLF"));
        }
        at += 2;
    }
}

/// Offset of the CRLF ending the line at the start of `input`; a bare LF is an error.
fn find_crlf(input: &[u8], max_line: usize) -> Result<Option<usize>, Rejection> {
    match memchr::memchr(b'\n', input) {
        Some(lf) if lf > max_line => Err(Rejection::BadRequest("chunk line too long")),
        Some(0) => Err(Rejection::BadRequest("bare LF in chunked body")),
        Some(lf) if input[lf - 1] == b'\r' => Ok(Some(lf - 1)),
        Some(_) => Err(Rejection::BadRequest("bare LF in chunked body")),
        None if input.len() > max_line => Err(Rejection::BadRequest("chunk line too long")),
        None => Ok(None),
    }
}

/// `1a`, `1A;ext=val`, `1a ; ext`: hex digits, then optional whitespace and extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Rejection> {
    let invalid = Rejection::BadRequest("invalid chunk size");
    let digits_end = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits_end == 0 || digits_end > 16 {
        return Err(invalid);
    }
    let rest = &line[digits_end..];
    let extensions = &rest[rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len())..];
    let well_formed = extensions.is_empty()
        || (extensions[0] == b';' && extensions.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b)));
    if !well_formed {
        return Err(invalid);
    }
    let size = line[..digits_end].iter().fold(0u64, |size, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => digit - b'A' + 10,
        };
        (size << 4) | u64::from(value)
    });
    Ok(size)
}

fn trailers(input: &[u8], mut at: usize, max_trailer_bytes: usize) -> Result<Decoded, Rejection> {
    let start = at;
    loop {
        let Some(line_end) = find_crlf(&input[at..], max_trailer_bytes)? else {
            return Ok(Decoded::Partial);
        };
        at += line_end + 2;
        if at - start > max_trailer_bytes {
            return Err(Rejection::HeaderTooLarge);
        }
        if line_end == 0 {
            validate_trailers(&input[start..at])?;
            return Ok(Decoded::Complete { consumed: at });
        }
    }
}

/// Trailers are ignored, but they must still be well-formed header lines: a proxy that reads
/// them differently would disagree with us about where the next request starts.
fn validate_trailers(block: &[u8]) -> Result<(), Rejection> {
    /// Trailer fields accepted; a trailer section rarely has more than one or two.
    const MAX_TRAILERS: usize = 32;
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    match httparse::parse_headers(block, &mut fields) {
        Ok(httparse::Status::Complete((len, _))) if len == block.len() => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(Rejection::HeaderTooLarge),
        _ => Err(Rejection::BadRequest("malformed trailer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<(Decoded, Vec<u8>), Rejection> {
        let mut body = Vec::new();
        decode(input, &mut 0, &mut body, 1 << 20, 1024).map(|d| (d, body))
    }

    #[test]
    fn decoding_resumes_where_the_last_read_stopped() {
        let full = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (mut resume, mut body) = (0, Vec::new());
        for end in 1..full.len() {
            assert_eq!(decode(&full[..end], &mut resume, &mut body, 1 << 20, 1024), Ok(Decoded::Partial), "end {end}");
        }
        assert_eq!(decode(full, &mut resume, &mut body, 1 << 20, 1024), Ok(Decoded::Complete { consumed: full.len() }));
        assert_eq!(body, b"hello world", "each chunk appended once");
    }

    #[test]
    fn framing_overhead_and_extension_lines_are_bounded() {
        let mut tiny_chunks = Vec::new();
        for _ in 0..200 {
            tiny_chunks.extend_from_slice(b"1\r\nx\r\n");
        }
        let mut body = Vec::new();
        assert_eq!(decode(&tiny_chunks, &mut 0, &mut body, 100, 1024), Err(Rejection::PayloadTooLarge));
        let mut long_extension = b"1;".to_vec();
        long_extension.resize(MAX_CHUNK_LINE + 10, b'a');
        long_extension.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(run(&long_extension), Err(Rejection::BadRequest("chunk line too long")));
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let cases: &[(&[u8], &[u8], usize)] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", b"hello world", 26),
            (b"A;name=value\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 31),
            (b"a ; x\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 24),
            (b"a\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n", b"0123456789", 36),
            (b"0\r\n\r\n", b"", 5),
        ];
        for (input, body, consumed) in cases {
            let (decoded, got) = run(input).unwrap();
            assert_eq!(decoded, Decoded::Complete { consumed: *consumed }, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(&got, body);
        }
    }

    #[test]
    fn incomplete_bodies_ask_for_more_at_every_split() {
        let full = b"5\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n";
        for split in 0..full.len() {
            assert_eq!(run(&full[..split]).unwrap().0, Decoded::Partial, "split at {split}");
        }
        assert!(matches!(run(full).unwrap().0, Decoded::Complete { .. }));
    }

    #[test]
    fn malformed_chunking_is_rejected() {
        let cases: &[&[u8]] = &[
            b"x\r\nhello\r\n0\r\n\r\n",      // not hex
            b"\r\nhello\r\n0\r\n\r\n",       // empty size
            b"5\nhello\r\n0\r\n\r\n",        // bare LF
            b"5\r\nhelloXX0\r\n\r\n",        // data not followed by CRLF
            b"-5\r\nhello\r\n0\r\n\r\n",     // sign
            b"0x5\r\nhello\r\n0\r\n\r\n",    // prefix
            b"10000000000000000\r\n",        // 17 digits: overflow
            b"5 junk\r\nhello\r\n0\r\n\r\n", // junk after whitespace (only `;` may follow)
        ];
        for input in cases {
            assert!(matches!(run(input), Err(Rejection::BadRequest(_))), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bodies_above_the_limit_are_refused_before_buffering() {
        let mut body = Vec::new();
        let input = b"ffffffff\r\n";
        assert_eq!(decode(input, &mut 0, &mut body, 1024, 1024), Err(Rejection::PayloadTooLarge));
        let two = b"200\r\n";
        assert_eq!(decode(two, &mut 0, &mut body, 256, 1024), Err(Rejection::PayloadTooLarge));
    }

    #[test]
    fn trailers_must_be_header_lines() {
        assert!(matches!(run(b"0\r\nX-Ok: yes\r\nY: 2\r\n\r\n"), Ok((Decoded::Complete { .. }, _))));
        for bad in
            [&b"0\r\nX: a\rb\r\n\r\n"[..], b"0\r\nno colon\r\n\r\n", b"0\r\nX: \x00\r\n\r\n", b"0\r\n folded\r\n\r\n"]
        {
            assert_eq!(run(bad), Err(Rejection::BadRequest("malformed trailer")), "{bad:?}");
        }
    }

    #[test]
    fn trailers_are_bounded() {
        let mut input = b"0\r\n".to_vec();
        for _ in 0..100 {
            input.extend_from_slice(b"X-Long-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(run(&input), Err(Rejection::HeaderTooLarge));
    }

    #[test]
    fn sizes_near_the_top_of_u64_wait_or_are_refused_without_overflow() {
        for size in ["ffffffffffffffff", "fffffffffffffffe", "8000000000000000"] {
            let input = format!("{size}\r\nabc");
            let (mut resume, mut body) = (0, Vec::new());
            let decoded = decode(input.as_bytes(), &mut resume, &mut body, usize::MAX, 1024);
            assert_eq!(decoded, Ok(Decoded::Partial), "{size} with no limit: more input is needed");
            let limited = decode(input.as_bytes(), &mut 0, &mut Vec::new(), 1 << 20, 1024);
            assert_eq!(limited, Err(Rejection::PayloadTooLarge), "{size} above max_body");
        }
    }
}
