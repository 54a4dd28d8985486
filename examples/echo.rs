//! Echo server: every byte a client sends comes back, in order. A client that reads slower than
//! it writes is paused by flow control instead of growing the server's memory.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin echo     # then: nc 127.0.0.1 9000
//! ```

use smoke::prelude::*;

#[derive(Default)]
struct Echo;

// ANCHOR: echo
#[smoke::server(tcp = 9000)]
impl Echo {
    #[on_connect]
    fn connect(&mut self, conn: &mut Conn) {
        log::debug!("{} connected from {:?}", conn.id(), conn.peer_addr());
    }

    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(input);
        input.len()
    }

    #[on_close]
    fn close(&mut self, conn: &mut Conn, why: CloseReason) {
        log::debug!("{} closed: {why}", conn.id());
    }
}
// ANCHOR_END: echo

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Echo::serve()
}
