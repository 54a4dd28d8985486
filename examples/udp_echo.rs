//! UDP echo: every datagram comes back to its sender. Counts what it received and says so when
//! it stops. With `SMOKE_PFRING=eth0` its input comes from the kernel's packet ring on `eth0`
//! instead of its sockets (root or CAP_NET_RAW).
//!
//! ```text
//! cargo run --release -p smoke-examples --bin udp_echo
//! echo hi | nc -u -w1 127.0.0.1 9092
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use smoke::prelude::*;

static RECEIVED: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct UdpEcho;

// ANCHOR: udp_echo
#[smoke::server(udp = 9092, threads = 2)]
impl UdpEcho {
    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        RECEIVED.fetch_add(1, Ordering::Relaxed);
        peer.send(packet);
    }
}
// ANCHOR_END: udp_echo

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    UdpEcho::serve()?;
    eprintln!("udp_echo: {} datagrams received", RECEIVED.load(Ordering::Relaxed));
    Ok(())
}
