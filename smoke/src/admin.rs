//! The admin listener (`metrics = 9100`): Prometheus's text exposition at `/metrics`, the
//! probes orchestrators ask, `/healthz` (the process serves) and `/readyz` (every worker runs
//! and none is draining), and a live dashboard at `/` drawn from `/metrics`. It has a thread of
//! its own, so a scrape never queues behind the workers' traffic and costs them nothing but the
//! relaxed loads of their counters and a moment's lock on each mailbox and topic count.
//!
//! One connection at a time, one request each, a second to send it: the port is for the
//! monitoring network, not for the public.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rt::error::Error;
use crate::rt::shared::{WorkerSet, WorkerShared};
use crate::stats::{BUCKET_BOUNDS_US, Durations, Histogram, Stats};
use crate::sys::{Epoll, EventFd, Events, Interest};

/// The live dashboard at `/`: one page drawing charts from `/metrics`, no external files.
const DASHBOARD: &str = include_str!("dashboard.html");

/// How long a client has to send its request and take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest request head read.
const MAX_REQUEST: usize = 8 * 1024;

/// The admin listener's thread, stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct Admin {
    addr: SocketAddr,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Binds `addr` and serves it for `workers` until dropped.
    pub(crate) fn start(addr: SocketAddr, workers: Arc<WorkerSet>) -> Result<Admin, Error> {
        let listener = TcpListener::bind(addr).map_err(|e| crate::rt::spawn::bind_failure(addr, "metrics", e))?;
        let addr = listener.local_addr().map_err(|e| Error::io("read the metrics listener's address", e))?;
        let failed = |e| Error::io("start the metrics listener", e);
        listener.set_nonblocking(true).map_err(failed)?;
        let stop = Arc::new(EventFd::new().map_err(failed)?);
        let epoll = Epoll::new().map_err(failed)?;
        epoll.add(listener.as_raw_fd(), 0, Interest::READABLE).map_err(failed)?;
        epoll.add(stop.as_raw_fd(), 1, Interest::READABLE).map_err(failed)?;
        let thread = std::thread::Builder::new()
            .name("smoke-admin".into())
            .spawn(move || serve(&listener, &epoll, &workers))
            .map_err(failed)?;
        Ok(Admin { addr, stop, thread: Some(thread) })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, epoll: &Epoll, workers: &WorkerSet) {
    let mut events = Events::with_capacity(2);
    loop {
        if epoll.wait(&mut events, None).is_err() {
            return;
        }
        if (0..events.len()).any(|i| events.get(i).token == 1) {
            return;
        }
        while let Ok((stream, _)) = listener.accept() {
            if let Err(e) = answer(stream, workers) {
                log::debug!("metrics: a client went away: {e}");
            }
        }
    }
}

/// Reads one request and answers it, then closes.
fn answer(mut stream: TcpStream, workers: &WorkerSet) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    // One deadline for the whole request: a client sending a byte at a time gets no longer.
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no whole request within a second"));
        }
        stream.set_read_timeout(Some(left))?;
        let read = stream.read(&mut buf)?;
        if read == 0 || head.len() + read > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..read]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/") => ("200 OK", "text/html; charset=utf-8", DASHBOARD.to_owned()),
        (b"GET" | b"HEAD", b"/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", exposition(workers)),
        (b"GET" | b"HEAD", b"/healthz") => ("200 OK", "text/plain", "ok\n".to_owned()),
        (b"GET" | b"HEAD", b"/readyz") if workers.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        (b"GET" | b"HEAD", b"/readyz") => ("503 Service Unavailable", "text/plain", "not ready\n".to_owned()),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    Ok(())
}

/// The counters whose Prometheus names say more than `smoke_<field>_total`; the ones without
/// `_total` are gauges.
const NAMES: &[(&str, &str)] = &[
    ("closed", "connections_closed_total"),
    ("accepted", "connections_accepted_total"),
    ("errors", "connection_errors_total"),
    ("panics", "handler_panics_total"),
    ("requests", "http_requests_total"),
    ("rejected", "http_rejected_total"),
    ("ws_messages", "ws_messages_received_total"),
    ("bytes_in", "received_bytes_total"),
    ("bytes_out", "sent_bytes_total"),
    ("buffers_held", "buffers_held"),
    ("lingering", "lingering_sockets"),
    ("peers", "udp_peers"),
    ("subscriptions", "subscriptions"),
    ("timers", "timers"),
    ("dropped", "ws_dropped_messages_total"),
    ("datagrams_in", "udp_datagrams_received_total"),
    ("datagrams_out", "udp_datagrams_sent_total"),
    ("datagrams_truncated", "udp_datagrams_truncated_total"),
    ("datagrams_dropped", "udp_datagrams_dropped_total"),
    ("peers_refused", "udp_peers_refused_total"),
    ("players", "game_players"),
];

