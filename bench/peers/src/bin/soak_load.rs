//! The soak's clients (run by bench/soak.py), bounded in time: for SECONDS, on one thread,
//!
//! - HTTP: HTTP_CONNS keep-alive connections, each asking `GET /plaintext` every ~10 s and
//!   checking the answer; now and then one churns (closes, resets, or leaves half a request, at
//!   accept, mid-request or after an answer) and a new one takes its place;
//! - WebSocket: WS_SUBS subscribers to the server's 20 Hz topic, checking every numbered
//!   publication arrives once and in order; they churn too (close handshake, dropped socket,
//!   reset, half a handshake, half a frame);
//! - UDP: UDP_PEERS sockets sending a datagram a second and checking its echo; a few move to a
//!   new port now and then;
//! - hostile clients at a low rate: silent sockets, slowloris heads, stalled bodies, clients that
//!   never read, oversized uploads (which must read their 413), spoofed UDP sources, and
//!   WebSocket frames that break the protocol. Each checks the server's answer to it.
//!
//! Prints a progress line every 10 s and, at the end, one line of `name=value` counts: load,
//! faults injected, inputs tried, and `errors` (every normal request, message or datagram that
//! went wrong, and every hostile client the server did not answer as it should).
//!
//!   soak_load HTTP_ADDR UDP_ADDR SECONDS HTTP_CONNS WS_SUBS UDP_PEERS
use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::LocalSet;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

/// The counts the soak reports, shared by every task of the one thread.
#[derive(Default)]
struct Counts {
    http_connections: Cell<u64>,
    http_requests: Cell<u64>,
    ws_connections: Cell<u64>,
    ws_messages: Cell<u64>,
    udp_datagrams: Cell<u64>,
    churn: Cell<u64>,
    hostile: Cell<u64>,
    errors: Cell<u64>,
    /// The first few errors, said.
    said: std::cell::RefCell<Vec<String>>,
}

impl Counts {
    fn add(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
    fn error(&self, what: String) {
        Counts::add(&self.errors);
        let mut said = self.said.borrow_mut();
        if said.len() < 20 {
            said.push(what);
        }
    }
    fn line(&self) -> String {
        format!(
            "http_connections={} http_requests={} ws_connections={} ws_messages={} udp_datagrams={} churn={} hostile={} errors={}",
            self.http_connections.get(),
            self.http_requests.get(),
            self.ws_connections.get(),
            self.ws_messages.get(),
            self.udp_datagrams.get(),
            self.churn.get(),
            self.hostile.get(),
            self.errors.get()
        )
    }
}

/// A small deterministic generator per task (xorshift), so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low))
    }
}

struct Soak {
    http: SocketAddr,
    udp: SocketAddr,
    deadline: Instant,
    counts: Counts,
}

impl Soak {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }
}

const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n";
const ANSWER_BODY: &[u8] = b"Hello, World!";

