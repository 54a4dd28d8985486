//! `nats-server` (Debian's package) for the cluster tests, on loopback ports the test picks,
//! and what a WebSocket subscriber hears.
//! Shared with the examples' tests (`#[path]`), so it needs nothing else of this folder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nats-server` on a loopback port, killed with the test (or before, to test an outage).
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    /// Its monitoring port, where the test reads the broker's subscriptions.
    pub monitor: u16,
}

impl Nats {
    pub fn start(port: u16, monitor: u16) -> Nats {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (Debian's nats-server package)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats-server listens on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child: Some(child), port, monitor }
    }

    /// How many subscriptions to `subject` the broker holds (its `/subsz` monitoring page).
    pub fn subscriptions(&self, subject: &str) -> usize {
        let mut http = TcpStream::connect(("127.0.0.1", self.monitor)).unwrap();
        http.write_all(b"GET /subsz?subs=1&limit=100000 HTTP/1.0\r\n\r\n").unwrap();
        let mut page = String::new();
        http.read_to_string(&mut page).unwrap();
        page.matches(&format!("\"subject\": \"{subject}\"")).count()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every text message `subscriber` receives until `quiet` passes with nothing new (its socket's
/// read timeout sets how often it looks).
pub fn heard_until_quiet(subscriber: &mut tungstenite::WebSocket<TcpStream>, quiet: Duration) -> Vec<String> {
    let mut heard = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        match subscriber.read() {
            Ok(tungstenite::Message::Text(text)) => {
                heard.push(text.to_string());
                last = Instant::now();
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("a subscriber lost its connection: {e}"),
        }
    }
    heard
}
