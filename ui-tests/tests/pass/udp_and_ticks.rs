//! A UDP game server with a tick, peer timers and both forms of #[on_timer] and #[on_close].
use smoke::prelude::*;

#[derive(Default)]
struct Player {
    x: i32,
}

#[smoke::server(
    udp = 9092,
    tcp = 9093,
    udp_idle_timeout_ms = 5000,
    udp_new_peer_timeout_ms = 1000,
    max_peers = 4096,
    max_datagram = 1200,
    pfring = "eth0"
)]
impl Player {
    #[on_datagram]
    fn input(&mut self, peer: &mut Peer, packet: &[u8]) {
        self.x += packet.len() as i32;
        peer.set_timer(std::time::Duration::from_secs(1));
    }

    #[on_timer]
    fn peer_timer(&mut self, peer: &mut Peer) {
        peer.send(b"ping");
    }

    #[on_close]
    fn gone(&mut self, _peer: &mut Peer, _why: CloseReason) {}

    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_timer]
    fn conn_timer(&mut self, _conn: &mut Conn) {}

    #[on_close]
    fn closed(&mut self, _conn: &mut Conn, _why: CloseReason) {}

    #[on_tick(ms = 50)]
    fn step(worker: &mut Worker<Self>) {
        let late = worker.tick().late;
        worker.for_each_peer(|player, peer| {
            let _ = late;
            peer.send(&player.x.to_le_bytes());
        });
    }
}

fn main() {
    let config = Player::config();
    assert_eq!(config.runtime().tick, Some(std::time::Duration::from_millis(50)));
    assert_eq!(config.runtime().max_datagram, 1200);
    assert_eq!(config.runtime().pfring.as_deref(), Some("eth0"));
    assert_eq!(config.runtime().udp_idle_timeout, Some(std::time::Duration::from_secs(5)));
    assert_eq!(config.runtime().udp_new_peer_timeout, std::time::Duration::from_secs(1));
    assert_eq!(config.runtime().max_peers, 4096);
}
