//! Restarts that drop nobody: the chat example restarted three times in a row under wrk load,
//! keep-alive and a connection per request at once, each new process taking the listening
//! socket over from the running one (`SMOKE_HANDOFF`) before the old one drains. wrk must see
//! no socket error and no non-2xx answer; WebSocket clients of each old process get 1001 and
//! reconnect to the new one. And systemd socket activation: the echo example serving the
//! socket `systemd-socket-activate` passes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// A chat process, its banner read.
struct Chat {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Chat {
    fn start(addr: SocketAddr, handoff: &PathBuf) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
            .env("SMOKE_HTTP", addr.to_string())
            .env("SMOKE_THREADS", "2")
            .env("SMOKE_HANDOFF", handoff)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the chat example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        assert_eq!(banner.trim_end(), format!("Chatter listening on {addr} (http)"));
        Chat { child, stdout }
    }

    /// Waits for the process to exit by itself (it drains once its successor serves).
    fn exits_cleanly(mut self) {
        let mut said = String::new();
        self.stdout.read_to_string(&mut said).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the old process exited with {status:?}");
        assert!(said.contains("a new process serves from"), "it said {said:?}");
    }
}

impl Drop for Chat {
    /// A failing test leaves no server behind (after a clean exit this does nothing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn join(addr: SocketAddr, name: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client::client(format!("ws://{addr}/ws?room=restart&name={name}"), stream).expect("join").0
}

/// Reads until the server's close frame: its code.
fn close_code(ws: &mut WebSocket<TcpStream>) -> Option<CloseCode> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(e) => panic!("no close frame before the connection ended: {e}"),
        }
    }
}

/// wrk against `addr` for `seconds`, with `extra` arguments, in the background.
fn wrk(addr: SocketAddr, seconds: u32, extra: &[&str]) -> Child {
    Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{seconds}s"), "--latency"])
        .args(extra)
        .arg(format!("http://{addr}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk runs")
}

fn wrk_report(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn three_restarts_under_load_drop_no_request_and_move_websockets_over() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("smoke-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handoff = dir.join("handoff.sock");
    let mut running = Chat::start(addr, &handoff);
    let kept_alive = wrk(addr, 10, &[]);
    let one_per_request = wrk(addr, 10, &["-H", "Connection: close"]);
    let mut people: Vec<WebSocket<TcpStream>> = (0..3).map(|i| join(addr, &format!("p{i}"))).collect();
    for round in 0..3 {
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        let next = Chat::start(addr, &handoff);
        running.exits_cleanly();
        println!(
            "restart {round}: the old process drained and exited {:?} after its successor started",
            started.elapsed()
        );
        running = next;
        for (i, person) in people.iter_mut().enumerate() {
            assert_eq!(close_code(person), Some(CloseCode::Away), "p{i} in restart {round}");
            *person = join(addr, &format!("p{i}"));
            person.send(Message::text(format!("back after restart {round}"))).unwrap();
        }
        // Everyone is in the new process's room: the last one back is heard by the first.
        let heard = loop {
            match people[0].read().unwrap() {
                Message::Text(text) if text.contains(&format!("p2: back after restart {round}")) => break true,
                _ => {}
            }
        };
        assert!(heard);
    }
    for (report, what) in
        [(wrk_report(kept_alive), "keep-alive"), (wrk_report(one_per_request), "connection per request")]
    {
        println!("wrk, {what}:\n{report}");
        assert!(!report.contains("Socket errors"), "{what}: {report}");
        assert!(!report.contains("Non-2xx"), "{what}: {report}");
        let requests: u64 = report
            .lines()
            .find_map(|l| l.split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap()))
            .expect("a request count");
        assert!(requests > 1000, "{what}: {requests} requests");
    }
    let status = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(running.child.wait().unwrap().success(), "the last process drains on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_socket_activation_hands_the_listening_socket_over() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &addr.to_string()])
        .args(["-E", &format!("SMOKE_TCP={addr}")])
        .arg(env!("CARGO_BIN_EXE_echo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate runs (Debian's systemd package)");
    // The socket is systemd's: it accepts before the example has even started.
    let mut client = None;
    let start = Instant::now();
    while client.is_none() && start.elapsed() < Duration::from_secs(10) {
        client = TcpStream::connect(addr).ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = client.expect("systemd-socket-activate listens");
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(b"activated\n").unwrap();
    let mut echo = [0u8; 10];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"activated\n");
    let mut banner = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
    assert_eq!(banner.trim_end(), format!("Echo listening on {addr} (tcp)"));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status:?}: {log}");
}
