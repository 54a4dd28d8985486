//! The second sample of the C++ libsmoke: each session counts its reads and writes, and the
//! first request on a connection gets a page with the server's connection counters (opened,
//! closed, current, errored), then the connection closes. Raw TCP answering in HTTP's shape, as
//! the original did, so a browser or curl can read it.
//!
//! ```text
//! cargo run -p smoke-examples --bin stats      # then: curl http://127.0.0.1:9090/
//! ```

use std::io::Write;

use smoke::prelude::*;

const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[derive(Default)]
struct StatsPage {
    reads: u32,
    writes: u32,
}

#[smoke::server(tcp = 9090, threads = 2)]
impl StatsPage {
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        self.reads += 1;
        if self.writes > 0 {
            return input.len(); // answered already; the connection is closing
        }
        self.writes += 1;
        if !input.starts_with(b"GET / HTTP") {
            conn.write(NOT_FOUND);
            conn.close();
            return input.len();
        }
        let stats = conn.server_stats();
        let body = format!(
            "<!doctype html>\n<html><head><title>smoke test page</title></head>\n<body>\
             <h1 style='color:red'>smoke test page!!!</h1>\n\
             connections: opened({}): closed({}): current({}) errd({})\n</body></html>\n",
            stats.accepted,
            stats.closed,
            stats.current(),
            stats.errors
        );
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.close();
        input.len()
    }

    #[on_close]
    fn close(&mut self, conn: &mut Conn, why: CloseReason) {
        log::debug!("{} closed after {} reads, {} writes: {why}", conn.id(), self.reads, self.writes);
    }
}

fn main() -> std::io::Result<()> {
    smoke_examples::init_logging();
    StatsPage::serve()
}
