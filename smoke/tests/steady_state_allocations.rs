//! The hot path allocates nothing per message once warmed up: reads land in the worker's
//! scratch buffer and replies borrow recycled buffers from its pool.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use smoke::{Config, Conn, Handler};

/// Counts allocations made on threads that marked themselves (the server's worker does, from
/// its handler), so the test's own client work is not counted.
struct CountingAllocator;

static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call unchanged to the system allocator; counting has no side effects
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IS_WORKER.with(Cell::get) {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds GlobalAlloc's contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if IS_WORKER.with(Cell::get) {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Echo;

impl Handler for Echo {
    fn on_connect(&mut self, _: &mut Conn) {
        IS_WORKER.with(|w| w.set(true));
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
    let before = WORKER_ALLOCATIONS.load(Ordering::Relaxed);
    exchange(&mut clients, 2_000);
    let after = WORKER_ALLOCATIONS.load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated during 16,000 steady-state echoes");
    assert_eq!(server.stats().buffers_held, 0);
}
