//! The attribute DSL end to end: generated config, sessions built both ways, handlers called.

mod common;

use std::io::{Read, Write};
use std::sync::Mutex;

use smoke::prelude::*;

static CLOSES: Mutex<Vec<CloseReason>> = Mutex::new(Vec::new());

/// Built by its constructor-style on_connect, which greets the peer.
struct Greeter {
    greeted: bool,
}

#[smoke::server(tcp = 9321, threads = 1, max_write_buffer = 4096)]
impl Greeter {
    #[on_connect]
    fn open(conn: &mut Conn) -> Self {
        conn.write(b"hello ");
        Greeter { greeted: true }
    }

    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        // One line per call: the runtime calls again with the rest.
        let Some(end) = input.iter().position(|&b| b == b'\n') else { return 0 };
        if &input[..end] == b"bye" {
            conn.close();
        } else {
            conn.write(&input[..=end]);
        }
        end + 1
    }

    #[on_close]
    fn closed(&mut self, _conn: &mut Conn, why: CloseReason) {
        assert!(self.greeted);
        CLOSES.lock().unwrap().push(why);
    }
}

#[test]
fn the_attribute_becomes_the_config() {
    let config = Greeter::config();
    assert_eq!(config.listeners(), [(smoke::Protocol::Tcp, smoke::Listen::Port(9321))]);
    assert_eq!(config.runtime().threads, 1);
    assert_eq!(config.runtime().max_write_buffer, 4096);
}

#[test]
fn spawn_refuses_worker_processes_which_only_serve_can_start() {
    let config = common::on_loopback(Greeter::config(), "tcp").processes(2);
    let err = Greeter::spawn(config).unwrap_err();
    assert_eq!(err.to_string(), "processes needs Server::serve: spawn runs the server in this process");
}

#[test]
fn a_constructor_session_greets_answers_lines_and_closes() {
    let server = Greeter::spawn(common::on_loopback(Greeter::config(), "tcp")).unwrap();
    let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
    // Two lines and a partial one in one write, the rest later.
    client.write_all(b"one\ntwo\nthr").unwrap();
    let mut got = [0u8; 14];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello one\ntwo\n");
    client.write_all(b"ee\nbye\n").unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"three\n");
    server.shutdown().unwrap();
    assert_eq!(*CLOSES.lock().unwrap(), [CloseReason::Closed]);
}
