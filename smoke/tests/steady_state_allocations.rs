//! The hot path allocates nothing per message once warmed up: reads land in the worker's
//! scratch buffer and replies borrow recycled buffers from its pool.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use smoke::{Config, Conn, Handler};

/// Counts allocations made on threads that marked themselves (each test's server worker does,
/// from its handler), so the tests' client work is not counted and the two tests, which run in
/// parallel, count separately.
struct CountingAllocator;

const NOT_COUNTED: usize = usize::MAX;
const TCP_WORKER: usize = 0;
const HTTP_WORKER: usize = 1;
static WORKER_ALLOCATIONS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

thread_local! {
    static COUNTS_AS: Cell<usize> = const { Cell::new(NOT_COUNTED) };
}

fn count_allocation() {
    let slot = COUNTS_AS.with(Cell::get);
    if slot != NOT_COUNTED {
        WORKER_ALLOCATIONS[slot].fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call unchanged to the system allocator; counting has no side effects
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds GlobalAlloc's contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Echo;

impl Handler for Echo {
    fn on_connect(&mut self, _: &mut Conn) {
        COUNTS_AS.with(|c| c.set(TCP_WORKER));
    }
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        // Answer whole 16-byte messages only, so partial input is kept and handed back too.
        let whole = input.len() / 16 * 16;
        conn.write(&input[..whole]);
        whole
    }
}

fn exchange(clients: &mut [std::net::TcpStream], rounds: usize) {
    let message = *b"0123456789abcdef";
    let mut back = [0u8; 16];
    for _ in 0..rounds {
        for client in clients.iter_mut() {
            // Split the message across two writes now and then, to exercise kept input.
            client.write_all(&message[..5]).unwrap();
            client.write_all(&message[5..]).unwrap();
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, message);
        }
    }
}

#[test]
fn echoing_allocates_nothing_per_message_in_steady_state() {
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| Echo).unwrap();
    let mut clients: Vec<_> = (0..8).map(|_| common::connect(server.local_addr())).collect();
    exchange(&mut clients, 200);
    let before = WORKER_ALLOCATIONS[TCP_WORKER].load(Ordering::Relaxed);
    exchange(&mut clients, 2_000);
    let after = WORKER_ALLOCATIONS[TCP_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated during 16,000 steady-state echoes");
    assert_eq!(server.stats().buffers_held, 0);
}

#[derive(Default)]
struct Hello;

#[smoke::server(http = 8080, threads = 1)]
impl Hello {
    #[smoke::on_connect]
    fn connect(&mut self, _conn: &mut Conn) {
        COUNTS_AS.with(|c| c.set(HTTP_WORKER));
    }

    #[smoke::on_request]
    fn request(&mut self, req: &smoke::http::Request, res: &mut smoke::http::Response) {
        if req.path() == "/plaintext" {
            res.text("Hello, World!").header("Server", "smoke");
        } else {
            res.status(404);
        }
    }
}

fn http_exchange(clients: &mut [(std::net::TcpStream, std::io::BufReader<std::net::TcpStream>)], rounds: usize) {
    let request = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..rounds {
        for (stream, reader) in clients.iter_mut() {
            stream.write_all(request).unwrap();
            for _ in 0..2 {
                let reply = common::http::read_reply(reader, false).unwrap();
                assert_eq!(reply.body, b"Hello, World!");
            }
        }
    }
}

#[test]
fn answering_http_requests_allocates_nothing_in_steady_state() {
    let config = common::on_loopback(Hello::config(), "http");
    let server = Hello::spawn(config).unwrap();
    let mut clients: Vec<_> = (0..8)
        .map(|_| {
            let stream = common::connect(server.local_addr());
            let reader = std::io::BufReader::new(stream.try_clone().unwrap());
            (stream, reader)
        })
        .collect();
    http_exchange(&mut clients, 100);
    let before = WORKER_ALLOCATIONS[HTTP_WORKER].load(Ordering::Relaxed);
    http_exchange(&mut clients, 1_000);
    let after = WORKER_ALLOCATIONS[HTTP_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated while answering 16,000 pipelined requests");
}
