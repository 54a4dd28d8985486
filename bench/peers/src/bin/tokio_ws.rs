//! tokio-tungstenite WebSocket server: `/` echoes; `/sub` subscribes to the broadcast that every
//! message sent on `/pub` goes to (the fan-out scenario). Given worker threads, and with a
//! certificate and key (PEM files) it serves WSS through tokio-rustls.
//!
//!   tokio_ws PORT THREADS [CERT KEY]
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let chain = CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(9011);
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let args: Vec<String> = std::env::args().collect();
    let tls = (args.len() >= 5).then(|| acceptor(&args[3], &args[4]));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        // Lagging subscribers lose messages rather than slowing the publisher, as with smoke.
        let (topic, _) = broadcast::channel::<Message>(4096);
        println!("ready");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let topic = topic.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(stream) = tls.accept(stream).await {
                            serve(stream, topic).await;
                        }
                    }
                    None => serve(stream, topic).await,
                }
            });
        }
    });
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, topic: broadcast::Sender<Message>) {
    let mut path = String::new();
    let callback = |req: &Request, res: Response| {
        path = req.uri().path().to_owned();
        Ok(res)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let (mut tx, mut rx) = ws.split();
    match path.as_str() {
        "/sub" => {
            let mut messages = topic.subscribe();
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        "/pub" => {
            while let Some(Ok(message)) = rx.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = topic.send(message);
                }
            }
        }
        _ => {
            while let Some(Ok(message)) = rx.next().await {
                if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err() {
                    break;
                }
            }
        }
    }
}
