//! Flow control: a slow reader gets everything, and the server's buffering stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Rng, connect, echo_server, eventually};
use smoke::{CloseReason, Config};

const TOTAL: usize = 16 << 20;
const HIGH_WATER: usize = 256 << 10;

#[test]
fn a_slow_reader_receives_sixteen_mebibytes_with_bounded_server_buffering() {
    let (server, observed) = echo_server(Config::new().threads(1).max_write_buffer(HIGH_WATER));
    let mut client = connect(server.local_addr());
    let mut writer = client.try_clone().unwrap();
    let payload = Rng::new(16).bytes(TOTAL);
    let expected = payload.clone();
    let sender = std::thread::spawn(move || {
        for chunk in payload.chunks(64 << 10) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });

    // Read slowly: small reads with pauses, so the server's output outruns us and has to wait.
    let mut received = Vec::with_capacity(TOTAL);
    let mut chunk = vec![0; 32 << 10];
    let mut reads = 0;
    loop {
        let n = client.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        reads += 1;
        if reads % 8 == 0 && received.len() < TOTAL / 2 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sender.join().unwrap();
    assert_eq!(received.len(), TOTAL);
    assert!(received == expected, "the echo differs from what was sent");

    // Reading paused at the high-water mark: what one read batch (at most 64 KiB) adds is the
    // only overshoot the server's queue may have had.
    let max_buffered = observed.max_buffered.load(Ordering::Relaxed);
    assert!(max_buffered > 0, "the reader was slow enough to build a backlog");
    assert!(max_buffered <= HIGH_WATER + (64 << 10), "server buffered {max_buffered} bytes for one connection");
    assert!(eventually(Duration::from_secs(5), || observed.closes() == [CloseReason::PeerClosed]));
    assert_eq!(server.stats().buffers_held, 0);
}

/// Streams a large response through on_write as the peer drains it.
struct Streamer {
    left: usize,
}

impl smoke::Handler for Streamer {
    fn on_connect(&mut self, conn: &mut smoke::Conn) {
        self.on_write(conn);
    }
    fn on_data(&mut self, _: &mut smoke::Conn, input: &[u8]) -> usize {
        input.len()
    }
    fn on_write(&mut self, conn: &mut smoke::Conn) {
        // One 64 KiB chunk per call; want_write asks for the next one once it is sent.
        let n = self.left.min(64 << 10);
        conn.write(&vec![b'z'; n]);
        self.left -= n;
        if self.left == 0 {
            conn.close();
        } else {
            conn.want_write();
        }
    }
}

#[test]
fn on_write_streams_a_response_as_the_peer_drains_it() {
    const SIZE: usize = 8 << 20;
    let server =
        smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut smoke::Conn| Streamer { left: SIZE })
            .unwrap();
    let mut client = connect(server.local_addr());
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), SIZE);
    assert!(all.iter().all(|&b| b == b'z'));
}
