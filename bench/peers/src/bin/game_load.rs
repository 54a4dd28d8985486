//! Game session load for the benchmarks, bounded in time:
//! `game_load smoke|renet ADDR CLIENTS SECONDS RATE`. CLIENTS netcode clients (renetcode's, with
//! the server's own channels over it: smoke's `Channels`, or renet's `RenetClient`) connect with
//! tokens sealed with the benchmark's key; each then sends RATE 32-byte messages a second on the
//! unreliable channel, stamped, and times each echo. RATE 0: they only stay connected (for the
//! memory a session holds); the client prints `connected` once all are.
//!
//! Prints one line: `messages=N seconds=S rate=R p50_us=A p99_us=B lost=L`.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use renet::{ConnectionConfig, DefaultChannel, RenetClient};
use renet_netcode::{ClientAuthentication, NetcodeClientTransport};
use renetcode::NetcodeClient;
use smoke::game::{Channel, Channels};

#[path = "../game.rs"]
mod game;
#[path = "../report.rs"]
mod report;

/// One client of either server, one loop turn at a time. (A few hundred at most, in one Vec:
/// their sizes do not matter.)
#[allow(clippy::large_enum_variant)]
enum Client {
    Smoke { netcode: Box<NetcodeClient>, socket: UdpSocket, channels: Channels },
    Renet { client: Box<RenetClient>, transport: Box<NetcodeClientTransport> },
}

impl Client {
    fn new(kind: &str, server: SocketAddr, id: u64) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let token = game::token(server, id);
        match kind {
            "smoke" => {
                socket.set_nonblocking(true).unwrap();
                let auth = renetcode::ClientAuthentication::Secure { connect_token: token };
                Client::Smoke {
                    netcode: Box::new(NetcodeClient::new(game::unix_now(), auth).unwrap()),
                    socket,
                    channels: Channels::default(),
                }
            }
            _ => {
                let auth = ClientAuthentication::Secure { connect_token: token };
                let transport = NetcodeClientTransport::new(game::unix_now(), auth, socket).unwrap();
                Client::Renet {
                    client: Box::new(RenetClient::new(ConnectionConfig::default())),
                    transport: Box::new(transport),
                }
            }
        }
    }

    /// Says goodbye, so the server frees the seat and the client id at once.
    fn disconnect(&mut self) {
        match self {
            Client::Smoke { netcode, socket, .. } => {
                if let Ok((to, packet)) = netcode.disconnect() {
                    let _ = socket.send_to(packet, to);
                }
            }
            Client::Renet { transport, .. } => transport.disconnect(),
        }
    }

    fn is_connected(&self) -> bool {
        match self {
            Client::Smoke { netcode, .. } => netcode.is_connected(),
            Client::Renet { client, .. } => client.is_connected(),
        }
    }

    fn send(&mut self, message: &[u8]) {
        match self {
            Client::Smoke { channels, .. } => drop(channels.send(Channel::Unreliable, message)),
            Client::Renet { client, .. } => client.send_message(DefaultChannel::Unreliable, message.to_vec()),
        }
    }

    /// Receives, updates and sends; hands each message that arrived to `got`.
    fn turn(&mut self, step: Duration, now_ms: u64, got: &mut impl FnMut(&[u8])) {
        match self {
            Client::Smoke { netcode, socket, channels } => {
                let mut buffer = [0u8; 1500];
                while let Ok((len, _)) = socket.recv_from(&mut buffer) {
                    if let Some(payload) = netcode.process_packet(&mut buffer[..len]) {
                        channels.receive(now_ms, payload, |_, message| got(message));
                    }
                }
                if let Some((packet, to)) = netcode.update(step) {
                    let _ = socket.send_to(packet, to);
                }
                if netcode.is_connected() {
                    channels.flush(now_ms, |payload| {
                        if let Ok((to, packet)) = netcode.generate_payload_packet(payload) {
                            let _ = socket.send_to(packet, to);
                        }
                    });
                }
            }
            Client::Renet { client, transport } => {
                client.update(step);
                let _ = transport.update(step, client);
                while let Some(message) = client.receive_message(DefaultChannel::Unreliable) {
                    got(&message);
                }
                let _ = transport.send_packets(client);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 || !["smoke", "renet"].contains(&args[1].as_str()) {
        eprintln!("usage: game_load smoke|renet ADDR CLIENTS SECONDS RATE");
        std::process::exit(2);
    }
    let server: SocketAddr = args[2].parse().unwrap();
    let (count, seconds, rate): (u64, f64, u64) =
        (args[3].parse().unwrap(), args[4].parse().unwrap(), args[5].parse().unwrap());
    // Ids unique to this run: a server ignores a client id it still has connected.
    let first_id = u64::from(std::process::id()) << 20;
    let mut clients: Vec<Client> = (0..count).map(|i| Client::new(&args[1], server, first_id + i)).collect();
    let origin = Instant::now();
    let mut last = origin;
    let mut turn = |clients: &mut Vec<Client>, got: &mut dyn FnMut(&[u8])| {
        let now = Instant::now();
        let (step, now_ms) = (now - last, (now - origin).as_millis() as u64);
        last = now;
        for client in clients.iter_mut() {
            client.turn(step, now_ms, &mut |message| got(message));
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    while !clients.iter().all(Client::is_connected) {
        assert!(origin.elapsed() < Duration::from_secs(20), "not every client connected");
        turn(&mut clients, &mut |_| {});
    }
    println!("connected");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let interval = if rate > 0 { Duration::from_secs_f64(1.0 / rate as f64) } else { Duration::MAX };
    let (mut next, mut sent, mut echoed, mut samples) = (start, 0u64, 0u64, Vec::new());
    while Instant::now() < deadline {
        while rate > 0 && Instant::now() >= next {
            for client in clients.iter_mut() {
                let mut message = [0u8; 32];
                message[..16].copy_from_slice(&origin.elapsed().as_nanos().to_le_bytes());
                client.send(&message);
                sent += 1;
            }
            next += interval;
        }
        turn(&mut clients, &mut |message| {
            if message.len() == 32 {
                let stamp = u128::from_le_bytes(message[..16].try_into().unwrap());
                samples.push(((origin.elapsed().as_nanos() - stamp) / 1000) as u32);
                echoed += 1;
            }
        });
    }
    for client in &mut clients {
        client.disconnect();
    }
    // Late echoes of the last sends are not waited for: they count as lost.
    report::report(samples, echoed, start.elapsed().as_secs_f64(), Some(sent.saturating_sub(echoed)));
}
