//! UDP end to end with std's UdpSocket as the client: echo integrity, oversized datagrams,
//! peer sessions and their expiry, per-session timers, and the tick.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Rng, eventually};
use smoke::prelude::*;

/// (peer address, why) of every closed UDP session.
static PEER_CLOSES: Mutex<Vec<(SocketAddr, CloseReason)>> = Mutex::new(Vec::new());
/// (worker, tick info) of every tick.
static TICKS: Mutex<Vec<(usize, TickInfo)>> = Mutex::new(Vec::new());

/// Echoes datagrams; `count` answers how many this session has seen, `close` ends the
/// session, `timer` arms its timer, `subscribe` asks for a datagram on every tick, `block`
/// stalls the worker for 150 ms.
#[derive(Default)]
struct Game {
    seen: u32,
    subscribed: bool,
    /// Re-arms of a zero-length timer still to do from inside on_timer.
    zero_timers: u32,
}

#[smoke::server(udp = 9092, tcp = 9093, threads = 2, udp_idle_timeout_ms = 300, max_datagram = 1024)]
impl Game {
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if input.starts_with(b"timer") {
            conn.set_timer(Duration::from_millis(30));
        }
        input.len()
    }

    #[on_timer]
    fn conn_timer(&mut self, conn: &mut Conn) {
        conn.write(b"tcp timer fired\n");
    }

    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        self.seen += 1;
        match packet {
            b"count" => peer.send(self.seen.to_string().as_bytes()),
            b"close" => peer.close(),
            b"timer" => peer.set_timer(Duration::from_millis(30)),
            b"timer0" => {
                self.zero_timers = 2;
                peer.set_timer(Duration::ZERO);
            }
            b"subscribe" => self.subscribed = true,
            b"block" => std::thread::sleep(Duration::from_millis(150)),
            _ => peer.send(packet),
        }
    }

    #[on_timer]
    fn peer_timer(&mut self, peer: &mut Peer) {
        if self.zero_timers > 0 {
            // A zero-length timer set from its own call must fire again later, not spin.
            self.zero_timers -= 1;
            peer.set_timer(Duration::ZERO);
        }
        peer.send(b"udp timer fired");
    }

    #[on_close]
    fn peer_closed(&mut self, peer: &mut Peer, why: CloseReason) {
        PEER_CLOSES.lock().unwrap().push((peer.addr(), why));
    }

    #[on_tick(ms = 20)]
    fn tick(worker: &mut Worker<Self>) {
        TICKS.lock().unwrap().push((worker.index(), worker.tick()));
        let sequence = worker.tick().sequence;
        worker.for_each_peer(|game, peer| {
            if game.subscribed {
                peer.send(format!("tick {sequence}").as_bytes());
            }
        });
    }
}

fn start() -> (ServerHandle, SocketAddr, SocketAddr) {
    let config = common::on_loopback(common::on_loopback(Game::config(), "udp"), "tcp");
    let server = Game::spawn(config).expect("server starts");
    let udp = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Udp).unwrap().1;
    let tcp = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Tcp).unwrap().1;
    (server, udp, tcp)
}

fn client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 65536];
    let n = socket.recv(&mut buf).expect("a datagram");
    buf[..n].to_vec()
}

/// Receives until a datagram other than a tick arrives.
fn recv_reply(socket: &UdpSocket) -> Vec<u8> {
    loop {
        let datagram = recv(socket);
        if !datagram.starts_with(b"tick ") {
            return datagram;
        }
    }
}

