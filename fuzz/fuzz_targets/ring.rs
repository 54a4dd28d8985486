//! The packet ring's frame parser and the BPF program built for it, run through the test
//! interpreter on the same frame: neither panics, and they agree. A frame the parser takes as
//! UDP to one of the ports is one the filter keeps, and a frame the filter keeps that the
//! parser takes is for one of the ports.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SNAP: u32 = 2048 + 90;

fuzz_target!(|data: &[u8]| {
    // The first byte: how many ports (up to 7) follow as big-endian pairs; the rest is the frame.
    let Some((&count, rest)) = data.split_first() else { return };
    let count = usize::from(count % 8).min(rest.len() / 2);
    let (ports, frame) = rest.split_at(count * 2);
    let ports: Vec<u16> = ports.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    let parsed = smoke::fuzzing::ring_frame(frame, false);
    let _ = smoke::fuzzing::ring_frame(frame, true);
    let kept = smoke::fuzzing::ring_filter(&ports, SNAP, frame).expect("a filter for 7 ports");
    assert!(kept == 0 || kept == SNAP, "the filter keeps all of the snap length or nothing");
    if let Ok((_, to, _)) = parsed {
        if ports.contains(&to.port()) {
            assert_eq!(kept, SNAP, "the parser found UDP to port {} but the filter dropped it", to.port());
        }
        if kept > 0 {
            assert!(ports.contains(&to.port()), "the filter kept UDP to port {}, not one of {ports:?}", to.port());
        }
    }
});
