//! HTTP/1.1 over the epoll engine, checked against real clients (curl, python http.client) and
//! raw sockets: keep-alive, pipelining, bodies, HEAD, limits and request-smuggling vectors.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::http::{closed, read_reply};
use smoke::prelude::*;

#[derive(Default)]
struct App;

#[smoke::server(http = 8080, threads = 2, max_body = 4096, max_header_bytes = 1024, max_headers = 16)]
impl App {
    #[on_request]
    fn request(&mut self, req: &Request, res: &mut Response) {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/plaintext") => {
                res.text("Hello, World!");
            }
            ("POST" | "PUT", "/echo") => {
                res.body(req.body()).header("X-Method", req.method());
            }
            ("GET", "/query") => {
                res.text(req.query().unwrap_or(""));
            }
            ("GET", "/multi") => {
                let values: Vec<&[u8]> = req.headers_named("x-multi").collect();
                res.body(values.join(&b","[..]));
            }
            ("GET", "/version") => {
                res.text(req.version());
            }
            _ => {
                res.status(404).text("not found");
            }
        }
    }
}

fn start() -> (smoke::ServerHandle, SocketAddr) {
    let config = common::on_loopback(App::config(), "http");
    let server = App::spawn(config).unwrap();
    let addr = server.local_addr();
    (server, addr)
}

fn raw(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

#[test]
fn curl_reuses_one_keep_alive_connection_for_two_urls() {
    let (server, addr) = start();
    let output = Command::new("curl")
        .args(["-sv", "--max-time", "10", &format!("http://{addr}/plaintext"), &format!("http://{addr}/query?a=1")])
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "Hello, World!a=1");
    assert!(stderr.to_lowercase().contains("existing connection"), "curl did not reuse the connection:\n{stderr}");
    assert!(stderr.contains("< Date: "), "{stderr}");
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn python_http_client_sends_bodies_plain_and_chunked() {
    let (_server, addr) = start();
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("{ip}", {port}, timeout=10)
c.request("POST", "/echo", body=b"plain body")
r = c.getresponse(); assert r.status == 200, r.status; assert r.read() == b"plain body"
c.request("PUT", "/echo", body=iter([b"chunk-one,", b"chunk-two"]), encode_chunked=True, headers={{"Transfer-Encoding": "chunked"}})
r = c.getresponse(); assert r.status == 200; assert r.getheader("X-Method") == "PUT"; assert r.read() == b"chunk-one,chunk-two"
c.request("HEAD", "/plaintext")
r = c.getresponse(); assert r.status == 200; assert r.getheader("Content-Length") == "13"; assert r.read() == b""
c.request("GET", "/nowhere")
r = c.getresponse(); assert r.status == 404; assert r.read() == b"not found"
print("ok")
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    let output = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

#[test]
fn sixteen_pipelined_requests_in_one_write_are_answered_in_order() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    let batch: String = (0..16).map(|i| format!("GET /query?{i} HTTP/1.1\r\nHost: x\r\n\r\n")).collect();
    stream.write_all(batch.as_bytes()).unwrap();
    for i in 0..16 {
        let reply = read_reply(&mut reader, false).expect("a response per request");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, i.to_string().as_bytes());
    }
}

#[test]
fn a_partial_request_does_not_delay_the_complete_ones_before_it() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET /query?first HTTP/1.1\r\nHost: x\r\n\r\nGET /query?second HTTP/1.1\r\nHo").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"first");
    stream.write_all(b"st: x\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"second");
}

#[test]
fn a_request_split_at_every_byte_boundary_is_answered() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    let request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
    for split in 1..request.len() {
        stream.write_all(&request[..split]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
        stream.write_all(&request[split..]).unwrap();
        let reply = read_reply(&mut reader, false).expect("response");
        assert_eq!((reply.status, &reply.body[..]), (200, &b"hello world"[..]), "split at {split}");
    }
}

#[test]
fn head_gets_headers_without_a_body() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    stream
        .write_all(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /query?after HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_reply(&mut reader, true).unwrap();
    assert_eq!(head.header("Content-Length"), Some("13"));
    // The next response starts right after the head: no body bytes were sent for HEAD.
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"after");
}

