//! WebSocket end to end against tungstenite's client and hand-made frames: echo, control frames,
//! the close handshake, protocol violations, the upgrade's refusals, topics across workers,
//! backpressure and the idle ping.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use common::{Rng, connect, eventually};
use smoke::prelude::*;
use smoke::ws::close_code;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// (connection id, the client's port, code, reason) of every `on_ws_close`, from every test's
/// servers (which run in parallel: a case finds its own by id or port).
static WS_CLOSES: Mutex<Vec<(u64, u16, u16, String)>> = Mutex::new(Vec::new());
/// (connection id, what each send of a `flood` reported).
static FLOODS: Mutex<Vec<(u64, Vec<SendStatus>)>> = Mutex::new(Vec::new());
/// Connection ids `on_drain` was called for.
static DRAINED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Echoes, and speaks a tiny command language: `pub TEXT` publishes to the room given as the
/// upgrade's `?room=` (whose close handler panics in room `explode`), `unsub` leaves it, `close` starts the close handshake with 4000, `flood N`
/// sends N binary messages of 64 KiB at once.
#[derive(Default)]
struct Room {
    room: Option<String>,
}

// Written by hand, as the macro would: raw TCP's Handler (no tcp listener, so its on_data is
// never called), the protocols' Session, and the Server.
impl Handler for Room {
    fn on_data(&mut self, _conn: &mut Conn<'_>, input: &[u8]) -> usize {
        input.len()
    }
}

impl Server for Room {
    fn config() -> Config {
        Config::new().ws("127.0.0.1:0").http("127.0.0.1:0").ws_path("/live").threads(2).max_message(64 << 10)
    }
}

impl smoke::Session for Room {
    fn new_session(_conn: &mut Conn<'_>) -> Room {
        Room::default()
    }

    fn on_request(&mut self, _req: &Request<'_>, res: &mut Response) {
        res.text("plain http");
    }

    fn on_upgrade(&mut self, req: &Request<'_>, upgrade: &mut Upgrade<'_>) {
        if req.path() == "/forbidden" {
            upgrade.refuse(403);
            return;
        }
        self.room = req.query().and_then(|q| q.strip_prefix("room=")).map(str::to_owned);
        upgrade.accept_subprotocol("chat");
    }

    fn on_open(&mut self, ws: &mut WsConn<'_, '_>) {
        if let Some(room) = &self.room {
            assert!(ws.subscribe(room));
            assert!(!ws.subscribe(room), "a second subscribe to the same topic is a no-op");
        }
    }

    fn on_message(&mut self, ws: &mut WsConn<'_, '_>, message: Message<'_>) {
        match message {
            Message::Text("close") => ws.close(4000, "asked to"),
            Message::Text("unsub") => {
                let left = ws.unsubscribe(self.room.as_deref().unwrap_or("none"));
                let _ = ws.send_text(&format!("unsubscribed {left}"));
            }
            Message::Text(text) if text.starts_with("flood ") => {
                let count: usize = text[6..].parse().unwrap();
                let chunk = vec![7u8; 64 << 10];
                let statuses = (0..count).map(|_| ws.send_binary(&chunk)).collect();
                FLOODS.lock().unwrap().push((ws.id().as_u64(), statuses));
            }
            Message::Text(text) if text.starts_with("pub ") => {
                ws.publish(self.room.as_deref().unwrap_or("none"), &text[4..]);
            }
            other => {
                let _ = ws.send(other);
            }
        }
    }

    fn on_drain(&mut self, ws: &mut WsConn<'_, '_>) {
        DRAINED.lock().unwrap().push(ws.id().as_u64());
    }

    fn on_ws_close(&mut self, ws: &mut WsConn<'_, '_>, code: u16, reason: &str) {
        let port = ws.peer_addr().map_or(0, |a| a.port());
        WS_CLOSES.lock().unwrap().push((ws.id().as_u64(), port, code, reason.to_owned()));
        if self.room.as_deref() == Some("explode") {
            panic!("the test's on_close panics in room `explode`");
        }
    }
}

fn start(config: Config) -> (ServerHandle, SocketAddr, SocketAddr) {
    let server = Room::spawn(config).expect("server starts");
    let ws = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Ws).unwrap().1;
    let http = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Http).unwrap().1;
    (server, ws, http)
}

type Client = tungstenite::WebSocket<TcpStream>;

