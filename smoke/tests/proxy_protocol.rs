//! The PROXY protocol behind a real HAProxy (Debian's package, started here on loopback ports):
//! `send-proxy` (v1) and `send-proxy-v2`, for HTTP, WebSocket, raw TCP and TLS passed through.
//! HAProxy connects to smoke from 127.0.0.9 (its `source`), so a server that reported the
//! socket's peer instead of the header's would show 127.0.0.9, never the test's own address.
//!
//! And without HAProxy: connections that skip the header, garble it or stall in it are closed
//! and counted, and their sessions never start.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::eventually;
use common::http::read_reply;
use common::ports::free_port;
use common::tls::TestCert;
use smoke::prelude::*;

/// The local address of every session whose on_connect ran: a connection refused for its
/// header must never show here.
static CONNECTED: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());

// ANCHOR: behind
#[derive(Default)]
struct Behind;

#[smoke::server(http = 8080, ws_path = "/ws", tcp = 9000, https = 8443, proxy_protocol = true, threads = 2)]
impl Behind {
    #[on_connect]
    fn connected(&mut self, conn: &mut Conn) {
        CONNECTED.lock().unwrap().push(conn.local_addr().unwrap());
    }

    /// Raw TCP: any line is answered with whom the server thinks it serves.
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(format!("{}\n", conn.peer_addr().unwrap()).as_bytes());
        input.len()
    }

    #[get("/ip")]
    fn ip(&mut self, req: &Request, res: &mut Response) {
        res.text(&req.peer_addr().map(|a| a.to_string()).unwrap_or_default());
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        let _ = ws.send_text(&ws.peer_addr().unwrap().to_string());
    }

    #[on_message]
    fn message(&mut self, _ws: &mut WsConn, _message: Message) {}
}
// ANCHOR_END: behind

struct Started {
    server: ServerHandle,
    http: SocketAddr,
    tcp: SocketAddr,
    https: SocketAddr,
    _cert: TestCert,
}

fn start(label: &str) -> Started {
    let cert = TestCert::new(label, &["localhost"]);
    let mut config = Behind::config()
        .header_timeout(Duration::from_millis(500))
        .tls_cert(cert.cert.to_str().unwrap())
        .tls_key(cert.key.to_str().unwrap());
    for protocol in ["http", "tcp", "https"] {
        config = common::on_loopback(config, protocol);
    }
    let server = Behind::spawn(config).expect("the server starts");
    let addr = |wanted| server.local_addrs().iter().find(|(p, _)| *p == wanted).unwrap().1;
    let (http, tcp, https) = (addr(smoke::Protocol::Http), addr(smoke::Protocol::Tcp), addr(smoke::Protocol::Https));
    Started { server, http, tcp, https, _cert: cert }
}

/// HAProxy in the foreground, killed with the test.
struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Frontends in front of `started`, each `(mode, server address, send-proxy option)`; returns
/// HAProxy and each frontend's address, in order.
fn haproxy(frontends: &[(&str, SocketAddr, &str)]) -> (Haproxy, Vec<SocketAddr>) {
    let dir = std::env::temp_dir().join(format!("smoke-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = String::from(
        "global\n    maxconn 200\n\
         defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n",
    );
    let mut addrs = Vec::new();
    for (i, (mode, server, send_proxy)) in frontends.iter().enumerate() {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        config += &format!(
            "frontend f{i}\n    mode {mode}\n    bind {addr}\n    default_backend b{i}\n\
             backend b{i}\n    mode {mode}\n    server s{i} {server} {send_proxy} source 127.0.0.9\n"
        );
        addrs.push(addr);
    }
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .spawn()
        .expect("HAProxy starts (Debian's haproxy package)");
    let haproxy = Haproxy { child, dir };
    for addr in &addrs {
        assert!(eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()), "HAProxy listens on {addr}");
    }
    (haproxy, addrs)
}

fn get_ip(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let reply = read_reply(&mut BufReader::new(stream.try_clone().unwrap()), false).expect("a reply");
    assert_eq!(reply.status, 200);
    String::from_utf8(reply.body).unwrap()
}

