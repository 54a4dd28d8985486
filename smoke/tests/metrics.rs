//! The admin listener against real clients: a Prometheus (Debian's package, started here with
//! a scrape config pointing at it) finds smoke's series with the values this test's own
//! traffic produced, and `promtool check metrics` passes the exposition. And the probes:
//! `/healthz` while the process serves, `/readyz` turning 503 while the server drains.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::eventually;
use common::http::read_reply;
use common::ports::free_port;
use smoke::prelude::*;

// ANCHOR: metrics
#[derive(Default)]
struct Hello;

#[smoke::server(http = 8080, metrics = 9100, threads = 2)]
impl Hello {
    #[get("/")]
    fn hello(&mut self, _req: &Request, res: &mut Response) {
        res.text("hello");
    }
}
// ANCHOR_END: metrics

fn start() -> (ServerHandle, SocketAddr, SocketAddr) {
    let config = common::on_loopback(Hello::config(), "http").metrics("127.0.0.1:0");
    let server = Hello::spawn(config).expect("the server starts");
    let (http, admin) = (server.local_addr(), server.metrics_addr().expect("an admin listener"));
    (server, http, admin)
}

/// `GET path` on a new connection: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = common::connect(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let reply = read_reply(&mut BufReader::new(stream), false).expect("an answer");
    (reply.status, String::from_utf8(reply.body).unwrap())
}

/// The value of the sample `series` (name and labels, as written) in an exposition.
fn sample(exposition: &str, series: &str) -> Option<u64> {
    exposition.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_exposition_counts_this_tests_requests_and_promtool_accepts_it() {
    let (_server, http, admin) = start();
    for _ in 0..7 {
        assert_eq!(get(http, "/"), (200, "hello".to_owned()));
    }
    let (status, text) = get(admin, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&text, "smoke_connections_accepted_total"), Some(7), "{text}");
    assert_eq!(sample(&text, "smoke_http_requests_total"), Some(7), "{text}");
    let per_worker: u64 = (0..2)
        .map(|w| sample(&text, &format!("smoke_worker_connections_accepted_total{{worker=\"{w}\"}}")).unwrap())
        .sum();
    assert_eq!(per_worker, 7);
    assert!(sample(&text, "smoke_sent_bytes_total").unwrap() > 0, "{text}");
    assert_eq!(sample(&text, "smoke_ready"), Some(1));
    assert!(text.contains("# TYPE smoke_udp_peers gauge\n"), "{text}");
    // The event loop's turns are counted and the histogram adds up. How many turns seven
    // requests take is the scheduler's business (a worker may accept the next connection in the
    // turn that answered the last), so the test asserts only that more traffic means more turns.
    let turns = sample(&text, "smoke_loop_turn_seconds_count").unwrap();
    assert!(turns >= 1, "{turns} turns: {text}");
    assert_eq!(sample(&text, "smoke_loop_turn_seconds_bucket{le=\"+Inf\"}"), Some(turns));
    let per_worker: u64 = (0..2)
        .map(|w| sample(&text, &format!("smoke_worker_loop_turn_seconds_count{{worker=\"{w}\"}}")).unwrap())
        .sum();
    assert_eq!(per_worker, turns);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stdout).into_owned() + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success() && said.trim().is_empty(), "promtool: {said}");
    assert_eq!(get(admin, "/nothing").0, 404);
    assert_eq!(get(http, "/"), (200, "hello".to_owned()));
    let more_turns = || sample(&get(admin, "/metrics").1, "smoke_loop_turn_seconds_count").unwrap() > turns;
    assert!(eventually(Duration::from_secs(5), more_turns), "no turn counted after {turns}");
    // The Observability chapter lists every metric (each once more per worker).
    let chapter =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../book/src/observability.md")).unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for name in &names {
        // A per-worker series is listed under its sum's name, when it has one.
        let summed = name.strip_prefix("smoke_worker_").map(|rest| format!("smoke_{rest}"));
        if summed.is_none_or(|summed| !names.contains(&summed.as_str())) {
            assert!(chapter.contains(&format!("| `{name}` |")), "the book does not list {name}");
        }
    }
}

