//! The chat example as two processes joined by a real NATS server (started here on loopback
//! ports): people in one room on either node hear everyone, once, in order; with the broker
//! killed, each node's room goes on by itself, and once it is back the two rooms are one again.

#[path = "../../smoke/tests/common/nats.rs"]
mod nats;
#[path = "../../smoke/tests/common/ports.rs"]
mod ports;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nats::{Nats, heard_until_quiet};
use ports::free_ports;
use tungstenite::{Message, WebSocket};

/// One chat process, its HTTP listener on a free loopback port, bridged through `cluster`.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn start(cluster: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .env("SMOKE_HTTP", "127.0.0.1:0")
            .env("SMOKE_THREADS", "2")
            .env("SMOKE_CLUSTER", cluster)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the chat example");
        let mut banner = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
        let addr = banner
            .strip_prefix("Chatter listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected banner: {banner:?}"))
            .parse()
            .unwrap();
        Node { child, addr }
    }

    fn join(&self, name: &str) -> WebSocket<TcpStream> {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let url = format!("ws://{}/ws?room=lobby&name={name}", self.addr);
        tungstenite::client::client(url, stream).expect("join the room").0
    }

    /// SIGTERM: the node drains and exits cleanly, broker or not.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        let mut log = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        assert!(status.success(), "exit {status:?}, log: {log}");
    }
}

/// `speaker` says "probe" until `listener` (on the other node) hears it.
fn until_heard(speaker: &mut WebSocket<TcpStream>, listener: &mut WebSocket<TcpStream>, name: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        speaker.send(Message::text("probe")).unwrap();
        if heard_until_quiet(listener, Duration::from_millis(300)).contains(&format!("{name}: probe")) {
            return true;
        }
    }
    false
}

/// `name`'s lines `0..count` as `heard` has them: each once, in order.
fn in_order(heard: &[String], name: &str, count: usize) -> bool {
    let prefix = format!("{name}: line ");
    let lines: Vec<&String> = heard.iter().filter(|l| l.starts_with(&prefix)).collect();
    lines.len() == count && lines.iter().enumerate().all(|(i, line)| **line == format!("{prefix}{i}"))
}

#[test]
fn two_chat_processes_share_a_room_through_nats_and_outlive_the_broker() {
    let mut broker = {
        let [port, monitor] = free_ports();
        Nats::start(port, monitor)
    };
    let (a, b) = (Node::start(&broker.url()), Node::start(&broker.url()));
    let (mut ann, mut cat) = (a.join("ann"), a.join("cat"));
    let (mut bob, mut dan) = (b.join("bob"), b.join("dan"));
    assert!(until_heard(&mut ann, &mut bob, "ann"), "ann's node reaches bob's");
    assert!(until_heard(&mut bob, &mut ann, "bob"), "bob's node reaches ann's");
    for person in [&mut ann, &mut cat, &mut bob, &mut dan] {
        heard_until_quiet(person, Duration::from_millis(300));
    }
    // Each node subscribed to its room once, for its two people.
    assert_eq!(broker.subscriptions("smoke.topic.lobby"), 2);

    for i in 0..200 {
        ann.send(Message::text(format!("line {i}"))).unwrap();
        bob.send(Message::text(format!("line {i}"))).unwrap();
    }
    for (person, who) in [(&mut ann, "ann"), (&mut cat, "cat"), (&mut bob, "bob"), (&mut dan, "dan")] {
        let heard = heard_until_quiet(person, Duration::from_secs(2));
        assert!(in_order(&heard, "ann", 200) && in_order(&heard, "bob", 200), "{who} heard {heard:?}");
    }

    // No broker: ann's room on her node goes on; nothing reaches the other node.
    broker.kill();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..50 {
        ann.send(Message::text(format!("line {i}"))).unwrap();
    }
    let heard = heard_until_quiet(&mut cat, Duration::from_secs(1));
    assert!(in_order(&heard, "ann", 50), "cat, on ann's node, heard {heard:?}");
    let heard = heard_until_quiet(&mut dan, Duration::from_millis(500));
    assert!(heard.iter().all(|l| !l.starts_with("ann: ")), "dan heard through no broker: {heard:?}");

    // The broker is back on its port: one room again.
    let _broker = Nats::start(broker.port, broker.monitor);
    assert!(until_heard(&mut bob, &mut cat, "bob"), "bob's node reaches cat's again");
    assert!(until_heard(&mut ann, &mut dan, "ann"), "ann's node reaches dan's again");
    for person in [&mut ann, &mut cat, &mut bob, &mut dan] {
        heard_until_quiet(person, Duration::from_millis(300));
    }
    for i in 0..100 {
        dan.send(Message::text(format!("line {i}"))).unwrap();
    }
    for (person, who) in [(&mut ann, "ann"), (&mut cat, "cat"), (&mut bob, "bob"), (&mut dan, "dan")] {
        let heard = heard_until_quiet(person, Duration::from_secs(2));
        assert!(in_order(&heard, "dan", 100), "{who} heard {heard:?}");
    }
    drop((ann, cat, bob, dan));
    a.stop();
    b.stop();
}
