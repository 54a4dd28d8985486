//! A server written without the macro: the three impls `#[smoke::server]` writes, by hand.
//! HTTP on `/`, and a WebSocket echo at `/ws` on the same listener.
//!
//! ```text
//! cargo run -p smoke-examples --bin by_hand    # then: curl http://127.0.0.1:8081/
//! ```

use smoke::prelude::*;

// ANCHOR: by_hand
#[derive(Default)]
struct ByHand {
    requests: u32,
}

/// What every connection has, and raw TCP's input. This server has no `tcp` listener, so
/// `on_data` is never called: its input goes to the HTTP and WebSocket machines.
impl smoke::Handler for ByHand {
    fn on_data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

/// The session's constructor and its HTTP and WebSocket handlers.
impl smoke::Session for ByHand {
    fn new_session(_conn: &mut Conn) -> ByHand {
        ByHand::default()
    }

    fn on_request(&mut self, req: &Request, res: &mut Response) {
        self.requests += 1;
        match req.path() {
            "/" => res.text(&format!("written by hand; request {} on this connection\n", self.requests)),
            _ => res.status(404),
        };
    }

    fn on_message(&mut self, ws: &mut WsConn, message: Message) {
        let _ = ws.send(message);
    }
}

/// The configuration, and with it `ByHand::serve()` and `ByHand::spawn(config)`.
impl smoke::Server for ByHand {
    fn config() -> Config {
        Config::new().http(8081).ws_path("/ws")
    }
}
// ANCHOR_END: by_hand

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    ByHand::serve()
}
