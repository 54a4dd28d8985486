//! The server of the soak (`python3 bench/soak.py`): HTTP keep-alive with a few routes, WebSocket
//! subscribers to a topic published at 20 Hz, UDP echo, all with smoke's default limits, and its
//! counters as one line of `name=value` pairs at `GET /stats` for the soak to follow.
//!
//! ```text
//! cargo run --release -p smoke-soak -- [HTTP_PORT UDP_PORT]
//! ```

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use smoke::prelude::*;

/// Publications so far: each carries its number, so a subscriber sees any it missed.
static PUBLISHED: AtomicU64 = AtomicU64::new(0);

/// `GET /big`: a response a client that never reads cannot take all of.
static BIG: [u8; 256 << 10] = [b'b'; 256 << 10];

#[derive(Default)]
struct Soak;

#[smoke::server(http = 9500, ws_path = "/ws", udp = 9501, threads = 2)]
impl Soak {
    #[get("/plaintext")]
    fn plaintext(&mut self, _req: &Request, res: &mut Response) {
        res.text("Hello, World!");
    }

    #[get("/big")]
    fn big(&mut self, _req: &Request, res: &mut Response) {
        res.body(&BIG[..]);
    }

    #[post("/upload")]
    fn upload(&mut self, req: &Request, res: &mut Response) {
        res.text(&req.body().len().to_string());
    }

    #[get("/stats")]
    fn stats(&mut self, req: &Request, res: &mut Response) {
        let s = req.server_stats();
        let mut line = String::new();
        let fields = [
            ("current", s.current()),
            ("peers", s.peers),
            ("accepted", s.accepted),
            ("closed", s.closed),
            ("errors", s.errors),
            ("panics", s.panics),
            ("timeouts", s.timeouts),
            ("rejected", s.rejected),
            ("lingering", s.lingering),
            ("subscriptions", s.subscriptions),
            ("buffers_held", s.buffers_held),
            ("timers", s.timers),
            ("dropped", s.dropped),
            ("mail_dropped", s.mail_dropped),
            ("peers_refused", s.peers_refused),
            ("datagrams_in", s.datagrams_in),
            ("bytes_in", s.bytes_in),
            ("bytes_out", s.bytes_out),
        ];
        for (name, value) in fields {
            let _ = write!(line, "{name}={value} ");
        }
        res.text(line.trim_end());
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        ws.subscribe("tick");
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        let _ = ws.send(message);
    }

    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        peer.send(packet);
    }

    /// Worker 0 publishes a numbered message to every subscriber, 20 times a second.
    #[on_tick(ms = 50)]
    fn tick(worker: &mut Worker<Self>) {
        if worker.index() == 0 {
            let number = PUBLISHED.fetch_add(1, Ordering::Relaxed);
            worker.publish("tick", format!("tick {number}").as_str());
        }
    }
}

fn main() -> Result<(), smoke::Error> {
    Soak::serve()
}
