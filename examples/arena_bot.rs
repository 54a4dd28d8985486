//! Joins an arena with N players for S seconds, each a real netcode client (renetcode's) with
//! smoke's channels over its payloads: it fetches a token from the arena's `/token`, connects,
//! and sends `move` input at 20 Hz; then it holds still for H more seconds, connected. At the end
//! it reports how many states per second each player received and the largest world it saw.
//!
//! ```text
//! arena_bot HTTP_ADDR PLAYERS SECONDS [HOLD_SECONDS]   # e.g. arena_bot 127.0.0.1:9401 100 5
//! ```

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use renetcode::{ClientAuthentication, ConnectToken, NetcodeClient};
use smoke::game::{Channel, Channels};

/// One player: its netcode client, socket and channels, and what it has seen.
struct Bot {
    netcode: NetcodeClient,
    socket: UdpSocket,
    channels: Channels,
    states: u64,
}

/// A token from the arena's page server, in renetcode's layout.
fn fetch_token(http: &str, name: &str) -> Result<ConnectToken, String> {
    let mut stream = TcpStream::connect(http).map_err(|e| format!("connect to {http}: {e}"))?;
    let request =
        format!("GET /token?layout=renetcode&name={name} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let body = response.windows(4).position(|w| w == b"\r\n\r\n").map(|at| &response[at + 4..]);
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(format!("GET /token: {}", String::from_utf8_lossy(&response[..response.len().min(80)])));
    }
    ConnectToken::read(&mut body.unwrap_or_default()).map_err(|e| format!("the token: {e}"))
}

impl Bot {
    fn new(http: &str, name: &str) -> Result<Bot, String> {
        let token = fetch_token(http, name)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let netcode = NetcodeClient::new(now, ClientAuthentication::Secure { connect_token: token })
            .map_err(|e| format!("the netcode client: {e}"))?;
        let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind a client socket: {e}"))?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Bot { netcode, socket, channels: Channels::default(), states: 0 })
    }

    // ANCHOR: client
    /// What arrived, the client's own packets (handshake, keep-alives), then the channels'.
    fn pump(&mut self, step: Duration, now_ms: u64, largest_world: &mut usize, buffer: &mut [u8]) {
        while let Ok((len, _)) = self.socket.recv_from(buffer) {
            if let Some(payload) = self.netcode.process_packet(&mut buffer[..len]) {
                let states = &mut self.states;
                self.channels.receive(now_ms, payload, |channel, message| {
                    if let (Channel::Sequenced, Some(world)) = (channel, message.strip_prefix(b"state ")) {
                        *states += 1;
                        let seen = world.split(|&b| b == b' ').nth(1).map_or(0, |w| w.split(|&b| b == b';').count());
                        *largest_world = (*largest_world).max(seen);
                    }
                });
            }
        }
        if let Some((packet, to)) = self.netcode.update(step) {
            let _ = self.socket.send_to(packet, to);
        }
        if self.netcode.is_connected() {
            let (netcode, socket) = (&mut self.netcode, &self.socket);
            self.channels.flush(now_ms, |payload| {
                if let Ok((to, packet)) = netcode.generate_payload_packet(payload) {
                    let _ = socket.send_to(packet, to);
                }
            });
        }
    }
    // ANCHOR_END: client
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: arena_bot HTTP_ADDR PLAYERS SECONDS [HOLD_SECONDS]";
    let seconds = |at: usize| args.get(at).and_then(|s| s.parse::<f64>().ok()).filter(|s| (0.0..=600.0).contains(s));
    let (Some(http), Some(players), Some(moving)) =
        (args.get(1), args.get(2).and_then(|n| n.parse::<usize>().ok()).filter(|n| (1..=1000).contains(n)), seconds(3))
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let hold = if args.len() > 4 { seconds(4).unwrap_or_else(|| panic!("{usage}")) } else { 0.0 };
    let mut bots: Vec<Bot> = (0..players)
        .map(|i| Bot::new(http, &format!("bot{i}")).unwrap_or_else(|e| panic!("player {i}: {e}")))
        .collect();
    let mut buffer = vec![0u8; 2048];
    let (mut largest_world, mut round) = (0, 0i32);
    let start = Instant::now();
    let (mut last, mut next_input) = (start, start);
    let (moving, holding) = (Duration::from_secs_f64(moving), Duration::from_secs_f64(moving + hold));
    while start.elapsed() < holding {
        let now = Instant::now();
        let (step, now_ms) = (now - last, (now - start).as_millis() as u64);
        last = now;
        if now >= next_input && start.elapsed() < moving {
            for (i, bot) in bots.iter_mut().enumerate().filter(|(_, bot)| bot.netcode.is_connected()) {
                let dx = (round + i as i32) % 3 - 1;
                let _ = bot.channels.send(Channel::Unreliable, format!("move {dx} 1").as_bytes());
            }
            round += 1;
            next_input += Duration::from_millis(50);
        }
        for bot in &mut bots {
            bot.pump(step, now_ms, &mut largest_world, &mut buffer);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let connected = bots.iter().filter(|bot| bot.netcode.is_connected()).count();
    for bot in &mut bots {
        if let Ok((to, packet)) = bot.netcode.disconnect() {
            let _ = bot.socket.send_to(packet, to);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut rates: Vec<f64> = bots.iter().map(|bot| bot.states as f64 / elapsed).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "players={players} connected={connected} seconds={elapsed:.1} states/s per player: min={:.1} median={:.1} max={:.1} largest_world={largest_world}",
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
}