/// The histograms: name (without `smoke_`), help, and where a worker keeps it.
type HistogramOf = fn(&WorkerShared) -> &Histogram;
const HISTOGRAMS: [(&str, &str, HistogramOf); 5] = [
    (
        "loop_turn_seconds",
        "How long one turn of a worker's event loop took, from a wake-up to its next wait: the handlers, timers, deliveries and sends of that turn.",
        |worker| &worker.turns,
    ),
    (
        "handler_seconds",
        "How long the server took over one read of a connection's input (parsing, your handlers, encoding the replies) or one datagram, timed for a random one in 16.",
        |worker| &worker.handlers,
    ),
    ("tick_seconds", "How long each tick's handler took.", |worker| &worker.tick_handler),
    ("tick_lateness_seconds", "How late each tick ran against its schedule.", |worker| &worker.tick_lateness),
    (
        "publish_delivery_seconds",
        "How long from a topic publication (or its arrival from another node) to its send to the worker's last subscriber of it, counted once per publication per worker with subscribers.",
        |worker| &worker.publish_delivery,
    ),
];

/// The topics with the most subscribers, each with its own series; the rest are summed in
/// `smoke_topics` alone, so a server with a million rooms does not send a million series.
const TOP_TOPICS: usize = 10;
/// A topic name in a label is cut to this many bytes.
const MAX_TOPIC_LABEL: usize = 128;

/// One histogram's series: cumulative buckets by their upper bound in seconds, `+Inf`, the sum
/// in seconds and the count, with `labels` (`worker="0"`, or none) before `le`.
fn write_histogram(out: &mut String, name: &str, labels: &str, durations: &Durations) {
    let (mut cumulative, separator) = (0, if labels.is_empty() { "" } else { "," });
    for (bound, count) in BUCKET_BOUNDS_US.iter().zip(durations.buckets) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"{}\"}} {cumulative}", *bound as f64 / 1e6);
    }
    let (count, sum) = (durations.count(), durations.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {count}");
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {sum}\n{name}_count{braces} {count}");
}

/// A counter's metric name (without `smoke_`) and type.
fn metric(field: &str) -> (String, &'static str) {
    let name = NAMES.iter().find(|(f, _)| *f == field).map_or_else(|| format!("{field}_total"), |(_, n)| (*n).into());
    let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
    (name, kind)
}

/// A doc comment as one HELP line: its lines joined, backslashes escaped.
fn help(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ").replace('\\', "\\\\")
}

/// Every counter, summed (`smoke_<name>`) and per worker (`smoke_worker_<name>{worker="i"}`),
/// the histograms the same way, and the open connections and readiness as gauges, in the text
/// exposition format.
pub(crate) fn exposition(workers: &WorkerSet) -> String {
    let (total, each) = (workers.stats(), workers.worker_stats());
    let mut out = String::with_capacity(16 * 1024);
    let fields: Vec<_> = each.iter().map(Stats::fields).collect();
    for (i, (field, doc, value)) in total.fields().into_iter().enumerate() {
        let (name, kind) = metric(field);
        let help = help(doc);
        let _ = writeln!(out, "# HELP smoke_{name} {help}\n# TYPE smoke_{name} {kind}\nsmoke_{name} {value}");
        let _ = writeln!(out, "# HELP smoke_worker_{name} {help} Per worker.\n# TYPE smoke_worker_{name} {kind}");
        for (worker, fields) in fields.iter().enumerate() {
            let _ = writeln!(out, "smoke_worker_{name}{{worker=\"{worker}\"}} {}", fields[i].2);
        }
    }
    for (name, help, histogram) in HISTOGRAMS {
        let each: Vec<Durations> = workers.workers.iter().map(|w| histogram(w).read()).collect();
        let total = each.iter().fold(Durations::default(), |sum, one| sum.merge(one));
        let _ = writeln!(out, "# HELP smoke_{name} {help}\n# TYPE smoke_{name} histogram");
        write_histogram(&mut out, &format!("smoke_{name}"), "", &total);
        let _ = writeln!(out, "# HELP smoke_worker_{name} {help} Per worker.\n# TYPE smoke_worker_{name} histogram");
        for (worker, durations) in each.iter().enumerate() {
            write_histogram(&mut out, &format!("smoke_worker_{name}"), &format!("worker=\"{worker}\""), durations);
        }
    }
    write_topics(&mut out, workers);
    write_mailboxes(&mut out, workers);
    let _ = writeln!(out, "# HELP smoke_open_connections Connections open right now.");
    let _ = writeln!(out, "# TYPE smoke_open_connections gauge\nsmoke_open_connections {}", total.current());
    let _ = writeln!(out, "# HELP smoke_ready 1 while every worker runs and none is draining (as /readyz).");
    let _ = writeln!(out, "# TYPE smoke_ready gauge\nsmoke_ready {}", u8::from(workers.ready()));
    out
}

