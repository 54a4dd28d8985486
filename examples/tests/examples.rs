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
fn smoke_metrics_adds_an_admin_listener_that_curl_and_the_banner_find() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo"))
        .env("SMOKE_TCP", "127.0.0.1:0")
        .env("SMOKE_METRICS", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the echo example");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut tcp, mut metrics) = (String::new(), String::new());
    stdout.read_line(&mut tcp).unwrap();
    stdout.read_line(&mut metrics).unwrap();
    assert!(tcp.starts_with("Echo listening on 127.0.0.1:") && tcp.ends_with(" (tcp)\n"), "{tcp:?}");
    let admin = metrics
        .strip_prefix("Echo listening on ")
        .and_then(|rest| rest.strip_suffix(" (metrics)\n"))
        .unwrap_or_else(|| panic!("{metrics:?}"));
    assert_eq!(curl(&[&format!("http://{admin}/healthz")]), "ok\n");
    let exposition = curl(&[&format!("http://{admin}/metrics")]);
    assert!(exposition.contains("\nsmoke_connections_accepted_total 0\n"), "{exposition}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_chat_prints_the_address_to_open_in_a_browser_and_serves_its_page_there() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
        .env("SMOKE_HTTP", "0.0.0.0:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the chat example");
    let mut banner = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
    let port = banner
        .strip_prefix("Chatter listening on 0.0.0.0:")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{banner:?}"));
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(banner, format!("Chatter listening on 0.0.0.0:{port} (http), open {url}\n"));
    assert!(curl(&[&url]).contains("<h1>smoke chat"), "the page is at {url}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_malformed_override_is_a_clear_startup_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_echo")).env("SMOKE_TCP", "99999").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `main` returns smoke::Error, whose Debug form is its sentence: the variable, the value
    // and the reason are all in it.
    assert_eq!(stderr, "Error: SMOKE_TCP=\"99999\": port 99999 is out of range (0..=65535)\n");
}

#[test]
fn a_missing_certificate_is_one_sentence_on_stderr() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat"))
        .env("SMOKE_HTTP", "127.0.0.1:0")
        .env("SMOKE_HTTPS", "127.0.0.1:0")
        .env("SMOKE_TLS_CERT", "/nonexistent/cert.pem")
        .env("SMOKE_TLS_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Error: tls_cert /nonexistent/cert.pem: cannot read it: No such file or directory (os error 2)\n"
    );
    assert!(output.stdout.is_empty(), "nothing was announced");
}

#[test]
fn a_port_in_use_is_one_sentence_on_stderr() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_echo")).env("SMOKE_TCP", addr.to_string()).output().unwrap();
    assert!(!output.status.success());
    // `main` returns smoke::Error: Rust prints `Error: ` and its Debug form, which is the
    // sentence itself, not a struct dump.
    assert_eq!(String::from_utf8_lossy(&output.stderr), format!("Error: bind {addr} (tcp): address in use\n"));
}

#[test]
fn a_server_written_without_the_macro_speaks_http_and_websocket() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_by_hand"), "ByHand", "SMOKE_HTTP");
    let url = format!("http://{}/", server.addr);
    assert_eq!(curl(&[&url]), "written by hand; request 1 on this connection\n");
    let stream = server.connect();
    let (mut ws, _) = tungstenite::client::client(format!("ws://{}/ws", server.addr), stream).unwrap();
    ws.send(tungstenite::Message::text("by hand")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("by hand"));
    drop(ws);
    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}, log: {log}");
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

/// Runs a program to completion; panics with its output when it cannot start.
fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// An environment variable `scripts/test.sh` sets after installing a test tool.
fn installed(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is unset: run the tests through `bash scripts/test.sh`, which installs it")
    })
}