fn client(addr: SocketAddr, path: &str) -> Client {
    let stream = connect(addr);
    let (ws, _) = tungstenite::client::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    ws
}

fn read_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(text) => return text.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// True once the server reported `code` for the connection from the client's `port`.
fn closes_with(port: u16, code: u16) -> bool {
    WS_CLOSES.lock().unwrap().iter().any(|(_, p, c, _)| *p == port && *c == code)
}

#[test]
fn messages_echo_and_the_close_handshake_completes() {
    let (server, ws_addr, _) = start(Room::config());
    let mut ws = client(ws_addr, "/any/path");
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(read_text(&mut ws), "hello");
    let payload = Rng::new(7).bytes(40_000);
    ws.send(tungstenite::Message::binary(payload.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::binary(payload));
    ws.send(tungstenite::Message::Ping(b"are you there".to_vec().into())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::Pong(b"are you there".to_vec().into()));
    // Two messages reached on_message (a ping is not one); the upgrade was a request.
    let stats = server.stats();
    assert_eq!((stats.ws_messages, stats.requests), (2, 1), "{stats:?}");

    // The client closes: the server echoes its code and reports it.
    ws.close(Some(CloseFrame { code: CloseCode::from(4321), reason: "done here".into() })).unwrap();
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4321),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert!(eventually(Duration::from_secs(10), || {
        WS_CLOSES.lock().unwrap().iter().any(|(_, _, c, r)| *c == 4321 && r == "done here")
    }));

    // The server closes: the client sees its code, then the end of the stream.
    let mut ws = client(ws_addr, "/");
    ws.send(tungstenite::Message::text("close")).unwrap();
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4000, "asked to"));
        }
        other => panic!("expected the server's close, got {other:?}"),
    }
    server.shutdown().unwrap();
}

/// The upgrade request, written by hand.
fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Upgrades a raw socket and returns it positioned after the 101's head.
fn raw_upgrade(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut stream = connect(addr);
    stream.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let reply = common::http::read_reply(&mut reader, true).expect("a 101");
    assert_eq!(reply.status, 101);
    reader
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one server frame: (fin, opcode, payload).
fn read_frame(reader: &mut impl Read) -> (bool, u8, Vec<u8>) {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            reader.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            reader.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).unwrap();
    (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
}

/// Expects a close frame with `code`, then the end of the stream.
fn expect_close(reader: &mut BufReader<TcpStream>, code: u16) {
    let (_, opcode, payload) = read_frame(reader);
    assert_eq!(opcode, 8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), code, "{:?}", String::from_utf8_lossy(&payload[2..]));
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the close frame");
}

#[test]
fn fragments_reassemble_with_control_frames_between_them() {
    let (server, ws_addr, _) = start(Room::config());
    let mut reader = raw_upgrade(ws_addr);
    // "héllo wörld" split inside both two-byte characters, a ping in the middle; then the
    // same split byte by byte across writes.
    let text = "héllo wörld".as_bytes();
    let mut wire = frame(false, 1, &text[..2]);
    wire.extend(frame(false, 0, &text[2..9]));
    wire.extend(frame(true, 9, b"mid"));
    wire.extend(frame(true, 0, &text[9..]));
    for byte in &wire {
        reader.get_mut().write_all(&[*byte]).unwrap();
    }
    assert_eq!(read_frame(&mut reader), (true, 10, b"mid".to_vec()));
    assert_eq!(read_frame(&mut reader), (true, 1, text.to_vec()));
    server.shutdown().unwrap();
}

#[test]
fn protocol_violations_close_with_their_codes() {
    let (server, ws_addr, _) = start(Room::config());
    let cases: [(Vec<u8>, u16); 6] = [
        // Unmasked client frame.
        (vec![0x81, 0x02, b'h', b'i'], close_code::PROTOCOL_ERROR),
        // Reserved bit.
        (
            {
                let mut f = frame(true, 1, b"hi");
                f[0] |= 0x40;
                f
            },
            close_code::PROTOCOL_ERROR,
        ),
        // Reserved opcode.
        (frame(true, 3, b""), close_code::PROTOCOL_ERROR),
        // Ping above 125 bytes.
        (frame(true, 9, &[0; 126]), close_code::PROTOCOL_ERROR),
        // Text that is not UTF-8.
        (frame(true, 1, &[0xce, 0xba, 0xff]), close_code::INVALID_PAYLOAD),
        // A message above max_message (64 KiB here).
        (frame(true, 2, &vec![0; (64 << 10) + 1]), close_code::MESSAGE_TOO_BIG),
    ];
    for (wire, code) in cases {
        let mut reader = raw_upgrade(ws_addr);
        let port = reader.get_ref().local_addr().unwrap().port();
        reader.get_mut().write_all(&wire).unwrap();
        expect_close(&mut reader, code);
        assert!(eventually(Duration::from_secs(10), || closes_with(port, code)), "{code} reported for this connection");
    }
    server.shutdown().unwrap();
}

