//! A chat server: one HTTP port serving a small page (`chat.html`, no dependencies) and the
//! WebSocket endpoint `/ws` on the same port. Rooms are topics, so people in one room hear each
//! other whichever worker thread their connection landed on.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin chat
//! # open http://127.0.0.1:8090/?room=lobby&name=ann in two browser tabs
//! ```
//!
//! The protocol: connect to `/ws?room=ROOM&name=NAME` (letters, digits, `-` and `_`); every text
//! you send reaches everyone in the room, you included, as `NAME: TEXT`; arrivals and departures
//! come as `* NAME joined` and `* NAME left`.

use smoke::prelude::*;
use smoke_examples::query_value;

const PAGE: &str = include_str!("chat.html");

#[derive(Default)]
struct Chatter {
    room: String,
    name: String,
    line: String,
}

// ANCHOR: chat
#[smoke::server(http = 8090, ws_path = "/ws", threads = 2, max_message = 4096)]
impl Chatter {
    #[get("/")]
    fn page(&mut self, _req: &Request, res: &mut Response) {
        res.html(PAGE);
    }

    #[on_upgrade]
    fn upgrade(&mut self, req: &Request, upgrade: &mut Upgrade) {
        match (query_value(req.query(), "room"), query_value(req.query(), "name")) {
            (Some(room), Some(name)) => {
                self.room = room.to_owned();
                self.name = name.to_owned();
            }
            _ => upgrade.refuse(400),
        }
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        ws.subscribe(&self.room);
        ws.publish(&self.room, format!("* {} joined", self.name).as_str());
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        if let Message::Text(text) = message {
            // One reused String per connection: no allocation per message once it has grown.
            self.line.clear();
            self.line.push_str(&self.name);
            self.line.push_str(": ");
            self.line.push_str(text);
            ws.publish(&self.room, self.line.as_str());
        }
    }

    #[on_close]
    fn left(&mut self, ws: &mut WsConn, _code: u16, _reason: &str) {
        ws.publish(&self.room, format!("* {} left", self.name).as_str());
    }
}
// ANCHOR_END: chat

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Chatter::serve()
}
