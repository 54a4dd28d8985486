//! Starting and stopping: bind errors, graceful shutdown, and handler panics.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{connect, echo_server, eventually, round_trip};
use smoke::{CloseReason, Config, Conn, Handler};

#[test]
fn binding_a_port_in_use_names_the_address_and_protocol() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err =
        smoke::spawn(Config::new().threads(1).tcp(addr), |_: &mut Conn| common::Echo { observed: Default::default() })
            .unwrap_err();
    assert_eq!(err.to_string(), format!("bind {addr} (tcp): address in use"));
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[test]
fn a_second_smoke_server_on_the_same_port_is_refused_not_silently_shared() {
    // SO_REUSEPORT alone would let the second server join the first and split its traffic.
    let (first, _) = echo_server(Config::new().threads(2));
    let addr = first.local_addr();
    let err =
        smoke::spawn(Config::new().threads(1).tcp(addr), |_: &mut Conn| common::Echo { observed: Default::default() })
            .unwrap_err();
    assert_eq!(err.to_string(), format!("bind {addr} (tcp): address in use"));
}

#[test]
fn configuration_mistakes_are_reported_before_anything_runs() {
    let no_listener = smoke::spawn(Config::new(), |_: &mut Conn| common::Echo { observed: Default::default() });
    assert_eq!(no_listener.unwrap_err().to_string(), "no listener configured");
    let bad =
        smoke::spawn(Config::new().tcp("127.0.0.1:port"), |_: &mut Conn| common::Echo { observed: Default::default() });
    let message = bad.unwrap_err().to_string();
    assert!(message.starts_with("listen 127.0.0.1:port (tcp): cannot resolve"), "{message}");
    // Worker processes are copies of a program that serves; a spawned server is part of one.
    let processes = smoke::spawn(Config::new().tcp("127.0.0.1:0").processes(2), |_: &mut Conn| common::Echo {
        observed: Default::default(),
    });
    assert_eq!(processes.unwrap_err().to_string(), "processes needs a smoke::Server served with Server::serve");
}

