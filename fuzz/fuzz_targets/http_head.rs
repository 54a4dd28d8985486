//! smoke's request-head parser against httparse, which smoke used before and which the Rust
//! HTTP servers share: on every input, the same heads accepted with the same method, target,
//! version, headers and length, and the same ones refused. One difference is allowed: a
//! malformed header line is judged once its line ends, so smoke may still be waiting for more
//! where httparse has already refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoke::fuzzing::{HeadSyntax, head_syntax};

fuzz_target!(|data: &[u8]| {
    let ours = head_syntax(data);
    let mut slots = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut slots);
    let theirs = match request.parse(data) {
        Ok(httparse::Status::Complete(len)) => HeadSyntax::Complete(
            request.method.unwrap_or_default().as_bytes(),
            request.path.unwrap_or_default().as_bytes(),
            request.version.unwrap_or_default(),
            request.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect(),
            len,
        ),
        Ok(httparse::Status::Partial) => HeadSyntax::Incomplete,
        Err(_) => HeadSyntax::Malformed,
    };
    if ours == HeadSyntax::Incomplete && theirs == HeadSyntax::Malformed {
        return;
    }
    assert_eq!(ours, theirs, "smoke and httparse read this head differently");
});
