//! The first sample of the C++ libsmoke, in smoke: answer the first bytes a client sends with
//! "hello" and close the connection.
//!
//! ```text
//! cargo run -p smoke-examples --bin hello      # then: echo hi | nc 127.0.0.1 9090
//! ```

use smoke::{Config, Conn, Handler};

struct Hello;

impl Handler for Hello {
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(b"hello");
        conn.close();
        input.len()
    }
}

fn main() -> std::io::Result<()> {
    smoke_examples::init_logging();
    let config = Config::new().tcp(9090).threads(2).apply_env()?;
    let server = smoke::spawn(config, |_: &mut Conn| Hello)?;
    smoke_examples::announce("hello", &server);
    server.wait_for_signal()
}
