//! renet's game echo server for the benchmarks: `renet_echo PORT`. renet 2 over its own netcode
//! transport (renet_netcode) on 127.0.0.1:PORT, in the loop its examples run, polled every
//! millisecond (renet has no readiness wait: its transport reads a non-blocking socket); every
//! message goes back to its client on the channel it came on.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use renet::{ConnectionConfig, RenetServer};
use renet_netcode::{NetcodeServerTransport, ServerAuthentication, ServerConfig};

#[path = "../game.rs"]
mod game;

fn main() {
    let port = std::env::args().nth(1).expect("usage: renet_echo PORT");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = RenetServer::new(ConnectionConfig::default());
    let config = ServerConfig {
        current_time: game::unix_now(),
        max_clients: 1024,
        protocol_id: game::PROTOCOL,
        public_addresses: vec![addr],
        authentication: ServerAuthentication::Secure { private_key: game::KEY },
    };
    let mut transport = NetcodeServerTransport::new(config, UdpSocket::bind(addr).unwrap()).unwrap();
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        let step = now - last;
        last = now;
        server.update(step);
        transport.update(step, &mut server).unwrap();
        while server.get_event().is_some() {}
        for client in server.clients_id() {
            // DefaultChannel's three: unreliable, reliable unordered, reliable ordered.
            for channel in 0u8..3 {
                while let Some(message) = server.receive_message(client, channel) {
                    server.send_message(client, channel, message);
                }
            }
        }
        transport.send_packets(&mut server);
        std::thread::sleep(Duration::from_millis(1));
    }
}
