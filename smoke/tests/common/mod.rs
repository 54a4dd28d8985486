//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

pub mod game;
pub mod http;
pub mod nats;
pub mod netns;
pub mod ports;
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoke::{CloseReason, Config, Conn, Handler, ServerHandle};

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// What the test sessions observed, shared with the test body.
#[derive(Default)]
pub struct Observed {
    pub closes: Mutex<Vec<CloseReason>>,
    pub max_buffered: AtomicUsize,
}

impl Observed {
    pub fn closes(&self) -> Vec<CloseReason> {
        self.closes.lock().unwrap().clone()
    }
}

/// Echoes everything and records what it sees. Input containing `panic!` makes it panic.
pub struct Echo {
    pub observed: Arc<Observed>,
}

impl Handler for Echo {
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if input.windows(6).any(|w| w == b"panic!") {
            panic!("the test asked this handler to panic");
        }
        conn.write(input);
        self.observed.max_buffered.fetch_max(conn.buffered(), Ordering::Relaxed);
        input.len()
    }

    fn on_close(&mut self, _conn: &mut Conn, reason: CloseReason) {
        self.observed.closes.lock().unwrap().push(reason);
    }
}

/// `config` with its listeners of `protocol` ("tcp", "http") moved to a kernel-chosen loopback
/// port, through the same environment-override path a deployment uses.
pub fn on_loopback(config: Config, protocol: &str) -> Config {
    let variable = format!("SMOKE_{}", protocol.to_ascii_uppercase());
    config.apply_overrides(|name| (name == variable).then(|| "127.0.0.1:0".to_string())).unwrap()
}

/// An echo server on a kernel-chosen loopback port.
pub fn echo_server(config: Config) -> (ServerHandle, Arc<Observed>) {
    let observed = Arc::new(Observed::default());
    let shared = observed.clone();
    let server = smoke::spawn(config.tcp("127.0.0.1:0"), move |_: &mut Conn| Echo { observed: shared.clone() })
        .expect("echo server starts");
    (server, observed)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the test server");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Sends `payload` and reads the same number of bytes back.
pub fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(payload).unwrap();
    let mut back = vec![0; payload.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

/// Polls `condition` every few milliseconds for up to `limit`; true once it holds. Used to wait
/// for the server's side of an event, never to assert on timing.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}