#[test]
fn connection_close_and_http_1_0_close_after_the_response() {
    let (_server, addr) = start();
    for request in
        [&b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..], b"GET /version HTTP/1.0\r\n\r\n"]
    {
        let (mut stream, mut reader) = raw(addr);
        stream.write_all(request).unwrap();
        let reply = read_reply(&mut reader, false).unwrap();
        assert_eq!(reply.header("Connection"), Some("close"));
        assert!(closed(&mut reader));
    }
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"HTTP/1.0");
    stream.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"HTTP/1.1", "HTTP/1.0 keep-alive kept it open");
}

#[test]
fn repeated_headers_are_all_kept() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET /multi HTTP/1.1\r\nHost: x\r\nX-Multi: a\r\nx-multi: b\r\nX-MULTI: c\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"a,b,c");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let interim = read_reply(&mut reader, false).unwrap();
    assert_eq!(interim.status, 100);
    stream.write_all(b"data").unwrap();
    let reply = read_reply(&mut reader, false).unwrap();
    assert_eq!((reply.status, &reply.body[..]), (200, &b"data"[..]));
}

/// Sends `request` on a fresh connection; returns the status and whether the server closed.
fn refused(addr: SocketAddr, request: &[u8]) -> (u16, bool) {
    let (mut stream, mut reader) = raw(addr);
    let _ = stream.write_all(request);
    let reply = read_reply(&mut reader, false).expect("an error response");
    (reply.status, reply.header("Connection") == Some("close") && closed(&mut reader))
}

#[test]
fn limits_get_their_status_and_a_close() {
    let (server, addr) = start();
    let big_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let many_headers: String =
        format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", (0..20).map(|i| format!("X-{i}: v\r\n")).collect::<String>());
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (big_header.into_bytes(), 431),
        (many_headers.into_bytes(), 431),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec(), 413),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n".to_vec(), 413),
        (b"GET / HTTP/2.0\r\n\r\n".to_vec(), 505),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
    ];
    for (request, status) in &cases {
        assert_eq!(
            refused(addr, request),
            (*status, true),
            "{}",
            String::from_utf8_lossy(&request[..40.min(request.len())])
        );
    }
    assert_eq!(server.stats().rejected, cases.len() as u64);
}

#[test]
fn a_client_uploading_a_refused_body_reads_its_413_not_a_reset() {
    // http.client sends the whole body before it reads anything: 16 MiB against a 4 KiB
    // max_body. The server answers 413 at the head; without the lingering close its socket
    // would close on the unread body, and the client's send would fail with a reset.
    let (server, addr) = start();
    let script = format!(
        r#"
import http.client
c = http.client.HTTPConnection("{ip}", {port}, timeout=20)
c.request("POST", "/echo", body=b"x" * (16 << 20))
r = c.getresponse()
print(r.status, r.getheader("Connection"))
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    let output = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "413 close");
    assert_eq!(server.stats().rejected, 1);
}

#[test]
fn request_smuggling_vectors_are_refused_with_400_and_a_close() {
    let (_server, addr) = start();
    let cases: &[&[u8]] = &[
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ];
    for request in cases {
        assert_eq!(refused(addr, request), (400, true), "{}", String::from_utf8_lossy(request));
    }
    // Bytes after a complete request that are not a request themselves: the first is answered,
    // the garbage refused.
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET /query?ok HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"ok");
    assert_eq!(read_reply(&mut reader, false).unwrap().status, 400);
    assert!(closed(&mut reader));
}

#[test]
fn a_short_wrk_run_has_no_errors_and_only_2xx() {
    let (_server, addr) = start();
    let output = Command::new("wrk")
        .args(["-t1", "-c20", "-d1s", "--latency", &format!("http://{addr}/plaintext")])
        .output()
        .expect("wrk is installed (scripts/test.sh installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    let requests: u64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 0, "{report}");
}

#[derive(Default)]
struct Patient;

// Timeouts short enough for a test, long enough that a loaded machine's scheduling delays
// between a client's writes stay well inside them.
#[smoke::server(http = 8080, threads = 1, header_timeout_ms = 1000)]
impl Patient {
    #[on_request]
    fn request(&mut self, _req: &Request, res: &mut Response) {
        res.text("ok");
    }
}

fn start_patient() -> (smoke::ServerHandle, SocketAddr) {
    let config = Patient::config().keep_alive_timeout(Duration::from_millis(1500)).body_timeout(Duration::from_secs(1));
    let server = Patient::spawn(common::on_loopback(config, "http")).unwrap();
    let addr = server.local_addr();
    (server, addr)
}

#[test]
fn a_header_block_that_never_completes_gets_408_and_a_close() {
    let (server, addr) = start_patient();
    let (mut stream, mut reader) = raw(addr);
    // Slowloris: a request line and one header, then a byte now and then, never the blank line.
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(b"X").unwrap();
    }
    let reply = read_reply(&mut reader, false).expect("a 408 response");
    assert_eq!((reply.status, reply.header("Connection")), (408, Some("close")));
    assert!(closed(&mut reader));
    assert_eq!(server.stats().rejected, 1);
}

