//! The fan-out floor: a bare epoll loop on one thread that speaks just enough WebSocket for
//! `fanout_load` (the upgrade, masked frames from `/pub`, one unmasked frame written with a plain
//! `write` to every `/sub` client). No timers, no buffers per client past the upgrade, no
//! back-pressure: what a server's fan-out costs when it does nothing but the kernel's part.
//!
//!   epoll_fanout PORT [THREADS, ignored: always one]
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const LISTENER: Token = Token(usize::MAX);

enum Role {
    Upgrading,
    Subscriber,
    Publisher,
}

struct Client {
    stream: TcpStream,
    input: Vec<u8>,
    role: Role,
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).expect("usage: epoll_fanout PORT");
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind");
    let mut poll = Poll::new().unwrap();
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).unwrap();
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut subscribers: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut frame = Vec::with_capacity(64 * 1024);
    loop {
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => result.expect("epoll_wait"),
        }
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true).unwrap();
                    let slot = clients.iter().position(Option::is_none).unwrap_or_else(|| {
                        clients.push(None);
                        clients.len() - 1
                    });
                    poll.registry().register(&mut stream, Token(slot), Interest::READABLE).unwrap();
                    clients[slot] = Some(Client { stream, input: Vec::new(), role: Role::Upgrading });
                }
                continue;
            }
            let slot = event.token().0;
            let Some(client) = clients[slot].as_mut() else { continue };
            let open = read_all(&mut client.stream, &mut client.input, &mut chunk);
            let keep = open && serve(slot, client, &mut subscribers, &mut frame);
            if !keep {
                subscribers.retain(|&s| s != slot);
                clients[slot] = None;
            }
            // A publication goes out to every subscriber at once, before the next event.
            if !frame.is_empty() {
                for &s in &subscribers {
                    if let Some(subscriber) = clients[s].as_mut() {
                        let _ = subscriber.stream.write(&frame);
                    }
                }
                frame.clear();
            }
        }
    }
}

/// Reads until the socket is drained (edge-triggered); false once the peer has closed.
fn read_all(stream: &mut TcpStream, input: &mut Vec<u8>, chunk: &mut [u8]) -> bool {
    loop {
        match stream.read(chunk) {
            Ok(0) => return false,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Answers the upgrade, or turns a publisher's frames into `frame` (the frames of every whole
/// message, unmasked, for the subscribers); false when the client is to be dropped.
fn serve(slot: usize, client: &mut Client, subscribers: &mut Vec<usize>, frame: &mut Vec<u8>) -> bool {
    match client.role {
        Role::Upgrading => {
            let Some(end) = client.input.windows(4).position(|w| w == b"\r\n\r\n") else { return true };
            let head = String::from_utf8_lossy(&client.input[..end]).into_owned();
            client.input.drain(..end + 4);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let key = head
                .lines()
                .find_map(|line| {
                    line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
                })
                .map(|(_, value)| value.trim().to_owned());
            let Some(key) = key else { return false };
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            if client.stream.write_all(answer.as_bytes()).is_err() {
                return false;
            }
            client.role = match path {
                "/sub" => {
                    subscribers.push(slot);
                    Role::Subscriber
                }
                "/pub" => Role::Publisher,
                _ => return false,
            };
            true
        }
        Role::Subscriber => {
            client.input.clear();
            true
        }
        Role::Publisher => unmask_frames(&mut client.input, frame),
    }
}

/// Moves every whole masked frame at the start of `input` into `out` as an unmasked frame;
/// false on a close frame or a frame too long for this floor.
fn unmask_frames(input: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    let mut at = 0;
    while let [first, second, rest @ ..] = &input[at..] {
        let (extra, len) = match second & 0x7f {
            126 if rest.len() >= 2 => (2, u16::from_be_bytes([rest[0], rest[1]]) as usize),
            126 => break,
            127 => return false,
            short => (0, short as usize),
        };
        let head = 2 + extra + 4;
        if input.len() - at < head + len {
            break;
        }
        if first & 0x0f == 8 {
            return false;
        }
        let mask: [u8; 4] = input[at + head - 4..at + head].try_into().unwrap();
        out.push(0x80 | (first & 0x0f));
        if len < 126 {
            out.push(len as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend(input[at + head..at + head + len].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        at += head + len;
    }
    input.drain(..at);
    true
}