/// Subscribers of the [`TOP_TOPICS`] largest topics across the workers, and how many topics
/// have any.
fn write_topics(out: &mut String, workers: &WorkerSet) {
    let mut merged: HashMap<Box<str>, usize> = HashMap::new();
    for worker in &workers.workers {
        let counts = worker.topic_subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, count) in counts.iter() {
            *merged.entry(topic.clone()).or_default() += count;
        }
    }
    let _ = writeln!(out, "# HELP smoke_topics Topics with at least one subscriber.");
    let _ = writeln!(out, "# TYPE smoke_topics gauge\nsmoke_topics {}", merged.len());
    let mut largest: Vec<_> = merged.into_iter().collect();
    largest.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(
        out,
        "# HELP smoke_topic_subscribers Subscribers of the {TOP_TOPICS} topics that have the most.\n# TYPE smoke_topic_subscribers gauge"
    );
    for (topic, count) in largest.iter().take(TOP_TOPICS) {
        let _ = writeln!(out, "smoke_topic_subscribers{{topic=\"{}\"}} {count}", label_value(topic));
    }
}

/// What each worker's mailbox holds: publications other threads left that it has not picked
/// up yet. Bytes near `max_mailbox` mean it is behind, and the next publications are dropped.
fn write_mailboxes(out: &mut String, workers: &WorkerSet) {
    let depths: Vec<_> = workers
        .workers
        .iter()
        .map(|worker| worker.mailbox.lock().unwrap_or_else(PoisonError::into_inner).depth())
        .collect();
    let series = [
        ("mailbox_publications", "Publications waiting in a worker's mailbox for it to pick up."),
        ("mailbox_bytes", "Bytes waiting in a worker's mailbox, against max_mailbox."),
    ];
    for (which, (name, help)) in series.iter().enumerate() {
        let _ = writeln!(out, "# HELP smoke_worker_{name} {help}\n# TYPE smoke_worker_{name} gauge");
        for (worker, depth) in depths.iter().enumerate() {
            let value = if which == 0 { depth.0 } else { depth.1 };
            let _ = writeln!(out, "smoke_worker_{name}{{worker=\"{worker}\"}} {value}");
        }
    }
}

/// `text` as a label value: backslash, quote and newline escaped, cut to [`MAX_TOPIC_LABEL`]
/// bytes on a character boundary.
fn label_value(text: &str) -> String {
    let mut end = text.len().min(MAX_TOPIC_LABEL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_metric_name() {
        let fields = Stats::default().fields();
        let mut names: Vec<String> = fields.iter().map(|(field, _, _)| metric(field).0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), fields.len());
        assert!(NAMES.iter().all(|(field, _)| fields.iter().any(|(f, _, _)| f == field)), "a renamed field is gone");
        assert_eq!(metric("accepted"), ("connections_accepted_total".into(), "counter"));
        assert_eq!(metric("peers"), ("udp_peers".into(), "gauge"));
    }

    #[test]
    fn a_topic_label_is_escaped_and_cut() {
        assert_eq!(label_value("room \"a\"\\1\n"), r#"room \"a\"\\1\n"#);
        assert_eq!(label_value(&"é".repeat(100)).len(), MAX_TOPIC_LABEL);
    }

    #[test]
    fn help_is_one_line() {
        assert_eq!(help(" Bytes\n received \\ here.\n"), "Bytes received \\\\ here.");
    }
}
