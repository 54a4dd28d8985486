//! Running out of file descriptors: accept backs off, existing connections keep being served,
//! and accepting resumes once fds are free again.
//!
//! The fd limit is per process, so the clients that knock while the server is out of fds run in
//! a child process (this same test binary, re-run with `EMFILE_CLIENT` set).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{connect, echo_server, eventually, round_trip};
use smoke::Config;

const KNOCKING_CLIENTS: usize = 5;

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the live struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    limit
}

fn set_nofile_limit(limit: &libc::rlimit) {
    // SAFETY: setrlimit reads one rlimit from the live struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) }, 0);
}

fn highest_open_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

#[test]
fn accept_recovers_after_running_out_of_file_descriptors() {
    let (server, _) = echo_server(Config::new().threads(1));
    let addr = server.local_addr();
    let mut existing = connect(addr);
    assert_eq!(round_trip(&mut existing, b"before"), b"before");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "knocking_clients", "--ignored", "--nocapture", "--test-threads=1"])
        .env("EMFILE_CLIENT", addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut go = child.stdin.take().unwrap();
    let child_out = BufReader::new(child.stdout.take().unwrap());

    // Leave no free fd below the limit: lower it to just above the highest fd in use and fill
    // any holes beneath it.
    let original = nofile_limit();
    set_nofile_limit(&libc::rlimit { rlim_cur: highest_open_fd() + 1, rlim_max: original.rlim_max });
    let mut fillers = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        fillers.push(file);
    }

    go.write_all(b"go\n").unwrap();
    go.flush().unwrap();
    // The server cannot accept the knocking clients...
    assert!(
        eventually(Duration::from_secs(10), || server.stats().accept_errors > 0),
        "the server never hit EMFILE: {:?}",
        server.stats()
    );
    std::thread::sleep(Duration::from_millis(300));
    // ...but keeps serving the connection it already has, and does not spin on accept (it
    // retries every 100 ms; a busy loop would count millions of failures here).
    assert_eq!(round_trip(&mut existing, b"during"), b"during");
    let failures = server.stats().accept_errors;
    assert!(failures < 100, "{failures} accept failures in ~300 ms: accept is spinning");
    assert_eq!(server.stats().accepted, 1);

    drop(fillers);
    set_nofile_limit(&original);

    let mut lines = Vec::new();
    for line in child_out.lines() {
        lines.push(line.unwrap());
    }
    assert!(child.wait().unwrap().success(), "child output: {lines:?}");
    let echoed = lines.iter().filter(|l| l.contains("echoed ")).count();
    assert_eq!(echoed, KNOCKING_CLIENTS, "child output: {lines:?}");
    assert!(eventually(Duration::from_secs(5), || server.stats().accepted == 1 + KNOCKING_CLIENTS as u64));
    assert_eq!(round_trip(&mut existing, b"after"), b"after");
}

/// The child half of the test above, run by it in a process of its own (so the fd limit it
/// lowers is not this one's); ignored in a normal run, where it would have no server to knock on.
#[test]
#[ignore = "the client process of accept_recovers_after_running_out_of_file_descriptors"]
fn knocking_clients() {
    let addr = std::env::var("EMFILE_CLIENT").expect("run by the EMFILE test, which says where to connect");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut clients: Vec<_> = (0..KNOCKING_CLIENTS).map(|_| connect(addr.parse().unwrap())).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let message = format!("client {i}");
        client.write_all(message.as_bytes()).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let message = format!("client {i}");
        let mut back = vec![0; message.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, message.as_bytes());
        println!("echoed {i}");
    }
}
