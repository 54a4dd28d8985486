//! Echo server: every byte a client sends comes back, in order. A client that reads slower than
//! it writes is paused by flow control instead of growing the server's memory.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin echo     # then: nc 127.0.0.1 9000
//! ```

use smoke::{CloseReason, Config, Conn, Handler};

struct Echo;

impl Handler for Echo {
    fn on_connect(&mut self, conn: &mut Conn) {
        log::debug!("{} connected from {:?}", conn.id(), conn.peer_addr());
    }

    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(input);
        input.len()
    }

    fn on_close(&mut self, conn: &mut Conn, why: CloseReason) {
        log::debug!("{} closed: {why}", conn.id());
    }
}

fn main() -> std::io::Result<()> {
    smoke_examples::init_logging();
    let config = Config::new().tcp(9000).apply_env()?;
    let server = smoke::spawn(config, |_: &mut Conn| Echo)?;
    smoke_examples::announce("echo", &server);
    server.wait_for_signal()
}
