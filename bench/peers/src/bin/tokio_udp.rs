//! tokio UDP echo with the given number of worker threads (one task per thread, each with its
//! own SO_REUSEPORT socket would need socket2; one socket shared by the tasks is tokio's idiom).
//! THREADS 0 runs one task on the calling thread (tokio's current-thread runtime), for the
//! callgrind rows: valgrind counts a multi-thread runtime's idle spinning as work.
use std::sync::Arc;

use tokio::net::UdpSocket;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(9012);
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let runtime = match threads {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        threads => tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap(),
    };
    runtime.block_on(async move {
        let socket = Arc::new(UdpSocket::bind(("127.0.0.1", port)).await.unwrap());
        println!("ready");
        let mut tasks = Vec::new();
        for _ in 0..threads.max(1) {
            let socket = socket.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
                    let _ = socket.send_to(&buf[..n], from).await;
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}
