//! Joins an arena with N UDP players for S seconds: each sends `move` input at 20 Hz; at the end
//! it reports how many states per second each player received and the largest world it saw.
//!
//! ```text
//! arena_bot ADDR PLAYERS SECONDS      # e.g. arena_bot 127.0.0.1:9400 100 5
//! ```

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: arena_bot ADDR PLAYERS SECONDS";
    let (Some(addr), Some(players), Some(seconds)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()).filter(|n| (1..=5000).contains(n)),
        args.get(3).and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0 && *s <= 600.0),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let sockets: Vec<UdpSocket> = (0..players)
        .map(|_| {
            let socket = UdpSocket::bind("0.0.0.0:0").expect("bind a client socket");
            socket.connect(addr).expect("connect to the arena");
            socket.set_nonblocking(true).expect("non-blocking");
            socket
        })
        .collect();
    let mut states = vec![0u64; players];
    let mut largest_world = 0;
    let mut buf = vec![0u8; 65536];
    let start = Instant::now();
    let duration = Duration::from_secs_f64(seconds);
    let mut next_input = start;
    let mut round = 0i32;
    while start.elapsed() < duration {
        if Instant::now() >= next_input {
            for (i, socket) in sockets.iter().enumerate() {
                let dx = (round + i as i32) % 3 - 1;
                let _ = socket.send(format!("move {dx} 1").as_bytes());
            }
            round += 1;
            next_input += Duration::from_millis(50);
        }
        for (i, socket) in sockets.iter().enumerate() {
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        if let Some(world) = buf[..n].strip_prefix(b"state ") {
                            states[i] += 1;
                            let seen =
                                world.split(|&b| b == b' ').nth(1).map_or(0, |w| w.split(|&b| b == b';').count());
                            largest_world = largest_world.max(seen);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("player {i}: {e}");
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut rates: Vec<f64> = states.iter().map(|&n| n as f64 / elapsed).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "players={players} seconds={elapsed:.1} states/s per player: min={:.1} median={:.1} max={:.1} largest_world={largest_world}",
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1]
    );
}
