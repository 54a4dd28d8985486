//! The chunked decoder alone, fed a growing input as a connection keeps it: never a panic, the
//! same body (or refusal) however the bytes arrived, and never more than max_body decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pieces, whole) = smoke_fuzz::pieces(data);
    let max_body = 4096;
    let at_once = smoke::fuzzing::chunked(&[whole], max_body);
    let cut = smoke::fuzzing::chunked(&pieces, max_body);
    assert_eq!(at_once, cut, "the same body, cut differently, decoded differently");
    if let Ok(Some(body)) = at_once {
        assert!(body.len() <= max_body, "{} bytes decoded past max_body", body.len());
    }
});