#[test]
fn ws_echo_passes_the_autobahn_testsuite() {
    // permessage-deflate on, for sections 12 and 13.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ws_echo"))
        .env("SMOKE_WS", "127.0.0.1:0")
        .env("SMOKE_THREADS", "2")
        .env("SMOKE_WS_DEFLATE", "on")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut banner = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
    let addr = banner.strip_prefix("WsEcho listening on ").and_then(|r| r.split_whitespace().next()).unwrap();
    let server = Running { child, addr: addr.parse().unwrap() };
    let python = installed("SMOKE_AUTOBAHN_PYTHON");
    let packages = installed("SMOKE_AUTOBAHN_DIR");
    let dir = std::env::temp_dir().join(format!("smoke-autobahn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reports = dir.join("reports");
    // Sections 1-7, 10, and 12-13 (permessage-deflate); 9 is performance.
    let spec = format!(
        r#"{{"outdir": "{}", "servers": [{{"agent": "smoke", "url": "ws://{}"}}],
            "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*", "12.*", "13.*"],
            "exclude-cases": [], "exclude-agent-cases": {{}}}}"#,
        reports.display(),
        server.addr
    );
    let spec_path = dir.join("fuzzingclient.json");
    std::fs::write(&spec_path, spec).unwrap();
    let script = format!(
        "import site, sys\nsite.addsitedir({packages:?})\nsys.argv = ['wstest', '-m', 'fuzzingclient', '-s', {:?}]\n\
         from autobahntestsuite import wstest\nwstest.run()\n",
        spec_path.display().to_string()
    );
    let output = run(&python, &["-c", &script]);
    assert!(output.status.success(), "wstest failed: {}", String::from_utf8_lossy(&output.stderr));
    // The report's verdicts, one "case behavior behaviorClose" line each.
    let summary = run(
        "python3",
        &[
            "-c",
            "import json, sys\nfor case, r in json.load(open(sys.argv[1]))['smoke'].items():\n    \
             print(case, r['behavior'], r['behaviorClose'])",
            &reports.join("index.json").display().to_string(),
        ],
    );
    let summary = String::from_utf8(summary.stdout).unwrap();
    let verdicts: Vec<Vec<&str>> = summary.lines().map(|l| l.split_whitespace().collect()).collect();
    let acceptable = ["OK", "NON-STRICT", "INFORMATIONAL"];
    let failed: Vec<_> = verdicts.iter().filter(|v| !v[1..].iter().all(|b| acceptable.contains(b))).collect();
    assert!(verdicts.len() >= 240 + 216, "only {} cases ran:\n{summary}", verdicts.len());
    let compressed = verdicts.iter().filter(|v| v[0].starts_with("12.") || v[0].starts_with("13.")).count();
    assert!(compressed >= 216, "only {compressed} permessage-deflate cases ran:\n{summary}");
    assert!(failed.is_empty(), "Autobahn cases not passed (reports in {}): {failed:?}", reports.display());
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chat_delivers_every_message_to_500_python_clients_once_in_order() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_chat"), "Chatter", "SMOKE_HTTP");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/chat_clients.py");
    // 500 clients in 5 rooms on the example's 2 workers; 2 publishers per room, 20 messages each.
    let output = run("python3", &[script, &server.addr.to_string(), "500", "5", "2", "20"]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.starts_with("ok: 500 clients"), "{report}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn chat_page_works_in_headless_chromium() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_chat"), "Chatter", "SMOKE_HTTP");
    // Someone already in the room hears the browser speak, and hears it confirm it got its own
    // line back: both directions of the browser's WebSocket, seen from outside the browser.
    let stream = server.connect();
    let (mut watcher, _) =
        tungstenite::client::client(format!("ws://{}/ws?room=browsers&name=watcher", server.addr), stream).unwrap();
    let url = format!("http://{}/?room=browsers&name=chromium&say=hello", server.addr);
    chat_in_chromium(&url, &[], &mut watcher);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// Headless Chromium as root on a closed network: no sandbox, no GPU, none of the background
