//! How connections end: resets, half-close, handler close/abort/shutdown_write, idle timeout.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{Rng, connect, echo_server, eventually, round_trip};
use smoke::{CloseReason, Config, Conn, Handler};

/// Makes the coming close of `stream` send RST (SO_LINGER with a zero timeout).
fn reset_on_close(stream: &std::net::TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the fd is a live socket and `linger` is the type SO_LINGER expects.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn a_client_reset_in_the_middle_of_a_large_echo_closes_only_that_connection() {
    let (server, observed) = echo_server(Config::new().threads(1).max_write_buffer(64 << 10));
    let mut client = connect(server.local_addr());
    // Write without reading until our socket is full: by then the kernel's buffers on both sides
    // are full too and the server is mid-write (output queued, EPOLLOUT armed).
    fill_until_blocked(&mut client);
    assert!(server.stats().buffers_held > 0, "the server has output queued: {:?}", server.stats());
    reset_on_close(&client);
    drop(client);

    assert!(eventually(Duration::from_secs(10), || observed.closes().len() == 1));
    assert_eq!(observed.closes(), [CloseReason::Reset]);
    assert_eq!(server.stats().errors, 1);
    assert!(eventually(Duration::from_secs(5), || server.stats().buffers_held == 0));

    let mut other = connect(server.local_addr());
    assert_eq!(round_trip(&mut other, b"still serving"), b"still serving");
}

#[test]
fn half_close_gets_every_echo_then_end_of_stream() {
    let (server, observed) = echo_server(Config::new().threads(1));
    let mut client = connect(server.local_addr());
    let payload = Rng::new(3).bytes(300 << 10);
    let mut writer = client.try_clone().unwrap();
    let sent = payload.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    assert!(back == payload, "got {} of {} bytes back", back.len(), payload.len());
    assert!(eventually(Duration::from_secs(5), || observed.closes() == [CloseReason::PeerClosed]));
}

/// Answers each message according to its content; after `fin` it only listens.
#[derive(Default)]
struct Commands {
    write_side_shut: bool,
}

impl Handler for Commands {
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if self.write_side_shut {
            return input.len();
        }
        match input {
            b"close" => {
                conn.write(b"bye");
                conn.close();
            }
            b"abort" => {
                conn.write(b"this is never sent");
                conn.abort();
            }
            b"fin" => {
                conn.write(b"done writing");
                conn.shutdown_write();
                self.write_side_shut = true;
            }
            other => conn.write(other),
        }
        input.len()
    }
}

fn command_server(config: Config) -> smoke::ServerHandle {
    smoke::spawn(config.threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| Commands::default()).unwrap()
}

#[test]
fn close_flushes_pending_output_first() {
    let server = command_server(Config::new());
    let mut client = connect(server.local_addr());
    client.write_all(b"close").unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"bye");
}

#[test]
fn abort_resets_and_drops_pending_output() {
    let server = command_server(Config::new());
    let mut client = connect(server.local_addr());
    client.write_all(b"abort").unwrap();
    let mut buf = [0u8; 64];
    let err = client.read(&mut buf).expect_err("an aborted connection is reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(eventually(Duration::from_secs(5), || server.stats().closed == 1));
}

#[test]
fn shutdown_write_sends_fin_but_keeps_reading() {
    let server = command_server(Config::new());
    let mut client = connect(server.local_addr());
    client.write_all(b"fin").unwrap();
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"done writing");
    // The server still reads: our bytes arrive, but it cannot answer any more.
    client.write_all(b"more input").unwrap();
    assert!(eventually(Duration::from_secs(5), || server.stats().bytes_in == 13), "server saw {:?}", server.stats());
    assert_eq!(server.stats().closed, 0);
}

