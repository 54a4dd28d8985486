//! `max_connections`: one cap for the whole server, whichever worker the kernel hands a
//! connection to, and a default that stops accepting before the process runs out of fds.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{connect, echo_server, eventually, round_trip};
use smoke::Config;

#[test]
fn every_worker_accepts_while_the_server_has_room() {
    // SO_REUSEPORT hashes clients to workers unevenly; a per-worker share (32 each) would leave
    // some of these 64 waiting in a full worker's backlog while the other had room.
    let (server, _) = echo_server(Config::new().threads(2).max_connections(64));
    let mut clients: Vec<TcpStream> = (0..64).map(|_| connect(server.local_addr())).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let message = format!("client {i}");
        assert_eq!(round_trip(client, message.as_bytes()), message.as_bytes(), "client {i} was served");
    }
    let per_worker: Vec<u64> = server.worker_stats().iter().map(|s| s.current()).collect();
    assert_eq!(per_worker.iter().sum::<u64>(), 64, "{per_worker:?}");

    // The 65th connects (the kernel's backlog takes it) but waits for a place...
    let mut waiting = connect(server.local_addr());
    waiting.write_all(b"waiting").unwrap();
    waiting.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 16];
    let err = waiting.read(&mut buf).expect_err("not served while the server is full");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
    assert_eq!(server.stats().current(), 64);
    // ...which the first close frees, whichever worker it was on.
    drop(clients.remove(0));
    waiting.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut back = [0u8; 7];
    waiting.read_exact(&mut back).expect("served once a place is free");
    assert_eq!(&back, b"waiting");
    assert_eq!(server.stats().accept_errors, 0);
}

/// The file-descriptor limit the child lowers itself to.
const CHILD_NOFILE: u64 = 256;
/// Silent clients the parent opens against it: more than the child may hold.
const SILENT_CLIENTS: usize = 300;

#[test]
fn the_default_cap_stops_accepting_before_the_process_runs_out_of_fds() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "capped_server", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CAPPED_SERVER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ask = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap()).lines().map(|line| line.unwrap());
    // The harness prints the test's name on the same line as the first output.
    let addr = answers.find_map(|line| line.split_once("listening ").map(|(_, addr)| addr.to_string())).unwrap();
    let addr = addr.parse().unwrap();
    let mut report = || -> Vec<u64> {
        writeln!(ask, "report").unwrap();
        let line = answers.find(|line| line.starts_with("report ")).unwrap();
        line.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect()
    };

    let silent: Vec<TcpStream> = (0..SILENT_CLIENTS).map(|_| connect(addr)).collect();
    // Wait until the server has taken all it will.
    let mut last = Vec::new();
    assert!(eventually(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(200));
        let now = report();
        let settled = now.first() == last.first() && now[0] > 0;
        last = now;
        settled
    }));
    let [current, accept_errors, files_opened] = last[..] else { panic!("report: {last:?}") };
    assert!(current < CHILD_NOFILE - 64, "{current} connections left no reserve of the {CHILD_NOFILE} fds");
    assert!(current > CHILD_NOFILE / 2, "only {current} connections under a limit of {CHILD_NOFILE}");
    assert_eq!(accept_errors, 0, "accept never met EMFILE: the cap came first");
    assert_eq!(files_opened, 32, "the process could still open files");

    // A silent client leaving frees a place for one that waited.
    drop(silent);
    assert!(eventually(Duration::from_secs(10), || report()[0] == 0));
    let mut normal = connect(addr);
    assert_eq!(round_trip(&mut normal, b"served"), b"served");
    drop(ask);
    assert!(child.wait().unwrap().success());
}

/// The child half of the test above, in a process of its own so the fd limit it lowers is not
/// the test runner's: an echo server with the default `max_connections`, started under a
/// 256-fd limit, reporting `current accept_errors files_opened` on each "report" line.
#[test]
#[ignore = "the server process of the_default_cap_stops_accepting_before_the_process_runs_out_of_fds"]
fn capped_server() {
    std::env::var("CAPPED_SERVER").expect("run by the max_connections test");
    let limit = libc::rlimit { rlim_cur: CHILD_NOFILE, rlim_max: CHILD_NOFILE };
    // SAFETY: setrlimit reads one rlimit from the live struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let (server, _) = echo_server(Config::new().threads(1));
    println!("listening {}", server.local_addr());
    for line in std::io::stdin().lines() {
        if line.unwrap() == "report" {
            let files: Vec<_> = (0..32).map_while(|_| std::fs::File::open("/dev/null").ok()).collect();
            let stats = server.stats();
            println!("report {} {} {}", stats.current(), stats.accept_errors, files.len());
        }
    }
}