/// connections it would make at start (refused here, many at a time).
const CHROMIUM_HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Loads the chat page at `url` (which says "hello" as "chromium") in headless Chromium, with
/// `extra` flags, and checks both directions of its WebSocket: the page shows its own line,
/// and `watcher`, in the same room, hears it and the page's confirmation.
fn chat_in_chromium(url: &str, extra: &[&str], watcher: &mut tungstenite::WebSocket<TcpStream>) {
    // The DOM is dumped when the virtual time budget runs out, and virtual time runs ahead of
    // real time while the page waits on its socket: on a loaded machine the dump can come
    // before the handshake's answer. So a few tries (bounded), each a whole new page load.
    let mut dom = String::new();
    for _ in 0..3 {
        let mut args = CHROMIUM_HEADLESS.to_vec();
        args.extend(["--virtual-time-budget=10000", "--dump-dom"]);
        args.extend_from_slice(extra);
        args.push(url);
        dom = String::from_utf8_lossy(&run("chromium", &args).stdout).into_owned();
        if dom.contains("<li>chromium: hello</li>") {
            break;
        }
    }
    assert!(dom.contains("connected as chromium"), "the page connected: {dom}");
    assert!(dom.contains("<li>chromium: hello</li>"), "the page shows its own line: {dom}");
    let mut heard = Vec::new();
    while !heard.iter().any(|line| line == "chromium: received: hello") {
        match watcher.read().expect("the watcher hears the room") {
            tungstenite::Message::Text(text) => heard.push(text.as_str().to_owned()),
            _ => continue,
        }
    }
    assert!(heard.iter().any(|line| line == "chromium: hello"), "{heard:?}");
}

#[test]
fn udp_echo_answers_python_datagrams() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_udp_echo"), "UdpEcho", "SMOKE_UDP");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/udp_client.py");
    let output = run("python3", &[script, "127.0.0.1", &server.addr.port().to_string(), "1000"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("udp_echo: 1000 datagrams received"), "{log}");
}

/// Two network namespaces joined by a veth pair, removed on drop (and so on a failed assert).
struct Namespaces {
    server: String,
    client: String,
}

impl Namespaces {
    const SERVER_IP: &'static str = "10.213.0.1";
    const CLIENT_IP: &'static str = "10.213.0.2";

