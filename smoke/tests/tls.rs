//! TLS end to end against real clients: curl over HTTPS, Python's `ssl` and `websockets` over
//! WSS (with and without permessage-deflate) and raw TLS, and hostile ones (not TLS, a broken ClientHello, a handshake that stalls).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::eventually;
use common::tls::TestCert;
use smoke::Protocol;
use smoke::prelude::*;

#[derive(Default)]
struct Site;

#[smoke::server(https = "127.0.0.1:0", ws_path = "/ws", tls = "127.0.0.1:0", ws_deflate = true, threads = 1)]
impl Site {
    #[get("/hello")]
    fn hello(&mut self, _req: &Request, res: &mut Response) {
        res.text("hello over tls");
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

fn start(cert: &TestCert, config: Config) -> ServerHandle {
    Site::spawn(config.tls_cert(&cert.cert).tls_key(&cert.key)).expect("the server starts")
}

fn addr_of(server: &ServerHandle, protocol: Protocol) -> std::net::SocketAddr {
    server.local_addrs().iter().find(|(p, _)| *p == protocol).unwrap().1
}

#[test]
fn curl_fetches_over_https_and_reuses_the_connection() {
    let cert = TestCert::new("curl", &["localhost"]);
    let server = start(&cert, Site::config());
    let port = addr_of(&server, Protocol::Https).port();
    let url = format!("https://localhost:{port}/hello");
    let output = Command::new("curl")
        .args(["-sS", "-v", "--http1.1", "--resolve", &format!("localhost:{port}:127.0.0.1"), "--cacert"])
        .arg(&cert.cert)
        .args([&url, &url])
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl failed: {stderr}");
    assert_eq!(stdout, "hello over tlshello over tls");
    assert!(stderr.contains("TLSv1.3"), "{stderr}");
    assert!(stderr.contains("ALPN: server accepted http/1.1"), "{stderr}");
    assert!(stderr.contains("Re-using existing connection"), "the second request reused the first's: {stderr}");
    assert_eq!(server.stats().accepted, 1);
    assert_eq!(server.stats().tls_failures, 0);
}

#[test]
fn python_speaks_raw_tls_and_wss() {
    let cert = TestCert::new("python", &["localhost"]);
    let server = start(&cert, Site::config());
    let https = addr_of(&server, Protocol::Https).port();
    let tls = addr_of(&server, Protocol::Tls).port();
    let script = format!(
        r#"
import asyncio, socket, ssl
from websockets.asyncio.client import connect
context = ssl.create_default_context(cafile={cafile:?})
with socket.create_connection(("127.0.0.1", {tls})) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as s:
        big = bytes(range(256)) * 1024
        s.sendall(big)
        got = b""
        while len(got) < len(big):
            got += s.recv(65536)
        assert got == big, "the echo came back whole"
        print("raw", s.version())
async def main():
    for compression in ("deflate", None):
        async with connect("wss://localhost:{https}/ws", ssl=context, compression=compression) as ws:
            print("compressed" if ws.response.headers.get("Sec-WebSocket-Extensions") else "plain", end=" ")
            for i in range(100):
                await ws.send("message %d" % i)
                assert await ws.recv() == "message %d" % i
            await ws.send(b"x" * 100000)
            assert await ws.recv() == b"x" * 100000
    print("wss ok")
asyncio.run(main())
"#,
        cafile = cert.cert.to_str().unwrap(),
    );
    let output = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout, "raw TLSv1.3\ncompressed plain wss ok\n");
    assert_eq!(server.stats().tls_failures, 0);
}

#[test]
fn what_is_not_tls_is_closed_and_counted() {
    let cert = TestCert::new("hostile", &["localhost"]);
    let server = start(&cert, Site::config().header_timeout(Duration::from_millis(300)));
    let addr = addr_of(&server, Protocol::Https);
    let closed = |mut stream: TcpStream| {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = Vec::new();
        // An alert at most, then the end of the stream: never a hang, never HTTP.
        let _ = stream.read_to_end(&mut answer);
        assert!(!answer.starts_with(b"HTTP"), "{answer:?}");
    };
    // Plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    closed(plain);
    // A handshake record whose ClientHello is garbage.
    let mut broken = TcpStream::connect(addr).unwrap();
    broken.write_all(&[22, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]).unwrap();
    closed(broken);
    // Half a ClientHello, then silence: the handshake times out.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(&[22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]).unwrap();
    closed(stalled);
    // Silence from the start, on the raw TLS listener.
    closed(TcpStream::connect(addr_of(&server, Protocol::Tls)).unwrap());
    assert!(eventually(Duration::from_secs(5), || server.stats().tls_failures == 4), "{:?}", server.stats());
    assert!(eventually(Duration::from_secs(5), || server.stats().current() == 0));
    assert_eq!(server.stats().panics, 0);
}

#[test]
fn sni_picks_the_certificate_for_the_name_asked() {
    let chat = TestCert::new("sni-chat", &["chat.test"]);
    let game = TestCert::new("sni-game", &["*.game.test"]);
    let config = Site::config().tls_cert(&chat.cert).tls_key(&chat.key).tls_cert(&game.cert).tls_key(&game.key);
    let server = Site::spawn(config).unwrap();
    let addr = addr_of(&server, Protocol::Tls);
    // Each client trusts only the certificate for its name: the handshake proves which was sent.
    let echo = |mut stream: common::tls::TlsStream| {
        stream.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ping");
    };
    echo(chat.connect(addr, "chat.test"));
    echo(game.connect(addr, "eu-1.game.test"));
    // Without a name (a client connecting to an address sends none) the first one.
    echo(chat.connect(addr, "127.0.0.1"));
    assert_eq!(server.stats().tls_failures, 0);
}

#[test]
fn reloading_certificates_keeps_open_connections_and_serves_the_new_ones() {
    let first = TestCert::new("reload-first", &["localhost"]);
    let second = TestCert::new("reload-second", &["localhost"]);
    let files = TestCert::new("reload-files", &["localhost"]);
    std::fs::copy(&first.cert, &files.cert).unwrap();
    std::fs::copy(&first.key, &files.key).unwrap();
    let server = start(&files, Site::config());
    let addr = addr_of(&server, Protocol::Tls);
    let mut open = first.connect(addr, "localhost");
    std::fs::copy(&second.cert, &files.cert).unwrap();
    std::fs::copy(&second.key, &files.key).unwrap();
    server.reload_certificates().expect("the new files load");
    let mut fresh = second.connect(addr, "localhost");
    for stream in [&mut open, &mut fresh] {
        stream.write_all(b"still here").unwrap();
        let mut back = [0u8; 10];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"still here");
    }
    // A key that is not the certificate's is refused, naming the file; the second pair stays.
    std::fs::copy(&first.key, &files.key).unwrap();
    let err = server.reload_certificates().unwrap_err();
    assert!(err.to_string().starts_with(&format!("tls_key {}", files.key.display())), "{err}");
    drop(second.connect(addr, "localhost"));
    assert!(eventually(Duration::from_secs(5), || server.stats().current() == 2), "{:?}", server.stats());
}

/// A client that sends its first request with its Finished, in one segment (as wrk does when
/// the two writes coalesce): the protocol starts before it sees the request, and answers it.
#[test]
fn a_request_that_comes_with_the_clients_finished_is_answered() {
    use rustls::pki_types::ServerName;
    let cert = TestCert::new("coalesced", &["localhost"]);
    let server = start(&cert, Site::config());
    let addr = addr_of(&server, Protocol::Https);
    for _ in 0..20 {
        let mut roots = rustls::RootCertStore::empty();
        let der = <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_file(&cert.cert);
        roots.add(der.unwrap()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        // Written before the handshake: rustls sends it right after its Finished.
        client.writer().write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let socket = common::connect(addr);
        let mut stream = rustls::StreamOwned::new(client, socket);
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            // The server's close_notify ends it cleanly; a bare end of stream would be an error.
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&answer)),
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello over tls"), "{answer}");
    }
    assert_eq!(server.stats().tls_failures, 0);
}
