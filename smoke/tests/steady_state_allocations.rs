//! The hot path allocates nothing per message once warmed up: reads land in the worker's
//! scratch buffer and replies borrow recycled buffers from its pool.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use smoke::{Config, Conn, Handler};

/// Counts allocations made on threads that marked themselves (each test's server worker does,
/// from its handler), so the tests' client work is not counted and the two tests, which run in
/// parallel, count separately.
struct CountingAllocator;

const NOT_COUNTED: usize = usize::MAX;
const TCP_WORKER: usize = 0;
const HTTP_WORKER: usize = 1;
const WS_WORKER: usize = 2;
const UDP_WORKER: usize = 3;
const TLS_WORKER: usize = 4;
const HTTPS_WORKER: usize = 5;
const WSS_WORKER: usize = 6;
const DEFLATE_WORKER: usize = 7;
const GAME_WORKER: usize = 8;
static WORKER_ALLOCATIONS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

thread_local! {
    static COUNTS_AS: Cell<usize> = const { Cell::new(NOT_COUNTED) };
}

fn count_allocation() {
    let slot = COUNTS_AS.with(Cell::get);
    if slot != NOT_COUNTED {
        WORKER_ALLOCATIONS[slot].fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call unchanged to the system allocator; counting has no side effects
// on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds GlobalAlloc's contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Echo;

impl Handler for Echo {
    fn on_connect(&mut self, _: &mut Conn) {
        COUNTS_AS.with(|c| c.set(TCP_WORKER));
    }
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        // Answer whole 16-byte messages only, so partial input is kept and handed back too.
        let whole = input.len() / 16 * 16;
        conn.write(&input[..whole]);
        whole
    }
}

fn exchange(clients: &mut [impl Read + Write], rounds: usize) {
    let message = *b"0123456789abcdef";
    let mut back = [0u8; 16];
    for _ in 0..rounds {
        for client in clients.iter_mut() {
            // Split the message across two writes now and then, to exercise kept input.
            client.write_all(&message[..5]).unwrap();
            client.write_all(&message[5..]).unwrap();
            client.read_exact(&mut back).unwrap();
            assert_eq!(back, message);
        }
    }
}

#[test]
fn echoing_allocates_nothing_per_message_in_steady_state() {
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| Echo).unwrap();
    let mut clients: Vec<_> = (0..8).map(|_| common::connect(server.local_addr())).collect();
    exchange(&mut clients, 200);
    let before = WORKER_ALLOCATIONS[TCP_WORKER].load(Ordering::Relaxed);
    exchange(&mut clients, 2_000);
    let after = WORKER_ALLOCATIONS[TCP_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated during 16,000 steady-state echoes");
    // The client may see the last echo before the worker, right after its send, has returned
    // the buffer; idle is idle once it has.
    let idle = common::eventually(std::time::Duration::from_secs(5), || server.stats().buffers_held == 0);
    assert!(idle, "an idle connection holds no buffer: {:?}", server.stats());
}

#[derive(Default)]
struct Hello;

#[smoke::server(http = 8080, threads = 1)]
impl Hello {
    #[smoke::on_connect]
    fn connect(&mut self, _conn: &mut Conn) {
        COUNTS_AS.with(|c| c.set(HTTP_WORKER));
    }

    #[smoke::on_request]
    fn request(&mut self, req: &smoke::http::Request, res: &mut smoke::http::Response) {
        if req.path() == "/plaintext" {
            res.text("Hello, World!").header("Server", "smoke");
        } else {
            res.status(404);
        }
    }
}

fn http_exchange(clients: &mut [std::io::BufReader<impl Read + Write>], rounds: usize) {
    let request = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..rounds {
        for reader in clients.iter_mut() {
            reader.get_mut().write_all(request).unwrap();
            for _ in 0..2 {
                let reply = common::http::read_reply(reader, false).unwrap();
                assert_eq!(reply.body, b"Hello, World!");
            }
        }
    }
}

#[test]
fn answering_http_requests_allocates_nothing_in_steady_state() {
    let config = common::on_loopback(Hello::config(), "http");
    let server = Hello::spawn(config).unwrap();
    let mut clients: Vec<_> = (0..8).map(|_| std::io::BufReader::new(common::connect(server.local_addr()))).collect();
    http_exchange(&mut clients, 100);
    let before = WORKER_ALLOCATIONS[HTTP_WORKER].load(Ordering::Relaxed);
    http_exchange(&mut clients, 1_000);
    let after = WORKER_ALLOCATIONS[HTTP_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated while answering 16,000 pipelined requests");
}

/// Echoes WebSocket messages, and publishes those starting with `pub` to topic "t", which every
/// connection subscribes to.
#[derive(Default)]
struct Relay;

#[smoke::server(ws = 9000, threads = 1)]
impl Relay {
    #[smoke::on_open]
    fn open(&mut self, ws: &mut smoke::ws::WsConn) {
        COUNTS_AS.with(|c| c.set(WS_WORKER));
        ws.subscribe("t");
    }

    #[smoke::on_message]
    fn message(&mut self, ws: &mut smoke::ws::WsConn, message: smoke::ws::Message) {
        match message {
            smoke::ws::Message::Text(text) if text.starts_with("pub") => ws.publish("t", text),
            // Several publications in one turn: delivered together at its end.
            smoke::ws::Message::Text(text) if text.starts_with("burst") => {
                for _ in 0..BURST {
                    ws.publish("t", text);
                }
            }
            other => {
                let _ = ws.send(other);
            }
        }
    }
}

/// A masked client text frame (payloads under 126 bytes).
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn ws_exchange(clients: &mut [impl Read + Write], rounds: usize) {
    let echo = ws_frame(b"echo this message");
    let mut back = [0u8; 2 + 17];
    for _ in 0..rounds {
        for client in clients.iter_mut() {
            client.write_all(&echo).unwrap();
            client.read_exact(&mut back).unwrap();
            assert_eq!(&back[2..], b"echo this message");
        }
        publish_to_all(clients, b"pub to every client", 1, 1);
    }
}

#[test]
fn websocket_messages_and_publications_allocate_nothing_in_steady_state() {
    let config = common::on_loopback(Relay::config(), "ws");
    let server = Relay::spawn(config).unwrap();
    let mut clients: Vec<_> = (0..8).map(|_| upgraded(common::connect(server.local_addr()))).collect();
    ws_exchange(&mut clients, 100);
    let before = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    ws_exchange(&mut clients, 1_000);
    let after = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated during 8,000 echoes and 1,000 publications to 8");

    // A publication to more subscribers than the worker's pool has buffers (256): each goes
    // straight to its subscriber's socket, so none takes a buffer the pool would have to make.
    clients.extend((0..292).map(|_| upgraded(common::connect(server.local_addr()))));
    publish_to_all(&mut clients, b"pub to every client", 1, 5);
    let before = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    publish_to_all(&mut clients, b"pub to every client", 1, 20);
    let after = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "the worker allocated during 20 publications to 300");

    // Bursts of publications in one turn to as many: the earlier ones queue while the pool can
    // lend (it grows to the 256 buffers it keeps), and go straight to the socket past that.
    publish_to_all(&mut clients, b"burst to every client", BURST, 3);
    let before = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    publish_to_all(&mut clients, b"burst to every client", BURST, 10);
    let after = WORKER_ALLOCATIONS[WS_WORKER].load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "the worker allocated during 10 bursts of {BURST} publications to 300");
}

