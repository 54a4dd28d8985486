//! The packet ring (`pfring`) delivers only what the UDP socket behind it would have: not a
//! datagram whose checksum is wrong, not one addressed to another host's IP that reached this
//! interface, and a datagram above `max_datagram` is counted, not delivered. Frames come from
//! a second network namespace over a veth pair that the test creates (root, as CI runs).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::netns::{Namespaces, must, run, spawn_test_in};
use smoke::prelude::*;

const SERVER_IP: &str = "10.214.0.1";
const CLIENT_IP: &str = "10.214.0.2";
/// On the server's link, owned by no host: frames for it carry the server's MAC (a static
/// neighbour entry on the client), as a router's or a mirror port's would.
const OTHER_IP: &str = "10.214.0.3";
const PORT: u16 = 9193;
const EACH: usize = 20;

#[derive(Default)]
struct RingEcho;

#[smoke::server(udp = 9193, threads = 2)]
impl RingEcho {
    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        peer.send(packet);
    }
}

/// The server's and client's namespaces, and on the client a neighbour entry for `OTHER_IP`
/// with the server's MAC.
fn namespaces() -> Namespaces {
    let ns = Namespaces::create("r", SERVER_IP, CLIENT_IP);
    let link = must("ip", &["-n", &ns.server, "link", "show", "dev", &ns.server_link]);
    let mac = link.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).expect("the veth's MAC");
    must("ip", &["-n", &ns.client, "neigh", "add", OTHER_IP, "lladdr", mac, "dev", &ns.client_link]);
    ns
}

#[test]
fn the_ring_delivers_only_what_the_socket_would_have() {
    let ns = namespaces();
    let mut server = spawn_test_in(&ns.server, "ring_server", &[("RING_SERVER", &ns.server_link)]);
    let mut ask = server.stdin.take().unwrap();
    let mut answers = BufReader::new(server.stdout.take().unwrap()).lines().map(|line| line.unwrap());
    assert!(answers.any(|line| line.contains("ready")), "the ring server started");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/ring_frames.py");
    let each = EACH.to_string();
    let client = run("ip", &["netns", "exec", &ns.client, "python3", script, SERVER_IP, OTHER_IP, "9193", &each]);
    let said = String::from_utf8_lossy(&client.stdout).into_owned();
    assert!(client.status.success(), "client: {said}{}", String::from_utf8_lossy(&client.stderr));

    let mut stats = String::new();
    let start = Instant::now();
    let expected = format!("datagrams_in={EACH} ring_dropped={} datagrams_truncated={EACH}", 2 * EACH);
    while start.elapsed() < Duration::from_secs(10) {
        writeln!(ask, "report").unwrap();
        stats = answers.find(|line| line.starts_with("stats ")).unwrap();
        if stats.ends_with(&expected) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stats.ends_with(&expected), "{stats}: the good datagrams only, the others counted");
    drop(ask);
    assert!(server.wait().unwrap().success());
}

/// The server half of the test above, run by it inside the server's namespace: the ring on
/// the veth named by `RING_SERVER`, reporting its counters on each "report" line.
#[test]
#[ignore = "the server process of the_ring_delivers_only_what_the_socket_would_have"]
fn ring_server() {
    let interface = std::env::var("RING_SERVER").expect("run by the packet-ring test");
    let config = Config::new().udp(format!("{SERVER_IP}:{PORT}").as_str()).threads(2).pfring(interface);
    let server = RingEcho::spawn(config).expect("the ring server starts");
    println!("ready");
    for line in std::io::stdin().lines() {
        if line.unwrap() == "report" {
            let s = server.stats();
            println!(
                "stats datagrams_in={} ring_dropped={} datagrams_truncated={}",
                s.datagrams_in, s.ring_dropped, s.datagrams_truncated
            );
        }
    }
    server.shutdown().unwrap();
}
