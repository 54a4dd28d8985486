//! The first sample of the C++ libsmoke, in smoke: answer the first bytes a client sends with
//! "hello" and close the connection.
//!
//! ```text
//! cargo run -p smoke-examples --bin hello      # then: echo hi | nc 127.0.0.1 9090
//! ```

use smoke::prelude::*;

#[derive(Default)]
struct Hello;

// ANCHOR: hello
#[smoke::server(tcp = 9090, threads = 2)]
impl Hello {
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(b"hello");
        conn.close();
        input.len()
    }
}
// ANCHOR_END: hello

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Hello::serve()
}