/// Reads one HTTP response's head and Content-Length body; its status and body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((status, body));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Makes the socket's close a reset (SO_LINGER 0).
fn reset(stream: TcpStream) {
    // Deprecated because a linger *time* blocks the thread on drop; a zero one resets at once.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// One keep-alive HTTP client slot: a connection asking every ~10 s; after a few requests it
/// churns in one of six ways and the slot connects again.
async fn http_client(soak: Rc<Soak>, seed: u64) {
    let mut rng = Rng::new(seed);
    // Spread the connects and first requests over the first ten seconds.
    sleep(rng.millis(0, 10_000)).await;
    while soak.running() {
        let Ok(mut stream) = TcpStream::connect(soak.http).await else {
            soak.counts.error("http connect failed".into());
            sleep(Duration::from_secs(1)).await;
            continue;
        };
        Counts::add(&soak.counts.http_connections);
        let requests = 1 + rng.below(30);
        let mut buf = Vec::new();
        let mut healthy = true;
        for _ in 0..requests {
            if !soak.running() {
                break;
            }
            if stream.write_all(REQUEST).await.is_err() {
                soak.counts.error("http write failed on a live connection".into());
                healthy = false;
                break;
            }
            match timeout(Duration::from_secs(10), read_response(&mut stream, &mut buf)).await {
                Ok(Some((200, body))) if body == ANSWER_BODY => Counts::add(&soak.counts.http_requests),
                other => {
                    soak.counts.error(format!("http answer: {other:?}"));
                    healthy = false;
                    break;
                }
            }
            sleep(rng.millis(8_000, 12_000)).await;
        }
        if !healthy || !soak.running() {
            continue;
        }
        Counts::add(&soak.counts.churn);
        match rng.below(6) {
            0 => drop(stream),
            1 => reset(stream),
            2 => {
                let _ = stream.write_all(&REQUEST[..12]).await;
                drop(stream);
            }
            3 => {
                let _ = stream.write_all(&REQUEST[..20]).await;
                reset(stream);
            }
            4 => {
                // A new connection closed at once, before it said anything.
                drop(stream);
                if let Ok(s) = TcpStream::connect(soak.http).await {
                    drop(s);
                }
            }
            _ => {
                drop(stream);
                if let Ok(s) = TcpStream::connect(soak.http).await {
                    reset(s);
                }
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// One subscriber slot: subscribes, checks the numbered publications arrive once each and in
/// order for 10 to 60 s, then churns, and subscribes again.
async fn ws_subscriber(soak: Rc<Soak>, seed: u64) {
    let mut rng = Rng::new(seed);
    sleep(rng.millis(0, 5_000)).await;
    let url = format!("ws://{}/ws", soak.http);
    while soak.running() {
        let Ok(Ok((mut ws, _))) = timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(&url)).await else {
            soak.counts.error("ws handshake failed".into());
            sleep(Duration::from_secs(1)).await;
            continue;
        };
        Counts::add(&soak.counts.ws_connections);
        let until = Instant::now() + rng.millis(10_000, 60_000);
        let mut last: Option<u64> = None;
        let mut healthy = true;
        while Instant::now() < until && soak.running() {
            match timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let number = text.strip_prefix("tick ").and_then(|n| n.parse::<u64>().ok());
                    match (last, number) {
                        (_, None) => soak.counts.error(format!("ws: unexpected {text}")),
                        (Some(previous), Some(n)) if n != previous + 1 => {
                            soak.counts.error(format!("ws: publication {} after {previous}", n));
                        }
                        _ => {}
                    }
                    last = number.or(last);
                    Counts::add(&soak.counts.ws_messages);
                }
                Ok(Some(Ok(_))) => {}
                other => {
                    soak.counts.error(format!("ws subscriber: {other:?}"));
                    healthy = false;
                    break;
                }
            }
        }
        if !healthy || !soak.running() {
            continue;
        }
        Counts::add(&soak.counts.churn);
        ws_churn(&soak, ws, rng.below(4)).await;
    }
}

async fn ws_churn(soak: &Soak, mut ws: Ws, how: u64) {
    match how {
        0 => {
            let _ = ws.close(None).await;
            // The close handshake's answer.
            let _ = timeout(Duration::from_secs(5), async { while let Some(Ok(_)) = ws.next().await {} }).await;
        }
        1 => drop(ws),
        2 => {
            if let tokio_tungstenite::MaybeTlsStream::Plain(stream) = ws.into_inner() {
                reset(stream);
            }
        }
        _ => {
            // Half of a masked text frame, then the socket goes.
            drop(ws);
            if let Ok(mut stream) = TcpStream::connect(soak.http).await {
                let upgrade = "GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
                let _ = stream.write_all(upgrade.as_bytes()).await;
                let _ = stream.write_all(&[0x81, 0x85, 1, 2, 3]).await;
                reset(stream);
            }
        }
    }
}

/// One UDP peer slot: a datagram a second, each echoed; every minute or so it moves to a new
/// source port (a new session; the old one expires).
async fn udp_peer(soak: Rc<Soak>, seed: u64) {
    let mut rng = Rng::new(seed);
    sleep(rng.millis(0, 1_000)).await;
    while soak.running() {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0").await else { return };
        if socket.connect(soak.udp).await.is_err() {
            return;
        }
        let moves_after = 30 + rng.below(60);
        for n in 0..moves_after {
            if !soak.running() {
                return;
            }
            let payload = format!("datagram {seed} {n}");
            let _ = socket.send(payload.as_bytes()).await;
            let mut buf = [0u8; 256];
            match timeout(Duration::from_secs(5), socket.recv(&mut buf)).await {
                Ok(Ok(len)) if buf[..len] == *payload.as_bytes() => Counts::add(&soak.counts.udp_datagrams),
                other => soak.counts.error(format!("udp echo: {other:?}")),
            }
            sleep(rng.millis(800, 1_200)).await;
        }
        Counts::add(&soak.counts.churn);
    }
}

/// Hostile clients, one kind at a time in turn, a few a second: each checks the answer the
/// defaults promise.
async fn hostile(soak: Rc<Soak>) {
    let mut rng = Rng::new(0xbad);
    let mut turn = 0u64;
    while soak.running() {
        turn += 1;
        Counts::add(&soak.counts.hostile);
        let soak2 = soak.clone();
        let kind = turn % 7;
        let seed = rng.below(u64::MAX);
        tokio::task::spawn_local(async move {
            if let Err(what) = hostile_client(&soak2, kind, seed).await {
                soak2.counts.error(format!("hostile client {kind}: {what}"));
            }
        });
        sleep(rng.millis(300, 700)).await;
    }
}

/// The server closes `stream` (end of stream or reset) within `limit`, dropping what it reads.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn hostile_client(soak: &Soak, kind: u64, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    match kind {
        // Connects and says nothing: closed after the 10 s header timeout.
        0 => {
            let mut stream = TcpStream::connect(soak.http).await.map_err(|e| e.to_string())?;
            if !closed_within(&mut stream, Duration::from_secs(20)).await {
                return Err("a silent socket was not closed in 20 s".into());
            }
        }
        // A head a byte every 500 ms: 408 10 s after its first byte.
        1 => {
            let mut stream = TcpStream::connect(soak.http).await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            // 25 s of bytes, or until the server has given up and the writes fail.
            for &byte in b"GET /plaintext HTTP/1.1\r\nHost: soak\r\nX-Slow: yes\r\n" {
                if stream.write_all(&[byte]).await.is_err() {
                    break;
                }
                sleep(Duration::from_millis(500)).await;
            }
            match timeout(Duration::from_secs(20), read_response(&mut stream, &mut buf)).await {
                Ok(Some((408, _))) => {}
                other => return Err(format!("slowloris got {other:?}")),
            }
        }
        // A body that stops: 408 after 30 s.
        2 => {
            let mut stream = TcpStream::connect(soak.http).await.map_err(|e| e.to_string())?;
            let head = b"POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n";
            stream.write_all(head).await.map_err(|e| e.to_string())?;
            stream.write_all(&[b'x'; 500]).await.map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            match timeout(Duration::from_secs(45), read_response(&mut stream, &mut buf)).await {
                Ok(Some((408, _))) => {}
                other => return Err(format!("stalled body got {other:?}")),
            }
        }
        // Asks for 100 large responses and never reads: closed within 45 s by the send timeout.
        3 => {
            let mut stream = TcpStream::connect(soak.http).await.map_err(|e| e.to_string())?;
            let requests = b"GET /big HTTP/1.1\r\nHost: soak\r\n\r\n".repeat(100);
            stream.write_all(&requests).await.map_err(|e| e.to_string())?;
            sleep(Duration::from_secs(50)).await;
            let mut received = 0usize;
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(Ok(n)) = timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                if n == 0 {
                    break;
                }
                received += n;
            }
            if received >= 100 * (256 << 10) {
                return Err("a client that never read got everything: never cut".into());
            }
        }
        // 4 MiB against the 1 MiB max_body: 413, read after sending it all.
        4 => {
            let mut stream = TcpStream::connect(soak.http).await.map_err(|e| e.to_string())?;
            let head = b"POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 4194304\r\n\r\n";
            stream.write_all(head).await.map_err(|e| e.to_string())?;
            stream.write_all(&vec![b'u'; 4 << 20]).await.map_err(|e| format!("the upload was reset: {e}"))?;
            let mut buf = Vec::new();
            match timeout(Duration::from_secs(10), read_response(&mut stream, &mut buf)).await {
                Ok(Some((413, _))) => {}
                other => return Err(format!("oversized upload got {other:?}")),
            }
        }
        // 50 datagrams from forged sources (127.2.0.0/16), one each.
        5 => {
            for _ in 0..50 {
                let source = Ipv4Addr::new(127, 2, rng.below(256) as u8, rng.below(256) as u8);
                if let Ok(socket) = UdpSocket::bind((source, 0)).await {
                    let _ = socket.send_to(b"spoofed", soak.udp).await;
                }
            }
        }
        // An unmasked frame from a client: the server closes with 1002.
        _ => {
            let url = format!("ws://{}/ws", soak.http);
            let (ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| e.to_string())?;
            let tokio_tungstenite::MaybeTlsStream::Plain(mut stream) = ws.into_inner() else {
                return Err("not plain TCP".into());
            };
            stream.write_all(&[0x81, 0x02, b'h', b'i']).await.map_err(|e| e.to_string())?;
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let found = timeout(Duration::from_secs(10), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => {
                            seen.extend_from_slice(&buf[..n]);
                            // A close frame (0x88, then its length) with code 1002 (0x03ea),
                            // after any ticks.
                            if seen.windows(4).any(|w| w[0] == 0x88 && w[2..] == [0x03, 0xea]) {
                                return true;
                            }
                        }
                    }
                }
            })
            .await;
            if found != Ok(true) {
                return Err("a protocol violation was not closed with 1002".into());
            }
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "soak_load HTTP_ADDR UDP_ADDR SECONDS HTTP_CONNS WS_SUBS UDP_PEERS";
    let arg = |i: usize| args.get(i).unwrap_or_else(|| panic!("{usage}"));
    let number = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|_| panic!("{usage}"));
    let soak = Rc::new(Soak {
        http: arg(1).parse().expect(usage),
        udp: arg(2).parse().expect(usage),
        deadline: Instant::now() + Duration::from_secs(number(3)),
        counts: Counts::default(),
    });
    let (http_conns, ws_subs, udp_peers) = (number(4), number(5), number(6));
    // One thread: the clients keep to one core.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = LocalSet::new();
    local.block_on(&runtime, async {
        for i in 0..http_conns {
            tokio::task::spawn_local(http_client(soak.clone(), i + 1));
        }
        for i in 0..ws_subs {
            tokio::task::spawn_local(ws_subscriber(soak.clone(), 1_000_000 + i));
        }
        for i in 0..udp_peers {
            tokio::task::spawn_local(udp_peer(soak.clone(), 2_000_000 + i));
        }
        tokio::task::spawn_local(hostile(soak.clone()));
        let started = Instant::now();
        while soak.running() {
            sleep(Duration::from_secs(10)).await;
            println!("progress seconds={} {}", started.elapsed().as_secs(), soak.counts.line());
        }
        // Let the hostile clients still out finish (they are bounded: 60 s at most).
        sleep(Duration::from_secs(60)).await;
    });
    for said in soak.counts.said.borrow().iter() {
        println!("error: {said}");
    }
    println!("done {}", soak.counts.line());
}
