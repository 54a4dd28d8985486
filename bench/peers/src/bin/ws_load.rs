//! WebSocket load for the benchmarks, bounded in time.
//!
//!   ws_load echo URL CLIENTS SECONDS   # each client keeps 8 messages in flight
//!
//! Prints one line: `messages=N seconds=S rate=R p50_us=A p99_us=B`. A `wss://` URL connects
//! through tokio-rustls, trusting the certificate in the PEM file `SMOKE_BENCH_CA` (as
//! `localhost`). Topic fan-out has its own client, `fanout_load`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, connect_async};

#[path = "../report.rs"]
mod report;
use report::report;

const IN_FLIGHT: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // One thread: the load generator keeps to one core, the server under test has the other.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("echo") => runtime.block_on(echo(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap())),
        _ => {
            eprintln!("usage: ws_load echo URL CLIENTS SECONDS");
            std::process::exit(2);
        }
    }
}

/// Every client's latency samples and message count, together.
async fn gather(tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>) -> (Vec<u32>, u64) {
    let (mut all, mut total) = (Vec::new(), 0);
    for task in tasks {
        let (samples, count) = task.await.unwrap();
        all.extend(samples);
        total += count;
    }
    (all, total)
}

async fn echo(url: &str, clients: usize, seconds: f64) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        if let Some(rest) = url.strip_prefix("wss://") {
            let connector = tls_connector();
            let addr = rest.split('/').next().unwrap().replace("localhost", "127.0.0.1");
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.expect("TLS handshake");
            let (ws, _) = tokio_tungstenite::client_async(url, tls).await.expect("upgrade");
            tasks.push(tokio::spawn(echo_client(ws, deadline)));
        } else {
            let (ws, _) = connect_async(url).await.expect("connect");
            tasks.push(tokio::spawn(echo_client(ws, deadline)));
        }
    }
    let (all, total) = gather(tasks).await;
    report(all, total, start.elapsed().as_secs_f64(), None);
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let path = std::env::var("SMOKE_BENCH_CA").expect("SMOKE_BENCH_CA names the server's certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(path).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One echo client: keeps `IN_FLIGHT` messages out until the deadline.
async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(ws: WebSocketStream<S>, deadline: Instant) -> (Vec<u32>, u64) {
    let (mut tx, mut rx) = ws.split();
    let mut samples = Vec::new();
    let origin = Instant::now();
    let stamp = || Message::text(format!("{:020}", origin.elapsed().as_nanos()));
    for _ in 0..IN_FLIGHT {
        tx.send(stamp()).await.unwrap();
    }
    let mut count = 0u64;
    while let Some(Ok(message)) = rx.next().await {
        if let Message::Text(text) = message {
            let sent: u128 = text.as_str().parse().unwrap_or(0);
            samples.push(((origin.elapsed().as_nanos() - sent) / 1000) as u32);
            count += 1;
            if Instant::now() >= deadline {
                break;
            }
            if tx.send(stamp()).await.is_err() {
                break;
            }
        }
    }
    let _ = tx.close().await;
    (samples, count)
}
