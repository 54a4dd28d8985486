//! HTTP/1.1 request framing (heads, Content-Length and chunked bodies, pipelining) over input cut
//! anywhere: never a panic, and the same answers and the same close however the bytes were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pieces, whole) = smoke_fuzz::pieces(data);
    let at_once = smoke::fuzzing::http(&[whole]);
    let cut = smoke::fuzzing::http(&pieces);
    assert_eq!(at_once, cut, "the same requests, cut differently, were answered differently");
});
