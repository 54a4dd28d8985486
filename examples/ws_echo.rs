//! WebSocket echo: every message comes back as it was sent (text as text, binary as binary).
//! The Autobahn TestSuite runs against this one in the test suite.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin ws_echo
//! python3 -m websockets ws://127.0.0.1:9001/
//! ```

use smoke::prelude::*;

#[derive(Default)]
struct WsEcho;

// ANCHOR: ws_echo
#[smoke::server(ws = 9001, max_message = 16777216)]
impl WsEcho {
    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        // At the backpressure limit the echo is dropped: this client is not reading.
        let _ = ws.send(message);
    }
}
// ANCHOR_END: ws_echo

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    WsEcho::serve()
}
