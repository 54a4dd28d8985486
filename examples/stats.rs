//! The second sample of the C++ libsmoke, now over HTTP: a page with the server's connection
//! counters (opened, closed, current, errored), while each session counts its own requests.
//!
//! ```text
//! cargo run -p smoke-examples --bin stats      # then: curl http://127.0.0.1:9090/
//! ```

use std::io::Write;

use smoke::prelude::*;

#[derive(Default)]
struct StatsPage {
    requests: u32,
}

// ANCHOR: stats
#[smoke::server(http = 9090, threads = 2)]
impl StatsPage {
    #[get("/")]
    fn page(&mut self, req: &Request, res: &mut Response) {
        self.requests += 1;
        let stats = req.server_stats();
        let _ = write!(
            res.body_mut(),
            "<!doctype html>\n<html><head><title>smoke test page</title></head>\n<body>\
             <h1 style='color:red'>smoke test page!!!</h1>\n\
             connections: opened({}): closed({}): current({}) errd({})\n\
             requests on this connection: {}\n</body></html>\n",
            stats.accepted,
            stats.closed,
            stats.current(),
            stats.errors,
            self.requests
        );
        res.header("Content-Type", "text/html; charset=utf-8");
    }

    #[on_close]
    fn close(&mut self, conn: &mut Conn, why: CloseReason) {
        log::debug!("{} closed after {} requests: {why}", conn.id(), self.requests);
    }
}
// ANCHOR_END: stats

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    StatsPage::serve()
}