/// Prometheus in the foreground, killed with the test.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    fn scraping(target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("smoke-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: smoke\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (Debian's prometheus package)");
        Prometheus { child, dir, addr }
    }

    /// The answer of the HTTP API to `query` (PromQL, URL-safe), as JSON text.
    fn query(&self, query: &str) -> Option<String> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET /api/v1/query?query={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn prometheus_scrapes_the_series_this_tests_traffic_produced() {
    let (_server, http, admin) = start();
    for _ in 0..5 {
        assert_eq!(get(http, "/").0, 200);
    }
    let prometheus = Prometheus::scraping(admin);
    // The series, then the sum over workers, each with the value 5 once a scrape has landed.
    for query in ["smoke_connections_accepted_total", "sum(smoke_worker_connections_accepted_total)"] {
        let mut last = None;
        let found = eventually(Duration::from_secs(60), || {
            last = prometheus.query(query);
            last.as_deref().is_some_and(|answer| answer.contains("\"success\"") && answer.contains(",\"5\"]"))
        });
        assert!(found, "{query}: {last:?}");
    }
    let up = prometheus.query("up").unwrap_or_default();
    assert!(up.contains("\"job\":\"smoke\"") && up.contains(",\"1\"]"), "{up}");
}

#[test]
fn readyz_says_not_ready_while_the_server_drains_and_healthz_says_it_serves() {
    let (server, http, admin) = start();
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(admin, "/readyz"), (200, "ready\n".to_owned()));
    // A request under way keeps the drain going while the probes are asked.
    let mut slow = common::connect(http);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(eventually(Duration::from_secs(5), || server.stats().accepted == 1));
    let stopping = std::thread::spawn(move || server.shutdown());
    assert!(eventually(Duration::from_secs(5), || get(admin, "/readyz") == (503, "not ready\n".to_owned())));
    assert_eq!(get(admin, "/healthz").0, 200);
    let (_, text) = get(admin, "/metrics");
    assert_eq!(sample(&text, "smoke_ready"), Some(0));
    slow.write_all(b"\r\n").unwrap();
    let reply = read_reply(&mut BufReader::new(slow), false).expect("the request under way is answered");
    assert_eq!(reply.status, 200);
    stopping.join().unwrap().unwrap();
    // The admin listener stops with the server. (Another test may have been given the port
    // since: whatever answers there now is not this server's admin listener.)
    if let Ok(mut stream) = TcpStream::connect(admin) {
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = read_reply(&mut BufReader::new(stream), false);
        assert!(answer.is_none_or(|reply| reply.body != b"ok\n"), "the admin listener outlived the server");
    }
}

#[test]
fn a_metrics_port_in_use_is_refused_in_one_sentence() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = common::on_loopback(Hello::config(), "http").metrics(addr.to_string().as_str());
    let err = Hello::spawn(config).unwrap_err();
    assert_eq!(err.to_string(), format!("bind {addr} (metrics): address in use"));
}

/// Headless Chromium on `url` with `extra` flags: what it printed.
fn chromium(url: &str, extra: &[&str]) -> String {
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=6000"])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The value of attribute `name` in the tag that has `id="{id}"`, in a dumped DOM.
fn attribute<'d>(dom: &'d str, id: &str, name: &str) -> Option<&'d str> {
    let tag = &dom[dom.find(&format!("id=\"{id}\""))?..];
    let tag = &tag[..tag.find('>')?];
    let value = &tag[tag.find(&format!("{name}=\""))? + name.len() + 2..];
    Some(&value[..value.find('"')?])
}

#[test]
fn the_dashboard_draws_every_chart_in_chromium_with_the_numbers_of_metrics() {
    let (_server, http, admin) = start();
    for _ in 0..9 {
        assert_eq!(get(http, "/").0, 200);
    }
    let url = format!("http://{admin}/");
    // Virtual time runs ahead while the page waits for its fetches: a few tries, bounded.
    let mut dom = String::new();
    for _ in 0..3 {
        dom = chromium(&url, &["--dump-dom"]);
        if attribute(&dom, "chart-ticks", "data-drawn").is_some() {
            break;
        }
    }
    for chart in ["connections", "accepted", "requests", "bytes", "drops", "ticks", "turns", "lateness"] {
        let drawn: u64 = attribute(&dom, &format!("chart-{chart}"), "data-drawn")
            .unwrap_or_else(|| panic!("the {chart} chart was not drawn: {dom}"))
            .parse()
            .unwrap();
        assert!(drawn > 500, "the {chart} chart has {drawn} pixels drawn");
    }
    let (_, text) = get(admin, "/metrics");
    let accepted = sample(&text, "smoke_connections_accepted_total").unwrap();
    assert_eq!(accepted, 9);
    assert!(dom.contains(&format!("id=\"now-accepted\">{accepted} total<")), "the page's number: {dom}");
    assert!(dom.contains(&format!("smoke_connections_accepted_total {accepted}\n")), "{dom}");
    assert!(dom.contains("2 workers, ready"), "{dom}");
    let shot = std::env::temp_dir().join(format!("smoke-dashboard-{}.png", std::process::id()));
    chromium(&url, &["--window-size=1000,600", &format!("--screenshot={}", shot.display())]);
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the charts, not a blank page: {size} bytes at {}", shot.display());
    let _ = std::fs::remove_file(&shot);
}

#[test]
fn a_client_trickling_its_request_is_cut_off_and_holds_the_admin_listener_no_longer() {
    let (_server, _http, admin) = start();
    let mut slow = common::connect(admin);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nX-Pad: ").unwrap();
    // A byte every 200 ms: each read sees progress, so only a deadline for the whole request
    // stops it (one second).
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"x").is_err() {
            break;
        }
    }
    let _ = slow.write_all(b"\r\n\r\n");
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "answered after 3 s of trickling");
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".to_owned()));
}

static STALL: AtomicBool = AtomicBool::new(false);
static WORKERS_STALLED: AtomicUsize = AtomicUsize::new(0);

/// Rooms: each WebSocket subscribes to the topic its URL names and publishes what it sends
/// there; every tick takes 2 ms, and a worker stalls in its tick while `STALL` is set.
#[derive(Default)]
struct Rooms {
    topic: String,
}

