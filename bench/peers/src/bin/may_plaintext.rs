//! may_minihttp answering /plaintext like smoke's `plaintext` example (one worker: may's
//! scheduler with one worker thread).
use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct Plaintext;

impl HttpService for Plaintext {
    fn call(&mut self, _req: Request, res: &mut Response) -> io::Result<()> {
        res.header("Content-Type: text/plain");
        res.body("Hello, World!");
        Ok(())
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8081);
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    may::config().set_workers(threads);
    let server = HttpServer(Plaintext).start(format!("127.0.0.1:{port}")).unwrap();
    println!("ready");
    server.join().unwrap();
}
