use smoke::prelude::*;

#[derive(Default)]
struct S;

// TLS listeners serve their plain family's handlers: `https` the routes, `wss` the messages,
// `tls` the bytes; certificates pair with keys in order.
#[smoke::server(
    https = 8443,
    wss = "127.0.0.1:9443",
    tls = [7443, 7444],
    ws_path = "/ws",
    tls_cert = ["a.pem", "b.pem"],
    tls_key = ["a.key", "b.key"],
    ws_deflate_dedicated = true
)]
impl S {
    #[get("/")]
    fn index(&mut self, _req: &Request, res: &mut Response) {
        res.text("hi");
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        let _ = ws.send(message);
    }

    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(input);
        input.len()
    }
}

fn main() {
    let config = S::config();
    assert_eq!(config.listeners().len(), 4);
    assert!(config.ws_config().deflate && config.ws_config().deflate_dedicated);
}