#[smoke::server(http = 8080, ws_path = "/ws", metrics = 9100, threads = 2)]
impl Rooms {
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

    #[on_tick(ms = 10)]
    fn tick(_worker: &mut Worker<Self>) {
        std::thread::sleep(Duration::from_millis(2));
        if STALL.load(Ordering::SeqCst) {
            WORKERS_STALLED.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(800));
            WORKERS_STALLED.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn join(addr: SocketAddr, topic: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = common::connect(addr);
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tungstenite::client::client(format!("ws://{addr}/ws?topic={topic}"), stream).expect("upgrade").0
}

#[test]
fn topics_mailboxes_and_handler_times_are_in_the_exposition() {
    let config = common::on_loopback(Rooms::config(), "http").metrics("127.0.0.1:0");
    let server = Rooms::spawn(config).expect("the server starts");
    let (http, admin) = (server.local_addr(), server.metrics_addr().unwrap());
    let mut lobby: Vec<_> = (0..5).map(|_| join(http, "lobby")).collect();
    let _room: Vec<_> = (0..3).map(|_| join(http, "room-1")).collect();
    let _singles: Vec<_> = (0..12).map(|i| join(http, &format!("single-{i}"))).collect();
    let scrape = || get(admin, "/metrics").1;
    let topics_line = |text: &str| text.lines().filter(|l| l.starts_with("smoke_topic_subscribers{")).count();
    let mut text = String::new();
    assert!(eventually(Duration::from_secs(5), || {
        text = scrape();
        sample(&text, "smoke_topics") == Some(14)
    }));
    assert_eq!(sample(&text, "smoke_topic_subscribers{topic=\"lobby\"}"), Some(5), "{text}");
    assert_eq!(sample(&text, "smoke_topic_subscribers{topic=\"room-1\"}"), Some(3), "{text}");
    assert_eq!(topics_line(&text), 10, "only the ten largest topics have a series: {text}");

    // Input handlers are timed one call in 16 on average, never fewer than one in 31: 200
    // messages, each waited for so it is a read of its own, are timed at least 6 times.
    for i in 0..200 {
        lobby[0].send(tungstenite::Message::text(format!("m{i}"))).unwrap();
        assert_eq!(lobby[0].read().unwrap(), tungstenite::Message::text(format!("m{i}")));
    }
    for client in &mut lobby[1..] {
        for i in 0..200 {
            assert_eq!(client.read().unwrap(), tungstenite::Message::text(format!("m{i}")));
        }
    }
    // The messages can all be through before the first 10 ms tick on a busy machine: wait for
    // one.
    // Each of the 200 publications was timed to its last send on every worker with a lobby
    // subscriber (one or both), once it was sent.
    let mut text = String::new();
    assert!(eventually(Duration::from_secs(5), || {
        text = scrape();
        sample(&text, "smoke_tick_seconds_count") > Some(0)
            && sample(&text, "smoke_publish_delivery_seconds_count") >= Some(200)
    }));
    let published = sample(&text, "smoke_publish_delivery_seconds_count").unwrap();
    assert!(published <= 400, "{published} publications timed: {text}");
    let timed = sample(&text, "smoke_handler_seconds_count").unwrap();
    assert!((6..=300).contains(&timed), "{timed} handler calls timed: {text}");
    // Every tick sleeps 2 ms, so none is in the 1 ms bucket.
    assert_eq!(sample(&text, "smoke_tick_seconds_bucket{le=\"0.001\"}"), Some(0), "{text}");

    // Both workers stall in a tick: publications from outside wait in their mailboxes.
    STALL.store(true, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || WORKERS_STALLED.load(Ordering::SeqCst) == 2));
    STALL.store(false, Ordering::SeqCst);
    for i in 0..5 {
        server.publish("lobby", format!("news {i}").as_str());
    }
    let text = scrape();
    let waiting = |text: &str, name: &str| -> u64 {
        (0..2).map(|w| sample(text, &format!("smoke_worker_{name}{{worker=\"{w}\"}}")).unwrap()).sum()
    };
    assert!(WORKERS_STALLED.load(Ordering::SeqCst) == 2, "the stall ended before the scrape; the test is too slow");
    assert_eq!(waiting(&text, "mailbox_publications"), 10, "{text}");
    assert!(waiting(&text, "mailbox_bytes") >= 10 * "lobbynews 0".len() as u64, "{text}");
    for client in &mut lobby {
        for i in 0..5 {
            assert_eq!(client.read().unwrap(), tungstenite::Message::text(format!("news {i}")));
        }
    }
    assert!(eventually(Duration::from_secs(5), || waiting(&scrape(), "mailbox_publications") == 0));

    // The lobby empties: its series goes.
    drop(lobby);
    let mut text = String::new();
    assert!(eventually(Duration::from_secs(5), || {
        text = scrape();
        sample(&text, "smoke_topics") == Some(13)
    }));
    assert_eq!(sample(&text, "smoke_topic_subscribers{topic=\"lobby\"}"), None, "{text}");
}