/// Publications a `burst` message makes in one handler call.
const BURST: usize = 4;

/// `rounds` times: the first client sends a text message with `payload`, and every client
/// reads the `copies` publications it makes before the next round.
fn publish_to_all(clients: &mut [impl Read + Write], payload: &[u8], copies: usize, rounds: usize) {
    let message = ws_frame(payload);
    let mut back = vec![0u8; 2 + payload.len()];
    for _ in 0..rounds {
        clients[0].write_all(&message).unwrap();
        for client in clients.iter_mut() {
            for _ in 0..copies {
                client.read_exact(&mut back).unwrap();
                assert_eq!(&back[2..], payload);
            }
        }
    }
}

/// Sends the upgrade request and reads the 101: the stream is a WebSocket's from here.
fn upgraded<S: Read + Write>(stream: S) -> S {
    let mut reader = std::io::BufReader::new(stream);
    reader
        .get_mut()
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    assert_eq!(common::http::read_reply(&mut reader, true).unwrap().status, 101);
    assert!(reader.buffer().is_empty());
    reader.into_inner()
}

/// Echoes datagrams.
#[derive(Default)]
struct UdpEcho;

#[smoke::server(udp = 9092, threads = 1)]
impl UdpEcho {
    #[smoke::on_datagram]
    fn datagram(&mut self, peer: &mut smoke::Peer, packet: &[u8]) {
        COUNTS_AS.with(|c| c.set(UDP_WORKER));
        peer.send(packet);
    }
}

