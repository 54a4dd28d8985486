//! A game client for tests: renetcode's netcode client (an implementation nobody here wrote)
//! over a std UDP socket, with smoke's channels over its payloads, as a Rust game would run.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use renetcode::{ClientAuthentication, ConnectToken, DisconnectReason, NetcodeClient};
use smoke::game::{Channel, Channels};

pub struct GameClient {
    pub socket: UdpSocket,
    pub netcode: NetcodeClient,
    pub channels: Channels,
    started: Instant,
    clock: Duration,
    /// Every message received, in order.
    pub received: Vec<(Channel, Vec<u8>)>,
}

impl GameClient {
    /// A client for the token smoke issued (in renetcode's layout), bound to `local`.
    pub fn new(token: &[u8], local: &str) -> GameClient {
        let token = ConnectToken::read(&mut &token[..]).expect("renetcode reads the token");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let netcode = NetcodeClient::new(now, ClientAuthentication::Secure { connect_token: token }).unwrap();
        let socket = UdpSocket::bind(local).unwrap();
        socket.set_nonblocking(true).unwrap();
        GameClient {
            socket,
            netcode,
            channels: Channels::default(),
            started: Instant::now(),
            clock: Duration::ZERO,
            received: Vec::new(),
        }
    }

    pub fn millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// One step: what arrived, the netcode client's own packets, then what the channels send.
    pub fn pump(&mut self) {
        let mut buffer = [0u8; 1500];
        let now = self.millis();
        while let Ok((len, _)) = self.socket.recv_from(&mut buffer) {
            if let Some(payload) = self.netcode.process_packet(&mut buffer[..len]) {
                let received = &mut self.received;
                self.channels.receive(now, payload, |channel, message| received.push((channel, message.to_vec())));
            }
        }
        let elapsed = self.started.elapsed();
        let step = elapsed - self.clock;
        self.clock = elapsed;
        if let Some((packet, to)) = self.netcode.update(step) {
            let _ = self.socket.send_to(packet, to);
        }
        if self.netcode.is_connected() {
            let (netcode, socket) = (&mut self.netcode, &self.socket);
            self.channels.flush(now, |payload| {
                if let Ok((to, packet)) = netcode.generate_payload_packet(payload) {
                    let _ = socket.send_to(packet, to);
                }
            });
        }
    }

    /// Pumps every millisecond until `done` holds, for at most `limit`.
    pub fn pump_until(&mut self, limit: Duration, mut done: impl FnMut(&GameClient) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            self.pump();
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    pub fn connect(&mut self) {
        assert!(
            self.pump_until(Duration::from_secs(10), |c| c.netcode.is_connected() || c.netcode.is_disconnected()),
            "no answer to the handshake"
        );
        assert!(self.netcode.is_connected(), "refused: {:?}", self.netcode.disconnect_reason());
    }

    pub fn send(&mut self, channel: Channel, message: &[u8]) {
        self.channels.send(channel, message).expect("queued");
    }

    /// The messages received on `channel`.
    pub fn on(&self, channel: Channel) -> Vec<Vec<u8>> {
        self.received.iter().filter(|(c, _)| *c == channel).map(|(_, m)| m.clone()).collect()
    }

    pub fn reason(&self) -> Option<DisconnectReason> {
        self.netcode.disconnect_reason()
    }

    pub fn server(&self) -> SocketAddr {
        self.netcode.server_addr()
    }

    /// Says goodbye the way renetcode does: one disconnect packet.
    pub fn disconnect(&mut self) {
        if let Ok((to, packet)) = self.netcode.disconnect() {
            let _ = self.socket.send_to(packet, to);
        }
    }
}
