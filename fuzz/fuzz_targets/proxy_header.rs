//! The PROXY protocol header parser, fed every prefix of the input as a connection's bytes
//! arrive: it never panics, never reads past the input, and a prefix never contradicts what
//! follows (a whole header stays the same header; a refusal stays a refusal).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = smoke::fuzzing::proxy_header(data);
});