fn udp_exchange(clients: &[std::net::UdpSocket], rounds: usize) {
    let mut back = [0u8; 64];
    for _ in 0..rounds {
        for client in clients {
            client.send(b"a datagram of a modest size").unwrap();
        }
        for client in clients {
            let n = client.recv(&mut back).unwrap();
            assert_eq!(&back[..n], b"a datagram of a modest size");
        }
    }
}

#[test]
fn udp_echoes_allocate_nothing_in_steady_state() {
    let config = common::on_loopback(UdpEcho::config(), "udp");
    let server = UdpEcho::spawn(config).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.connect(server.local_addr()).unwrap();
            socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            socket
        })
        .collect();
    udp_exchange(&clients, 100);
    let before = WORKER_ALLOCATIONS[UDP_WORKER].load(Ordering::Relaxed);
    udp_exchange(&clients, 1_000);
    let after = WORKER_ALLOCATIONS[UDP_WORKER].load(Ordering::Relaxed);
    assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
    assert_eq!(after - before, 0, "the worker allocated during 8,000 steady-state datagram echoes");
}

/// The TLS twins: the same exchanges through TLS, where every message is a record opened in
/// place and every reply one sealed into the output queue.
mod over_tls {
    use super::*;
    use common::tls::TestCert;

    /// Echoes whole 16-byte messages, as `Echo`, over a `tls` listener.
    #[derive(Default)]
    struct TlsEcho;

    #[smoke::server(tls = 9443, threads = 1)]
    impl TlsEcho {
        #[smoke::on_connect]
        fn connect(&mut self, _conn: &mut Conn) {
            COUNTS_AS.with(|c| c.set(TLS_WORKER));
        }