#[test]
fn idle_connections_time_out_and_active_ones_do_not() {
    // A timeout far above the pings' spacing, so a loaded machine's scheduling cannot make the
    // active connection look idle.
    let (server, observed) = echo_server(Config::new().threads(1).idle_timeout(Some(Duration::from_millis(1000))));
    let mut idle = connect(server.local_addr());
    let mut active = connect(server.local_addr());
    let mut buf = [0u8; 1];
    for _ in 0..16 {
        assert_eq!(round_trip(&mut active, b"k"), b"k");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The idle one was closed by the server: we read end of stream.
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
    assert!(observed.closes().contains(&CloseReason::Timeout));
    assert_eq!(round_trip(&mut active, b"still open"), b"still open");
}

#[test]
fn only_input_keeps_a_connection_from_idling_out() {
    /// Writes a heartbeat from its own timer every 50 ms and never hears from its peer.
    struct Heartbeat;
    impl Handler for Heartbeat {
        fn on_connect(&mut self, conn: &mut Conn) {
            conn.set_timer(Duration::from_millis(50));
        }
        fn on_data(&mut self, _: &mut Conn, input: &[u8]) -> usize {
            input.len()
        }
        fn on_timer(&mut self, conn: &mut Conn) {
            conn.write(b".");
            conn.set_timer(Duration::from_millis(50));
        }
    }
    let config = Config::new().threads(1).idle_timeout(Some(Duration::from_millis(600))).tcp("127.0.0.1:0");
    let server = smoke::spawn(config, |_: &mut Conn| Heartbeat).unwrap();
    let mut silent = connect(server.local_addr());
    // The server's own timer and writes wake the connection every 50 ms; the client says
    // nothing, so it idles out all the same.
    let mut heard = Vec::new();
    silent.read_to_end(&mut heard).unwrap();
    assert!(heard.len() >= 5, "the heartbeat ran ({} beats) before the idle close", heard.len());
    assert!(eventually(Duration::from_secs(5), || server.stats().closed == 1));
}

#[test]
fn input_a_handler_never_consumes_is_bounded() {
    struct Hoarder;
    impl Handler for Hoarder {
        fn on_data(&mut self, _: &mut Conn, _: &[u8]) -> usize {
            0
        }
    }
    let server =
        smoke::spawn(Config::new().threads(1).max_read_buffer(64 << 10).tcp("127.0.0.1:0"), |_: &mut Conn| Hoarder)
            .unwrap();
    let mut client = connect(server.local_addr());
    let chunk = vec![1u8; 16 << 10];
    // The server closes once 64 KiB are held; writing then fails or the read sees the close.
    for _ in 0..64 {
        if client.write_all(&chunk).is_err() {
            break;
        }
    }
    // Closed: end of stream, or a reset for the input it never read. A read timeout is not a
    // close.
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
    assert!(eventually(Duration::from_secs(5), || server.stats().errors == 1));
}

/// Arms a timer on connect; when it fires, writes "tick" and closes.
struct Alarm;

impl Handler for Alarm {
    fn on_connect(&mut self, conn: &mut Conn) {
        conn.set_timer(Duration::from_millis(500));
    }
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if input == b"snooze" {
            conn.set_timer(Duration::from_millis(100));
        } else if input == b"off" {
            conn.cancel_timer();
            conn.write(b"cancelled");
        }
        input.len()
    }
    fn on_timer(&mut self, conn: &mut Conn) {
        conn.write(b"tick");
        conn.close();
    }
}

#[test]
fn connection_timers_fire_once_and_can_be_reset_or_cancelled() {
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| Alarm).unwrap();
    let mut fired = connect(server.local_addr());
    let mut all = Vec::new();
    fired.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"tick");

    let mut snoozed = connect(server.local_addr());
    snoozed.write_all(b"snooze").unwrap();
    let mut all = Vec::new();
    snoozed.read_to_end(&mut all).unwrap();
    // Reset to 100 ms, it fired then and closed; the stale 500 ms entry is skipped.
    assert_eq!(all, b"tick");

    let mut cancelled = connect(server.local_addr());
    cancelled.write_all(b"off").unwrap();
    let mut reply = [0u8; 9];
    cancelled.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"cancelled");
    // Past the original 500 ms deadline: nothing arrives, the connection stays open.
    cancelled.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    let mut buf = [0u8; 8];
    assert!(cancelled.read(&mut buf).is_err(), "no tick after cancel");
    assert_eq!(server.stats().closed, 2);
}

