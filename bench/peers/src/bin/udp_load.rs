//! UDP echo load for the benchmarks, bounded in time: `udp_load ADDR CLIENTS SECONDS`. Each
//! client socket keeps 8 datagrams of 64 bytes in flight and measures round trips; a datagram
//! lost for 200 ms is counted as lost and replaced.
//!
//! Prints one line: `messages=N seconds=S rate=R p50_us=A p99_us=B lost=L`.
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

#[path = "../report.rs"]
mod report;
use report::report;

const IN_FLIGHT: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: udp_load ADDR CLIENTS SECONDS");
        std::process::exit(2);
    }
    let (addr, clients, seconds): (String, usize, f64) =
        (args[1].clone(), args[2].parse().unwrap(), args[3].parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds);
        let origin = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.connect(&addr).await.unwrap();
                let stamp = || {
                    let mut datagram = [0u8; 64];
                    datagram[..16].copy_from_slice(&origin.elapsed().as_nanos().to_le_bytes());
                    datagram
                };
                for _ in 0..IN_FLIGHT {
                    socket.send(&stamp()).await.unwrap();
                }
                let (mut samples, mut count, mut lost) = (Vec::new(), 0u64, 0u64);
                let mut buf = [0u8; 128];
                while Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf)).await {
                        Ok(Ok(n)) if n >= 16 => {
                            let sent = u128::from_le_bytes(buf[..16].try_into().unwrap());
                            samples.push(((origin.elapsed().as_nanos() - sent) / 1000) as u32);
                            count += 1;
                        }
                        Ok(_) => continue,
                        Err(_) => lost += 1,
                    }
                    let _ = socket.send(&stamp()).await;
                }
                (samples, count, lost)
            }));
        }
        let (mut all, mut total, mut lost) = (Vec::new(), 0, 0);
        for task in tasks {
            let (samples, count, l) = task.await.unwrap();
            all.extend(samples);
            total += count;
            lost += l;
        }
        report(all, total, start.elapsed().as_secs_f64(), Some(lost));
    });
}