#[test]
fn upgrades_are_checked_and_may_be_refused() {
    let (server, ws_addr, http_addr) = start(Room::config());
    let ask_for = |addr: SocketAddr, request: &str, head_only: bool| {
        let mut stream = connect(addr);
        stream.write_all(request.as_bytes()).unwrap();
        common::http::read_reply(&mut BufReader::new(stream), head_only).expect("a reply")
    };
    let ask = |addr: SocketAddr, request: &str| ask_for(addr, request, true);
    let plain = ask(ws_addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((plain.status, plain.header("upgrade")), (426, Some("websocket")));
    let old = ask(ws_addr, &upgrade_request("/", "").replace("Version: 13", "Version: 8"));
    assert_eq!((old.status, old.header("sec-websocket-version")), (426, Some("13")));
    assert_eq!(ask(ws_addr, &upgrade_request("/forbidden", "")).status, 403);
    let chosen = ask(ws_addr, &upgrade_request("/", "Sec-WebSocket-Protocol: v2, chat\r\n"));
    assert_eq!(chosen.status, 101);
    assert_eq!(chosen.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(chosen.header("sec-websocket-protocol"), Some("chat"));
    let unoffered = ask(ws_addr, &upgrade_request("/", "Sec-WebSocket-Protocol: v2\r\n"));
    assert_eq!((unoffered.status, unoffered.header("sec-websocket-protocol")), (101, None));

    // On the HTTP listener only `ws_path` upgrades; other paths stay HTTP.
    assert_eq!(ask(http_addr, &upgrade_request("/live", "")).status, 101);
    let other = ask_for(http_addr, &upgrade_request("/elsewhere", ""), false);
    assert_eq!((other.status, other.body.as_slice()), (200, &b"plain http"[..]));
    let mut ws = client(http_addr, "/live?room=lobby");
    ws.send(tungstenite::Message::text("over http")).unwrap();
    assert_eq!(read_text(&mut ws), "over http");
    server.shutdown().unwrap();
}

#[test]
fn a_publish_reaches_every_subscriber_on_every_worker_once_in_order() {
    const SUBSCRIBERS: usize = 40;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 50;
    let (server, ws_addr, _) = start(Room::config());
    let mut subscribers: Vec<Client> = (0..SUBSCRIBERS).map(|_| client(ws_addr, "/?room=r1")).collect();
    let mut publishers: Vec<Client> = (0..PUBLISHERS).map(|_| client(ws_addr, "/?room=r1")).collect();
    // Someone in another room hears nothing of it.
    let mut outsider = client(ws_addr, "/?room=r2");
    let per_worker = server.worker_stats();
    assert!(per_worker.iter().all(|w| w.accepted > 0), "both workers hold subscribers: {per_worker:?}");

    for n in 0..EACH {
        for (p, publisher) in publishers.iter_mut().enumerate() {
            publisher.send(tungstenite::Message::text(format!("pub {p}:{n}"))).unwrap();
        }
    }
    server.publish("r2", "for r2 only");
    for ws in subscribers.iter_mut().chain(publishers.iter_mut()) {
        let mut next = [0usize; PUBLISHERS];
        for _ in 0..PUBLISHERS * EACH {
            let text = read_text(ws);
            let (p, n) = text.split_once(':').unwrap();
            let (p, n): (usize, usize) = (p.parse().unwrap(), n.parse().unwrap());
            assert_eq!(n, next[p], "publisher {p}'s messages arrive once each, in order");
            next[p] += 1;
        }
    }
    assert_eq!(read_text(&mut outsider), "for r2 only");
    smoke::publish("r2", "from any thread");
    assert_eq!(read_text(&mut outsider), "from any thread");
    server.shutdown().unwrap();
}

#[test]
fn a_panicking_on_close_still_ends_the_subscriptions() {
    let (server, ws_addr, _) = start(Room::config());
    // Two ways in: a close frame (on_close runs inside the frame's handling) and a dropped
    // socket (on_close runs as the connection ends, with 1006).
    let mut by_frame = client(ws_addr, "/?room=explode");
    let by_drop = client(ws_addr, "/?room=explode");
    let mut listener = client(ws_addr, "/?room=explode-watch");
    assert!(eventually(Duration::from_secs(5), || server.stats().subscriptions == 3), "{:?}", server.stats());
    by_frame.close(None).unwrap();
    drop(by_drop);
    assert!(eventually(Duration::from_secs(5), || server.stats().panics == 2), "{:?}", server.stats());
    assert!(eventually(Duration::from_secs(5), || server.stats().subscriptions == 1), "{:?}", server.stats());

    // The topic's registry holds no dead subscriber: a newcomer hears each publication once.
    let mut newcomer = client(ws_addr, "/?room=explode");
    assert!(eventually(Duration::from_secs(5), || server.stats().subscriptions == 2));
    server.publish("explode", "once");
    server.publish("explode-watch", "still here");
    assert_eq!(read_text(&mut newcomer), "once");
    assert_eq!(read_text(&mut listener), "still here");
    newcomer.close(None).unwrap();
    listener.close(None).unwrap();
    assert!(eventually(Duration::from_secs(5), || server.stats().subscriptions == 0), "{:?}", server.stats());
}

#[test]
fn a_slow_subscriber_has_messages_dropped_without_slowing_the_others() {
    const MESSAGES: usize = 20_000;
    let config = Room::config().threads(1).max_backpressure(64 << 10);
    let (server, ws_addr, _) = start(config);
    let mut slow = client(ws_addr, "/?room=feed");
    let fast = client(ws_addr, "/?room=feed");
    // Both are subscribed: on_open ran before the 101 they have seen was sent.
    let reader = std::thread::spawn(move || {
        let mut fast = fast;
        for n in 0..MESSAGES {
            let text = read_text(&mut fast);
            assert_eq!(text.split_once(' ').unwrap().0, n.to_string(), "the fast subscriber misses nothing");
        }
    });
    let filler = "x".repeat(1000);
    for n in 0..MESSAGES {
        server.publish("feed", format!("{n} {filler}").as_str());
        if n % 1000 == 999 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    reader.join().unwrap();
    let dropped = server.stats().dropped;
    assert!(dropped > 0, "the subscriber that never read had messages dropped");
    // What the slow one does get is in order, with gaps.
    let mut last = None;
    let mut received = 0;
    slow.get_mut().set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Ok(tungstenite::Message::Text(text)) = slow.read() {
        let n: usize = text.split_once(' ').unwrap().0.parse().unwrap();
        assert!(last.is_none_or(|l| n > l));
        last = Some(n);
        received += 1;
    }
    assert_eq!(received as u64 + dropped, MESSAGES as u64, "every message was either sent or counted as dropped");
    server.shutdown().unwrap();
}

#[test]
fn a_silent_connection_is_pinged_then_closed() {
    let config = Room::config().ws_idle_timeout(Some(Duration::from_millis(150)));
    let (server, ws_addr, _) = start(config);
    let mut reader = raw_upgrade(ws_addr);
    assert_eq!(read_frame(&mut reader), (true, 9, Vec::new()), "a ping first");
    expect_close(&mut reader, close_code::GOING_AWAY);

    // One that answers the pings stays open.
    let mut ws = client(ws_addr, "/");
    ws.get_mut().set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        // Reading answers pings (tungstenite queues the pong and flushes it on the next call).
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("closed while answering pings: {e}"),
        }
        let _ = ws.flush();
    }
    ws.get_mut().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.send(tungstenite::Message::text("still here")).unwrap();
    assert_eq!(read_text(&mut ws), "still here");
    server.shutdown().unwrap();
}

/// The statuses the last `flood` on this server reported (one flood per test server).
fn flood_statuses(count: usize) -> (u64, Vec<SendStatus>) {
    let mut found = None;
    assert!(eventually(Duration::from_secs(10), || {
        found = FLOODS.lock().unwrap().iter().rev().find(|(_, s)| s.len() == count).cloned();
        found.is_some()
    }));
    let (id, statuses) = found.unwrap();
    FLOODS.lock().unwrap().retain(|(other, _)| *other != id);
    (id, statuses)
}

#[test]
fn sends_report_backpressure_and_on_drain_follows_the_backlog() {
    const FLOOD: usize = 96;
    let config = Room::config().threads(1).max_backpressure(256 << 10);
    let (server, ws_addr, _) = start(config);
    let mut ws = client(ws_addr, "/?room=lobby");
    ws.send(tungstenite::Message::text("unsub")).unwrap();
    assert_eq!(read_text(&mut ws), "unsubscribed true");
    ws.send(tungstenite::Message::text(format!("flood {FLOOD}"))).unwrap();
    // 6 MiB at once to a client not reading yet: more than the socket takes plus 256 KiB.
    let (_, statuses) = flood_statuses(FLOOD);
    let delivered = statuses.iter().filter(|s| **s != SendStatus::Dropped).count();
    assert!(statuses[0] == SendStatus::Written, "{statuses:?}");
    assert!(delivered < FLOOD, "some sends were dropped at the limit: {statuses:?}");
    for _ in 0..delivered {
        match ws.read().unwrap() {
            tungstenite::Message::Binary(bytes) => assert_eq!(bytes.len(), 64 << 10),
            other => panic!("expected the flood, got {other:?}"),
        }
    }
    assert_eq!(server.stats().dropped, (FLOOD - delivered) as u64);
    assert!(eventually(Duration::from_secs(10), || !DRAINED.lock().unwrap().is_empty()), "on_drain ran");
    // Unsubscribed: a publish to the room no longer reaches it; an echo still does.
    server.publish("lobby", "not for you");
    ws.send(tungstenite::Message::text("still echoing")).unwrap();
    assert_eq!(read_text(&mut ws), "still echoing");
    server.shutdown().unwrap();
}

#[test]
fn at_the_limit_close_on_backpressure_limit_resets_the_connection() {
    let config = Room::config().threads(1).max_backpressure(256 << 10).close_on_backpressure_limit(true);
    let (server, ws_addr, _) = start(config);
    let mut ws = client(ws_addr, "/");
    ws.send(tungstenite::Message::text("flood 96")).unwrap();
    let (id, statuses) = flood_statuses(96);
    assert_eq!(statuses.last(), Some(&SendStatus::Dropped), "{statuses:?}");
    // The client reads what was sent before the limit, then the connection ends without a close.
    let ended = loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(_)) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert!(!matches!(ended, tungstenite::Error::ConnectionClosed), "no close handshake: {ended}");
    let reported = || WS_CLOSES.lock().unwrap().iter().any(|(i, _, code, _)| *i == id && *code == close_code::ABNORMAL);
    assert!(eventually(Duration::from_secs(10), reported), "on_close reports 1006");
    server.shutdown().unwrap();
}

