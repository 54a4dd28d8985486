//! Runs each example binary as a user would (on a free port through `SMOKE_TCP`), talks to it
//! as a client, then stops it with SIGTERM and checks that it exits cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Running {
    fn start(binary: &str, name: &str) -> Running {
        Running::start_with(binary, name, "SMOKE_TCP")
    }

    /// Starts the example with its listener of `variable` (SMOKE_TCP, SMOKE_HTTP) moved to a
    /// free loopback port.
    fn start_with(binary: &str, name: &str, variable: &str) -> Running {
        let mut child = Command::new(binary)
            .env(variable, "127.0.0.1:0")
            .env("SMOKE_THREADS", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example");
        let mut banner = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
        let prefix = format!("{name} listening on ");
        let addr = banner
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected banner: {banner:?}"))
            .parse()
            .unwrap();
        Running { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    /// SIGTERM, then the exit status and what the server logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        let mut log = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        (status, log)
    }
}

#[test]
fn hello_answers_hello_and_closes() {
    let server = Running::start(env!("CARGO_BIN_EXE_hello"), "Hello");
    for _ in 0..3 {
        let mut client = server.connect();
        client.write_all(b"hi\n").unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "hello");
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}, log: {log}");
    assert!(log.contains("shutdown signal received"), "log: {log}");
}

#[test]
fn echo_returns_every_byte_and_stops_cleanly_on_sigterm() {
    let server = Running::start(env!("CARGO_BIN_EXE_echo"), "Echo");
    let mut client = server.connect();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut writer = client.try_clone().unwrap();
    let sent = payload.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    assert!(back == payload, "echoed {} of {} bytes", back.len(), payload.len());

    // A connection still open at SIGTERM is closed by the server as it stops.
    let mut open = server.connect();
    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}, log: {log}");
    let mut rest = Vec::new();
    assert_eq!(open.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn a_malformed_override_is_a_clear_startup_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_echo")).env("SMOKE_TCP", "99999").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `main` returns io::Result, so Rust prints the error's Debug form: the variable, the value
    // and the reason are all in it.
    assert!(stderr.contains("SMOKE_TCP=") && stderr.contains("port 99999 is out of range"), "stderr: {stderr}");
}

fn curl(args: &[&str]) -> String {
    let output =
        Command::new("curl").args(["--silent", "--show-error", "--max-time", "10"]).args(args).output().unwrap();
    assert!(output.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The numbers in "opened(a): closed(b): current(c) errd(d)".
fn counters(page: &str) -> [u64; 4] {
    let line = page.lines().find(|l| l.starts_with("connections:")).unwrap_or_else(|| panic!("{page}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect();
    numbers.try_into().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn stats_serves_the_connection_counters_page_to_curl() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_stats"), "StatsPage", "SMOKE_HTTP");
    let url = format!("http://{}/", server.addr);
    let first = curl(&[&url]);
    assert!(first.contains("<h1 style='color:red'>smoke test page!!!</h1>"), "{first}");
    // The page is written while its own connection is open.
    assert_eq!(counters(&first), [1, 0, 1, 0], "{first}");
    assert!(first.contains("requests on this connection: 1"), "{first}");
    // Two URLs on one keep-alive connection: the session counts both.
    let both = curl(&[&url, &url]);
    assert!(both.contains("requests on this connection: 2"), "{both}");
    let [opened, closed, current, errored] = counters(both.rsplit("<!doctype").next().unwrap());
    assert_eq!((opened, errored), (2, 0));
    assert_eq!(current, opened - closed);
    let missing = curl(&["--write-out", "%{http_code}", "--output", "/dev/null", &format!("{url}missing")]);
    assert_eq!(missing, "404");
    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}, log: {log}");
}

#[test]
fn plaintext_and_json_answer_like_the_benchmark_expects() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_plaintext"), "Bench", "SMOKE_HTTP");
    let base = format!("http://{}", server.addr);
    let headers = curl(&["--include", &format!("{base}/plaintext")]);
    assert!(headers.starts_with("HTTP/1.1 200 OK\r\n"), "{headers}");
    assert!(headers.contains("Server: smoke\r\n") && headers.contains("Date: "), "{headers}");
    assert!(headers.ends_with("\r\n\r\nHello, World!"), "{headers}");
    assert_eq!(curl(&[&format!("{base}/json")]), r#"{"message":"Hello, World!"}"#);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn routes_example_stores_notes_and_explains_404_and_405() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_routes"), "Notes", "SMOKE_HTTP");
    let base = format!("http://{}", server.addr);
    let code = |args: &[&str]| {
        let mut all = vec!["--write-out", "%{http_code}", "--output", "/dev/null"];
        all.extend_from_slice(args);
        curl(&all)
    };
    assert_eq!(code(&["-X", "POST", "--data", "buy milk", &format!("{base}/notes/1")]), "201");
    assert_eq!(curl(&[&format!("{base}/notes/1")]), "buy milk");
    assert_eq!(curl(&[&format!("{base}/notes")]), "1: buy milk");
    assert_eq!(code(&[&format!("{base}/notes/2")]), "404");
    assert_eq!(code(&[&format!("{base}/elsewhere")]), "404");
    let not_allowed = curl(&["--include", "-X", "PUT", &format!("{base}/notes")]);
    assert!(not_allowed.starts_with("HTTP/1.1 405"), "{not_allowed}");
    assert!(not_allowed.contains("Allow: GET, HEAD\r\n"), "{not_allowed}");
    assert_eq!(code(&["-X", "DELETE", &format!("{base}/notes/1")]), "204");
    let (status, _) = server.terminate();
    assert!(status.success());
}