    fn create() -> Namespaces {
        let tag = std::process::id() % 100_000;
        let ns = Namespaces { server: format!("smoke-s{tag}"), client: format!("smoke-c{tag}") };
        let (veth_server, veth_client) = (format!("vs{tag}"), format!("vc{tag}"));
        let ip = |args: &[&str]| {
            let output = run("ip", args);
            assert!(output.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        ip(&["netns", "add", &ns.server]);
        ip(&["netns", "add", &ns.client]);
        ip(&[
            "link",
            "add",
            &veth_server,
            "netns",
            &ns.server,
            "type",
            "veth",
            "peer",
            "name",
            &veth_client,
            "netns",
            &ns.client,
        ]);
        for (netns, dev, addr) in
            [(&ns.server, &veth_server, Self::SERVER_IP), (&ns.client, &veth_client, Self::CLIENT_IP)]
        {
            ip(&["-n", netns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        ns
    }

    fn server_interface(&self) -> String {
        format!("vs{}", std::process::id() % 100_000)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for netns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}

#[test]
fn the_packet_ring_delivers_udp_from_another_namespace() {
    let ns = Namespaces::create();
    let interface = ns.server_interface();
    let port = "9192";
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.server, env!("CARGO_BIN_EXE_udp_echo")])
        .env("SMOKE_UDP", format!("{}:{port}", Namespaces::SERVER_IP))
        .env("SMOKE_PFRING", &interface)
        .env("SMOKE_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
    assert!(banner.starts_with("UdpEcho listening on"), "{banner}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/udp_client.py");
    let output = run("ip", &["netns", "exec", &ns.client, "python3", script, Namespaces::SERVER_IP, port, "500"]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let running = Running { child, addr: "127.0.0.1:1".parse().unwrap() };
    let (status, log) = running.terminate();
    assert!(output.status.success(), "client: {report}{} / server: {log}", String::from_utf8_lossy(&output.stderr));
    assert!(status.success(), "{log}");
    assert!(log.contains("udp_echo: 500 datagrams received"), "every datagram reached on_datagram once: {log}");
}

#[test]
fn the_packet_ring_explains_missing_privileges_and_unknown_interfaces() {
    let unknown = Command::new(env!("CARGO_BIN_EXE_udp_echo"))
        .env("SMOKE_UDP", "127.0.0.1:0")
        .env("SMOKE_PFRING", "nosuchif0")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no network interface named") && stderr.contains("nosuchif0"), "{stderr}");

    // Without CAP_NET_RAW (dropped from the bounding set, so even root lacks it).
    let unprivileged = Command::new("setpriv")
        .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", env!("CARGO_BIN_EXE_udp_echo")])
        .env("SMOKE_UDP", "127.0.0.1:0")
        .env("SMOKE_PFRING", "lo")
        .output()
        .unwrap();
    assert!(!unprivileged.status.success());
    let stderr = String::from_utf8_lossy(&unprivileged.stderr);
    assert!(stderr.contains("pfring needs CAP_NET_RAW"), "{stderr}");
}

/// Starts an example with several listeners moved to free loopback ports (one variable each)
/// and returns it with every announced (protocol, address).
fn start_listening(binary: &str, name: &str, variables: &[&str]) -> (Running, Vec<(String, SocketAddr)>) {
    let mut command = Command::new(binary);
    for variable in variables {
        command.env(variable, "127.0.0.1:0");
    }
    let mut child = command.env("SMOKE_THREADS", "2").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = Vec::new();
    for _ in variables {
        let mut banner = String::new();
        reader.read_line(&mut banner).unwrap();
        // "Name listening on ADDR (proto)", and for HTTP ", open URL"
        let rest = banner.strip_prefix(&format!("{name} listening on ")).unwrap_or_else(|| panic!("{banner:?}"));
        let mut words = rest.split_whitespace();
        let (addr, protocol) = (words.next().unwrap(), words.next().unwrap());
        addrs.push((protocol.trim_matches(['(', ')', ',']).to_owned(), addr.parse().unwrap()));
    }
    (Running { child, addr: addrs[0].1 }, addrs)
}

/// The arena on loopback: its page and token server, its game socket, and a spectator on /watch.
fn start_arena() -> (Running, SocketAddr, tungstenite::WebSocket<TcpStream>) {
    let (server, addrs) = start_listening(env!("CARGO_BIN_EXE_arena"), "Pilot", &["SMOKE_GAME", "SMOKE_HTTP"]);
    let http = addrs.iter().find(|(p, _)| p == "http").unwrap().1;
    let stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (spectator, _) = tungstenite::client::client(format!("ws://{http}/watch"), stream).unwrap();
    (server, http, spectator)
}

/// The players in one `state TICK ID:X,Y;...`, as (id, x, y).
fn players_in(state: &str) -> Vec<(u64, i32, i32)> {
    let players = state.split(' ').nth(2).unwrap_or("");
    let parse = |player: &str| {
        let (id, at) = player.split_once(':')?;
        let (x, y) = at.split_once(',')?;
        Some((id.parse().ok()?, x.parse().ok()?, y.parse().ok()?))
    };
    players.split(';').filter_map(parse).collect()
}

/// A field of arena_bot's report: "players=20 connected=20 seconds=2.0 states/s per player:
/// min=.. median=.. max=.. largest_world=20".
fn report_field(report: &str, name: &str) -> f64 {
    let at = report.find(&format!("{name}=")).unwrap_or_else(|| panic!("{report}")) + name.len() + 1;
    report[at..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn arena_sends_the_world_to_netcode_bots_and_websocket_spectators() {
    let (server, http, mut spectator) = start_arena();
    const BOTS: usize = 20;
    let bot =
        std::thread::spawn(move || run(env!("CARGO_BIN_EXE_arena_bot"), &[&http.to_string(), &BOTS.to_string(), "2"]));
    // The spectator sees every bot (on both workers) in one state.
    let mut largest = 0;
    let start = std::time::Instant::now();
    while largest < BOTS && start.elapsed() < Duration::from_secs(10) {
        if let tungstenite::Message::Text(state) = spectator.read().unwrap() {
            largest = largest.max(players_in(state.as_str()).len());
        }
    }
    assert_eq!(largest, BOTS, "a state listing every bot");
    let output = bot.join().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{report}");
    assert_eq!(report_field(&report, "connected") as usize, BOTS, "every bot connected: {report}");
    // 20 Hz ticks over secure sessions: every bot gets most of them (slack for a loaded machine).
    assert!(report_field(&report, "min") >= 10.0, "{report}");
    assert_eq!(report_field(&report, "largest_world") as usize, BOTS, "{report}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// The pixel at (x, y) of a decoded PNG, as RGB.
fn pixel(image: &(png::OutputInfo, Vec<u8>), x: u32, y: u32) -> [u8; 3] {
    let (info, bytes) = image;
    let channels = info.color_type.samples();
    let at = (y * info.width + x) as usize * channels;
    [bytes[at], bytes[at + 1], bytes[at + 2]]
}

/// The spectator page in headless Chromium: a screenshot of its canvas shows a player (not the
/// background) at every place the state says a player is, once the bots moved and hold still.
#[test]
fn arena_spectator_page_draws_the_players_where_the_state_says_they_are() {
    let (server, http, mut spectator) = start_arena();
    const BOTS: usize = 8;
    // Moving for 1.5 s, then connected and still for 8 s, while the page is shot.
    let bot = std::thread::spawn(move || {
        run(env!("CARGO_BIN_EXE_arena_bot"), &[&http.to_string(), &BOTS.to_string(), "1.5", "8"])
    });
    // Wait for a world of every bot, moved from where it joined, unchanged for 5 states.
    let (mut still, mut last, start) = (0, Vec::new(), std::time::Instant::now());
    while still < 5 && start.elapsed() < Duration::from_secs(10) {
        if let tungstenite::Message::Text(state) = spectator.read().unwrap() {
            let players = players_in(state.as_str());
            still = if players.len() == BOTS && players == last { still + 1 } else { 0 };
            last = players;
        }
    }
    assert_eq!((still, last.len()), (5, BOTS), "the bots joined, then held still: {last:?}");
    let joined_at = |id: u64| (100 + (id * 137 % 800) as i32, 100 + (id * 251 % 800) as i32);
    assert!(last.iter().all(|&(id, x, y)| (x, y) != joined_at(id)), "every bot moved: {last:?}");

    let shot = std::env::temp_dir().join(format!("smoke-arena-{}.png", std::process::id()));
    let background = [0x10, 0x14, 0x18];
    let mut missing = Vec::new();
    // Virtual time can run out before the page's socket delivers a state: a few tries.
    for _ in 0..5 {
        let _ = std::fs::remove_file(&shot);
        let (target, url) = (format!("--screenshot={}", shot.display()), format!("http://{http}/"));
        let shoot = ["--hide-scrollbars", "--window-size=500,500", "--virtual-time-budget=3000", &target, &url];
        run("chromium", &[&CHROMIUM_HEADLESS[..], &shoot[..]].concat());
        let Ok(file) = std::fs::File::open(&shot) else { continue };
        let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().unwrap();
        let mut bytes = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut bytes).unwrap();
        let image = (info, bytes);
        assert_eq!(pixel(&image, 250, 10), background, "the canvas's background");
        missing = last.iter().filter(|&&(_, x, y)| pixel(&image, x as u32 / 2, y as u32 / 2) == background).collect();
        let drawn = (0..250).flat_map(|y| (0..250).map(move |x| (x * 2, y * 2)));
        let lit = drawn.filter(|&(x, y)| pixel(&image, x, y) != background).count();
        // Each player is an 8-pixel square (16 of these sample points); the status line adds some.
        assert!(lit <= BOTS * 16 + 200, "{lit} sample points lit: more than the players drawn");
        if missing.is_empty() {
            break;
        }
    }
    let _ = std::fs::remove_file(&shot);
    assert!(missing.is_empty(), "no player drawn at {missing:?} of {last:?}");
    let output = bot.join().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn fanout_sends_every_publication_to_every_subscriber() {
    let server = Running::start_with(env!("CARGO_BIN_EXE_fanout"), "Fanout", "SMOKE_WS");
    let connect = |path: &str| {
        let stream = server.connect();
        tungstenite::client::client(format!("ws://{}{path}", server.addr), stream).unwrap().0
    };
    let mut subscribers: Vec<_> = (0..10).map(|_| connect("/sub")).collect();
    let mut publisher = connect("/pub");
    for n in 0..50 {
        publisher.send(tungstenite::Message::text(n.to_string())).unwrap();
    }
    for subscriber in &mut subscribers {
        for n in 0..50 {
            assert_eq!(subscriber.read().unwrap(), tungstenite::Message::text(n.to_string()));
        }
    }
    let stream = server.connect();
    let refused = tungstenite::client::client(format!("ws://{}/elsewhere", server.addr), stream);
    assert!(refused.is_err(), "paths other than /pub and /sub are refused");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A self-signed certificate for `localhost` and 127.0.0.1 made by the `openssl` CLI, as an
/// operator would, in a directory of its own.
struct Certificate {
    dir: std::path::PathBuf,
}

impl Certificate {
    fn new(label: &str) -> Certificate {
        let dir = std::env::temp_dir().join(format!("smoke-examples-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certificate = Certificate { dir };
        certificate.renew();
        certificate
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").to_str().unwrap().to_owned()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").to_str().unwrap().to_owned()
    }

    /// A new key and certificate in the same files.
    fn renew(&self) {
        let output = run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
                &self.key(),
                "-out",
                &self.cert(),
            ],
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    /// The base64 SHA-256 of the certificate's public key, as Chromium's
    /// `--ignore-certificate-errors-spki-list` wants it.
    fn spki_hash(&self) -> String {
        let script = format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            self.cert()
        );
        let output = run("sh", &["-c", &script]);
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The chat example with TLS added by the environment: its page over https, its WebSocket
/// over wss, announced after the plain http listener.
fn start_chat_with_tls(
    certificate: &Certificate,
) -> (Child, BufReader<std::process::ChildStdout>, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
        .env("SMOKE_HTTP", "127.0.0.1:0")
        .env("SMOKE_HTTPS", "127.0.0.1:0")
        .env("SMOKE_TLS_CERT", certificate.cert())
        .env("SMOKE_TLS_KEY", certificate.key())
        // Chromium offers permessage-deflate and compresses what it sends.
        .env("SMOKE_WS_DEFLATE", "on")
        .env("SMOKE_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addrs = Vec::new();
    for protocol in ["http", "https"] {
        let mut banner = String::new();
        stdout.read_line(&mut banner).unwrap();
        let rest = banner.strip_prefix("Chatter listening on ").unwrap_or_else(|| panic!("{banner:?}"));
        assert!(rest.contains(&format!(" ({protocol})")), "{banner:?}");
        addrs.push(rest.split_whitespace().next().unwrap().parse().unwrap());
    }
    (child, stdout, addrs[0], addrs[1])
}

fn curl_https(certificate: &Certificate, addr: SocketAddr, path: &str) -> std::process::Output {
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let url = format!("https://localhost:{}{path}", addr.port());
    run("curl", &["-sS", "--resolve", &resolve, "--cacert", &certificate.cert(), &url])
}

#[test]
fn chat_page_works_over_https_and_wss_in_headless_chromium() {
    let certificate = Certificate::new("chat");
    let (mut child, _stdout, http, https) = start_chat_with_tls(&certificate);
    // The watcher is on the plain port: rooms are the server's, whichever listener.
    let stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut watcher, _) =
        tungstenite::client::client(format!("ws://{http}/ws?room=secure&name=watcher"), stream).unwrap();
    let url = format!("https://localhost:{}/?room=secure&name=chromium&say=hello", https.port());
    let spki = format!("--ignore-certificate-errors-spki-list={}", certificate.spki_hash());
    let resolver = format!("--host-resolver-rules=MAP localhost 127.0.0.1:{}", https.port());
    chat_in_chromium(&url, &[&spki, &resolver], &mut watcher);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn sighup_reloads_the_certificates_without_a_restart() {
    let certificate = Certificate::new("reload");
    let (mut child, mut stdout, _http, https) = start_chat_with_tls(&certificate);
    let first = curl_https(&certificate, https, "/");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let old = std::fs::read(certificate.cert()).unwrap();
    certificate.renew();
    // The server still serves the old certificate, which curl no longer trusts...
    assert!(!curl_https(&certificate, https, "/").status.success(), "the old certificate is still served");
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "Chatter: certificates reloaded\n");
    // ...and the new one after SIGHUP, in the same process.
    let renewed = curl_https(&certificate, https, "/");
    assert!(renewed.status.success(), "{}", String::from_utf8_lossy(&renewed.stderr));
    assert_ne!(old, std::fs::read(certificate.cert()).unwrap());
    // A broken file is refused and the certificate in use stays.
    std::fs::write(certificate.key(), "not a key").unwrap();
    let _ = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
    let mut refusal = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut refusal).unwrap();
    assert!(refusal.starts_with("Chatter: certificates not reloaded, the old ones stay: tls_key"), "{refusal}");
    assert!(curl_https(&certificate, https, "/").status.success());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}