        #[smoke::on_data]
        fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
            let whole = input.len() / 16 * 16;
            conn.write(&input[..whole]);
            whole
        }
    }

    fn tls_config(cert: &TestCert, protocol: &str) -> Config {
        let config = Config::new().threads(1).listen(smoke::Protocol::from_name(protocol).unwrap(), "127.0.0.1:0");
        config.tls_cert(&cert.cert).tls_key(&cert.key)
    }

    #[test]
    fn echoing_over_tls_allocates_nothing_per_message_in_steady_state() {
        let cert = TestCert::new("alloc-echo", &["localhost"]);
        let server = TlsEcho::spawn(tls_config(&cert, "tls")).unwrap();
        let mut clients: Vec<_> = (0..8).map(|_| cert.connect(server.local_addr(), "localhost")).collect();
        exchange(&mut clients, 200);
        let before = WORKER_ALLOCATIONS[TLS_WORKER].load(Ordering::Relaxed);
        exchange(&mut clients, 2_000);
        let after = WORKER_ALLOCATIONS[TLS_WORKER].load(Ordering::Relaxed);
        assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
        assert_eq!(after - before, 0, "the worker allocated during 16,000 steady-state echoes over TLS");
        let idle = common::eventually(std::time::Duration::from_secs(5), || server.stats().buffers_held == 0);
        assert!(idle, "an idle TLS connection holds no buffer: {:?}", server.stats());
    }

    /// Answers as `Hello`, over `https`.
    #[derive(Default)]
    struct SecureHello;

    #[smoke::server(https = 9445, threads = 1)]
    impl SecureHello {
        #[smoke::on_connect]
        fn connect(&mut self, _conn: &mut Conn) {
            COUNTS_AS.with(|c| c.set(HTTPS_WORKER));
        }

        #[smoke::on_request]
        fn request(&mut self, req: &smoke::http::Request, res: &mut smoke::http::Response) {
            Hello.request(req, res);
        }
    }

    #[test]
    fn answering_https_requests_allocates_nothing_in_steady_state() {
        let cert = TestCert::new("alloc-https", &["localhost"]);
        let server = SecureHello::spawn(tls_config(&cert, "https")).unwrap();
        let mut clients: Vec<_> =
            (0..8).map(|_| std::io::BufReader::new(cert.connect(server.local_addr(), "localhost"))).collect();
        http_exchange(&mut clients, 100);
        let before = WORKER_ALLOCATIONS[HTTPS_WORKER].load(Ordering::Relaxed);
        http_exchange(&mut clients, 1_000);
        let after = WORKER_ALLOCATIONS[HTTPS_WORKER].load(Ordering::Relaxed);
        assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
        assert_eq!(after - before, 0, "the worker allocated while answering 16,000 pipelined requests over TLS");
    }

    /// Echoes WebSocket messages over `wss`, as `Relay`.
    #[derive(Default)]
    struct SecureRelay;

    #[smoke::server(wss = 9444, threads = 1)]
    impl SecureRelay {
        #[smoke::on_open]
        fn open(&mut self, ws: &mut smoke::ws::WsConn) {
            COUNTS_AS.with(|c| c.set(WSS_WORKER));
            ws.subscribe("secure");
        }

        #[smoke::on_message]
        fn message(&mut self, ws: &mut smoke::ws::WsConn, message: smoke::ws::Message) {
            match message {
                smoke::ws::Message::Text(text) if text.starts_with("pub") => ws.publish("secure", text),
                other => {
                    let _ = ws.send(other);
                }
            }
        }
    }

    #[test]
    fn wss_messages_and_publications_allocate_nothing_in_steady_state() {
        let cert = TestCert::new("alloc-wss", &["localhost"]);
        let server = SecureRelay::spawn(tls_config(&cert, "wss")).unwrap();
        let mut clients: Vec<_> = (0..8).map(|_| upgraded(cert.connect(server.local_addr(), "localhost"))).collect();
        ws_exchange(&mut clients, 100);
        let before = WORKER_ALLOCATIONS[WSS_WORKER].load(Ordering::Relaxed);
        ws_exchange(&mut clients, 1_000);
        let after = WORKER_ALLOCATIONS[WSS_WORKER].load(Ordering::Relaxed);
        assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
        assert_eq!(after - before, 0, "the worker allocated during 8,000 echoes and 1,000 publications over TLS");
    }
}

/// The permessage-deflate twin: compressed messages inflated and echoes and publications
/// compressed, by the worker's shared (de)compressor.
mod compressed {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    #[derive(Default)]
    struct Squeezed;

    #[smoke::server(ws = 9446, ws_deflate = true, threads = 1)]
    impl Squeezed {
        #[smoke::on_open]
        fn open(&mut self, ws: &mut smoke::ws::WsConn) {
            COUNTS_AS.with(|c| c.set(DEFLATE_WORKER));
            ws.subscribe("zipped");
        }

        #[smoke::on_message]
        fn message(&mut self, ws: &mut smoke::ws::WsConn, message: smoke::ws::Message) {
            match message {
                smoke::ws::Message::Text(text) if text.starts_with("pub") => ws.publish("zipped", text),
                other => {
                    let _ = ws.send(other);
                }
            }
        }
    }

    /// A masked, compressed (RSV1) client text frame.
    fn compressed_frame(text: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(1024);
        let mut deflater = Compress::new_with_window_bits(Compression::default(), false, 15);
        deflater.compress_vec(text.as_bytes(), &mut body, FlushCompress::Sync).unwrap();
        body.truncate(body.len() - 4);
        assert!(body.len() < 126);
        let mask = [5, 6, 7, 8];
        let mut frame = vec![0xc1, 0x80 | body.len() as u8, 5, 6, 7, 8];
        frame.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// Reads one server frame and checks it came compressed.
    fn read_compressed(stream: &mut std::net::TcpStream) {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0xc1, "a compressed text frame");
        assert!(head[1] < 126);
        let mut payload = [0u8; 125];
        stream.read_exact(&mut payload[..head[1] as usize]).unwrap();
    }

