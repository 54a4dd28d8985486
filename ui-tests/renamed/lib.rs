//! `#[smoke::server(crate = "...")]` with smoke depended on under another name. This crate has
//! no `smoke` dependency, so generated code naming `::smoke` anywhere would not compile: the
//! test is that it builds, and that the server it generates answers.

use renamed_smoke::prelude::*;

#[derive(Debug, Default)]
pub struct Renamed;

#[renamed_smoke::server(crate = "renamed_smoke", http = "127.0.0.1:0", udp = "127.0.0.1:0", threads = 1)]
impl Renamed {
    #[renamed_smoke::get("/hello/:name")]
    fn hello(&mut self, req: &Request, res: &mut Response) {
        res.text(&format!("hello {}", req.param("name").unwrap_or_default()));
    }

    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        peer.send(packet);
    }

    #[renamed_smoke::on_tick(ms = 50)]
    fn tick(worker: &mut Worker<Self>) {
        let _ = worker.index();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::Renamed;

    #[test]
    fn the_generated_code_reaches_smoke_by_its_new_name() {
        let server = Renamed::spawn(Renamed::config()).expect("the server starts");
        let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
        client.write_all(b"GET /hello/you HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        client.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nhello you"), "{response}");
        server.shutdown().unwrap();
    }
}
