//! Free loopback ports for servers a test starts on a port it must know before they run.
//! Shared with the examples' tests (`#[path]`), so it needs nothing else of this folder.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A port free on loopback, taken from below the kernel's ephemeral range: one taken from `:0`
/// and let go can be handed to another test's outgoing connection before the server binds it
/// (a clean-clone CI run saw "address in use" so), but outgoing connections never get these.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` different ports as [`free_port`] chooses them, each held until all are chosen.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let first_ephemeral: u32 = ephemeral.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let (low, high) = (10_000, first_ephemeral.max(10_001));
    // Different processes and calls start at different places, so parallel tests rarely meet.
    // The clock alone is not enough: tests started together in one process can read the same
    // value where its resolution is coarse (a clean-clone CI run saw two of restart.rs's tests
    // pick one port), so each call of the process also counts.
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = nanos ^ std::process::id().rotate_left(16) ^ call.wrapping_mul(0x9E37_79B9) ^ 0x85EB_CA6B;
    let mut held = Vec::with_capacity(N);
    for _ in 0..10_000 {
        if held.len() == N {
            break;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", (low + x % (high - low)) as u16)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), N, "no {N} free ports on loopback between {low} and {high}");
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}
