//! Compile-pass and compile-fail tests of `#[smoke::server]`: `tests/pass/*.rs` must build and
//! run (without binding a port), each `tests/fail/*.rs` must fail with the `.stderr` beside it.
