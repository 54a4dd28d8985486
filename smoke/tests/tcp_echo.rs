//! Echo integrity under many concurrent clients, load spread, and idle memory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Rng, connect, echo_server, eventually};
use smoke::Config;

const CLIENTS: usize = 1000;
const CLIENT_THREADS: usize = 8;
const ROUNDS: usize = 4;

#[test]
fn a_thousand_concurrent_clients_get_every_byte_back_in_order() {
    let (server, observed) = echo_server(Config::new().threads(2));
    let addr = server.local_addr();
    // Every client connects before any sends, so all 1,000 are open at once.
    let streams: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
    let mut groups: Vec<Vec<TcpStream>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for (i, stream) in streams.into_iter().enumerate() {
        groups[i % CLIENT_THREADS].push(stream);
    }
    let workers: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(g, mut group)| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(g as u64 + 1);
                let mut echoed = 0usize;
                for _ in 0..ROUNDS {
                    // Write to every connection of the group, then read every echo: the
                    // server handles all of them concurrently.
                    let payloads: Vec<Vec<u8>> = group
                        .iter()
                        .map(|_| {
                            let len = 1 + rng.below(16 << 10);
                            rng.bytes(len)
                        })
                        .collect();
                    for (stream, payload) in group.iter_mut().zip(&payloads) {
                        stream.write_all(payload).unwrap();
                    }
                    for (stream, payload) in group.iter_mut().zip(&payloads) {
                        let mut back = vec![0; payload.len()];
                        stream.read_exact(&mut back).unwrap();
                        assert!(back == *payload, "echo differs from what was sent");
                        echoed += back.len();
                    }
                }
                (group, echoed)
            })
        })
        .collect();
    let mut total = 0;
    let mut kept = Vec::new();
    for worker in workers {
        let (group, echoed) = worker.join().expect("client thread");
        total += echoed;
        kept.extend(group);
    }

    // The worker counts a send just after it returns, which may be after we read the bytes.
    assert!(eventually(Duration::from_secs(5), || server.stats().bytes_out == total as u64));
    let stats = server.stats();
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.current(), CLIENTS as u64);
    assert_eq!(stats.bytes_in, total as u64);
    assert_eq!(stats.bytes_out, total as u64);
    assert_eq!(stats.errors, 0);
    // Everything was echoed and the connections are idle: none of them may hold a buffer.
    assert!(
        eventually(Duration::from_secs(5), || server.stats().buffers_held == 0),
        "idle connections still hold {} buffers",
        server.stats().buffers_held
    );

    drop(kept);
    assert!(eventually(Duration::from_secs(10), || server.stats().current() == 0));
    assert!(observed.closes().iter().all(|r| *r == smoke::CloseReason::PeerClosed));
    server.shutdown().unwrap();
}

#[test]
fn both_workers_receive_connections() {
    let (server, _) = echo_server(Config::new().threads(2));
    let mut clients: Vec<TcpStream> = (0..64).map(|_| connect(server.local_addr())).collect();
    for client in &mut clients {
        assert_eq!(common::round_trip(client, b"x"), b"x");
    }
    let per_worker = server.worker_stats();
    assert_eq!(per_worker.len(), 2);
    assert_eq!(per_worker.iter().map(|s| s.accepted).sum::<u64>(), 64);
    assert!(
        per_worker.iter().all(|s| s.accepted > 0),
        "SO_REUSEPORT should spread 64 connections over both workers: {per_worker:?}"
    );
}

#[test]
fn fds_above_the_fd_cache_are_served_through_the_map() {
    // With fd_cache 16 nearly every connection's fd is above the flat array's bound.
    let (server, _) = echo_server(Config::new().threads(1).fd_cache(16));
    let mut clients: Vec<TcpStream> = (0..200).map(|_| connect(server.local_addr())).collect();
    let mut rng = Rng::new(7);
    for client in &mut clients {
        let payload = rng.bytes(100);
        assert_eq!(common::round_trip(client, &payload), payload);
    }
    assert_eq!(server.stats().accepted, 200);
    assert_eq!(server.stats().errors, 0);
}

#[test]
fn ipv6_loopback_works() {
    let observed = std::sync::Arc::new(common::Observed::default());
    let server = smoke::spawn(Config::new().threads(1).tcp("[::1]:0"), move |_: &mut smoke::Conn| common::Echo {
        observed: observed.clone(),
    })
    .expect("IPv6 loopback is available");
    assert!(server.local_addr().is_ipv6());
    let mut client = connect(server.local_addr());
    assert_eq!(common::round_trip(&mut client, b"over v6"), b"over v6");
}
