use smoke::prelude::*;

#[derive(Default)]
struct NoHttp;

// `ws_path` needs an http listener; a flag is a bool; a path starts with `/`.
#[smoke::server(tcp = 9000, ws_path = "/ws", close_on_backpressure_limit = 1)]
impl NoHttp {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_message]
    fn message(&mut self, _ws: &mut WsConn, _message: Message) {}
}

#[derive(Default)]
struct BadPath;

#[smoke::server(http = 8080, ws_path = "ws")]
impl BadPath {
    #[on_request]
    fn page(&mut self, _req: &Request, _res: &mut Response) {}

    #[on_message]
    fn message(&mut self, _ws: &mut WsConn, _message: Message) {}
}

#[derive(Default)]
struct NoMessages;

// A WebSocket server needs #[on_message]; a message handler takes `Message` by value; the
// WebSocket form of #[on_close] takes `code: u16`.
#[smoke::server(ws = 9001)]
impl NoMessages {
    #[on_open]
    fn open(&mut self, _ws: &mut WsConn, _message: &Message) {}

    #[on_close]
    fn closed(&mut self, _ws: &mut WsConn, _code: CloseReason, _reason: &str) {}
}

#[derive(Default)]
struct NoWs;

#[smoke::server(tcp = 9002)]
impl NoWs {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_open]
    fn open(&mut self, _ws: &mut WsConn) {}
}

fn main() {}
