//! Restarts that drop nobody: the chat example restarted three times in a row under wrk load,
//! keep-alive and a connection per request at once, each new process taking the listening
//! socket over from the running one (`SMOKE_HANDOFF`) before the old one drains, from a single
//! process to a supervisor of worker processes, to another, and back. wrk must see no socket
//! error and no non-2xx answer; WebSocket clients of each old process get 1001 and reconnect to
//! the new one. Worker processes (`SMOKE_PROCESSES`): a killed one is replaced while the others
//! serve, and SIGTERM drains them all. And systemd socket activation: the echo example serving
//! the socket `systemd-socket-activate` passes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../smoke/tests/common/ports.rs"]
mod ports;

use ports::free_port;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// A chat process, its banner read: a server, or the supervisor of `workers` worker processes.
struct Chat {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    workers: Vec<u32>,
}

impl Chat {
    fn start(addr: SocketAddr, handoff: Option<&PathBuf>, processes: usize) -> Chat {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command.env("SMOKE_HTTP", addr.to_string()).env("SMOKE_PROCESSES", processes.to_string());
        if processes == 1 {
            command.env("SMOKE_THREADS", "2");
        }
        if let Some(path) = handoff {
            command.env("SMOKE_HANDOFF", path);
        }
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start the chat example");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        assert_eq!(banner.trim_end(), format!("Chatter listening on {addr} (http), open http://{addr}/"));
        let mut workers = Vec::new();
        if processes > 1 {
            banner.clear();
            stdout.read_line(&mut banner).unwrap();
            let pids = banner
                .trim_end()
                .strip_prefix(&format!("Chatter: {processes} worker processes serving (pids "))
                .and_then(|rest| rest.strip_suffix(')'))
                .unwrap_or_else(|| panic!("the supervisor said {banner:?}"));
            workers = pids.split(", ").map(|pid| pid.parse().unwrap()).collect();
            assert_eq!(children_of(child.id()), sorted(&workers), "the workers are the supervisor's children");
        }
        Chat { child, stdout, workers }
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

/// The processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let child: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so count from the last ')'.
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect();
    children.sort_unstable();
    children
}

fn sorted(pids: &[u32]) -> Vec<u32> {
    let mut pids = pids.to_vec();
    pids.sort_unstable();
    pids
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

/// Reads `ws` until it has heard every line of `wanted`, in any order (the read timeout fails
/// the test).
fn hears_all(ws: &mut WebSocket<TcpStream>, mut wanted: Vec<String>) {
    while !wanted.is_empty() {
        match ws.read() {
            Ok(Message::Text(text)) => wanted.retain(|line| !text.contains(line.as_str())),
            Ok(_) => {}
            Err(e) => panic!("{e} while waiting for {wanted:?}"),
        }
    }
}

fn wrk_report(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn three_restarts_under_load_drop_no_request_and_move_websockets_over() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = std::env::temp_dir().join(format!("smoke-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handoff = dir.join("handoff.sock");
    // One process, then supervisors of two worker processes, then one process again.
    let processes = [1, 2, 2, 1];
    let mut running = Chat::start(addr, Some(&handoff), processes[0]);
    let kept_alive = wrk(addr, 10, &[]);
    let one_per_request = wrk(addr, 10, &["-H", "Connection: close"]);
    let mut people: Vec<WebSocket<TcpStream>> = (0..3).map(|i| join(addr, &format!("p{i}"))).collect();
    for round in 0..3 {
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        let next = Chat::start(addr, Some(&handoff), processes[round + 1]);
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
        // Everyone hears themselves in the new process's room; where one process serves them
        // all, the first hears the last one back too (worker processes share no topics).
        // (In either order: p0's worker may be busy with wrk when p0's line arrives.)
        for (i, person) in people.iter_mut().enumerate() {
            let mut wanted = vec![format!("p{i}: back after restart {round}")];
            if i == 0 && processes[round + 1] == 1 {
                wanted.push(format!("p2: back after restart {round}"));
            }
            hears_all(person, wanted);
        }
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
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
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

/// Whether `ws` still answers a ping; `false` once its process is gone (a reset, or the end).
fn answers_ping(ws: &mut WebSocket<TcpStream>) -> bool {
    if ws.send(Message::Ping(b"there?".to_vec().into())).is_err() {
        return false;
    }
    loop {
        match ws.read() {
            Ok(Message::Pong(_)) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[test]
fn worker_processes_replace_a_killed_one_and_drain_together() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut supervisor = Chat::start(addr, None, 2);
    let mut people: Vec<WebSocket<TcpStream>> = (0..16).map(|i| join(addr, &format!("w{i}"))).collect();
    let killed = supervisor.workers[0];
    assert!(Command::new("kill").args(["-KILL", &killed.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let replaced = loop {
        let children = children_of(supervisor.child.id());
        if children.len() == 2 && !children.contains(&killed) {
            break children;
        }
        assert!(Instant::now() < deadline, "no replacement for worker {killed}: children {children:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(replaced.contains(&supervisor.workers[1]), "the other worker kept serving: {replaced:?}");
    // The killed worker's people lost their connection; the others' still answer. Everyone
    // who lost theirs joins again, served by the survivor or the replacement.
    let mut rejoined = 0;
    for (i, person) in people.iter_mut().enumerate() {
        if !answers_ping(person) {
            *person = join(addr, &format!("w{i}"));
            rejoined += 1;
        }
        assert!(answers_ping(person), "w{i}");
    }
    // The kernel spreads connections over both workers' sockets: all 16 on one is 1 in 32,768.
    println!("{rejoined} of 16 people were on the killed worker");
    assert!(0 < rejoined && rejoined < 16, "{rejoined} of 16 were on the killed worker");
    // New requests, some on the replacement's socket, are all answered.
    for _ in 0..20 {
        let mut client = TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // SIGTERM drains every worker: each WebSocket gets 1001, then the supervisor exits.
    let workers = children_of(supervisor.child.id());
    assert!(Command::new("kill").args(["-TERM", &supervisor.child.id().to_string()]).status().unwrap().success());
    for (i, person) in people.iter_mut().enumerate() {
        assert_eq!(close_code(person), Some(CloseCode::Away), "w{i}");
    }
    assert!(supervisor.child.wait().unwrap().success(), "the supervisor exits cleanly after the drain");
    for pid in workers {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "worker {pid} outlived its supervisor");
    }
}

/// Sends one request on `client` and reads its answer's head (the page's length told by it).
fn get(client: &mut BufReader<TcpStream>, close: bool) -> String {
    let connection = if close { "close" } else { "keep-alive" };
    write!(client.get_mut(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n").unwrap();
    read_answer(client)
}

fn read_answer(client: &mut BufReader<TcpStream>) -> String {
    let (mut head, mut line) = (String::new(), String::new());
    while line != "\r\n" {
        line.clear();
        assert!(client.read_line(&mut line).unwrap() > 0, "the connection ended after {head:?}");
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: ").or_else(|| l.strip_prefix("Content-Length: ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no length in {head:?}"));
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).unwrap();
    head
}

#[test]
fn a_draining_predecessor_takes_no_connection_meant_for_its_successor() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = std::env::temp_dir().join(format!("smoke-handoff-wake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handoff = dir.join("handoff.sock");
    let mut old = Chat::start(addr, Some(&handoff), 1);
    // A connection of the old process, in the middle of its second request when the new one
    // takes over: the old process drains until that request is answered.
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut slow = BufReader::new(stream);
    assert!(get(&mut slow, false).starts_with("HTTP/1.1 200"));
    slow.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let new = Chat::start(addr, Some(&handoff), 1);
    let mut said = String::new();
    old.stdout.read_line(&mut said).unwrap();
    assert!(said.contains("a new process serves from"), "{said:?}");
    // Each connection now is the new process's. One at a time, so no other connection's
    // arrival wakes it: a listening socket the draining process still watched (closing its
    // descriptor does not unregister a socket another process holds open) would take the
    // wake-up with EPOLLEXCLUSIVE, and the connection would wait for nobody.
    for i in 0..10 {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = get(&mut BufReader::new(stream), true);
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
    }
    // The old process answers the request it owes, says it closes, and exits.
    slow.get_mut().write_all(b"\r\n").unwrap();
    let head = read_answer(&mut slow);
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert!(old.child.wait().unwrap().success(), "the old process exits cleanly");
    drop(new);
    let _ = std::fs::remove_dir_all(&dir);
}