#[test]
fn behind_haproxy_every_protocol_reports_the_client_not_the_balancer() {
    let started = start("proxy-haproxy");
    let (_haproxy, fronts) = haproxy(&[
        ("http", started.http, "send-proxy"),
        ("http", started.http, "send-proxy-v2"),
        ("tcp", started.tcp, "send-proxy-v2"),
        ("tcp", started.https, "send-proxy"),
    ]);
    for (front, version) in [(fronts[0], "v1"), (fronts[1], "v2")] {
        // HTTP: two requests on one kept-alive connection, then a second connection.
        for _ in 0..2 {
            let mut client = common::connect(front);
            let me = client.local_addr().unwrap().to_string();
            assert_eq!(get_ip(&mut client), me, "HTTP through send-proxy {version}");
            assert_eq!(get_ip(&mut client), me, "the second request on the connection ({version})");
        }
        // WebSocket, upgraded through HAProxy's HTTP mode.
        let client = common::connect(front);
        let me = client.local_addr().unwrap().to_string();
        let (mut ws, _) = tungstenite::client::client(format!("ws://{front}/ws"), client).expect("upgrade");
        let told = ws.read().expect("the greeting").into_text().unwrap();
        assert_eq!(told.as_str(), me, "WebSocket through send-proxy {version}");
    }
    // Raw TCP through send-proxy-v2.
    let mut client = common::connect(fronts[2]);
    let me = client.local_addr().unwrap().to_string();
    client.write_all(b"who am I?\n").unwrap();
    let mut line = String::new();
    BufReader::new(client).read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), me, "raw TCP through send-proxy-v2");
    // TLS passed through HAProxy's TCP mode: the header before the ClientHello.
    let mut tls = started._cert.connect(fronts[3], "localhost");
    let me = tls.sock.local_addr().unwrap().to_string();
    tls.write_all(b"GET /ip HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = tls.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with(&me), "HTTPS through send-proxy: {reply:?}");
    assert_eq!(started.server.stats().proxy_failures, 0, "{:?}", started.server.stats());
}

#[test]
fn a_connection_without_a_good_header_is_closed_counted_and_never_starts() {
    let started = start("proxy-refused");
    let refused = |first: &[u8], addr: SocketAddr| {
        let mut client = common::connect(addr);
        client.write_all(first).unwrap();
        let mut rest = Vec::new();
        // Closed without a byte of answer: not a 400, not a TLS alert, not a greeting.
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?} got {:?}", String::from_utf8_lossy(first), String::from_utf8_lossy(&rest));
    };
    refused(b"GET /ip HTTP/1.1\r\nHost: x\r\n\r\n", started.http);
    refused(b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 80\r\nGET /ip HTTP/1.1\r\n\r\n", started.http);
    refused(b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 80\nGET /ip HTTP/1.1\r\n\r\n", started.http);
    refused(b"\x16\x03\x01\x00\x05hello", started.https);
    refused(b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c", started.tcp);
    // A header begun and never finished: closed at header_timeout (500 ms here).
    refused(b"PROXY TCP4 203.0.113.7 ", started.tcp);
    refused(b"", started.http);
    let stats = started.server.stats();
    assert_eq!(stats.proxy_failures, 7, "{stats:?}");
    let ours = [started.http, started.tcp, started.https];
    let started_sessions = CONNECTED.lock().unwrap().iter().filter(|a| ours.contains(a)).count();
    assert_eq!(started_sessions, 0, "no session of a refused connection started");
    // A header written by hand, split across writes, with the request in its last packet.
    let mut client = common::connect(started.http);
    client.write_all(b"PROXY TCP6 2001:db8::7 ::1 4000 ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    client.write_all(b"80\r\n").unwrap();
    assert_eq!(get_ip(&mut client), "[2001:db8::7]:4000");
}

#[test]
fn smoke_spawn_refuses_proxy_protocol_in_one_sentence() {
    let config = Config::new().tcp("127.0.0.1:0").proxy_protocol(true);
    let err = smoke::spawn(config, |_: &mut Conn| common::Echo { observed: Default::default() }).unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy_protocol needs a smoke::Server (#[smoke::server]): smoke::spawn hands every byte, a PROXY header \
         too, to its Handler"
    );
}

#[test]
fn a_request_whose_header_arrives_as_the_drain_begins_is_answered() {
    let started = start("proxy-drain");
    let (server, http) = (started.server, started.http);
    // Half a header: the connection is accepted and waits for the rest.
    let mut client = common::connect(http);
    client.write_all(b"PROXY TCP4 192.0.2.7 ").unwrap();
    assert!(eventually(Duration::from_secs(5), || server.stats().accepted == 1));
    let stopping = std::thread::spawn(move || server.shutdown());
    // The drain has begun once the listener is gone.
    assert!(eventually(Duration::from_secs(5), || TcpStream::connect(http).is_err()));
    // A balancer sends the rest of its header with the request: the request is owed an answer.
    client.write_all(b"127.0.0.1 4000 80\r\nGET /ip HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let reply = read_reply(&mut BufReader::new(client), false).expect("an answer, not a reset");
    assert_eq!((reply.status, reply.body.as_slice()), (200, b"192.0.2.7:4000".as_slice()));
    assert_eq!(reply.header("Connection"), Some("close"));
    stopping.join().unwrap().unwrap();
}
