//! A WebSocket server on its own listener and on an HTTP path, with every WebSocket handler and
//! both forms of #[on_close].
use smoke::prelude::*;

#[derive(Default)]
struct Chat {
    room: String,
}

#[smoke::server(
    http = 8080,
    ws = 9001,
    ws_path = "/ws",
    max_message = 65536,
    max_backpressure = 131072,
    close_on_backpressure_limit = true,
    ws_idle_timeout_ms = 30000,
    max_mailbox = 1048576
)]
impl Chat {
    #[on_request]
    fn page(&mut self, _req: &Request, res: &mut Response) {
        res.html("<p>hi</p>");
    }

    #[on_upgrade]
    fn upgrade(&mut self, req: &Request, upgrade: &mut Upgrade) {
        match req.query() {
            Some(room) => self.room = room.to_owned(),
            None => upgrade.refuse(400),
        }
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        ws.subscribe(&self.room);
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        if let Message::Text(text) = message {
            ws.publish(&self.room, text);
        }
    }

    #[on_drain]
    fn drain(&mut self, ws: &mut WsConn) {
        let _ = ws.buffered_amount();
    }

    #[on_close]
    fn ws_closed(&mut self, _ws: &mut WsConn, code: u16, reason: &str) {
        let _ = (code, reason);
    }

    #[on_close]
    fn closed(&mut self, _conn: &mut Conn, _why: CloseReason) {}
}

fn main() {
    let config = Chat::config();
    assert_eq!(config.ws_config().path.as_deref(), Some("/ws"));
    assert_eq!((config.ws_config().max_message, config.ws_config().max_backpressure), (65536, 131072));
    assert!(config.ws_config().close_on_backpressure_limit);
    assert_eq!(config.ws_config().idle_timeout, Some(std::time::Duration::from_secs(30)));
    assert_eq!(config.runtime().max_mailbox, 1 << 20);
    assert_eq!(config.listeners().len(), 2);
}