/// Writes without reading until the socket has stayed full for a while: by then the kernel's
/// buffers on both sides are full and the server's output waits for us (EPOLLOUT armed).
fn fill_until_blocked(client: &mut std::net::TcpStream) {
    client.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut blocked_rounds = 0;
    while blocked_rounds < 200 {
        match client.write(&chunk) {
            Ok(_) => blocked_rounds = 0,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked_rounds += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    client.set_nonblocking(false).unwrap();
}

#[test]
fn a_client_that_stops_reading_is_closed_after_send_timeout() {
    let config = Config::new().threads(1).max_write_buffer(64 << 10).send_timeout(Some(Duration::from_millis(300)));
    let (server, observed) = echo_server(config);
    let mut stalled = connect(server.local_addr());
    fill_until_blocked(&mut stalled);
    assert!(server.stats().buffers_held > 0, "the server has output waiting: {:?}", server.stats());

    assert!(eventually(Duration::from_secs(10), || observed.closes().len() == 1), "{:?}", server.stats());
    assert_eq!(observed.closes(), [CloseReason::SendTimeout]);
    assert_eq!(server.stats().timeouts, 1);
    assert!(eventually(Duration::from_secs(5), || server.stats().buffers_held == 0), "its output is freed");
    let mut other = connect(server.local_addr());
    assert_eq!(round_trip(&mut other, b"still serving"), b"still serving");
}

#[test]
fn a_slow_reader_that_keeps_reading_outlives_many_send_timeouts() {
    // Every read lets the server send a little: progress, so the 300 ms never runs out, though
    // the echo takes many times that.
    let config = Config::new().threads(1).max_write_buffer(64 << 10).send_timeout(Some(Duration::from_millis(300)));
    let (server, observed) = echo_server(config);
    let mut client = connect(server.local_addr());
    let payload = Rng::new(7).bytes(4 << 20);
    let mut writer = client.try_clone().unwrap();
    let sent = payload.clone();
    let writing = std::thread::spawn(move || writer.write_all(&sent));
    let mut back = Vec::with_capacity(payload.len());
    let mut chunk = [0u8; 16 << 10];
    let mut reads = 0;
    while back.len() < payload.len() {
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} bytes: {:?}", back.len(), observed.closes());
        back.extend_from_slice(&chunk[..n]);
        reads += 1;
        if reads % 4 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    writing.join().unwrap().unwrap();
    assert!(back == payload, "every byte back, in order");
    assert_eq!((observed.closes(), server.stats().timeouts), (vec![], 0));
}

/// Closes (after "bye") as soon as input starts with "close", whatever else came with it;
/// "linger" closes with `close_lingering`; "stall" holds the worker for half a second.
struct CloseOnCommand;

impl Handler for CloseOnCommand {
    fn on_data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if input.starts_with(b"stall") {
            std::thread::sleep(Duration::from_millis(500));
        } else if input.starts_with(b"close") {
            conn.write(b"bye");
            conn.close();
        } else if input.starts_with(b"linger") {
            conn.write(b"bye");
            conn.close_lingering();
        }
        input.len()
    }
}

#[test]
fn a_close_while_the_peer_is_still_sending_lingers_so_the_peer_reads_the_answer() {
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| CloseOnCommand).unwrap();
    let mut client = connect(server.local_addr());
    // "linger" and then 16 MiB the server will never read: without the lingering close, the
    // server's socket closes on unread input, the kernel resets, and this write fails.
    let mut writer = client.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        writer.write_all(b"linger")?;
        writer.write_all(&vec![1u8; 16 << 20])?;
        writer.shutdown(Shutdown::Write)
    });
    writing.join().unwrap().expect("every byte was taken (read and dropped), none reset");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).expect("the answer and the end of stream, not a reset");
    assert_eq!(answer, b"bye");
    assert!(eventually(Duration::from_secs(5), || server.stats().lingering == 0), "{:?}", server.stats());
    assert_eq!((server.stats().closed, server.stats().errors), (1, 0));
}

#[test]
fn a_lingering_socket_closes_once_the_peer_falls_quiet() {
    let server = smoke::spawn(Config::new().threads(1).tcp("127.0.0.1:0"), |_: &mut Conn| CloseOnCommand).unwrap();
    // A plain close, with input the server has not read yet: it lingers by itself. So that the
    // input is there when the close comes (not still on its way), the one worker is held busy
    // while it arrives.
    let mut staller = connect(server.local_addr());
    staller.write_all(b"stall").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut client = connect(server.local_addr());
    let mut writer = client.try_clone().unwrap();
    let writing = std::thread::spawn(move || {
        writer.write_all(b"close")?;
        writer.write_all(&vec![1u8; 1 << 20])
    });
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    writing.join().unwrap().expect("every byte taken: no reset");
    assert_eq!(answer, b"bye");
    // The client keeps its socket open and says nothing more: the server's side lingers for
    // its quiet limit (5 s), then lets go.
    assert!(eventually(Duration::from_secs(2), || server.stats().lingering == 1), "{:?}", server.stats());
    assert!(eventually(Duration::from_secs(15), || server.stats().lingering == 0), "{:?}", server.stats());
    drop(client);
}

/// Writes a byte to every connection on each tick, and closes lingering on "linger".
#[derive(Default)]
struct Ticking;

#[smoke::server(tcp = 9000, threads = 1)]
impl Ticking {
    #[on_data]
    fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        if input.starts_with(b"linger") {
            conn.write(b"bye");
            conn.close_lingering();
        }
        input.len()
    }

    #[on_tick(ms = 5)]
    fn tick(worker: &mut smoke::Worker<Self>) {
        worker.for_each_tcp(|_, conn| conn.write(b"t"));
    }
}

#[test]
fn a_lingering_socket_is_not_a_session_any_more_for_the_tick() {
    let server = Ticking::spawn(common::on_loopback(Ticking::config(), "tcp")).unwrap();
    let mut client = connect(server.local_addr());
    client.write_all(b"linger").unwrap();
    let mut seen = Vec::new();
    client.read_to_end(&mut seen).unwrap();
    assert!(seen.ends_with(b"bye"), "{seen:?}");
    assert!(eventually(Duration::from_secs(2), || server.stats().lingering == 1));
    // Ticks go on while it lingers; none of them writes to it (its output would be held, and
    // never sent).
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(10));
        let stats = server.stats();
        assert_eq!((stats.buffers_held, stats.lingering), (0, 1), "{stats:?}");
    }
    drop(client);
    assert!(eventually(Duration::from_secs(5), || server.stats().lingering == 0));
}
