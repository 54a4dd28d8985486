//! Hostile clients against a server with default settings: the defaults alone must bound what
//! they can hold, and a normal client must be answered throughout.
//!
//! `the_defaults_hold_against_every_hostile_client_at_once` runs the attacks together against
//! one server (HTTP, WebSocket with topics, raw TCP and UDP on loopback), each with its bound:
//! silent sockets closed after `header_timeout` (10 s), idle keep-alives after
//! `keep_alive_timeout` (30 s), stalled bodies answered 408 after `body_timeout` (30 s),
//! clients that never read and a dead subscriber on a busy topic closed by `send_timeout`
//! (30 s; between 30 and 45 s after they stop), an oversized upload that reads its 413, a spoofed-source UDP flood held to
//! `max_peers` and expired after `udp_new_peer_timeout` (5 s), and a flood of publications held
//! to `max_mailbox`, a handler re-arming its timer per message, and WebSocket sessions whose
//! `on_close` panics. The process's resident memory stays within a margin stated from those
//! limits. One test, one server: the attacks share it, as they would on the internet.

mod common;

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::eventually;
use common::http::read_reply;
use smoke::prelude::*;

/// Set by the mailbox flood: each worker's tick then stalls it (a handler stuck for a second),
/// so publications pile up in its mailbox as they would behind a stuck worker.
static STALL: AtomicBool = AtomicBool::new(false);
/// Workers inside a stalled tick right now.
static WORKERS_STALLED: AtomicUsize = AtomicUsize::new(0);
/// Publications on the busy topic that a reading subscriber never heard (see `dead_subscriber`).
static BUSY_LOST: AtomicUsize = AtomicUsize::new(0);

/// What `GET /big` answers: large enough that a client asking for it over and over without
/// reading fills every buffer between it and the server.
static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];

#[derive(Default)]
struct Target {
    topic: Option<String>,
}

#[smoke::server(http = 8080, ws_path = "/ws", tcp = 9000, udp = 9001, threads = 2)]
impl Target {
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

    #[on_upgrade]
    fn upgrade(&mut self, req: &Request, _upgrade: &mut Upgrade) {
        self.topic = req.query().and_then(|q| q.strip_prefix("topic=")).map(str::to_owned);
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        if let Some(topic) = &self.topic {
            ws.subscribe(topic);
        }
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        match message {
            Message::Text(text) if text.starts_with("pub ") => {
                ws.publish(self.topic.as_deref().unwrap_or("none"), &text[4..]);
            }
            other => {
                let _ = ws.send(other);
            }
        }
    }

    #[on_close]
    fn ws_closed(&mut self, _ws: &mut WsConn, _code: u16, _reason: &str) {
        if self.topic.as_deref() == Some("explode") {
            panic!("this session's on_close panics");
        }
    }

    /// Raw TCP: one byte at a time, re-arming the connection's timer for each, and echoing it.
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.set_timer(Duration::from_secs(30));
        conn.write(&input[..1]);
        1
    }

    #[on_timer]
    fn timer(&mut self, conn: &mut Conn) {
        conn.write(b"timer\n");
    }

    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        peer.send(packet);
    }

    #[on_tick(ms = 20)]
    fn tick(_worker: &mut Worker<Self>) {
        if STALL.load(Ordering::Relaxed) {
            WORKERS_STALLED.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
            WORKERS_STALLED.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

struct Addrs {
    http: SocketAddr,
    tcp: SocketAddr,
    udp: SocketAddr,
}

/// The server with every default, on loopback ports the kernel picks.
fn start() -> (ServerHandle, Addrs) {
    let mut config = Target::config();
    for protocol in ["http", "tcp", "udp"] {
        config = common::on_loopback(config, protocol);
    }
    let server = Target::spawn(config).expect("the server starts");
    let addr = |wanted| server.local_addrs().iter().find(|(p, _)| *p == wanted).unwrap().1;
    let addrs =
        Addrs { http: addr(smoke::Protocol::Http), tcp: addr(smoke::Protocol::Tcp), udp: addr(smoke::Protocol::Udp) };
    (server, addrs)
}

fn tcp(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

type WsClient = tungstenite::WebSocket<TcpStream>;

fn websocket(addr: SocketAddr, topic: &str) -> WsClient {
    let stream = tcp(addr, Duration::from_secs(10));
    tungstenite::client::client(format!("ws://{addr}/ws?topic={topic}"), stream).expect("handshake").0
}

/// How long the server took to close `stream` from `since`, reading and dropping what came
/// first; `None` if it was still open after `limit`.
fn closed_within(mut stream: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 64 << 10];
    while since.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(since.elapsed()),
        }
    }
    None
}