/// Writes `size` bytes as soon as a client connects.
struct Flood {
    size: usize,
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Flood {
    fn on_connect(&mut self, conn: &mut Conn) {
        conn.write(&vec![b'f'; self.size]);
    }
    fn on_data(&mut self, _: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
    fn on_close(&mut self, _: &mut Conn, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

#[test]
fn shutdown_flushes_pending_output_before_closing() {
    // More than the kernel's socket buffers hold, so most of it waits in smoke's queue.
    const SIZE: usize = 32 << 20;
    let closes = Arc::new(Mutex::new(Vec::new()));
    let recorded = closes.clone();
    let server = smoke::spawn(
        Config::new().threads(1).tcp("127.0.0.1:0").shutdown_timeout(Duration::from_secs(60)),
        move |_: &mut Conn| Flood { size: SIZE, closes: recorded.clone() },
    )
    .unwrap();
    let mut client = connect(server.local_addr());
    assert!(eventually(Duration::from_secs(10), || server.stats().buffers_held > 0));

    let stopper = std::thread::spawn(move || server.shutdown());
    let mut received = Vec::new();
    client.read_to_end(&mut received).unwrap();
    stopper.join().unwrap().unwrap();
    assert_eq!(received.len(), SIZE);
    assert_eq!(*closes.lock().unwrap(), [CloseReason::Shutdown]);
}

#[test]
fn shutdown_closes_connections_that_cannot_drain_by_the_deadline() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let recorded = closes.clone();
    let server = smoke::spawn(
        Config::new().threads(1).tcp("127.0.0.1:0").shutdown_timeout(Duration::from_millis(200)),
        move |_: &mut Conn| Flood { size: 32 << 20, closes: recorded.clone() },
    )
    .unwrap();
    let _never_reads = connect(server.local_addr());
    assert!(eventually(Duration::from_secs(10), || server.stats().buffers_held > 0));
    server.shutdown().unwrap();
    assert_eq!(*closes.lock().unwrap(), [CloseReason::Shutdown]);
}

#[test]
fn a_panicking_handler_resets_its_connection_and_the_server_keeps_serving() {
    let (server, observed) = echo_server(Config::new().threads(1));
    let mut bystander = connect(server.local_addr());
    assert_eq!(round_trip(&mut bystander, b"before"), b"before");

    let mut victim = connect(server.local_addr());
    std::io::Write::write_all(&mut victim, b"please panic!").unwrap();
    let mut buf = [0u8; 16];
    let end = victim.read(&mut buf);
    assert!(matches!(end, Ok(0)) || end.as_ref().unwrap_err().kind() == ErrorKind::ConnectionReset, "{end:?}");

    assert_eq!(round_trip(&mut bystander, b"after"), b"after");
    let mut newcomer = connect(server.local_addr());
    assert_eq!(round_trip(&mut newcomer, b"new"), b"new");
    let stats = server.stats();
    assert_eq!(stats.panics, 1);
    assert_eq!(stats.errors, 1);
    assert_eq!(stats.closed, 1);
    // The panicked session is not called again, not even on_close.
    assert!(observed.closes().is_empty());
}

#[test]
fn a_panicking_session_constructor_drops_only_that_connection() {
    let count = Arc::new(Mutex::new(0));
    let seen = count.clone();
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), move |_: &mut Conn| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        assert!(*n != 2, "the second session refuses to be built");
        common::Echo { observed: Default::default() }
    })
    .unwrap();
    let mut first = connect(server.local_addr());
    let mut second = connect(server.local_addr());
    let mut buf = [0u8; 4];
    assert!(matches!(second.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(round_trip(&mut first, b"ok"), b"ok");
    assert_eq!(server.stats().panics, 1);
}

/// Panics in on_write (after a backlog drained) or in its own Drop, as asked.
struct Fragile {
    panic_in_drop: bool,
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Fragile {
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        match input {
            b"write" => {
                conn.write(b"x");
                conn.want_write();
            }
            b"drop" => {
                self.panic_in_drop = true;
                conn.close();
            }
            _ => conn.write(input),
        }
        input.len()
    }
    fn on_write(&mut self, _: &mut Conn) {
        panic!("on_write fails");
    }
    fn on_close(&mut self, _: &mut Conn, reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if self.panic_in_drop {
            panic!("drop fails");
        }
    }
}

#[test]
fn panics_in_on_write_and_in_drop_are_contained() {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let recorded = closes.clone();
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), move |_: &mut Conn| Fragile {
        panic_in_drop: false,
        closes: recorded.clone(),
    })
    .unwrap();
    let mut bystander = connect(server.local_addr());
    assert_eq!(round_trip(&mut bystander, b"hi"), b"hi");

    for trigger in [&b"write"[..], b"drop"] {
        let mut client = connect(server.local_addr());
        std::io::Write::write_all(&mut client, trigger).unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
    }
    assert!(eventually(Duration::from_secs(5), || server.stats().panics == 2));
    assert_eq!(round_trip(&mut bystander, b"still here"), b"still here");
    // on_close ran for the session that panicked in Drop (it closed normally first), not for
    // the one that panicked in on_write.
    assert_eq!(*closes.lock().unwrap(), [CloseReason::Closed]);
    assert_eq!(server.stats().closed, 2);
}

#[test]
fn two_listeners_of_one_server_on_the_same_address_are_refused() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = Config::new().threads(1).tcp(free).http(format!("0.0.0.0:{}", free.port()));
    let err = smoke::spawn(config, |_: &mut Conn| common::Echo { observed: Default::default() }).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bind 0.0.0.0:{} (http): overlaps this server's tcp listener on {free}", free.port())
    );
}

#[test]
fn a_handler_is_refused_listeners_whose_protocol_it_cannot_speak() {
    let http = smoke::spawn(Config::new().threads(1).http("127.0.0.1:0"), |_: &mut Conn| common::Echo {
        observed: Default::default(),
    });
    let err = http.unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("an http listener needs a smoke::Server"), "{err}");
    let udp = smoke::spawn(Config::new().threads(1).udp("127.0.0.1:0"), |_: &mut Conn| common::Echo {
        observed: Default::default(),
    });
    assert!(udp.unwrap_err().to_string().starts_with("a udp listener needs sessions for its peers"));
}
