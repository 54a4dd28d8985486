//! Topic fan-out load for the benchmarks, bounded in time:
//!
//!   fanout_load BASE SUBSCRIBERS SECONDS RATE [THREADS]
//!
//! SUBSCRIBERS WebSocket clients on BASE/sub, split over THREADS threads (default 2), each
//! thread polling its share with its own epoll and reading frames by hand, so the client reads
//! a delivery in a few hundred nanoseconds and its own queueing stays out of the latency; one
//! publisher on BASE/pub sends RATE messages a second, each a 20-digit timestamp (nanoseconds
//! since a start all threads share).
//!
//! Prints one line: `messages=N seconds=S rate=R p50_us=A p99_us=B lost=L`: messages are
//! deliveries, latency is publish-to-delivery, lost is publications times subscribers less the
//! deliveries seen.
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

#[path = "../report.rs"]
mod report;
use report::report;

/// A delivery's payload: the publication's timestamp in ASCII digits.
const STAMP_DIGITS: usize = 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: fanout_load BASE SUBSCRIBERS SECONDS RATE [THREADS]");
        std::process::exit(2);
    }
    let base = args[1].strip_prefix("ws://").expect("a ws:// base URL").trim_end_matches('/').to_owned();
    let subscribers: usize = args[2].parse().unwrap();
    let seconds: f64 = args[3].parse().unwrap();
    let rate: f64 = args[4].parse().unwrap();
    let threads: usize = args.get(5).map_or(2, |t| t.parse().unwrap()).max(1);

    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // Every subscriber connected, and the publisher, before the first publication.
    let connected = Arc::new(Barrier::new(threads + 1));
    let readers: Vec<_> = (0..threads)
        .map(|t| {
            let share = subscribers / threads + usize::from(t < subscribers % threads);
            let (base, stop, connected) = (base.clone(), stop.clone(), connected.clone());
            std::thread::spawn(move || subscribe(&base, share, origin, &stop, &connected))
        })
        .collect();
    let mut publisher = upgrade(&base, "/pub").0;
    connected.wait();
    // The server subscribes a client as it opens; let the last ones settle.
    std::thread::sleep(Duration::from_millis(300));

    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let (mut next, mut published) = (start, 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        let stamp = format!("{:0width$}", origin.elapsed().as_nanos(), width = STAMP_DIGITS);
        publisher.write_all(&masked_text_frame(stamp.as_bytes(), published as u32)).expect("publish");
        published += 1;
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Deliveries still on their way have until a reader sees 100 ms of silence after this.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (mut samples, mut count) = (Vec::new(), 0u64);
    for reader in readers {
        let (some, n) = reader.join().expect("a reader thread");
        samples.extend(some);
        count += n;
    }
    report(samples, count, elapsed, Some((published * subscribers as u64).saturating_sub(count)));
}

/// A client's frame: FIN, text, masked (as a client's must be) with a key from `seed`.
fn masked_text_frame(payload: &[u8], seed: u32) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = seed.wrapping_mul(0x9E37_79B9).to_le_bytes();
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Opens a WebSocket on `host:port` + `path`; returns the stream and any bytes the server sent
/// after its 101 head.
fn upgrade(host: &str, path: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(host).expect("connect");
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk).expect("the upgrade's answer");
        assert!(n > 0, "the server closed during the upgrade");
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused: {}", String::from_utf8_lossy(&head[..end]));
    (stream, head.split_off(end))
}

/// One reader thread: `count` subscribers on one epoll until `stop`; the latency of each
/// delivery in microseconds, and how many there were.
fn subscribe(base: &str, count: usize, origin: Instant, stop: &AtomicBool, connected: &Barrier) -> (Vec<u32>, u64) {
    let mut poll = Poll::new().unwrap();
    let mut clients: Vec<(mio::net::TcpStream, Vec<u8>)> = (0..count)
        .map(|i| {
            let (stream, early) = upgrade(base, "/sub");
            stream.set_nonblocking(true).unwrap();
            let mut stream = mio::net::TcpStream::from_std(stream);
            poll.registry().register(&mut stream, Token(i), Interest::READABLE).unwrap();
            (stream, early)
        })
        .collect();
    connected.wait();
    let (mut samples, mut deliveries) = (Vec::with_capacity(1 << 20), 0u64);
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        if events.is_empty() && stop.load(Ordering::Relaxed) {
            break;
        }
        for event in &events {
            let (stream, pending) = &mut clients[event.token().0];
            // Edge-triggered: read until the socket is empty.
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("a subscriber's read: {e}"),
                }
            }
            let now = origin.elapsed().as_nanos();
            let used = read_frames(pending, |payload| {
                let sent: u128 = std::str::from_utf8(payload).ok().and_then(|s| s.parse().ok()).unwrap_or(now);
                samples.push(((now - sent) / 1000) as u32);
                deliveries += 1;
            });
            pending.drain(..used);
        }
    }
    (samples, deliveries)
}

/// Calls `each` with the payload of every whole text or binary frame (a server's: unmasked) at
/// the start of `input`; returns the bytes those frames took.
fn read_frames(input: &[u8], mut each: impl FnMut(&[u8])) -> usize {
    let mut at = 0;
    while let [first, second, rest @ ..] = &input[at..] {
        let (head, len) = match second & 0x7f {
            126 if rest.len() >= 2 => (4, u16::from_be_bytes([rest[0], rest[1]]) as usize),
            127 if rest.len() >= 8 => (10, u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize),
            126 | 127 => break,
            short => (2, short as usize),
        };
        if input.len() - at < head + len {
            break;
        }
        if matches!(first & 0x0f, 1 | 2) {
            each(&input[at + head..at + head + len]);
        }
        at += head + len;
    }
    at
}
