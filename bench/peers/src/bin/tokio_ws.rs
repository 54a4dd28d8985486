//! tokio-tungstenite WebSocket server: `/` echoes; `/sub` subscribes to the broadcast that every
//! message sent on `/pub` goes to (the fan-out scenario). Given worker threads.
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(9011);
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(1);
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
            tokio::spawn(async move {
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
            });
        }
    });
}