/// Resident memory of this process (the server and every client of these tests), in KiB:
/// the anonymous part (the heap and stacks). Not all of VmRSS: the panics this
/// test provokes print backtraces, and symbolizing them maps the test binary's debug info,
/// file-backed pages that grow with the binary (tens of MiB more once the `cluster` feature
/// links tokio and async-nats), not with anything the server holds.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A client that uses every protocol every 50 ms while the attacks run, and says what failed.
struct NormalClient {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<String>>,
}

impl NormalClient {
    fn start(addrs: &Addrs) -> NormalClient {
        let (http, udp_addr) = (addrs.http, addrs.udp);
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (stopping, counting) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            let web = tcp(http, Duration::from_secs(10));
            let mut reader = BufReader::new(web.try_clone().unwrap());
            let mut web = web;
            let mut ws = websocket(http, "normal");
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            udp.connect(udp_addr).unwrap();
            let mut round = 0usize;
            while !stopping.load(Ordering::Relaxed) {
                round += 1;
                let started = Instant::now();
                let _ = web.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
                match read_reply(&mut reader, false) {
                    Some(reply) if reply.status == 200 && reply.body == b"Hello, World!" => {}
                    other => failures.push(format!("round {round}: HTTP answered {other:?}")),
                }
                let text = format!("echo {round}");
                let echoed = ws.send(tungstenite::Message::text(text.clone())).and_then(|()| ws.read());
                if !matches!(&echoed, Ok(tungstenite::Message::Text(t)) if t.as_str() == text) {
                    failures.push(format!("round {round}: WebSocket answered {echoed:?}"));
                }
                let mut buf = [0u8; 64];
                let datagram = udp.send(text.as_bytes()).and_then(|_| udp.recv(&mut buf));
                if !matches!(datagram, Ok(n) if buf[..n] == *text.as_bytes()) {
                    failures.push(format!("round {round}: UDP answered {datagram:?}"));
                }
                if started.elapsed() > Duration::from_secs(5) {
                    failures.push(format!("round {round} took {:?}", started.elapsed()));
                }
                counting.store(round, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            failures
        });
        NormalClient { stop, rounds, thread }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.thread.join().unwrap();
        (self.rounds.load(Ordering::Relaxed), failures)
    }
}

/// Sockets that connect and say nothing.
const SILENT: usize = 1000;
/// Connections that make one request and then keep quiet.
const IDLE: usize = 200;
/// Requests whose body stops after its first kilobyte.
const STALLED: usize = 50;
/// Clients that ask for 64 MiB of responses and never read.
const NON_READERS: usize = 20;
/// Source addresses of the UDP flood (127.1.0.0 on): more than `max_peers`.
const SPOOFED: usize = 70_000;
/// WebSocket sessions whose on_close panics.
const PANICKING: usize = 10;
/// Bytes published by the mailbox flood, in 64 KiB publications: four times a mailbox's cap.
const FLOODED: usize = 64 << 20;

