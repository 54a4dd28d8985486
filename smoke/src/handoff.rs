//! Restarts that drop nobody: a new process takes the listening sockets over from the running
//! one through a Unix socket at the `handoff` path (`SCM_RIGHTS`), starts serving on them, and
//! only then tells the old one, which stops accepting and drains as on SIGTERM. The sockets
//! never close, so no connection attempt meets a closed port; the old process's connections end
//! as a drain ends them (an HTTP connection after the answer it owes, a WebSocket with 1001).
//!
//! The exchange, one line at a time (the running server's `listener` lines carry the
//! descriptors):
//!
//! ```text
//! successor:   sockets
//! running:     listener <name> <tcp|udp> <address> <count>     (with <count> descriptors)
//!              ...
//!              end
//! successor:   serving
//! running:     draining
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::handle::ServerHandle;
use crate::rt::error::Error;
use crate::rt::spawn::Listening;
use crate::sys::inherit::{InheritedSocket, MAX_FDS_PER_MESSAGE, recv_with_fds, send_with_fds};

/// How long either side waits for the other's next line.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The running process a new one takes over from: connected, its sockets received.
#[derive(Debug)]
pub(crate) struct Predecessor {
    stream: UnixStream,
}

impl Predecessor {
    /// Takes the sockets of the process serving at `path`, if one is: `None` when nobody
    /// answers there (the first start). A process that answers and then fails is an error.
    pub(crate) fn take_over(path: &Path) -> Result<Option<(Predecessor, Vec<InheritedSocket>)>, Error> {
        let stream = match UnixStream::connect(path) {
            Ok(stream) => stream,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
                return Ok(None);
            }
            Err(e) => return Err(Error::io(format!("reach the running server at {}", path.display()), e)),
        };
        let failed = |e| Error::io(format!("take the sockets of the running server at {}", path.display()), e);
        stream.set_read_timeout(Some(EXCHANGE_TIMEOUT)).map_err(failed)?;
        (&stream).write_all(b"sockets\n").map_err(failed)?;
        let sockets = receive_sockets(&stream).map_err(failed)?;
        Ok(Some((Predecessor { stream }, sockets)))
    }

    /// This process serves now: the old one stops accepting and drains. Returns once it has
    /// said so.
    pub(crate) fn serving(self) -> Result<(), Error> {
        let failed = |e| Error::io("tell the previous server to drain", e);
        (&self.stream).write_all(b"serving\n").map_err(failed)?;
        let mut answer = String::new();
        BufReader::new(&self.stream).read_line(&mut answer).map_err(failed)?;
        if answer.trim_end() != "draining" {
            return Err(Error::other(format!("the previous server answered {answer:?} to `serving`")));
        }
        Ok(())
    }
}

/// Reads `listener` lines and their descriptors until `end`. A stream socket may join two
/// messages in one read, so lines and descriptors are paired in order, each line claiming the
/// next `<count>` descriptors, wherever the reads ended.
fn receive_sockets(stream: &UnixStream) -> io::Result<Vec<InheritedSocket>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let (mut text, mut fds) = (Vec::new(), std::collections::VecDeque::new());
    let mut sockets = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(end) = text.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&text[..end]).into_owned();
            if line == "end" {
                return if fds.is_empty() { Ok(sockets) } else { Err(invalid(format!("{} fds too many", fds.len()))) };
            }
            let count: usize = line
                .strip_prefix("listener ")
                .and_then(|rest| rest.rsplit(' ').next()?.parse().ok())
                .ok_or_else(|| invalid(format!("unexpected {line:?}")))?;
            if fds.len() < count {
                break; // its descriptors come with the next read
            }
            for fd in fds.drain(..count) {
                sockets.push(InheritedSocket::new(fd)?);
            }
            text.drain(..=end);
        }
        let (len, received) = recv_with_fds(stream, &mut buf)?;
        if len == 0 {
            return Err(invalid("the running server hung up mid-way".into()));
        }
        text.extend_from_slice(&buf[..len]);
        fds.extend(received);
    }
}

/// Answers the next process that starts with the same `handoff` path, on a thread of its own:
/// binds the path (replacing a predecessor's), hands over `server`'s sockets when asked, and
/// once the successor serves, asks this process to shut down (as SIGTERM does).
pub(crate) fn await_successor(path: &Path, server: &ServerHandle, name: &str) -> Result<(), Error> {
    let listener = listen_for_successor(path)?;
    let (sockets, name, path) = (server.listening().clone(), name.to_owned(), path.to_owned());
    std::thread::Builder::new()
        .name("smoke-handoff".into())
        .spawn(move || answer_successors(&listener, &sockets, &name, &path))
        .map_err(|e| Error::io("start the handoff thread", e))?;
    Ok(())
}

/// Binds `path` for the next process to ask at, replacing a predecessor's socket file.
pub(crate) fn listen_for_successor(path: &Path) -> Result<UnixListener, Error> {
    let failed = |e| Error::io(format!("listen for a successor at {}", path.display()), e);
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(failed(e)),
        _ => {}
    }
    UnixListener::bind(path).map_err(failed)
}

/// The server's sockets, shared with the runtime, which lets go of them when it stops.
pub(crate) type Sockets = Arc<Mutex<Vec<Listening>>>;

fn answer_successors(listener: &UnixListener, sockets: &Sockets, name: &str, path: &Path) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        match hand_over(&stream, sockets) {
            Ok(()) => {
                println!("{name}: a new process serves from {}; draining", path.display());
                crate::sys::signal::request_shutdown();
                return;
            }
            Err(e) => eprintln!("{name}: a successor at {} did not take over, still serving: {e}", path.display()),
        }
    }
}

/// Sends every socket to a successor that asks, then waits for it to serve.
pub(crate) fn hand_over(stream: &UnixStream, sockets: &Sockets) -> io::Result<()> {
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim_end() != "sockets" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("asked {line:?}")));
    }
    {
        let sockets = sockets.lock().unwrap_or_else(PoisonError::into_inner);
        if sockets.is_empty() {
            return Err(io::Error::other("this server is stopping; start the new one plainly"));
        }
        for listener in sockets.iter() {
            let transport = if listener.datagram { "udp" } else { "tcp" };
            for chunk in listener.fds.chunks(MAX_FDS_PER_MESSAGE) {
                let header = format!("listener {} {transport} {} {}\n", listener.name, listener.addr, chunk.len());
                let fds: Vec<_> = chunk.iter().map(|fd| fd.as_fd()).collect();
                send_with_fds(stream, header.as_bytes(), &fds)?;
            }
        }
    }
    send_with_fds(stream, b"end\n", &[])?;
    line.clear();
    reader.read_line(&mut line)?;
    if line.trim_end() != "serving" {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("said {line:?} instead of serving")));
    }
    (&*stream).write_all(b"draining\n")
}
