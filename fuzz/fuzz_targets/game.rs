//! The netcode server with one genuine client: the client's sealed payloads (reaching the
//! channels behind the decryption) mixed with raw datagrams from anyone, the client's address
//! among them. Never a panic, and nobody but the client is answered with more than it sent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pieces, _) = smoke_fuzz::pieces(data);
    smoke::fuzzing::game(&pieces);
});
