//! A game session's channels (acks, reliable ordering, sequencing, fragments and their
//! reassembly) over packets a broken or hostile peer wrote: never a panic, and nothing out of
//! bounds delivered or written.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pieces, _) = smoke_fuzz::pieces(data);
    smoke::fuzzing::channels(&pieces);
});