#[test]
fn every_datagram_is_answered_with_its_own_payload() {
    let (server, udp, _) = start();
    let senders: Vec<_> = (0..4u64)
        .map(|seed| {
            std::thread::spawn(move || {
                let socket = client(udp);
                let mut rng = Rng::new(seed + 100);
                for _round in 0..50 {
                    // Paced: ten in flight, then their ten answers, in order (loopback keeps it).
                    let sent: Vec<Vec<u8>> = (0..10)
                        .map(|i| {
                            let len = 16 + rng.below(1000);
                            let mut payload = rng.bytes(len);
                            payload[0] = b'#';
                            payload[1] = i;
                            socket.send(&payload).unwrap();
                            payload
                        })
                        .collect();
                    for payload in sent {
                        assert_eq!(recv(&socket), payload);
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let stats = server.stats();
    assert_eq!((stats.datagrams_in, stats.datagrams_out, stats.datagrams_dropped), (2000, 2000, 0));
    assert_eq!(stats.accepted, 4, "one session per client address");
    server.shutdown().unwrap();
}

#[test]
fn a_datagram_above_max_datagram_is_counted_and_dropped_not_cut() {
    let (server, udp, _) = start();
    let socket = client(udp);
    socket.send(&[b'x'; 1025]).unwrap();
    socket.send(&[b'y'; 1024]).unwrap();
    assert_eq!(recv(&socket), vec![b'y'; 1024], "the one that fits is answered, the other is not");
    assert_eq!(server.stats().datagrams_truncated, 1);
    server.shutdown().unwrap();
}

#[test]
fn sessions_are_per_address_and_end_by_close_or_silence() {
    let (server, udp, _) = start();
    let socket = client(udp);
    let me = socket.local_addr().unwrap();
    for expected in ["1", "2"] {
        socket.send(b"count").unwrap();
        assert_eq!(recv(&socket), expected.as_bytes());
    }
    socket.send(b"close").unwrap();
    assert!(eventually(Duration::from_secs(5), || PEER_CLOSES.lock().unwrap().contains(&(me, CloseReason::Closed))));
    socket.send(b"count").unwrap();
    assert_eq!(recv(&socket), b"1", "a new session after the close");

    // Silent for udp_idle_timeout (300 ms): closed with Timeout.
    let quiet = client(udp);
    let quiet_addr = quiet.local_addr().unwrap();
    quiet.send(b"hello").unwrap();
    assert_eq!(recv(&quiet), b"hello");
    let closed = || PEER_CLOSES.lock().unwrap().contains(&(quiet_addr, CloseReason::Timeout));
    assert!(!closed());
    assert!(eventually(Duration::from_secs(5), closed), "the silent peer's session expired");
    server.shutdown().unwrap();
}

#[test]
fn a_peer_that_sent_one_datagram_expires_long_before_one_that_sent_two() {
    let config =
        Game::config().udp_idle_timeout(Some(Duration::from_secs(30))).udp_new_peer_timeout(Duration::from_millis(200));
    let server = Game::spawn(common::on_loopback(common::on_loopback(config, "udp"), "tcp")).unwrap();
    let udp = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Udp).unwrap().1;
    let (once, twice) = (client(udp), client(udp));
    once.send(b"count").unwrap();
    assert_eq!(recv_reply(&once), b"1");
    for expected in ["1", "2"] {
        twice.send(b"count").unwrap();
        assert_eq!(recv_reply(&twice), expected.as_bytes());
    }
    let once_addr = once.local_addr().unwrap();
    let expired = || PEER_CLOSES.lock().unwrap().contains(&(once_addr, CloseReason::Timeout));
    assert!(eventually(Duration::from_secs(5), expired), "a one-datagram peer expires after 200 ms");
    std::thread::sleep(Duration::from_millis(300));
    twice.send(b"count").unwrap();
    assert_eq!(recv_reply(&twice), b"3", "a peer that sent twice keeps its session for udp_idle_timeout");
    assert_eq!(server.stats().timeouts, 0, "peers expiring are not connection timeouts");
}

#[test]
fn new_addresses_beyond_max_peers_are_dropped_and_counted() {
    let config = Game::config().max_peers(16).udp_idle_timeout(Some(Duration::from_secs(30)));
    let server = Game::spawn(common::on_loopback(common::on_loopback(config, "udp"), "tcp")).unwrap();
    let udp = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Udp).unwrap().1;
    let clients: Vec<UdpSocket> = (0..40).map(|_| client(udp)).collect();
    for socket in &clients {
        socket.send(b"count").unwrap();
        socket.set_nonblocking(true).unwrap();
    }
    let mut served = Vec::new();
    let all_answered = || {
        let mut buf = [0u8; 16];
        served.extend(clients.iter().filter(|c| c.recv(&mut buf).is_ok()));
        served.len() == 16 && server.stats().peers_refused == 24
    };
    assert!(eventually(Duration::from_secs(5), all_answered), "{:?}", server.stats());
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.datagrams_in, stats.peers_refused), (16, 16, 24), "{stats:?}");
    // A place freed is a place taken.
    served[0].send(b"close").unwrap();
    assert!(eventually(Duration::from_secs(5), || server.stats().closed == 1));
    let newcomer = client(udp);
    newcomer.send(b"count").unwrap();
    assert_eq!(recv_reply(&newcomer), b"1");
}

#[test]
fn per_session_timers_fire_for_peers_and_connections() {
    let (server, udp, tcp) = start();
    let socket = client(udp);
    socket.send(b"timer").unwrap();
    assert_eq!(recv_reply(&socket), b"udp timer fired");
    socket.send(b"timer0").unwrap();
    for _ in 0..3 {
        assert_eq!(recv_reply(&socket), b"udp timer fired");
    }
    socket.send(b"count").unwrap();
    assert_eq!(recv_reply(&socket), b"3", "the worker still answers");

    use std::io::{BufRead, Write};
    let mut stream = common::connect(tcp);
    stream.write_all(b"timer").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).unwrap();
    assert_eq!(line, "tcp timer fired\n");
    server.shutdown().unwrap();
}

#[test]
fn ticks_run_on_every_worker_and_a_late_one_says_how_late() {
    let (server, udp, _) = start();
    let socket = client(udp);
    socket.send(b"subscribe").unwrap();
    // The tick reaches the subscribed peer, with increasing sequence numbers.
    let mut sequences = Vec::new();
    while sequences.len() < 5 {
        let datagram = String::from_utf8(recv(&socket)).unwrap();
        let n: u64 = datagram.strip_prefix("tick ").unwrap().parse().unwrap();
        sequences.push(n);
    }
    assert!(sequences.windows(2).all(|w| w[1] > w[0]), "{sequences:?}");

    // Stall the worker this peer lives on for 150 ms: its next tick covers ~7 missed ones and
    // reports being late by at least 100 ms.
    socket.send(b"block").unwrap();
    let found = eventually(Duration::from_secs(5), || {
        TICKS.lock().unwrap().iter().any(|(_, info)| info.missed >= 4 && info.late >= Duration::from_millis(100))
    });
    assert!(found, "a late tick reported its lateness");
    let started = Instant::now();
    let workers_ticking = eventually(Duration::from_secs(5), || {
        let ticks = TICKS.lock().unwrap();
        (0..2).all(|w| ticks.iter().filter(|(i, _)| *i == w).count() >= 3)
    });
    assert!(workers_ticking, "both workers tick");
    assert!(server.stats().ticks >= 6 && server.stats().ticks_missed >= 4, "{:?}", server.stats());
    let _ = started;
    server.shutdown().unwrap();
}