#[test]
fn shutdown_sends_going_away_to_every_client() {
    let (server, ws_addr, _) = start(Room::config());
    let mut clients: Vec<Client> = (0..4).map(|_| client(ws_addr, "/")).collect();
    server.shutdown().unwrap();
    for ws in &mut clients {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), close_code::GOING_AWAY),
            other => panic!("expected 1001, got {other:?}"),
        }
    }
}

#[test]
fn garbage_after_the_upgrade_never_panics_the_server() {
    let (server, ws_addr, _) = start(Room::config().threads(1));
    let mut rng = Rng::new(42);
    for round in 0..200 {
        let mut reader = raw_upgrade(ws_addr);
        // Random bytes, sometimes behind a plausible masked header.
        let mut wire = Vec::new();
        if round % 2 == 0 {
            wire.push([0x81, 0x82, 0x01, 0x02, 0x08, 0x88, 0x89, 0x8a][rng.below(8)]);
            wire.push(0x80 | rng.below(128) as u8);
        }
        let len = rng.below(300);
        wire.extend(rng.bytes(len));
        let _ = reader.get_mut().write_all(&wire);
        let _ = reader.get_mut().shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    }
    assert_eq!(server.stats().panics, 0);
    let mut ws = client(ws_addr, "/");
    ws.send(tungstenite::Message::text("alive")).unwrap();
    assert_eq!(read_text(&mut ws), "alive");
    server.shutdown().unwrap();
}
