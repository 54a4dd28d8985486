//! The WebSocket codec and machine (frames, masking, fragmentation and reassembly, control
//! frames, the close handshake, UTF-8 across fragments) over client input cut anywhere: never a
//! panic, and the same messages, replies and close however the bytes were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pieces, whole) = smoke_fuzz::pieces(data);
    let at_once = smoke::fuzzing::websocket(&[whole]);
    let cut = smoke::fuzzing::websocket(&pieces);
    assert_eq!(at_once, cut, "the same frames, cut differently, were handled differently");
});
