// Every key of the attribute and every TCP handler, with the prelude's bare attribute names.
use smoke::prelude::*;
use std::time::Duration;

#[derive(Default)]
struct Everything {
    reads: u32,
}

#[smoke::server(
    tcp = [9090, "127.0.0.1:9091"],
    bind = "::",
    threads = 3,
    fd_cache = 1024,
    max_connections = 5000,
    idle_timeout_ms = 30000,
    send_timeout_ms = 20000,
    max_write_buffer = 65536,
    max_read_buffer = 131072,
    shutdown_timeout_ms = 2000,
)]
impl Everything {
    #[on_connect]
    fn connect(&mut self, conn: &mut Conn) {
        conn.write(b"hi");
    }
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        self.reads += 1;
        conn.write(input);
        input.len()
    }
    #[on_write]
    fn drained(&mut self, _conn: &mut Conn) {}
    #[on_close]
    fn close(&mut self, _conn: &mut Conn, _why: CloseReason) {}

    // Ordinary methods stay as they are.
    fn reads(&self) -> u32 {
        self.reads
    }
}

fn main() {
    let config = Everything::config();
    assert_eq!(
        config.listeners(),
        [(smoke::Protocol::Tcp, smoke::Listen::Port(9090)), (smoke::Protocol::Tcp, smoke::Listen::Addr("127.0.0.1:9091".into()))]
    );
    assert_eq!(config.runtime().bind, "::".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(config.runtime().threads, 3);
    assert_eq!(config.runtime().fd_cache, 1024);
    assert_eq!(config.runtime().max_connections, Some(5000));
    assert_eq!(config.runtime().idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.runtime().send_timeout, Some(Duration::from_secs(20)));
    assert_eq!(config.runtime().max_write_buffer, 65536);
    assert_eq!(config.runtime().max_read_buffer, 131072);
    assert_eq!(config.runtime().shutdown_timeout, Duration::from_secs(2));
    assert_eq!(Everything::default().reads(), 0);
    // The entry points exist with the documented types.
    let _: fn() -> Result<(), smoke::Error> = Everything::serve;
    let _: fn(smoke::Config) -> Result<smoke::ServerHandle, smoke::Error> = Everything::spawn;
}