#[test]
fn idle_keep_alive_connections_close_and_completed_heads_cancel_the_header_timer() {
    let (server, addr) = start_patient();
    let (mut stream, mut reader) = raw(addr);
    // A head split in two parts, completed well within the header timeout: answered, no 408.
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    stream.write_all(b"\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"ok");
    // Then idle: the keep-alive connection is closed by keep_alive_timeout (no idle_timeout
    // is set), quietly (no 408).
    assert!(closed(&mut reader));
    assert_eq!(server.stats().rejected, 0);
}

#[test]
fn a_socket_that_connects_and_says_nothing_is_closed_after_header_timeout() {
    let (server, addr) = start_patient();
    let (_stream, mut reader) = raw(addr);
    let started = std::time::Instant::now();
    // `closed` reads until EOF: it sees no bytes at all, only the close.
    assert!(closed(&mut reader));
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after the timeout, not before");
    assert_eq!(server.stats().rejected, 0, "no 408 to a socket that never spoke");
}

#[test]
fn a_body_that_stops_arriving_gets_408_and_a_close() {
    let (server, addr) = start_patient();
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345").unwrap();
    let reply = read_reply(&mut reader, false).expect("a 408 response");
    assert_eq!((reply.status, reply.header("Connection")), (408, Some("close")));
    assert!(closed(&mut reader));
    assert_eq!(server.stats().rejected, 1);
}

#[derive(Default)]
struct Large;

#[smoke::server(http = 8080, threads = 1, max_write_buffer = 262144)]
impl Large {
    #[get("/big/:n")]
    fn big(&mut self, req: &Request, res: &mut Response) {
        let n: usize = req.param("n").and_then(|n| n.parse().ok()).unwrap_or(0);
        res.body(vec![b'a' + (n % 26) as u8; 100_000]);
    }
}

#[test]
fn pipelined_requests_for_large_responses_wait_for_the_reader_and_all_arrive() {
    let config = common::on_loopback(Large::config(), "http");
    let server = Large::spawn(config).unwrap();
    let (mut stream, mut reader) = raw(server.local_addr());
    // 200 requests in one write ask for 20 MB; the server may queue only about its 256 KiB
    // high-water mark at a time, and must pick the rest up as the reader drains it.
    let batch: String = (0..200).map(|i| format!("GET /big/{i} HTTP/1.1\r\nHost: x\r\n\r\n")).collect();
    stream.write_all(batch.as_bytes()).unwrap();
    for i in 0..200 {
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let reply = read_reply(&mut reader, false).unwrap_or_else(|| panic!("response {i}"));
        assert_eq!(reply.body.len(), 100_000);
        assert!(reply.body.iter().all(|&b| b == b'a' + (i % 26) as u8), "response {i} out of order");
    }
}

#[test]
fn absolute_form_targets_and_http_1_0_keep_alive_are_understood() {
    let (_server, addr) = start();
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET http://example.test/query?abs HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"abs");
    stream.write_all(b"GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let reply = read_reply(&mut reader, false).unwrap();
    assert_eq!(reply.header("Connection"), Some("keep-alive"), "a kept HTTP/1.0 connection is confirmed");
}

#[test]
fn host_is_required_once_and_unmet_expectations_get_417() {
    let (_server, addr) = start();
    let cases: [(&[u8], u16); 4] = [
        (b"GET /query?x HTTP/1.1\r\n\r\n", 400),
        (b"GET /query?x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /query?x HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: x-later\r\nContent-Length: 2\r\n\r\nhi", 417),
    ];
    for (request, status) in cases {
        let (mut stream, mut reader) = raw(addr);
        stream.write_all(request).unwrap();
        let reply = read_reply(&mut reader, false).unwrap();
        assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(reply.header("connection"), Some("close"));
    }
    let (mut stream, mut reader) = raw(addr);
    stream.write_all(b"GET /query?old HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut reader, false).unwrap().body, b"old", "HTTP/1.0 needs no Host");
}