    fn exchange(clients: &mut [std::net::TcpStream], rounds: usize) {
        let echo = compressed_frame(&"echo this compressible message, ".repeat(4));
        let publish = compressed_frame(&format!("pub {}", "to every client, compressed once; ".repeat(4)));
        for _ in 0..rounds {
            for client in clients.iter_mut() {
                client.write_all(&echo).unwrap();
                read_compressed(client);
            }
            clients[0].write_all(&publish).unwrap();
            for client in clients.iter_mut() {
                read_compressed(client);
            }
        }
    }

    #[test]
    fn compressed_messages_and_publications_allocate_nothing_in_steady_state() {
        let config = common::on_loopback(Squeezed::config(), "ws");
        let server = Squeezed::spawn(config).unwrap();
        let mut clients: Vec<_> = (0..8)
            .map(|_| {
                let mut stream = common::connect(server.local_addr());
                stream
                    .write_all(
                        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                    )
                    .unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let reply = common::http::read_reply(&mut reader, true).unwrap();
                assert!(reply.header("sec-websocket-extensions").is_some());
                stream
            })
            .collect();
        exchange(&mut clients, 100);
        let before = WORKER_ALLOCATIONS[DEFLATE_WORKER].load(Ordering::Relaxed);
        exchange(&mut clients, 1_000);
        let after = WORKER_ALLOCATIONS[DEFLATE_WORKER].load(Ordering::Relaxed);
        assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
        assert_eq!(after - before, 0, "the worker allocated inflating 9,000 messages and compressing 9,000 frames");
    }
}

/// Secure game sessions: each packet opened in place, each message through the channels'
/// pooled buffers, reliable ones held until acknowledged.
mod game {
    use super::*;
    use common::game::GameClient;
    use smoke::game::{Channel, Player, TokenIssuer};

    #[derive(Default)]
    struct GameEcho;

    #[smoke::server(game = 9400, threads = 1)]
    impl GameEcho {
        #[smoke::on_join]
        fn join(&mut self, _player: &mut Player) {
            COUNTS_AS.with(|c| c.set(GAME_WORKER));
        }

        #[smoke::on_message]
        fn message(&mut self, player: &mut Player, channel: Channel, message: &[u8]) {
            player.send(channel, message).unwrap();
        }
    }

    /// Each client sends a message on an unreliable and a reliable channel, then waits for both
    /// echoes (loopback loses nothing).
    fn exchange(clients: &mut [GameClient], rounds: usize) {
        for _ in 0..rounds {
            for client in clients.iter_mut() {
                let expected = client.received.len() + 2;
                client.send(Channel::Unreliable, b"where I am now");
                client.send(Channel::ReliableOrdered, b"what I just did");
                let limit = std::time::Duration::from_secs(10);
                assert!(client.pump_until(limit, |c| c.received.len() >= expected), "both echoes came back");
            }
        }
    }

    #[test]
    fn game_messages_allocate_nothing_per_packet_in_steady_state() {
        let config = common::on_loopback(GameEcho::config().game_key([5; 32]), "game");
        let server = GameEcho::spawn(config).unwrap();
        let issuer = TokenIssuer::new(0, [5; 32], vec![server.local_addr()]).unwrap();
        let token = |id| issuer.issue(id, b"").unwrap().to_renetcode_bytes();
        let mut clients: Vec<GameClient> = (0..4).map(|id| GameClient::new(&token(id), "127.0.0.1:0")).collect();
        for client in &mut clients {
            client.connect();
        }
        // Past the first use of each of a session's 128 records of packets sent, each of which
        // keeps its list of reliable parts for reuse.
        exchange(&mut clients, 200);
        let before = WORKER_ALLOCATIONS[GAME_WORKER].load(Ordering::Relaxed);
        exchange(&mut clients, 500);
        let after = WORKER_ALLOCATIONS[GAME_WORKER].load(Ordering::Relaxed);
        assert!(before > 0, "the worker marked itself and its warm-up allocations were counted");
        assert_eq!(after - before, 0, "the worker allocated during 4,000 steady-state game messages");
        server.shutdown().unwrap();
    }
}