#[test]
fn the_defaults_hold_against_every_hostile_client_at_once() {
    let (server, addrs) = start();
    let normal = NormalClient::start(&addrs);
    assert!(
        eventually(Duration::from_secs(10), || normal.rounds.load(Ordering::Relaxed) > 0),
        "the normal client runs"
    );
    let memory_before = resident_kib();
    let peak = Arc::new(AtomicUsize::new(memory_before as usize));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (peak, watching) = (peak.clone(), watching.clone());
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max(resident_kib() as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let findings: Arc<Mutex<Vec<String>>> = Arc::default();
    let start = Instant::now();
    // The attacks on HTTP and WebSocket, each on a thread of its own, all at once.
    type Attack = fn(SocketAddr) -> Result<(), String>;
    let on_http: [(&str, Attack); 6] = [
        ("silent sockets", silent_sockets),
        ("idle keep-alives", idle_keep_alives),
        ("stalled bodies", stalled_bodies),
        ("non-reading clients", non_readers),
        ("oversized uploads", oversized_uploads),
        ("dead subscriber", dead_subscriber),
    ];
    let attacks: Vec<JoinHandle<()>> =
        on_http.into_iter().map(|(name, attack)| spawn_attack(name, &findings, attack, addrs.http)).collect();
    spoofed_udp_flood(&server, addrs.udp);
    mailbox_flood(&server);
    let rearmed = timer_re_arms(&server, addrs.tcp);
    let panicked = panicking_on_close(&server, addrs.http);
    for attack in attacks {
        attack.join().unwrap();
    }
    watching.store(false, Ordering::Relaxed);
    watcher.join().unwrap();
    let (rounds, failures) = normal.finish();
    let mut findings = findings.lock().unwrap().clone();
    findings.extend(rearmed.err().map(|e| format!("timer re-arms: {e}")));
    findings.extend(panicked.err().map(|e| format!("panicking on_close: {e}")));
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(failures.is_empty(), "the normal client, {rounds} rounds: {failures:#?}");
    assert!(rounds > 100, "the normal client was answered throughout: {rounds} rounds in {:?}", start.elapsed());

    let stats = server.stats();
    // Exactly the non-readers and the dead subscriber: nobody else was cut for not reading.
    assert_eq!(stats.timeouts, NON_READERS as u64 + 1, "{stats:?}");
    assert!(stats.mail_dropped > 0, "the mailbox flood met max_mailbox: {stats:?}");
    let busy_lost = BUSY_LOST.load(Ordering::SeqCst) as u64;
    assert!(
        busy_lost <= stats.mail_dropped,
        "{busy_lost} busy publications lost, not all to a full mailbox: {stats:?}"
    );
    // The doomed sessions, and the survivor's own end: it was in the same room.
    assert_eq!(stats.panics, PANICKING as u64 + 1, "{stats:?}");
    assert!(stats.peers_refused >= (SPOOFED - smoke::config::DEFAULT_MAX_PEERS) as u64, "{stats:?}");

    // The margin: every non-reader's queue at max_write_buffer plus the 1 MiB response that
    // crossed it, each worker's mailbox at max_mailbox twice (the one filling and the one it is
    // delivering from, swapped whole), max_peers sessions at 1 KiB, the silent
    // and idle sockets at 4 KiB each (both ends, kernel buffers aside), and 64 MiB for the
    // clients and the allocator.
    let margin_kib = (NON_READERS * (2 << 20)
        + 2 * 2 * smoke::config::DEFAULT_MAX_MAILBOX
        + smoke::config::DEFAULT_MAX_PEERS * 1024
        + (SILENT + IDLE) * 4096
        + (64 << 20))
        / 1024;
    let grew_kib = peak.load(Ordering::Relaxed) as u64 - memory_before;
    println!(
        "resident memory grew by {grew_kib} KiB at its peak (margin {margin_kib} KiB); {busy_lost} busy publications lost; {stats:?}"
    );
    assert!(grew_kib <= margin_kib as u64, "grew by {grew_kib} KiB, above the margin of {margin_kib} KiB");

    // And once the clients are gone, nothing is held.
    let idle = || {
        let s = server.stats();
        s.current() == s.peers && s.buffers_held == 0 && s.lingering == 0 && s.subscriptions == 0
    };
    assert!(eventually(Duration::from_secs(15), idle), "{:?}", server.stats());
}

fn spawn_attack(
    name: &'static str,
    findings: &Arc<Mutex<Vec<String>>>,
    attack: fn(SocketAddr) -> Result<(), String>,
    http: SocketAddr,
) -> JoinHandle<()> {
    let findings = findings.clone();
    std::thread::spawn(move || {
        if let Err(finding) = attack(http) {
            findings.lock().unwrap().push(format!("{name}: {finding}"));
        }
    })
}

/// Closed, quietly, `header_timeout` (10 s) after accept.
fn silent_sockets(http: SocketAddr) -> Result<(), String> {
    let since = Instant::now();
    let sockets: Vec<TcpStream> = (0..SILENT).map(|_| tcp(http, Duration::from_secs(1))).collect();
    for (i, mut socket) in sockets.into_iter().enumerate() {
        socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        match socket.read(&mut buf) {
            Ok(0) => {}
            other => return Err(format!("socket {i}: {other:?} instead of a quiet close")),
        }
    }
    let took = since.elapsed();
    if took < Duration::from_secs(9) || took > Duration::from_secs(20) {
        return Err(format!("closed after {took:?}, not about 10 s"));
    }
    Ok(())
}

/// Closed `keep_alive_timeout` (30 s) after their answer.
fn idle_keep_alives(http: SocketAddr) -> Result<(), String> {
    let mut connections = Vec::new();
    for _ in 0..IDLE {
        let stream = tcp(http, Duration::from_secs(10));
        (&stream).write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let reply = read_reply(&mut reader, false).ok_or("no answer")?;
        if reply.status != 200 {
            return Err(format!("answered {}", reply.status));
        }
        connections.push(stream);
    }
    let since = Instant::now();
    for (i, stream) in connections.into_iter().enumerate() {
        match closed_within(stream, since, Duration::from_secs(45)) {
            Some(after) if after >= Duration::from_secs(25) => {}
            other => return Err(format!("connection {i}: closed after {other:?}, not about 30 s")),
        }
    }
    Ok(())
}

/// 408 `body_timeout` (30 s) after the body stopped.
fn stalled_bodies(http: SocketAddr) -> Result<(), String> {
    let mut streams = Vec::new();
    for _ in 0..STALLED {
        let stream = tcp(http, Duration::from_secs(45));
        let head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
        (&stream).write_all(head).map_err(|e| e.to_string())?;
        (&stream).write_all(&[b'b'; 1000]).map_err(|e| e.to_string())?;
        streams.push(stream);
    }
    let since = Instant::now();
    for (i, stream) in streams.into_iter().enumerate() {
        let mut reader = BufReader::new(stream);
        match read_reply(&mut reader, false) {
            Some(reply) if reply.status == 408 && since.elapsed() >= Duration::from_secs(25) => {}
            other => return Err(format!("body {i}: {other:?} after {:?}", since.elapsed())),
        }
    }
    Ok(())
}

/// Closed between `send_timeout` and one and a half of it (30 to 45 s) after the server's
/// output stopped moving.
fn non_readers(http: SocketAddr) -> Result<(), String> {
    let requests = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let streams: Vec<TcpStream> = (0..NON_READERS).map(|_| tcp(http, Duration::from_secs(1))).collect();
    for stream in &streams {
        let _ = (&*stream).write_all(&requests);
    }
    let since = Instant::now();
    // Not reading for 50 s, then reading whatever the kernel kept: the server has given up by
    // then, so the stream ends (or was reset) well short of the 64 MiB asked for.
    std::thread::sleep(Duration::from_secs(50));
    for (i, stream) in streams.into_iter().enumerate() {
        let mut received = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let mut stream = stream;
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        if received >= 64 << 20 {
            return Err(format!("client {i} got all it asked for in {:?}: never cut", since.elapsed()));
        }
    }
    Ok(())
}

/// 413, read by the client: the server lingers until the upload ends.
fn oversized_uploads(http: SocketAddr) -> Result<(), String> {
    for i in 0..4 {
        let stream = tcp(http, Duration::from_secs(20));
        let mut writer = stream.try_clone().unwrap();
        let upload = std::thread::spawn(move || {
            writer.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n")?;
            writer.write_all(&vec![b'u'; 8 << 20])
        });
        upload.join().unwrap().map_err(|e| format!("upload {i} could not finish sending: {e}"))?;
        let reply = read_reply(&mut BufReader::new(stream), false);
        if reply.as_ref().map(|r| r.status) != Some(413) {
            return Err(format!("upload {i}: {reply:?}"));
        }
    }
    Ok(())
}

/// A subscriber that never reads, on a topic busy enough to fill its queue: dropped messages
/// (max_backpressure), then a close (send_timeout), while a reading subscriber gets every one
/// in order. Every one, that is, that reached its worker: the mailbox flood running at the same
/// time may find a mailbox full and drop a publication there, by design and counted, so what a
/// reader missed is left in `BUSY_LOST` for the test to hold against `Stats::mail_dropped`.
fn dead_subscriber(http: SocketAddr) -> Result<(), String> {
    let dead = websocket(http, "busy");
    let mut readers = [websocket(http, "busy"), websocket(http, "busy")];
    let mut heard = [Heard::default(), Heard::default()];
    let since = Instant::now();
    let payload = "p".repeat(4 << 10);
    let mut published = 0usize;
    // 50 s of publications, each read by the live subscriber and the publisher as it goes:
    // past the 45 s by which the dead one is closed.
    while since.elapsed() < Duration::from_secs(50) {
        for _ in 0..16 {
            readers[1]
                .send(tungstenite::Message::text(format!("pub {published} {payload}")))
                .map_err(|e| e.to_string())?;
            published += 1;
        }
        for (ws, heard) in readers.iter_mut().zip(&mut heard) {
            heard.read_up_to(ws, published)?;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(dead);
    // The flood is long over by now: a reader still missing the last round was cut off.
    if let Some(heard) = heard.iter().find(|h| h.last != Some(published - 1)) {
        return Err(format!("a live subscriber stopped hearing at {:?} of {published}", heard.last));
    }
    let lost = heard.iter().map(|h| published - h.count).max().unwrap_or(0);
    BUSY_LOST.store(lost, Ordering::SeqCst);
    Ok(())
}

/// What one reader of the busy topic heard: how many publications, the last one's number.
#[derive(Default)]
struct Heard {
    count: usize,
    last: Option<usize>,
}

impl Heard {
    /// Reads until publication `published - 1` arrives, each in order after the last; a
    /// publication dropped in a full mailbox shows as a gap, and the last of a round dropped
    /// as silence, which ends the round after a few seconds (the stalls last one).
    fn read_up_to(&mut self, ws: &mut WsClient, published: usize) -> Result<(), String> {
        let round = Instant::now();
        while self.last.map_or(0, |last| last + 1) < published {
            let message = match ws.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if round.elapsed() < Duration::from_secs(5) {
                        continue;
                    }
                    return Ok(());
                }
                Err(e) => return Err(format!("a live subscriber lost its connection: {e}")),
            };
            let text = message.into_text().map_err(|e| e.to_string())?;
            let n: usize = text.split(' ').next().and_then(|n| n.parse().ok()).ok_or("unnumbered")?;
            if self.last.is_some_and(|last| n <= last) {
                return Err(format!("publication {n} after {:?}", self.last));
            }
            self.last = Some(n);
            self.count += 1;
        }
        Ok(())
    }
}

/// Datagrams from `SPOOFED` addresses, one each, paced so the socket's buffer does not drop
/// them: at most `max_peers` sessions, the rest refused; all of them gone after
/// `udp_new_peer_timeout` (5 s).
fn spoofed_udp_flood(server: &ServerHandle, udp: SocketAddr) {
    let before = server.stats();
    for batch in 0..SPOOFED / 1000 {
        for i in batch * 1000..(batch + 1) * 1000 {
            let source = Ipv4Addr::new(127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
            let socket = UdpSocket::bind((source, 0)).expect("bind a loopback source");
            socket.send_to(b"spoofed", udp).unwrap();
        }
        let sent = ((batch + 1) * 1000) as u64;
        let counted = || {
            let s = server.stats();
            (s.datagrams_in - before.datagrams_in) + (s.peers_refused - before.peers_refused) >= sent
        };
        assert!(eventually(Duration::from_secs(10), counted), "datagrams lost before counting: {:?}", server.stats());
    }
    let flood = server.stats();
    assert!(flood.peers <= smoke::config::DEFAULT_MAX_PEERS as u64, "{} peer sessions: {flood:?}", flood.peers);
    let expired = || server.stats().peers <= before.peers + 1;
    assert!(eventually(Duration::from_secs(15), expired), "the one-datagram peers expired: {:?}", server.stats());
}

/// Publications while both workers are stuck (in a slow tick): each mailbox takes up to
/// max_mailbox and drops the rest, counted, instead of growing; the publisher never waits.
fn mailbox_flood(server: &ServerHandle) {
    STALL.store(true, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || WORKERS_STALLED.load(Ordering::SeqCst) == 2), "both workers stalled");
    STALL.store(false, Ordering::SeqCst);
    let publication = "m".repeat(64 << 10);
    for _ in 0..FLOODED / publication.len() {
        server.publish("flood", publication.as_str());
    }
}

/// 200,000 on_data calls on one connection, each re-arming its timer: one entry, re-armed in
/// place, so the server never holds more than two timer entries per session (its own and
/// the runtime's).
fn timer_re_arms(server: &ServerHandle, tcp_addr: SocketAddr) -> Result<(), String> {
    let mut client = tcp(tcp_addr, Duration::from_secs(30));
    let bytes = vec![b'.'; 200_000];
    let mut echo = vec![0u8; bytes.len()];
    let mut writer = client.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&bytes));
    client.read_exact(&mut echo).map_err(|e| e.to_string())?;
    writing.join().unwrap().map_err(|e| e.to_string())?;
    let stats = server.stats();
    if stats.timers > 2 * stats.current() {
        return Err(format!("{} timers for {} sessions", stats.timers, stats.current()));
    }
    Ok(())
}

/// WebSocket sessions whose on_close panics, subscribed to a topic: their subscriptions end
/// with them, and the one left hears a publication once.
fn panicking_on_close(server: &ServerHandle, http: SocketAddr) -> Result<(), String> {
    let mut doomed: Vec<WsClient> = (0..PANICKING).map(|_| websocket(http, "explode")).collect();
    let mut survivor = websocket(http, "explode");
    for ws in &mut doomed {
        ws.close(None).map_err(|e| e.to_string())?;
    }
    for mut ws in doomed {
        // The close handshake's answer, or the reset a panic leaves.
        while ws.read().is_ok() {}
    }
    server.publish("explode", "to the one left");
    let heard = survivor.read().map_err(|e| e.to_string())?;
    if heard.to_text().ok() != Some("to the one left") {
        return Err(format!("the survivor heard {heard:?}"));
    }
    Ok(())
}
