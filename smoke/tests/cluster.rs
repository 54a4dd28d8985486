//! Topics across two nodes through a real NATS server (Debian's `nats-server`, started here on
//! a loopback port): every publication reaches every subscriber on both nodes once, in its
//! publisher's order; the broker is killed and restarted mid-run, local delivery goes on
//! throughout, remote delivery resumes, and the counters say what happened.
//!
//! Two servers in one process, each with its own bridge (its own node id and NATS
//! connection), so the test can read their `Stats`; the examples' tests run the chat example
//! as two processes.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::eventually;
use common::nats::{Nats, heard_until_quiet};
use common::ports::free_ports;
use smoke::prelude::*;
use tungstenite::{Message as WsMessage, WebSocket};

#[derive(Default)]
struct Relay {
    topic: String,
}

#[smoke::server(http = 8080, ws_path = "/ws", threads = 2)]
impl Relay {
    #[on_upgrade]
    fn upgrade(&mut self, req: &Request, _upgrade: &mut Upgrade) {
        self.topic = req.query().and_then(|q| q.strip_prefix("topic=")).unwrap_or("none").to_owned();
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        ws.subscribe(&self.topic);
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        ws.publish(&self.topic, message);
    }
}

type Client = WebSocket<TcpStream>;

fn node(url: &str) -> (ServerHandle, SocketAddr) {
    let config = common::on_loopback(Relay::config(), "http").cluster(url);
    let server = Relay::spawn(config).expect("a node starts");
    let addr = server.local_addr();
    (server, addr)
}

fn client(addr: SocketAddr, topic: &str) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    tungstenite::client::client(format!("ws://{addr}/ws?topic={topic}"), stream).expect("upgrade").0
}

/// Publishes probes from `from` until `to` hears one: the bridges of both ends are connected
/// and subscribed. Returns whether one crossed within `limit`.
fn crossing(from: &mut Client, to: &mut Client, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        from.send(WsMessage::text("probe")).unwrap();
        if heard_until_quiet(to, Duration::from_millis(300)).iter().any(|m| m == "probe") {
            return true;
        }
    }
    false
}

/// `from`'s publications `label 0..count` as `got` saw them: each once, in order.
fn check_sequence(got: &[String], label: &str, count: usize, who: &str) {
    let mine: Vec<&String> = got.iter().filter(|m| m.starts_with(label)).collect();
    let expected: Vec<String> = (0..count).map(|i| format!("{label} {i}")).collect();
    assert_eq!(mine.len(), count, "{who} heard {} of {label}'s {count}", mine.len());
    assert!(mine.iter().zip(&expected).all(|(a, b)| *a == b), "{who}: {label}'s out of order or repeated");
}

#[test]
fn publications_cross_nodes_once_in_order_and_survive_a_broker_restart() {
    let mut nats = {
        let [port, monitor] = free_ports();
        Nats::start(port, monitor)
    };
    let (node_a, addr_a) = node(&nats.url());
    let (node_b, addr_b) = node(&nats.url());
    let (mut pub_a, mut sub_a) = (client(addr_a, "room"), client(addr_a, "room"));
    let (mut pub_b, mut sub_b) = (client(addr_b, "room"), client(addr_b, "room"));
    assert!(crossing(&mut pub_a, &mut sub_b, Duration::from_secs(10)), "A reaches B through NATS");
    assert!(crossing(&mut pub_b, &mut sub_a, Duration::from_secs(10)), "B reaches A through NATS");
    for c in [&mut pub_a, &mut sub_a, &mut pub_b, &mut sub_b] {
        heard_until_quiet(c, Duration::from_millis(300));
    }
    // One subscription per node for the topic with subscribers, whatever their number.
    assert_eq!(nats.subscriptions("smoke.topic.room"), 2);

    // Both publishers at once: every subscriber on both nodes hears each once, in order.
    const COUNT: usize = 500;
    for i in 0..COUNT {
        pub_a.send(WsMessage::text(format!("a {i}"))).unwrap();
        pub_b.send(WsMessage::text(format!("b {i}"))).unwrap();
    }
    for (client, who) in [(&mut pub_a, "A's publisher"), (&mut sub_a, "A's subscriber"), (&mut sub_b, "B's subscriber")]
    {
        let got = heard_until_quiet(client, Duration::from_secs(2));
        check_sequence(&got, "a", COUNT, who);
        check_sequence(&got, "b", COUNT, who);
    }
    heard_until_quiet(&mut pub_b, Duration::from_millis(300));
    let before = node_b.stats();
    assert!(before.cluster_received >= COUNT as u64, "{before:?}");

    // The broker goes away: each node goes on delivering its own publications.
    nats.kill();
    assert!(eventually(Duration::from_secs(10), || node_a.stats().cluster_outages >= 1), "{:?}", node_a.stats());
    for i in 0..100 {
        pub_a.send(WsMessage::text(format!("alone {i}"))).unwrap();
    }
    check_sequence(&heard_until_quiet(&mut sub_a, Duration::from_secs(1)), "alone", 100, "A's subscriber, broker down");
    let heard_on_b = heard_until_quiet(&mut sub_b, Duration::from_millis(500));
    assert!(heard_on_b.is_empty(), "nothing crosses without a broker: {heard_on_b:?}");
    assert!(node_a.stats().cluster_dropped >= 100, "{:?}", node_a.stats());

    // Back on the same port: the bridges reconnect, subscribe again, and crossing resumes.
    let nats = Nats::start(nats.port, nats.monitor);
    assert!(crossing(&mut pub_a, &mut sub_b, Duration::from_secs(20)), "A reaches B again");
    assert!(crossing(&mut pub_b, &mut sub_a, Duration::from_secs(20)), "B reaches A again");
    for c in [&mut pub_a, &mut sub_a, &mut pub_b, &mut sub_b] {
        heard_until_quiet(c, Duration::from_millis(300));
    }
    for i in 0..COUNT {
        pub_b.send(WsMessage::text(format!("again {i}"))).unwrap();
    }
    check_sequence(
        &heard_until_quiet(&mut sub_a, Duration::from_secs(2)),
        "again",
        COUNT,
        "A's subscriber after the restart",
    );
    check_sequence(
        &heard_until_quiet(&mut sub_b, Duration::from_secs(2)),
        "again",
        COUNT,
        "B's subscriber after the restart",
    );
    let (a, b) = (node_a.stats(), node_b.stats());
    assert!(a.cluster_outages >= 1 && b.cluster_outages >= 1, "{a:?} {b:?}");
    assert!(a.cluster_received >= 2 * COUNT as u64, "B's two rounds came to A through the bridge: {a:?}");

    // B's last subscriber leaves: B unsubscribes on the broker; A, still subscribed, does not.
    assert_eq!(nats.subscriptions("smoke.topic.room"), 2, "both subscribed again after the restart");
    drop((pub_b, sub_b));
    assert!(eventually(Duration::from_secs(10), || nats.subscriptions("smoke.topic.room") == 1));
    drop((pub_a, sub_a));
    assert!(eventually(Duration::from_secs(10), || nats.subscriptions("smoke.topic.room") == 0));
}
