//! Fan-out: everything sent on `/pub` is published to every client connected on `/sub`, on
//! every worker. The benchmark's topic scenario (one publisher, a thousand subscribers) runs
//! against this one.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin fanout
//! ```

use smoke::prelude::*;

#[derive(Default)]
struct Fanout {
    subscriber: bool,
}

// ANCHOR: fanout
#[smoke::server(ws = 9003, threads = 2)]
impl Fanout {
    #[on_upgrade]
    fn upgrade(&mut self, req: &Request, upgrade: &mut Upgrade) {
        match req.path() {
            "/sub" => self.subscriber = true,
            "/pub" => {}
            _ => upgrade.refuse(404),
        }
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        if self.subscriber {
            ws.subscribe("all");
        }
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        if !self.subscriber {
            ws.publish("all", message);
        }
    }
}
// ANCHOR_END: fanout

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Fanout::serve()
}
